//! Three discovery nodes on loopback: provider records keyed by rendition id find the peer
//! that holds it without any tracker, peer records are checked against the provider's key,
//! and AutoNAT concludes that loopback nodes are reachable.

use std::time::{Duration, Instant};

use discovery::{Discovery, DiscoveryConfig, Reachability, peer_id_of};
use protocol::wire::{NodeRole, PeerInfo};
use protocol::{Identity, RenditionId};

fn config(bootstrap: Vec<discovery::Addr>) -> DiscoveryConfig {
    DiscoveryConfig {
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        bootstrap,
        mdns: false,
        autonat_global_only: false,
        query_timeout: Duration::from_secs(5),
    }
}

fn info(identity: &Identity, port: u16) -> PeerInfo {
    PeerInfo {
        holding: None,
        node: identity.node_id(),
        addrs: vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))],
        region: "SE".parse().unwrap(),
        role: NodeRole::SuperNode,
        upload_spare_kbps: 10_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_are_found_through_the_dht_without_a_tracker() {
    let seed = Identity::from_secret_bytes(&[1; 32]);
    let holder = Identity::from_secret_bytes(&[2; 32]);
    let seeker = Identity::from_secret_bytes(&[3; 32]);
    let bootstrap = Discovery::start(&seed, config(vec![])).await.unwrap();
    // The libp2p key is the Chorus node key.
    assert_eq!(peer_id_of(&seed.node_id()), Some(bootstrap.peer_id()));
    let mut addrs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while addrs.is_empty() {
        addrs = bootstrap.listen_addrs().await.unwrap();
        assert!(Instant::now() < deadline, "bootstrap node never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let holder_node = Discovery::start(&holder, config(addrs.clone()))
        .await
        .unwrap();
    let seeker_node = Discovery::start(&seeker, config(addrs)).await.unwrap();
    let rendition = RenditionId([0xAB; 32]);
    let nobody = RenditionId([0xCD; 32]);

    // Publishing needs routing-table peers; retry until the DHT has formed.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match holder_node
            .publish(info(&holder, 4472), vec![rendition])
            .await
        {
            Ok(()) => break,
            Err(error) => {
                assert!(Instant::now() < deadline, "publish never worked: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let found = seeker_node.find_peers(&rendition, 10).await.unwrap();
        if !found.is_empty() {
            break found;
        }
        assert!(Instant::now() < deadline, "the provider was never found");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(found, vec![info(&holder, 4472)]);
    assert!(
        seeker_node
            .find_peers(&nobody, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The holder does not find itself.
    assert!(
        holder_node
            .find_peers(&rendition, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // AutoNAT: the seeker is probed by its peers and found reachable on loopback.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seeker_node.reachability() != Reachability::Public {
        assert!(
            Instant::now() < deadline,
            "AutoNAT never concluded: {:?}",
            seeker_node.reachability()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lan_peers_find_each_other_by_mdns() {
    let holder = Identity::from_secret_bytes(&[4; 32]);
    let seeker = Identity::from_secret_bytes(&[5; 32]);
    let lan = |_: ()| DiscoveryConfig {
        listen: "/ip4/0.0.0.0/tcp/0".parse().unwrap(),
        mdns: true,
        ..config(vec![])
    };
    let holder_node = Discovery::start(&holder, lan(())).await.unwrap();
    let seeker_node = Discovery::start(&seeker, lan(())).await.unwrap();
    let rendition = RenditionId([0xEF; 32]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let _ = holder_node
            .publish(info(&holder, 4474), vec![rendition])
            .await;
        let found = seeker_node.find_peers(&rendition, 10).await.unwrap();
        if !found.is_empty() {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "mDNS never connected the two nodes"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(found[0].node, holder.node_id());
}
