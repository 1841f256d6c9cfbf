//! The simulator runs the policy that ships and nothing else: its dependency tree holds
//! `protocol` and `policy` from this workspace and none of the I/O stacks the production
//! drivers use, so no runtime, socket or store can sneak into a simulated run.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Crates that do I/O (or pull a runtime in); none may be reachable from `sim`.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "quinn",
    "quinn-proto",
    "libp2p",
    "axum",
    "hyper",
    "reqwest",
    "sled",
    "rustls",
    "mio",
    "socket2",
    "tantivy",
    "sqlx",
    "symphonia",
    "client-lib",
    "tracker",
    "node",
    "transport",
    "origin",
    "discovery",
    "api",
];

#[test]
fn the_simulator_depends_on_protocol_and_policy_only() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let names: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let workspace: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| names[id.as_str().unwrap()])
        .collect();
    // Edges that count in a build of the library: normal dependencies (not dev, not build).
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in metadata["resolve"]["nodes"].as_array().unwrap() {
        let from = node["id"].as_str().unwrap();
        for dep in node["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|kind| kind["kind"].is_null());
            if normal {
                edges
                    .entry(from)
                    .or_default()
                    .push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    let sim = names
        .iter()
        .find(|(_, name)| **name == "sim")
        .map(|(id, _)| *id)
        .unwrap();
    let mut reached = BTreeSet::new();
    let mut stack = vec![sim];
    while let Some(id) = stack.pop() {
        for &next in edges.get(id).into_iter().flatten() {
            if reached.insert(next) {
                stack.push(next);
            }
        }
    }
    let reached: BTreeSet<&str> = reached.iter().map(|id| names[id]).collect();

    let from_workspace: Vec<&str> = reached
        .iter()
        .copied()
        .filter(|name| workspace.contains(name))
        .collect();
    assert_eq!(
        from_workspace,
        ["policy", "protocol"],
        "workspace crates under sim"
    );
    let forbidden: Vec<&str> = reached
        .iter()
        .copied()
        .filter(|name| FORBIDDEN.contains(name))
        .collect();
    assert!(forbidden.is_empty(), "I/O crates under sim: {forbidden:?}");
}
