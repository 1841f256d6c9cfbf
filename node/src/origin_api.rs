//! The few origin HTTP calls a super-node (or a tracker) makes: where the network's services
//! are, logging in, and the super-node role token.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use protocol::{LicenseToken, NodeId, Region};

/// A node reachable over `chorus/1`: its id and address, written `NODE_ID@HOST:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAddr {
    /// The node id the handshake must prove.
    pub node: NodeId,
    /// Its QUIC address.
    pub addr: SocketAddr,
}

impl std::str::FromStr for NodeAddr {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> anyhow::Result<Self> {
        let (node, addr) = text.split_once('@').context("expected NODE_ID@HOST:PORT")?;
        Ok(Self {
            node: node.parse().context("node id: 64 hex characters")?,
            addr: addr.parse().context("address: HOST:PORT")?,
        })
    }
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.node, self.addr)
    }
}

/// What `GET /v1/network` says.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    /// The origin: its node id signs manifests and licenses.
    pub origin: NodeAddr,
    /// The tracker, if the origin's operator configured one.
    pub tracker: Option<NodeAddr>,
}

/// A super-node role token and what came with it.
#[derive(Debug, Clone)]
pub struct RoleToken {
    /// The token, bound to the node.
    pub license: LicenseToken,
    /// The account's region (the super-node's).
    pub region: Region,
    /// When it expires (Unix milliseconds).
    pub expires_at_ms: u64,
    /// The network info that came with it.
    pub network: NetworkInfo,
}

/// An HTTP client of one origin.
#[derive(Debug, Clone)]
pub struct OriginApi {
    base: String,
    http: reqwest::Client,
}

fn parse_network(value: &serde_json::Value) -> anyhow::Result<NetworkInfo> {
    let origin = NodeAddr {
        node: value["origin"]["node_id"]
            .as_str()
            .context("origin.node_id missing")?
            .parse()?,
        addr: value["origin"]["quic"]
            .as_str()
            .context("origin.quic missing")?
            .parse()?,
    };
    let tracker = match value["tracker"].as_str() {
        Some(text) => Some(text.parse().context("the origin's tracker setting")?),
        None => None,
    };
    Ok(NetworkInfo { origin, tracker })
}

async fn answer(response: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "{status}: {}",
            body["error"]["message"].as_str().unwrap_or("no detail")
        );
    }
    Ok(body)
}

impl OriginApi {
    /// A client of the origin at `base` (e.g. `http://127.0.0.1:8470`).
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    /// The origin's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /v1/network`.
    pub async fn network(&self) -> anyhow::Result<NetworkInfo> {
        let response = self
            .http
            .get(format!("{}/v1/network", self.base))
            .send()
            .await
            .with_context(|| format!("reaching the origin at {}", self.base))?;
        parse_network(&answer(response).await?)
    }

    /// Logs in; returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}/v1/sessions", self.base))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .with_context(|| format!("reaching the origin at {}", self.base))?;
        let body = answer(response).await.context("logging in")?;
        Ok(body["access_token"]
            .as_str()
            .context("no access token in the answer")?
            .to_string())
    }

    /// `POST /v1/nodes/token`: a super-node role token bound to `node`.
    pub async fn role_token(&self, access: &str, node: &NodeId) -> anyhow::Result<RoleToken> {
        let response = self
            .http
            .post(format!("{}/v1/nodes/token", self.base))
            .bearer_auth(access)
            .json(&serde_json::json!({"node_id": node.to_hex()}))
            .send()
            .await
            .with_context(|| format!("reaching the origin at {}", self.base))?;
        let body = answer(response).await.context("asking for a role token")?;
        let bytes = hex::decode(body["license"].as_str().context("no license")?)?;
        Ok(RoleToken {
            license: LicenseToken::from_bytes(&bytes)?,
            region: body["region"].as_str().context("no region")?.parse()?,
            expires_at_ms: body["expires_at"].as_u64().context("no expires_at")?,
            network: parse_network(&body)?,
        })
    }
}
