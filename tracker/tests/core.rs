//! The tracker's rules, driven through `TrackerService::answer` (signature checks included)
//! with a clock the test controls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use protocol::license::{LICENSE_VERSION, LicenseClaims, LicenseScope, LicenseToken};
use protocol::wire::{
    Announce, ErrorCode, Holding, NodeRole, Partial, PeerList, PeerQuery, PeerReport, PopularQuery,
    Refresh, ReportReason, Request, Response, announce_set,
};
use protocol::{AccountId, Identity, NodeId, Region, RenditionId, UnixMillis};
use rand::SeedableRng;
use tracker::{TrackerConfig, TrackerService};

const T0: u64 = 1_800_000_000_000;

struct World {
    origin: Identity,
    rng: rand_chacha::ChaCha20Rng,
    clock: Arc<AtomicU64>,
    tracker: TrackerService,
}

fn region(code: &str) -> Region {
    code.parse().unwrap()
}

fn rendition(n: u8) -> RenditionId {
    RenditionId([n; 32])
}

impl World {
    fn new(config: TrackerConfig) -> Self {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let origin = Identity::generate(&mut rng);
        let clock = Arc::new(AtomicU64::new(T0));
        let read = clock.clone();
        let tracker = TrackerService::new(
            config,
            origin.node_id(),
            Arc::new(move || UnixMillis(read.load(Ordering::Relaxed))),
        );
        Self {
            origin,
            rng,
            clock,
            tracker,
        }
    }

    fn node(&mut self) -> Identity {
        Identity::generate(&mut self.rng)
    }

    fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    fn token(
        &self,
        signer: &Identity,
        node: NodeId,
        region_code: &str,
        scope: LicenseScope,
        markets: &[&str],
    ) -> LicenseToken {
        // One account per node unless a test says otherwise (see `token_for`).
        let mut account = [0u8; 16];
        account.copy_from_slice(&node.0[..16]);
        self.token_for(
            signer,
            node,
            AccountId(account),
            region_code,
            scope,
            markets,
        )
    }

    fn token_for(
        &self,
        signer: &Identity,
        node: NodeId,
        account: AccountId,
        region_code: &str,
        scope: LicenseScope,
        markets: &[&str],
    ) -> LicenseToken {
        let now = self.now();
        let claims = LicenseClaims {
            version: LICENSE_VERSION,
            issuer: signer.node_id(),
            account,
            node,
            region: region(region_code),
            scope,
            markets: markets.iter().map(|code| region(code)).collect(),
            issued_at: UnixMillis(now - 1_000),
            expires_at: UnixMillis(now + 3_600_000),
            offline: false,
        };
        LicenseToken::issue(signer, &claims).unwrap()
    }

    fn play(
        &self,
        node: NodeId,
        region_code: &str,
        markets: &[&str],
        r: RenditionId,
    ) -> LicenseToken {
        let scope = LicenseScope::Play {
            renditions: vec![r],
        };
        self.token(&self.origin, node, region_code, scope, markets)
    }

    fn announce(
        &self,
        node: &Identity,
        region_code: &str,
        role: NodeRole,
        renditions: &[RenditionId],
        spare: u32,
    ) -> Response {
        self.announce_holding(node, region_code, role, renditions, &[], spare)
    }

    /// An announce with `partial` renditions too, which the client's credential covers as
    /// well.
    fn announce_holding(
        &self,
        node: &Identity,
        region_code: &str,
        role: NodeRole,
        renditions: &[RenditionId],
        partial: &[Partial],
        spare: u32,
    ) -> Response {
        let credential = match role {
            NodeRole::SuperNode => self.token(
                &self.origin,
                node.node_id(),
                region_code,
                LicenseScope::SuperNode,
                &[],
            ),
            // A client's credential covers what it announces (proofs are tested apart).
            _ => {
                let mut covered = renditions.to_vec();
                covered.extend(partial.iter().map(|p| p.rendition));
                if covered.is_empty() {
                    covered.push(rendition(0));
                }
                let scope = LicenseScope::Play {
                    renditions: covered,
                };
                self.token(&self.origin, node.node_id(), region_code, scope, &[])
            }
        };
        self.tracker.answer(
            node.node_id(),
            &Request::Announce(Announce {
                partial: partial.to_vec(),
                region: region(region_code),
                role,
                addrs: vec![SocketAddr::from(([127, 0, 0, 1], 4000))],
                renditions: renditions.to_vec(),
                upload_spare_kbps: spare,
                credential,
                proofs: Vec::new(),
            }),
        )
    }

    /// A client's refresh of the set `whole` + `partial` (by its digest), its credential
    /// covering rendition 0 only.
    fn refresh(
        &self,
        node: &Identity,
        region_code: &str,
        whole: &[RenditionId],
        partial: &[Partial],
        spare: u32,
    ) -> Response {
        let credential = self.play(node.node_id(), region_code, &[], rendition(0));
        self.tracker.answer(
            node.node_id(),
            &Request::Refresh(Refresh {
                set: announce_set(whole.iter(), partial.iter().map(|p| &p.rendition)),
                region: region(region_code),
                role: NodeRole::Client,
                addrs: vec![SocketAddr::from(([127, 0, 0, 1], 4000))],
                partial: partial.to_vec(),
                upload_spare_kbps: spare,
                credential,
            }),
        )
    }

    fn query_with(&self, asker: &Identity, license: LicenseToken, r: RenditionId) -> Response {
        self.tracker.answer(
            asker.node_id(),
            &Request::PeerQuery(PeerQuery {
                rendition: r,
                want: 10,
                license,
            }),
        )
    }

    fn query(
        &self,
        asker: &Identity,
        region_code: &str,
        markets: &[&str],
        r: RenditionId,
    ) -> PeerList {
        let license = self.play(asker.node_id(), region_code, markets, r);
        match self.query_with(asker, license, r) {
            Response::PeerList(list) => list,
            other => panic!("expected a peer list, got {other:?}"),
        }
    }
}

