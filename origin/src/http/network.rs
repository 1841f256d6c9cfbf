//! What super-nodes and trackers need from the origin: where the network's services are
//! (`GET /v1/network`) and the super-node role token (`POST /v1/nodes/token`).

use super::auth::Authed;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::state::{AppState, now_ms};
use super::{Limit, Routes};
use api::network::{Network, NodeToken, NodeTokenRequest, OriginAddr};
use utoipa_axum::routes;

use axum::Json;
use axum::extract::State;
use protocol::UnixMillis;
use protocol::license::{LICENSE_VERSION, LicenseClaims, LicenseScope, LicenseToken};

use crate::store::Role;

#[utoipa::path(get, path = "/v1/network", tag = "network", responses((status = 200, body = Network)))]
/// `GET /v1/network`: the origin's node id (the key that signs manifests and licenses) and
/// QUIC address, and the tracker shards, if any are configured. Public: trackers and super-nodes read
/// it at start to learn whom to trust.
pub async fn network(State(state): State<AppState>) -> Json<Network> {
    Json(Network {
        origin: origin_addr(&state),
        tracker: state.trackers.first(),
        trackers: state.trackers.all(),
    })
}

/// The origin's key and QUIC address.
fn origin_addr(state: &AppState) -> OriginAddr {
    OriginAddr {
        node_id: state.identity.node_id().to_hex(),
        quic: state.quic_addr.to_string(),
    }
}

#[utoipa::path(post, path = "/v1/nodes/token", tag = "network", security(("bearer" = [])), request_body = NodeTokenRequest, responses((status = 200, body = NodeToken), (status = 400, body = ErrorBody, description = "invalid_node_id"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not_super_node")))]
/// `POST /v1/nodes/token`: a super-node role token for an account with the `super_node` role
/// (created by the operator with `chorus admin create-super-node`), bound to the node id, in
/// the account's region, valid for the play-license lifetime. Renew before `expires_at`.
pub async fn node_token(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiJson(request): ApiJson<NodeTokenRequest>,
) -> Result<Json<NodeToken>, ApiError> {
    if !matches!(account.role, Role::SuperNode | Role::Admin) {
        return Err(ApiError::forbidden(
            "not_super_node",
            "only super-node accounts get role tokens",
        ));
    }
    let node = super::error::parse_node_id(&request.node_id)?;
    let now = now_ms();
    let expires_at = now + state.config.license_ttl_s * 1000;
    let claims = LicenseClaims {
        version: LICENSE_VERSION,
        issuer: state.identity.node_id(),
        account: account.id.parse().map_err(ApiError::internal)?,
        node,
        region: account.region.parse().map_err(ApiError::internal)?,
        scope: LicenseScope::SuperNode,
        markets: Vec::new(),
        issued_at: UnixMillis(now),
        expires_at: UnixMillis(expires_at),
        offline: false,
    };
    let license = LicenseToken::issue(&state.identity, &claims).map_err(ApiError::internal)?;
    state.traffic.super_node(
        api::admin::SuperNodeState {
            node_id: node.to_hex(),
            username: account.username.clone(),
            region: account.region.clone(),
            expires_at_ms: expires_at,
        },
        now,
    );
    Ok(Json(NodeToken {
        license: hex::encode(license.to_bytes().map_err(ApiError::internal)?),
        region: account.region,
        expires_at,
        origin: origin_addr(&state),
        tracker: state.trackers.first(),
        trackers: state.trackers.all(),
    }))
}

/// Where the network is, and super-node role tokens.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(Limit::Ip, routes!(network))
        .add(Limit::Ip, routes!(node_token))
        .into()
}
