//! `chorus devnet --web ADDR`: the network drawn live in a browser. Listeners, super-nodes and
//! the origin are nodes (listeners and super-nodes grouped by region), the chunks moving in
//! the last second are edges (thicker for more bytes, coloured by who sent them), and the
//! share of bytes from the origin, super-nodes and peers is plotted second by second.
//!
//! The page (embedded) asks `GET /state.json` every second; the devnet's watch loop fills
//! the state once a second from the crowd's counters.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use protocol::NodeId;
use serde::Serialize;

const PAGE: &str = include_str!("web.html");
const SCRIPT: &str = include_str!("web.js");
/// Seconds of source shares kept for the plot.
const SHARES_KEPT: usize = 3_600;
/// Edges drawn (the busiest).
const EDGES_DRAWN: usize = 2_000;

/// A node of the drawing.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Short id (the first 12 hex digits of the node id).
    pub id: String,
    /// `origin`, `super_node` or `listener`.
    pub kind: &'static str,
    /// Its region code (the origin: empty).
    pub region: String,
}

/// Bytes that moved between two nodes in the last second.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// The sender's short id.
    pub from: String,
    /// The receiver's short id.
    pub to: String,
    /// Bytes in the last second.
    pub bytes: u64,
}

/// One second of what listeners received, by source.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shares {
    /// Seconds since the workload started.
    pub t: f64,
    /// Bytes from the origin in that second.
    pub origin: u64,
    /// From super-nodes.
    pub super_nodes: u64,
    /// From other listeners.
    pub peers: u64,
}

#[derive(Debug, Default, Serialize)]
struct State {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    shares: VecDeque<Shares>,
    /// The live line's numbers (plays, first-audio percentiles, egress, peer share).
    summary: serde_json::Value,
}

/// What the page shows, updated by the devnet's watch loop.
#[derive(Debug, Default)]
pub struct WebView {
    state: Mutex<State>,
    /// Cumulative bytes per (receiver, sender) at the last update.
    edges_seen: Mutex<HashMap<(NodeId, NodeId), u64>>,
    totals_seen: Mutex<(u64, u64, u64)>,
}

/// The short id a node goes by on the page.
pub fn short(node: &NodeId) -> String {
    node.to_hex().chars().take(12).collect()
}

impl WebView {
    /// Sets the nodes drawn.
    pub fn nodes(&self, nodes: Vec<Node>) {
        self.lock().nodes = nodes;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// One second's update: the cumulative bytes by (receiver, sender) and by source
    /// (origin, super-nodes, peers) at `t` seconds, and the live line's numbers.
    pub fn update(
        &self,
        t: f64,
        edges: Vec<(NodeId, NodeId, u64)>,
        totals: (u64, u64, u64),
        summary: serde_json::Value,
    ) {
        let mut seen = self
            .edges_seen
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut moved: Vec<Edge> = edges
            .into_iter()
            .filter_map(|(receiver, sender, total)| {
                let before = seen.insert((receiver, sender), total).unwrap_or(0);
                let bytes = total.saturating_sub(before);
                (bytes > 0).then(|| Edge {
                    from: short(&sender),
                    to: short(&receiver),
                    bytes,
                })
            })
            .collect();
        drop(seen);
        moved.sort_by_key(|edge| std::cmp::Reverse(edge.bytes));
        moved.truncate(EDGES_DRAWN);
        let mut last = self
            .totals_seen
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let second = Shares {
            t,
            origin: totals.0.saturating_sub(last.0),
            super_nodes: totals.1.saturating_sub(last.1),
            peers: totals.2.saturating_sub(last.2),
        };
        *last = totals;
        drop(last);
        let mut state = self.lock();
        state.edges = moved;
        state.shares.push_back(second);
        while state.shares.len() > SHARES_KEPT {
            state.shares.pop_front();
        }
        state.summary = summary;
    }

    fn json(&self) -> String {
        serde_json::to_string(&*self.lock()).unwrap_or_else(|_| "{}".into())
    }
}

/// Serves the page on `addr`; returns where it listens.
pub async fn serve(addr: SocketAddr, view: Arc<WebView>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route(
            "/",
            get(|| async { asset(PAGE, "text/html; charset=utf-8") }),
        )
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .route(
            "/devnet.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/state.json",
            get(move || {
                let view = view.clone();
                async move {
                    let mut response = view.json().into_response();
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    response
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(bound)
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_what_moved_since_the_last_second_and_shares_are_per_second() {
        let view = WebView::default();
        let (a, b) = (
            protocol::Identity::from_secret_bytes(&[1; 32]).node_id(),
            protocol::Identity::from_secret_bytes(&[2; 32]).node_id(),
        );
        view.update(1.0, vec![(a, b, 100)], (10, 0, 100), serde_json::json!({}));
        view.update(2.0, vec![(a, b, 100)], (30, 5, 100), serde_json::json!({}));
        let state: serde_json::Value = serde_json::from_str(&view.json()).unwrap();
        assert_eq!(
            state["edges"],
            serde_json::json!([]),
            "nothing moved in second 2"
        );
        assert_eq!(state["shares"][1]["origin"], 20);
        assert_eq!(state["shares"][1]["super_nodes"], 5);
        view.update(3.0, vec![(a, b, 250)], (30, 5, 250), serde_json::json!({}));
        let state: serde_json::Value = serde_json::from_str(&view.json()).unwrap();
        assert_eq!(state["edges"][0]["bytes"], 150);
        assert_eq!(state["edges"][0]["from"], short(&b));
    }
}