fn error_code(response: Response) -> ErrorCode {
    match response {
        Response::Error(error) => error.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn acked(response: Response) {
    assert!(
        matches!(&response, Response::AnnounceAck { ttl_ms, unproven } if *ttl_ms > 0 && unproven.is_empty()),
        "{response:?}"
    );
}

#[test]
fn partial_holders_are_listed_after_complete_ones_with_their_progress_grown() {
    let mut world = World::new(TrackerConfig::default());
    let r = rendition(1);
    let downloading = world.node();
    let whole = world.node();
    let partial = |held, per_min| Partial {
        rendition: r,
        held,
        per_min,
    };
    // The downloading peer claims far more spare capacity: holding it all still ranks first.
    acked(world.announce_holding(
        &downloading,
        "SE",
        NodeRole::Client,
        &[],
        &[partial(10, 600)],
        8_000,
    ));
    acked(world.announce(&whole, "SE", NodeRole::Client, &[r], 100));
    let asker = world.node();
    let list = world.query(&asker, "SE", &[], r);
    let listed: Vec<_> = list.peers.iter().map(|p| (p.node, p.holding)).collect();
    assert_eq!(
        listed,
        [
            (whole.node_id(), None),
            (
                downloading.node_id(),
                Some(Holding {
                    held: 10,
                    per_min: 600
                })
            ),
        ]
    );

    // Half a minute later the prefix has grown at its rate (10 chunks a second).
    world.advance(30_000);
    let list = world.query(&asker, "SE", &[], r);
    assert_eq!(list.peers[1].holding.map(|h| h.held), Some(310));

    // A re-announce of the same sets corrects the figures in place.
    acked(world.announce_holding(
        &downloading,
        "SE",
        NodeRole::Client,
        &[],
        &[partial(250, 120)],
        8_000,
    ));
    let list = world.query(&asker, "SE", &[], r);
    assert_eq!(
        list.peers[1].holding,
        Some(Holding {
            held: 250,
            per_min: 120
        })
    );

    // Done: it holds the rendition whole and ranks by its spare capacity again. A rendition
    // named in both sets counts as whole.
    world.advance(2_000);
    acked(world.announce_holding(
        &downloading,
        "SE",
        NodeRole::Client,
        &[r],
        &[partial(300, 120)],
        8_000,
    ));
    let list = world.query(&asker, "SE", &[], r);
    let listed: Vec<_> = list.peers.iter().map(|p| (p.node, p.holding)).collect();
    assert_eq!(
        listed,
        [(downloading.node_id(), None), (whole.node_id(), None)]
    );
}

#[test]
fn a_burst_of_partial_holders_does_not_push_whole_holders_out() {
    let mut world = World::new(TrackerConfig {
        peers_per_rendition_max: 2,
        ..TrackerConfig::default()
    });
    let r = rendition(1);
    let whole = world.node();
    acked(world.announce(&whole, "SE", NodeRole::Client, &[r], 100));
    let partial = Partial {
        rendition: r,
        held: 4,
        per_min: 60,
    };
    let starters: Vec<Identity> = (0..3).map(|_| world.node()).collect();
    for starter in &starters {
        acked(world.announce_holding(starter, "SE", NodeRole::Client, &[], &[partial], 100));
    }
    let asker = world.node();
    let listed: Vec<NodeId> = world
        .query(&asker, "SE", &[], r)
        .peers
        .iter()
        .map(|peer| peer.node)
        .collect();
    assert_eq!(listed, [whole.node_id(), starters[2].node_id()]);
}

#[test]
fn a_partial_holding_needs_a_license_like_a_whole_one() {
    let mut world = World::new(TrackerConfig::default());
    let (r, unlicensed) = (rendition(1), rendition(2));
    let node = world.node();
    // The credential covers `r` only.
    let credential = world.play(node.node_id(), "SE", &[], r);
    let response = world.tracker.answer(
        node.node_id(),
        &Request::Announce(Announce {
            region: region("SE"),
            role: NodeRole::Client,
            addrs: vec![SocketAddr::from(([127, 0, 0, 1], 4000))],
            renditions: Vec::new(),
            partial: vec![
                Partial {
                    rendition: r,
                    held: 3,
                    per_min: 60,
                },
                Partial {
                    rendition: unlicensed,
                    held: 3,
                    per_min: 60,
                },
            ],
            upload_spare_kbps: 1_000,
            credential,
            proofs: Vec::new(),
        }),
    );
    match response {
        Response::AnnounceAck { unproven, .. } => assert_eq!(unproven, [unlicensed]),
        other => panic!("expected an ack, got {other:?}"),
    }
    let asker = world.node();
    assert_eq!(world.query(&asker, "SE", &[], r).peers.len(), 1);
    assert!(world.query(&asker, "SE", &[], unlicensed).peers.is_empty());
}

#[test]
fn the_licensing_and_region_matrix_at_the_tracker() {
    let mut world = World::new(TrackerConfig::default());
    let r = rendition(1);
    let holder_se = world.node();
    let holder_de = world.node();
    acked(world.announce(&holder_se, "SE", NodeRole::Client, &[r], 1000));
    acked(world.announce(&holder_de, "DE", NodeRole::Client, &[r], 1000));
    let asker = world.node();
    let id = asker.node_id();

    // Valid token, track licensed everywhere: both holders.
    assert_eq!(world.query(&asker, "SE", &[], r).peers.len(), 2);

    // Track licensed in SE and NO only: the DE holder is never listed.
    let list = world.query(&asker, "SE", &["SE", "NO"], r);
    assert_eq!(list.peers.len(), 1);
    assert_eq!(list.peers[0].node, holder_se.node_id());

    // Expired.
    let expired = world.play(id, "SE", &[], r);
    world.advance(3_600_001);
    assert_eq!(
        error_code(world.query_with(&asker, expired, r)),
        ErrorCode::LicenseExpired
    );

    // Forged: signed by someone who is not the origin.
    let forger = world.node();
    let scope = LicenseScope::Play {
        renditions: vec![r],
    };
    let forged = world.token(&forger, id, "SE", scope, &[]);
    assert_eq!(
        error_code(world.query_with(&asker, forged, r)),
        ErrorCode::LicenseForged
    );

    // Bound to another node.
    let other = world.node();
    let stolen = world.play(other.node_id(), "SE", &[], r);
    assert_eq!(
        error_code(world.query_with(&asker, stolen, r)),
        ErrorCode::LicenseWrongNode
    );

    // Covers another rendition.
    let elsewhere = world.play(id, "SE", &[], rendition(9));
    assert_eq!(
        error_code(world.query_with(&asker, elsewhere, r)),
        ErrorCode::LicenseNotCovered
    );

    // Out-of-market track: the asker's region is not among the markets.
    let out_of_market = world.play(id, "SE", &["US"], r);
    assert_eq!(
        error_code(world.query_with(&asker, out_of_market, r)),
        ErrorCode::NotInRegion
    );

    // Wrong region: announcing a region other than the licensed one.
    let liar = world.node();
    let credential = world.play(liar.node_id(), "SE", &[], r);
    let response = world.tracker.answer(
        liar.node_id(),
        &Request::Announce(Announce {
            partial: Vec::new(),
            region: region("US"),
            role: NodeRole::Client,
            addrs: vec![],
            renditions: vec![r],
            upload_spare_kbps: 0,
            credential,
            proofs: Vec::new(),
        }),
    );
    assert_eq!(error_code(response), ErrorCode::NotInRegion);

    // A client token cannot announce a super-node.
    let pretender = world.node();
    let credential = world.play(pretender.node_id(), "SE", &[], r);
    let response = world.tracker.answer(
        pretender.node_id(),
        &Request::Announce(Announce {
            partial: Vec::new(),
            region: region("SE"),
            role: NodeRole::SuperNode,
            addrs: vec![],
            renditions: vec![r],
            upload_spare_kbps: 0,
            credential,
            proofs: Vec::new(),
        }),
    );
    assert_eq!(error_code(response), ErrorCode::LicenseNotCovered);
}

#[test]
fn ranking_prefers_same_region_then_super_nodes_then_spare_capacity() {
    let mut world = World::new(TrackerConfig::default());
    let r = rendition(2);
    let far_super = world.node();
    let near_small = world.node();
    let near_big = world.node();
    let near_super = world.node();
    acked(world.announce(&far_super, "DE", NodeRole::SuperNode, &[r], 90_000));
    acked(world.announce(&near_small, "SE", NodeRole::Client, &[r], 100));
    acked(world.announce(&near_big, "SE", NodeRole::Client, &[r], 5_000));
    acked(world.announce(&near_super, "SE", NodeRole::SuperNode, &[r], 1));
    let asker = world.node();
    let order: Vec<NodeId> = world
        .query(&asker, "SE", &[], r)
        .peers
        .iter()
        .map(|peer| peer.node)
        .collect();
    assert_eq!(
        order,
        vec![
            near_super.node_id(),
            near_big.node_id(),
            near_small.node_id(),
            far_super.node_id()
        ]
    );
    // Never the asker itself.
    let list = world.query(&near_big, "SE", &[], r);
    assert!(
        list.peers
            .iter()
            .all(|peer| peer.node != near_big.node_id())
    );
    assert_eq!(list.peers.len(), 3);
}

#[test]
fn a_change_of_region_or_capacity_with_the_same_set_reranks_the_peer() {
    let mut world = World::new(TrackerConfig::default());
    let r = rendition(5);
    let mover = world.node();
    let steady = world.node();
    acked(world.announce(&mover, "SE", NodeRole::Client, &[r], 4_000));
    acked(world.announce(&steady, "SE", NodeRole::Client, &[r], 1_000));
    let asker = world.node();
    let first = |list: PeerList| list.peers.first().map(|peer| peer.node);
    assert_eq!(
        first(world.query(&asker, "SE", &[], r)),
        Some(mover.node_id())
    );

    // Its spare capacity falls (same set): it drops behind.
    world.advance(2_000);
    acked(world.announce(&mover, "SE", NodeRole::Client, &[r], 10));
    let list = world.query(&asker, "SE", &[], r);
    assert_eq!(first(list.clone()), Some(steady.node_id()));
    assert_eq!(list.peers[1].upload_spare_kbps, 10);

    // It moves to the US with a new license (same set): a track licensed only in SE and NO
    // no longer lists it, and it ranks after same-region peers everywhere else.
    world.advance(2_000);
    let credential = world.play(mover.node_id(), "US", &[], rendition(0));
    acked(world.tracker.answer(
        mover.node_id(),
        &Request::Announce(Announce {
            partial: Vec::new(),
            region: region("US"),
            role: NodeRole::Client,
            addrs: vec![SocketAddr::from(([127, 0, 0, 1], 4001))],
            renditions: vec![r],
            upload_spare_kbps: 90_000,
            credential,
            proofs: Vec::new(),
        }),
    ));
    let list = world.query(&asker, "SE", &["SE", "NO"], r);
    assert_eq!(list.peers.len(), 1);
    assert_eq!(list.peers[0].node, steady.node_id());
    let list = world.query(&asker, "SE", &[], r);
    assert_eq!(list.peers.len(), 2);
    assert_eq!(list.peers[1].node, mover.node_id());
    assert_eq!(list.peers[1].region, region("US"));
}

#[test]
fn lists_are_capped_and_holders_bounded_to_the_most_recent() {
    let mut world = World::new(TrackerConfig::default());
    let r = rendition(3);
    let mut holders = Vec::new();
    for _ in 0..30 {
        let node = world.node();
        acked(world.announce(&node, "SE", NodeRole::Client, &[r], 100));
        holders.push(node.node_id());
        world.advance(10);
    }
    let asker = world.node();
    let list = world.query(&asker, "SE", &[], r);
    assert_eq!(list.peers.len(), 10, "peers_returned_max");
    let now = UnixMillis(world.now());
    let _ = now;
    // Only the 20 most recent announcers are kept; the first 10 are gone.
    for peer in &list.peers {
        assert!(holders[10..].contains(&peer.node));
    }
}

#[test]
fn announces_are_soft_state_that_expires() {
    let mut world = World::new(TrackerConfig::default());
    let r = rendition(4);
    let holder = world.node();
    acked(world.announce(&holder, "SE", NodeRole::Client, &[r], 100));
    let asker = world.node();
    assert_eq!(world.query(&asker, "SE", &[], r).peers.len(), 1);
    world.advance(TrackerConfig::default().announce_ttl_ms + 1);
    assert!(world.query(&asker, "SE", &[], r).peers.is_empty());
    assert_eq!(world.tracker.expire(), 1);
    let (_, peers, _) = world.tracker.snapshot();
    assert_eq!(peers, 0);
    // A re-announce without the rendition withdraws it at once.
    acked(world.announce(&holder, "SE", NodeRole::Client, &[r], 100));
    assert_eq!(world.query(&asker, "SE", &[], r).peers.len(), 1);
    world.advance(2_000);
    acked(world.announce(&holder, "SE", NodeRole::Client, &[rendition(5)], 100));
    assert!(world.query(&asker, "SE", &[], r).peers.is_empty());
}

#[test]
fn announce_floods_are_refused_and_capacity_is_bounded() {
    let config = TrackerConfig {
        peers_max: 3,
        renditions_max: 5,
        ..TrackerConfig::default()
    };
    let mut world = World::new(config);
    let node = world.node();
    acked(world.announce(&node, "SE", NodeRole::Client, &[rendition(1)], 1));
    assert_eq!(
        error_code(world.announce(&node, "SE", NodeRole::Client, &[rendition(1)], 1)),
        ErrorCode::Overloaded
    );
    world.advance(1_000);
    acked(world.announce(&node, "SE", NodeRole::Client, &[rendition(1)], 1));
    // Three peers fit, the fourth is refused until one expires.
    for _ in 0..2 {
        let other = world.node();
        acked(world.announce(&other, "SE", NodeRole::Client, &[], 1));
    }
    let late = world.node();
    assert_eq!(
        error_code(world.announce(&late, "SE", NodeRole::Client, &[], 1)),
        ErrorCode::Overloaded
    );
    // Renditions beyond the cap are not recorded, and nothing grows.
    world.advance(1_000);
    let many: Vec<RenditionId> = (10..60).map(rendition).collect();
    acked(world.announce(&node, "SE", NodeRole::Client, &many, 1));
    let (stats, peers, renditions) = world.tracker.snapshot();
    assert_eq!(peers, 3);
    assert!(renditions <= 5, "{renditions}");
    assert!(stats.renditions_dropped > 0);
    world.advance(TrackerConfig::default().announce_ttl_ms + 1);
    world.tracker.expire();
    acked(world.announce(&late, "SE", NodeRole::Client, &[], 1));
}

/// A report of `peer` for `r` from `reporter` under `account`.
fn report_as(
    world: &World,
    reporter: &Identity,
    account: AccountId,
    peer: NodeId,
    r: RenditionId,
) -> Response {
    let scope = LicenseScope::Play {
        renditions: vec![r],
    };
    let license = world.token_for(&world.origin, reporter.node_id(), account, "SE", scope, &[]);
    world.tracker.answer(
        reporter.node_id(),
        &Request::Report(PeerReport {
            peer,
            rendition: r,
            reason: ReportReason::Missing,
            license,
        }),
    )
}

#[test]
fn reports_drop_the_entry_and_distinct_accounts_quarantine_the_peer() {
    let mut world = World::new(TrackerConfig::default());
    let renditions: Vec<RenditionId> = (6..=11).map(rendition).collect();
    let liar = world.node();
    acked(world.announce(&liar, "SE", NodeRole::Client, &renditions, 100));
    let first = world.node();
    let account = |n: u8| AccountId([n; 16]);
    assert_eq!(
        report_as(&world, &first, account(1), liar.node_id(), renditions[0]),
        Response::Reported
    );
    assert!(
        world
            .query(&first, "SE", &[], renditions[0])
            .peers
            .is_empty(),
        "entry dropped"
    );
    // One account reporting again from other node ids drops those entries but adds no
    // strike: the peer is still listed for the rest.
    for r in &renditions[1..3] {
        let sybil = world.node();
        assert_eq!(
            report_as(&world, &sybil, account(1), liar.node_id(), *r),
            Response::Reported
        );
    }
    assert_eq!(world.query(&first, "SE", &[], renditions[3]).peers.len(), 1);
    assert_eq!(world.tracker.snapshot().0.quarantined, 0);
    // Two more distinct accounts: quarantined everywhere, re-announces refused.
    for n in 2..=3u8 {
        let reporter = world.node();
        let r = renditions[usize::from(n) + 1];
        assert_eq!(
            report_as(&world, &reporter, account(n), liar.node_id(), r),
            Response::Reported
        );
    }
    assert_eq!(world.tracker.snapshot().0.quarantined, 1);
    assert!(
        world
            .query(&first, "SE", &[], renditions[5])
            .peers
            .is_empty()
    );
    world.advance(2_000);
    assert_eq!(
        error_code(world.announce(&liar, "SE", NodeRole::Client, &renditions, 100)),
        ErrorCode::Overloaded
    );
    // A report needs a license for the rendition.
    let stranger = world.node();
    let license = world.play(stranger.node_id(), "SE", &[], rendition(99));
    let response = world.tracker.answer(
        stranger.node_id(),
        &Request::Report(PeerReport {
            peer: liar.node_id(),
            rendition: renditions[0],
            reason: ReportReason::BadChunk,
            license,
        }),
    );
    assert_eq!(error_code(response), ErrorCode::LicenseNotCovered);
}

#[test]
fn reports_against_non_holders_count_for_nothing_and_are_budgeted() {
    let mut world = World::new(TrackerConfig {
        reports_per_account_per_hour: 5,
        ..TrackerConfig::default()
    });
    let r = rendition(20);
    let honest = world.node();
    acked(world.announce(&honest, "SE", NodeRole::Client, &[rendition(21)], 100));
    // Three accounts report a peer that never announced `r`: no strike, still listed.
    for n in 1..=3 {
        let reporter = world.node();
        assert_eq!(
            report_as(&world, &reporter, AccountId([n; 16]), honest.node_id(), r),
            Response::Reported
        );
    }
    let asker = world.node();
    assert_eq!(world.query(&asker, "SE", &[], rendition(21)).peers.len(), 1);
    assert_eq!(world.tracker.snapshot().0.quarantined, 0);
    assert_eq!(world.tracker.snapshot().0.reports_ignored, 3);
    // An account's budget runs out.
    let spammer = world.node();
    for _ in 0..5 {
        assert_eq!(
            report_as(&world, &spammer, AccountId([9; 16]), honest.node_id(), r),
            Response::Reported
        );
    }
    assert_eq!(
        error_code(report_as(
            &world,
            &spammer,
            AccountId([9; 16]),
            honest.node_id(),
            r
        )),
        ErrorCode::Overloaded
    );
    // An hour later it is back.
    world.advance(3_600_000);
    assert_eq!(
        report_as(&world, &spammer, AccountId([9; 16]), honest.node_id(), r),
        Response::Reported
    );
}

#[test]
fn report_budgets_are_bounded_and_freed_by_the_expiry_walk() {
    let mut world = World::new(TrackerConfig {
        report_accounts_max: 3,
        ..TrackerConfig::default()
    });
    let holder = world.node();
    acked(world.announce(&holder, "SE", NodeRole::Client, &[rendition(90)], 100));
    let report = |world: &World, account: u8| {
        let reporter = Identity::from_secret_bytes(&[account; 32]);
        report_as(
            world,
            &reporter,
            AccountId([account; 16]),
            holder.node_id(),
            rendition(91),
        )
    };
    for account in 1..=3 {
        assert_eq!(report(&world, account), Response::Reported);
    }
    // A fourth account does not fit; the three kept still report.
    assert_eq!(error_code(report(&world, 4)), ErrorCode::Overloaded);
    assert_eq!(report(&world, 2), Response::Reported);
    // Their hour over, the expiry walk frees the budgets (a refused report does not sweep).
    world.advance(3_600_000);
    assert_eq!(error_code(report(&world, 4)), ErrorCode::Overloaded);
    world.tracker.expire();
    assert_eq!(report(&world, 4), Response::Reported);
}

#[test]
fn self_declared_spare_capacity_is_capped() {
    let mut world = World::new(TrackerConfig::default());
    let r = rendition(30);
    let liar = world.node();
    let fast = world.node();
    acked(world.announce(&liar, "SE", NodeRole::Client, &[r], u32::MAX));
    world.advance(10);
    acked(world.announce(&fast, "SE", NodeRole::Client, &[r], 20_000));
    let asker = world.node();
    let list = world.query(&asker, "SE", &[], r);
    // Both rank in the capped bucket; the more recent announce comes first.
    assert_eq!(list.peers[0].node, fast.node_id());
    assert_eq!(list.peers[1].upload_spare_kbps, 20_000);
}

#[test]
fn popularity_follows_queries_and_is_for_super_nodes() {
    let mut world = World::new(TrackerConfig::default());
    let asker = world.node();
    for (n, times) in [(10u8, 5), (11, 20), (12, 1)] {
        for _ in 0..times {
            world.query(&asker, "SE", &[], rendition(n));
        }
    }
    let super_node = world.node();
    let credential = world.token(
        &world.origin,
        super_node.node_id(),
        "SE",
        LicenseScope::SuperNode,
        &[],
    );
    let response = world.tracker.answer(
        super_node.node_id(),
        &Request::Popular(PopularQuery {
            want: 2,
            credential,
        }),
    );
    let Response::Popular(list) = response else {
        panic!("{response:?}");
    };
    let order: Vec<RenditionId> = list
        .renditions
        .iter()
        .map(|entry| entry.rendition)
        .collect();
    assert_eq!(order, vec![rendition(11), rendition(10)]);
    assert_eq!(list.renditions[0].score, 20);
    // A client token does not get the list.
    let credential = world.play(asker.node_id(), "SE", &[], rendition(10));
    let response = world.tracker.answer(
        asker.node_id(),
        &Request::Popular(PopularQuery {
            want: 2,
            credential,
        }),
    );
    assert_eq!(error_code(response), ErrorCode::LicenseNotCovered);
}

#[test]
fn chunk_requests_are_refused_by_a_tracker() {
    let mut world = World::new(TrackerConfig::default());
    let node = world.node();
    let license = world.play(node.node_id(), "SE", &[], rendition(1));
    let response = world.tracker.answer(
        node.node_id(),
        &Request::Manifest(protocol::wire::ManifestRequest {
            rendition: rendition(1),
            license,
        }),
    );
    assert_eq!(error_code(response), ErrorCode::BadRequest);
    assert_eq!(
        world
            .tracker
            .answer(node.node_id(), &Request::Ping { nonce: 3 }),
        Response::Pong { nonce: 3 }
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use tracker::Tracker;

    #[derive(Debug, Clone)]
    enum Op {
        Announce {
            peer: u8,
            renditions: Vec<u8>,
            super_node: bool,
        },
        Query {
            asker: u8,
            rendition: u8,
            want: u16,
        },
        Report {
            reporter: u8,
            peer: u8,
            rendition: u8,
        },
        Advance {
            ms: u32,
        },
        Expire,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                any::<u8>(),
                prop::collection::vec(any::<u8>(), 0..40),
                any::<bool>()
            )
                .prop_map(|(peer, renditions, super_node)| Op::Announce {
                    peer,
                    renditions,
                    super_node
                }),
            (any::<u8>(), any::<u8>(), 1..=50u16).prop_map(|(asker, rendition, want)| Op::Query {
                asker,
                rendition,
                want
            }),
            (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(reporter, peer, rendition)| {
                Op::Report {
                    reporter,
                    peer,
                    rendition,
                }
            }),
            (0..200_000u32).prop_map(|ms| Op::Advance { ms }),
            Just(Op::Expire),
        ]
    }

    fn node(n: u8) -> NodeId {
        NodeId([n; 32])
    }

    fn peer_region(node: NodeId) -> Region {
        region(if node.0[0].is_multiple_of(2) {
            "SE"
        } else {
            "DE"
        })
    }

    fn claims(node: NodeId, scope: LicenseScope, now: u64) -> LicenseClaims {
        LicenseClaims {
            version: LICENSE_VERSION,
            issuer: NodeId([0; 32]),
            account: AccountId([1; 16]),
            node,
            region: peer_region(node),
            scope,
            markets: if node.0[0].is_multiple_of(3) {
                vec![region("SE")]
            } else {
                Vec::new()
            },
            issued_at: UnixMillis(now),
            expires_at: UnixMillis(now + 10_000_000),
            offline: false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Any sequence of operations keeps every bound and every rule, and never panics.
        #[test]
        fn bounds_and_rules_hold_under_any_sequence(ops in prop::collection::vec(op(), 1..300)) {
            let config = TrackerConfig {
                peers_max: 40,
                renditions_max: 60,
                peers_per_rendition_max: 5,
                peers_returned_max: 3,
                ..TrackerConfig::default()
            };
            let mut core = Tracker::new(config);
            let mut now = 1_000_000u64;
            // (peer, rendition) pairs some license of the peer ever covered.
            let mut licensed = std::collections::HashSet::new();
            for op in ops {
                match op {
                    Op::Announce { peer, renditions, super_node } => {
                        let scope = if super_node { LicenseScope::SuperNode } else {
                            LicenseScope::Play { renditions: vec![rendition(0)] }
                        };
                        let claims = claims(node(peer), scope, now);
                        // Peers with an odd id prove the lower half of what they announce;
                        // the rest is unproven unless proved before.
                        let proven: Vec<u8> = if peer % 2 == 1 && claims.market_includes(&claims.region) {
                            renditions.iter().copied().filter(|r| *r < 128).collect()
                        } else {
                            Vec::new()
                        };
                        let mut proof = claims.clone();
                        proof.scope = LicenseScope::Play {
                            renditions: proven.iter().copied().map(rendition).collect(),
                        };
                        let proofs = if proven.is_empty() { Vec::new() } else { vec![proof] };
                        let announce = Announce {
                            partial: Vec::new(),
                            region: claims.region,
                            role: if super_node { NodeRole::SuperNode } else { NodeRole::Client },
                            addrs: vec![SocketAddr::from(([127, 0, 0, 1], u16::from(peer)))],
                            renditions: renditions.iter().copied().map(rendition).collect(),
                            upload_spare_kbps: u32::from(peer),
                            credential: LicenseToken { claims: Vec::new(), signature: [0; 64] },
                            proofs: Vec::new(),
                        };
                        let result = core.announce(UnixMillis(now), &node(peer), &claims, &proofs, &announce);
                        if result.is_ok() {
                            licensed.insert((peer, 0));
                            for r in &renditions {
                                if super_node || proven.contains(r) {
                                    licensed.insert((peer, *r));
                                }
                            }
                        }
                        if let Ok(announced) = &result {
                            // Only announced renditions come back unproven, never one a
                            // license of this announce covers.
                            for r in &announced.unproven {
                                prop_assert!(renditions.contains(&r.0[0]));
                                prop_assert!(!super_node && !proven.contains(&r.0[0]) && r.0[0] != 0);
                            }
                        }
                        // A peer is never a holder of what no license of its ever covered.
                        for r in &renditions {
                            if core.holders(UnixMillis(now), &rendition(*r)).contains(&node(peer)) {
                                prop_assert!(licensed.contains(&(peer, *r)), "peer {} holds {} unlicensed", peer, r);
                            }
                        }
                    }
                    Op::Query { asker, rendition: r, want } => {
                        let claims = claims(node(asker), LicenseScope::Play { renditions: vec![rendition(r)] }, now);
                        let query = PeerQuery { rendition: rendition(r), want, license: LicenseToken { claims: Vec::new(), signature: [0; 64] } };
                        // What the answer must be drawn from: live holders the asker may use.
                        let eligible: Vec<NodeId> = core
                            .holders(UnixMillis(now), &rendition(r))
                            .into_iter()
                            .filter(|peer| *peer != node(asker))
                            .filter(|peer| claims.market_includes(&peer_region(*peer)))
                            .collect();
                        if let Ok(list) = core.query(UnixMillis(now), &node(asker), &claims, &query) {
                            prop_assert!(list.peers.len() <= 3);
                            prop_assert!(list.peers.len() <= usize::from(want));
                            // As many as asked for whenever there are that many.
                            prop_assert_eq!(
                                list.peers.len(),
                                eligible.len().min(3).min(usize::from(want))
                            );
                            for peer in &list.peers {
                                prop_assert!(peer.node != node(asker));
                                prop_assert!(claims.market_includes(&peer.region));
                                prop_assert!(eligible.contains(&peer.node));
                                prop_assert_eq!(peer.region, peer_region(peer.node));
                            }
                            // Same region first.
                            let same: Vec<bool> = list.peers.iter().map(|peer| peer.region == claims.region).collect();
                            prop_assert!(same.windows(2).all(|pair| pair[0] >= pair[1]), "{:?}", same);
                        }
                    }
                    Op::Report { reporter, peer, rendition: r } => {
                        let claims = claims(node(reporter), LicenseScope::Play { renditions: vec![rendition(r)] }, now);
                        let report = PeerReport { peer: node(peer), rendition: rendition(r), reason: ReportReason::Missing, license: LicenseToken { claims: Vec::new(), signature: [0; 64] } };
                        let _ = core.report(UnixMillis(now), &node(reporter), &claims, &report);
                    }
                    Op::Advance { ms } => now += u64::from(ms),
                    Op::Expire => { core.expire(UnixMillis(now)); }
                }
                prop_assert!(core.peers() <= 40);
                prop_assert!(core.renditions() <= 60);
                prop_assert!(core.entries() <= 60 * 5);
            }
        }
    }
}

#[test]
fn a_reported_entry_comes_back_with_the_peers_next_announce() {
    let mut world = World::new(TrackerConfig::default());
    let r = rendition(40);
    let honest = world.node();
    acked(world.announce(&honest, "SE", NodeRole::Client, &[r], 100));
    let reporter = world.node();
    assert_eq!(
        report_as(&world, &reporter, AccountId([1; 16]), honest.node_id(), r),
        Response::Reported
    );
    let asker = world.node();
    assert!(world.query(&asker, "SE", &[], r).peers.is_empty());
    // Its next refresh of the same set lists it again.
    world.advance(2_000);
    acked(world.announce(&honest, "SE", NodeRole::Client, &[r], 100));
    assert_eq!(world.query(&asker, "SE", &[], r).peers.len(), 1);
}

#[test]
fn announced_addresses_must_be_the_observed_one_unless_from_a_relay() {
    let addr = |text: &str| -> SocketAddr { text.parse().unwrap() };
    let announce_from = |world: &World, node: &Identity, addrs: Vec<SocketAddr>, remote| {
        let credential = world.play(node.node_id(), "SE", &[], rendition(3));
        world.tracker.answer_from(
            node.node_id(),
            remote,
            &Request::Announce(Announce {
                partial: Vec::new(),
                region: region("SE"),
                role: NodeRole::Client,
                addrs,
                renditions: vec![rendition(3)],
                upload_spare_kbps: 1000,
                credential,
                proofs: Vec::new(),
            }),
        )
    };
    let listed = |world: &World, node: &Identity| -> Vec<SocketAddr> {
        let asker = Identity::from_secret_bytes(&[0x55; 32]);
        world
            .query(&asker, "SE", &[], rendition(3))
            .peers
            .into_iter()
            .find(|peer| peer.node == node.node_id())
            .map(|peer| peer.addrs)
            .unwrap_or_default()
    };

    let mut world = World::new(TrackerConfig::default());
    // An honest node announces the address it dials from: kept as it is.
    let honest = world.node();
    acked(announce_from(
        &world,
        &honest,
        vec![addr("198.51.100.7:4433")],
        addr("198.51.100.7:4433"),
    ));
    assert_eq!(listed(&world, &honest), vec![addr("198.51.100.7:4433")]);
    // A node naming someone else's address (to aim peers at a victim) is listed at the
    // address it was observed at instead; an IPv4-mapped observation counts as IPv4.
    let liar = world.node();
    acked(announce_from(
        &world,
        &liar,
        vec![addr("203.0.113.9:80"), addr("198.51.100.8:4433")],
        addr("[::ffff:198.51.100.8]:4433"),
    ));
    assert_eq!(listed(&world, &liar), vec![addr("198.51.100.8:4433")]);
    // Behind a NAT that maps its port: the observed port is where peers reach it.
    let natted = world.node();
    acked(announce_from(
        &world,
        &natted,
        vec![addr("198.51.100.9:4433")],
        addr("198.51.100.9:61000"),
    ));
    assert_eq!(listed(&world, &natted), vec![addr("198.51.100.9:61000")]);
    assert_eq!(world.tracker.addresses_replaced(), 2);

    // Behind a relay the operator named, the announced addresses stand.
    let mut world = World::new(TrackerConfig::default());
    world.tracker = world
        .tracker
        .with_relays(vec!["10.9.0.0/16".parse().unwrap()]);
    let relayed = world.node();
    acked(announce_from(
        &world,
        &relayed,
        vec![addr("203.0.113.20:4433")],
        addr("10.9.3.4:5000"),
    ));
    assert_eq!(listed(&world, &relayed), vec![addr("203.0.113.20:4433")]);
    assert_eq!(world.tracker.addresses_replaced(), 0);
}

/// An announce of `renditions` by `node` (SE) with `credential` and `proofs`.
fn announce_with(
    world: &World,
    node: &Identity,
    renditions: &[RenditionId],
    credential: LicenseToken,
    proofs: Vec<LicenseToken>,
) -> Vec<RenditionId> {
    let response = world.tracker.answer(
        node.node_id(),
        &Request::Announce(Announce {
            partial: Vec::new(),
            region: region("SE"),
            role: NodeRole::Client,
            addrs: vec![SocketAddr::from(([127, 0, 0, 1], 4000))],
            renditions: renditions.to_vec(),
            upload_spare_kbps: 1_000,
            credential,
            proofs,
        }),
    );
    match response {
        Response::AnnounceAck { unproven, .. } => unproven,
        other => panic!("expected an ack, got {other:?}"),
    }
}

#[test]
fn a_client_announces_only_renditions_its_licenses_cover() {
    let mut world = World::new(TrackerConfig::default());
    let (r1, r2, r3) = (rendition(61), rendition(62), rendition(63));
    let holder = world.node();
    let asker = world.node();
    let listed = |world: &World, r| {
        world
            .query(&asker, "SE", &[], r)
            .peers
            .iter()
            .any(|peer| peer.node == holder.node_id())
    };
    // A license for r2 the holder had an hour ago: expired by the time it proves anything.
    let old_r2 = world.play(holder.node_id(), "SE", &[], r2);
    world.advance(3_600_001);

    // Credential for r1 only, no proof: r2 is left out and named.
    let credential = world.play(holder.node_id(), "SE", &[], r1);
    assert_eq!(
        announce_with(&world, &holder, &[r1, r2], credential.clone(), vec![]),
        vec![r2]
    );
    assert!(listed(&world, r1));
    assert!(!listed(&world, r2));

    // Proofs that prove nothing: bound to another node, forged, or for a track not licensed
    // in the holder's region.
    world.advance(2_000);
    let other = world.node();
    let forger = world.node();
    let scope = LicenseScope::Play {
        renditions: vec![r2],
    };
    let not_ours = world.play(other.node_id(), "SE", &[], r2);
    let forged = world.token(&forger, holder.node_id(), "SE", scope, &[]);
    let out_of_market = world.play(holder.node_id(), "SE", &["US"], r2);
    assert_eq!(
        announce_with(
            &world,
            &holder,
            &[r1, r2],
            credential.clone(),
            vec![not_ours, forged, out_of_market]
        ),
        vec![r2]
    );
    assert!(!listed(&world, r2));

    // The expired but genuine license proves it.
    world.advance(2_000);
    assert!(announce_with(&world, &holder, &[r1, r2], credential, vec![old_r2]).is_empty());
    assert!(listed(&world, r1) && listed(&world, r2));

    // What it proved stays proved: a later announce under a license for r3 only, adding r3
    // and without proofs, keeps r1 and r2.
    world.advance(2_000);
    let credential = world.play(holder.node_id(), "SE", &[], r3);
    assert!(announce_with(&world, &holder, &[r1, r2, r3], credential.clone(), vec![]).is_empty());
    assert!(listed(&world, r1) && listed(&world, r2) && listed(&world, r3));

    // Once its record is gone (announce expired), it proves everything again.
    world.advance(TrackerConfig::default().announce_ttl_ms + 1);
    world.tracker.expire();
    assert_eq!(
        announce_with(&world, &holder, &[r1, r2, r3], credential, vec![]),
        vec![r1, r2]
    );
    assert_eq!(world.tracker.snapshot().0.unproven, 1 + 1 + 2);
}

/// A delivered-rate report of `peer` for `r` at `kbps`, filed by a fresh node of `account`.
fn delivered_as(world: &mut World, account: u8, peer: NodeId, r: RenditionId, kbps: u32) {
    let reporter = world.node();
    delivered_from(world, &reporter, AccountId([account; 16]), peer, r, kbps);
}

/// A delivered-rate report of `peer` for `r` at `kbps`, filed by `reporter` of `account`.
fn delivered_from(
    world: &mut World,
    reporter: &Identity,
    account: AccountId,
    peer: NodeId,
    r: RenditionId,
    kbps: u32,
) {
    let scope = LicenseScope::Play {
        renditions: vec![r],
    };
    let license = world.token_for(&world.origin, reporter.node_id(), account, "SE", scope, &[]);
    let response = world.tracker.answer(
        reporter.node_id(),
        &Request::Report(PeerReport {
            peer,
            rendition: r,
            reason: ReportReason::Delivered { kbps },
            license,
        }),
    );
    assert_eq!(response, Response::Reported);
}

#[test]
fn holders_rank_by_delivered_rates_which_cannot_lift_a_liar() {
    let mut world = World::new(TrackerConfig::default());
    let r = rendition(70);
    let liar = world.node();
    let honest = world.node();
    // The liar claims far more than it has (capped at the client maximum).
    acked(world.announce(&liar, "SE", NodeRole::Client, &[r], 1_000_000));
    acked(world.announce(&honest, "SE", NodeRole::Client, &[r], 3_000));
    let asker = world.node();
    let ranked = |world: &World| -> Vec<(NodeId, u32)> {
        world
            .query(&asker, "SE", &[], r)
            .peers
            .iter()
            .map(|peer| (peer.node, peer.upload_spare_kbps))
            .collect()
    };
    let cap = TrackerConfig::default().client_spare_kbps_max;
    assert_eq!(
        ranked(&world),
        vec![(liar.node_id(), cap), (honest.node_id(), 3_000)]
    );

    // One account's figure is not enough to rank by; a delivered report keeps the entry.
    delivered_as(&mut world, 1, liar.node_id(), r, 200);
    world.advance(2_000);
    acked(world.announce(&liar, "SE", NodeRole::Client, &[r], 1_000_000));
    assert_eq!(ranked(&world)[0], (liar.node_id(), cap));

    // Two accounts measured the liar at ~200 kbit/s and the honest peer at 4 Mbit/s: from
    // their next announces, the honest peer ranks first, the liar at what it delivered, and
    // the honest one at its own (lower) declaration: reports never lift a peer.
    delivered_as(&mut world, 2, liar.node_id(), r, 250);
    delivered_as(&mut world, 1, honest.node_id(), r, 4_000);
    delivered_as(&mut world, 2, honest.node_id(), r, 4_200);
    world.advance(2_000);
    acked(world.announce(&liar, "SE", NodeRole::Client, &[r], 1_000_000));
    acked(world.announce(&honest, "SE", NodeRole::Client, &[r], 3_000));
    assert_eq!(
        ranked(&world),
        vec![(honest.node_id(), 3_000), (liar.node_id(), 250)]
    );

    // One hostile account cannot pull the honest peer down: the median of three.
    delivered_as(&mut world, 3, honest.node_id(), r, 1);
    world.advance(2_000);
    acked(world.announce(&honest, "SE", NodeRole::Client, &[r], 3_000));
    assert_eq!(ranked(&world)[0], (honest.node_id(), 3_000));
    let stats = world.tracker.snapshot().0;
    assert_eq!(stats.rates_reported, 5);
    assert_eq!(stats.quarantined, 0);

    // A figure about a peer that does not hold the rendition counts for nothing; nor does
    // a peer's figure about itself, or from another node of its own account.
    delivered_as(&mut world, 4, honest.node_id(), rendition(71), 1);
    delivered_from(
        &mut world,
        &liar,
        AccountId([9; 16]),
        liar.node_id(),
        r,
        90_000,
    );
    let mut own = [0u8; 16];
    own.copy_from_slice(&liar.node_id().0[..16]);
    let sock_puppet = world.node();
    delivered_from(
        &mut world,
        &sock_puppet,
        AccountId(own),
        liar.node_id(),
        r,
        90_000,
    );
    assert_eq!(world.tracker.snapshot().0.rates_reported, 5);

    // An account reporting again replaces its own figure. Three honest accounts against the
    // liar's two friends: the liar stays at what it delivered.
    delivered_as(&mut world, 5, liar.node_id(), r, 300);
    delivered_as(&mut world, 6, liar.node_id(), r, 20_000);
    delivered_as(&mut world, 7, liar.node_id(), r, 20_000);
    delivered_as(&mut world, 1, liar.node_id(), r, 220);
    world.advance(2_000);
    acked(world.announce(&liar, "SE", NodeRole::Client, &[r], 1_000_000));
    assert_eq!(ranked(&world)[1], (liar.node_id(), 300));

    // Figures age out: an hour later the liar ranks by its (capped) claim again, until new
    // figures come in.
    world.advance(tracker::core::RATE_MAX_AGE_MS);
    acked(world.announce(&liar, "SE", NodeRole::Client, &[r], 1_000_000));
    acked(world.announce(&honest, "SE", NodeRole::Client, &[r], 3_000));
    assert_eq!(ranked(&world)[0], (liar.node_id(), cap));
}

#[test]
fn proofs_cost_signatures_only_when_they_can_prove_something() {
    let mut world = World::new(TrackerConfig::default());
    let (r1, r2, r3) = (rendition(81), rendition(82), rendition(83));
    let holder = world.node();
    let credential = world.play(holder.node_id(), "SE", &[], r1);
    let proof_r2 = world.play(holder.node_id(), "SE", &[], r2);
    let proof_r3 = world.play(holder.node_id(), "SE", &[], r3);
    // A super-node role token (expired or not) is no proof for a client's announce.
    let role = world.token(
        &world.origin,
        holder.node_id(),
        "SE",
        LicenseScope::SuperNode,
        &[],
    );
    // A token with the origin's claims but a broken signature ends the checking: the good
    // proof after it is not looked at.
    let mut broken = proof_r2.clone();
    broken.signature[0] ^= 1;
    assert_eq!(
        announce_with(
            &world,
            &holder,
            &[r1, r2, r3],
            credential.clone(),
            vec![role, broken, proof_r3.clone()]
        ),
        vec![r2, r3]
    );
    // An announce that floods is refused before its proofs are looked at.
    let response = world.tracker.answer(
        holder.node_id(),
        &Request::Announce(Announce {
            partial: Vec::new(),
            region: region("SE"),
            role: NodeRole::Client,
            addrs: vec![],
            renditions: vec![r1, r2, r3],
            upload_spare_kbps: 1_000,
            credential: credential.clone(),
            proofs: vec![proof_r2.clone(), proof_r3.clone()],
        }),
    );
    assert_eq!(error_code(response), ErrorCode::Overloaded);
    // A second later, honest proofs prove.
    world.advance(1_000);
    assert!(
        announce_with(
            &world,
            &holder,
            &[r1, r2, r3],
            credential,
            vec![proof_r2, proof_r3]
        )
        .is_empty()
    );
}

#[test]
fn a_refresh_keeps_an_unchanged_set_listed_without_naming_it() {
    let mut world = World::new(TrackerConfig::default());
    let ttl = TrackerConfig::default().announce_ttl_ms;
    let (a, b) = (rendition(60), rendition(61));
    let holder = world.node();
    let asker = world.node();
    // Nothing announced yet: no set to refresh.
    assert_eq!(
        error_code(world.refresh(&holder, "SE", &[a, b], &[], 100)),
        ErrorCode::SetUnknown
    );
    acked(world.announce(&holder, "SE", NodeRole::Client, &[a, b], 100));
    // Refreshes (in any order of the set) keep it listed past the first announce's TTL.
    for _ in 0..3 {
        world.advance(ttl / 2);
        acked(world.refresh(&holder, "SE", &[b, a], &[], 100));
    }
    assert!(world.now() > T0 + ttl);
    assert_eq!(world.query(&asker, "SE", &[], a).peers.len(), 1);
    assert_eq!(world.query(&asker, "SE", &[], b).peers.len(), 1);
    let (stats, _, _) = world.tracker.snapshot();
    assert_eq!((stats.announces, stats.refreshes), (1, 3));

    // Another set, a smaller one or one with a rendition held in part instead: unknown.
    world.advance(2_000);
    for (whole, partial) in [
        (vec![a], vec![]),
        (vec![a, b, rendition(62)], vec![]),
        (
            vec![a],
            vec![Partial {
                rendition: b,
                held: 1,
                per_min: 1,
            }],
        ),
    ] {
        assert_eq!(
            error_code(world.refresh(&holder, "SE", &whole, &partial, 100)),
            ErrorCode::SetUnknown
        );
    }
    // Unknown refreshes cost the node nothing: the set it announced is still listed and
    // refreshable.
    acked(world.refresh(&holder, "SE", &[a, b], &[], 100));

    // A capacity in another power of two ranks the pairs differently: announce in full.
    world.advance(2_000);
    assert_eq!(
        error_code(world.refresh(&holder, "SE", &[a, b], &[], 5_000)),
        ErrorCode::SetUnknown
    );
    acked(world.announce(&holder, "SE", NodeRole::Client, &[a, b], 5_000));
    world.advance(2_000);
    acked(world.refresh(&holder, "SE", &[a, b], &[], 5_000));

    // Refreshes are announces for the rate limit.
    world.advance(10);
    assert_eq!(
        error_code(world.refresh(&holder, "SE", &[a, b], &[], 5_000)),
        ErrorCode::Overloaded
    );

    // Expired: the set is gone, a refresh cannot bring it back.
    world.advance(ttl + 1);
    assert_eq!(
        error_code(world.refresh(&holder, "SE", &[a, b], &[], 5_000)),
        ErrorCode::SetUnknown
    );
    assert!(world.query(&asker, "SE", &[], a).peers.is_empty());
}

#[test]
fn a_refresh_cannot_revive_a_reported_entry_or_speak_for_another_node() {
    let mut world = World::new(TrackerConfig::default());
    let r = rendition(70);
    let holder = world.node();
    acked(world.announce(&holder, "SE", NodeRole::Client, &[r], 100));
    let reporter = world.node();
    assert_eq!(
        report_as(&world, &reporter, AccountId([1; 16]), holder.node_id(), r),
        Response::Reported
    );
    // The report dropped the entry; only an announce in full lists it again.
    world.advance(2_000);
    assert_eq!(
        error_code(world.refresh(&holder, "SE", &[r], &[], 100)),
        ErrorCode::SetUnknown
    );
    let asker = world.node();
    assert!(world.query(&asker, "SE", &[], r).peers.is_empty());
    acked(world.announce(&holder, "SE", NodeRole::Client, &[r], 100));
    assert_eq!(world.query(&asker, "SE", &[], r).peers.len(), 1);

    // Another node presenting the holder's set digest has no such set; nor may it present
    // the holder's credential.
    world.advance(2_000);
    let other = world.node();
    assert_eq!(
        error_code(world.refresh(&other, "SE", &[r], &[], 100)),
        ErrorCode::SetUnknown
    );
    let stolen = world.play(holder.node_id(), "SE", &[], rendition(0));
    let answer = world.tracker.answer(
        other.node_id(),
        &Request::Refresh(Refresh {
            set: announce_set([r].iter(), std::iter::empty()),
            region: region("SE"),
            role: NodeRole::Client,
            addrs: Vec::new(),
            partial: Vec::new(),
            upload_spare_kbps: 100,
            credential: stolen,
        }),
    );
    assert_eq!(error_code(answer), ErrorCode::LicenseWrongNode);
    // A refresh in another region than the credential's is refused like an announce.
    assert_eq!(
        error_code(world.tracker.answer(
            holder.node_id(),
            &Request::Refresh(Refresh {
                set: announce_set([r].iter(), std::iter::empty()),
                region: region("US"),
                role: NodeRole::Client,
                addrs: Vec::new(),
                partial: Vec::new(),
                upload_spare_kbps: 100,
                credential: world.play(holder.node_id(), "SE", &[], rendition(0)),
            }),
        )),
        ErrorCode::NotInRegion
    );
}

#[test]
fn a_refresh_carries_a_partial_holders_progress() {
    let mut world = World::new(TrackerConfig::default());
    let r = rendition(80);
    let holder = world.node();
    let asker = world.node();
    let partial = |held| Partial {
        rendition: r,
        held,
        per_min: 0,
    };
    acked(world.announce_holding(&holder, "SE", NodeRole::Client, &[], &[partial(3)], 100));
    let held = |world: &World| {
        world.query(&asker, "SE", &[], r).peers[0]
            .holding
            .map(|holding| holding.held)
    };
    assert_eq!(held(&world), Some(3));
    world.advance(2_000);
    acked(world.refresh(&holder, "SE", &[], &[partial(9)], 100));
    assert_eq!(held(&world), Some(9));
    // Whole now: the set changed, so the refresh is refused and the announce goes in full.
    world.advance(2_000);
    assert_eq!(
        error_code(world.refresh(&holder, "SE", &[r], &[], 100)),
        ErrorCode::SetUnknown
    );
    acked(world.announce(&holder, "SE", NodeRole::Client, &[r], 100));
    assert_eq!(held(&world), None);
}
