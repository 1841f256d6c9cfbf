//! The scheduler driven by a small deterministic network model: sources with a latency and a
//! rate, chunks arriving when the model says, time advanced in 10 ms steps (or 1 ms steps, or
//! from event to event and [`Scheduler::poll_timeout`] to compare them).

use std::collections::BTreeMap;

use policy::scheduler::{
    Action, Failure, PlayerEvent, RequestId, Scheduler, SchedulerConfig, SourceKind, TrackPlan,
};
use protocol::NodeId;
use protocol::wire::Holding;

const ORIGIN: NodeId = NodeId([0; 32]);

fn node(n: u8) -> NodeId {
    NodeId([n; 32])
}

#[derive(Clone, Copy)]
enum Behaviour {
    /// Delivers after `latency_ms`, then one chunk every `per_chunk_ms`.
    Good { latency_ms: u64, per_chunk_ms: u64 },
    /// Never answers.
    Stalls,
    /// Answers that it holds nothing.
    Lies,
    /// Sends a chunk that fails its hash.
    Corrupts,
    /// Still downloading the rendition: holds `held` chunks at `since_ms` and one more every
    /// `ms_per_chunk`; serves what it holds (20 ms, then 2 ms a chunk) and answers that the
    /// first chunk it lacks is missing, with its prefix.
    Downloading {
        held: u32,
        since_ms: u64,
        ms_per_chunk: u64,
    },
}

/// How the driver moves time between events.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// In steps of this many ms, polling after each.
    Every(u64),
    /// From one event or [`Scheduler::poll_timeout`] to the next, polling only when due.
    OnTimeout,
}

struct Net {
    scheduler: Scheduler,
    wake: Wake,
    /// Polls made by the driver (besides those inside the scheduler's event handlers).
    polls: usize,
    /// Every action and player event with its time, to compare drivers.
    timeline: Vec<(u64, String)>,
    behaviour: BTreeMap<NodeId, Behaviour>,
    /// (time, request, chunk index) deliveries scheduled.
    pending: BTreeMap<(u64, u64, u32), ()>,
    failures: Vec<(u64, RequestId, Failure)>,
    /// (time, request, index, held) missing answers scheduled.
    missing: Vec<(u64, RequestId, u32, u32)>,
    /// Missing answers given in all.
    missed: usize,
    now: u64,
    log: Vec<Action>,
    events: Vec<PlayerEvent>,
    chunk_to_source: BTreeMap<u32, Vec<NodeId>>,
}

impl Net {
    fn new(config: SchedulerConfig, origin: Behaviour) -> Self {
        let mut behaviour = BTreeMap::new();
        behaviour.insert(ORIGIN, origin);
        Self {
            scheduler: Scheduler::new(config, ORIGIN),
            wake: Wake::Every(10),
            polls: 0,
            timeline: Vec::new(),
            behaviour,
            pending: BTreeMap::new(),
            failures: Vec::new(),
            missing: Vec::new(),
            missed: 0,
            now: 1_000,
            log: Vec::new(),
            events: Vec::new(),
            chunk_to_source: BTreeMap::new(),
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            if let Action::Fetch {
                id,
                source,
                first,
                count,
                ..
            } = &action
            {
                match self.behaviour.get(source).copied() {
                    Some(Behaviour::Good {
                        latency_ms,
                        per_chunk_ms,
                    }) => {
                        for k in 0..*count {
                            let at = self.now + latency_ms + per_chunk_ms * u64::from(k + 1);
                            self.pending.insert((at, id.0, first + k), ());
                        }
                    }
                    Some(Behaviour::Lies) => {
                        self.failures.push((self.now + 20, *id, Failure::Missing))
                    }
                    Some(Behaviour::Corrupts) => {
                        self.failures.push((self.now + 20, *id, Failure::BadChunk))
                    }
                    Some(Behaviour::Downloading {
                        held,
                        since_ms,
                        ms_per_chunk,
                    }) => {
                        let held = held + (self.now.saturating_sub(since_ms) / ms_per_chunk) as u32;
                        for k in 0..*count {
                            let at = self.now + 20 + 2 * u64::from(k + 1);
                            if first + k < held {
                                self.pending.insert((at, id.0, first + k), ());
                            } else {
                                self.missing.push((at, *id, first + k, held));
                                self.missed += 1;
                                break;
                            }
                        }
                    }
                    Some(Behaviour::Stalls) | None => {}
                }
            }
            if let Action::Cancel { id } = &action {
                self.pending.retain(|(_, request, _), _| *request != id.0);
                self.failures.retain(|(_, request, _)| request != id);
                self.missing.retain(|(_, request, _, _)| request != id);
            }
            self.timeline.push((self.now, format!("{action:?}")));
            self.log.push(action);
        }
        let events = self.scheduler.take_events();
        for event in &events {
            self.timeline.push((self.now, format!("{event:?}")));
        }
        self.events.extend(events);
    }

    /// The next moment anything is scheduled to arrive.
    fn next_arrival(&self) -> u64 {
        let pending = self.pending.keys().next().map_or(u64::MAX, |key| key.0);
        let failed = self.failures.iter().map(|f| f.0).min().unwrap_or(u64::MAX);
        let missing = self.missing.iter().map(|m| m.0).min().unwrap_or(u64::MAX);
        pending.min(failed).min(missing)
    }

    fn run_until(&mut self, end: u64) {
        let mut at_once = 0;
        while self.now < end && !self.scheduler.finished() {
            let armed = self.scheduler.poll_timeout(self.now);
            match self.wake {
                Wake::Every(step) => self.now += step,
                Wake::OnTimeout => {
                    let timeout = armed.unwrap_or(u64::MAX);
                    let next = timeout.min(self.next_arrival()).min(end);
                    assert!(
                        next >= self.now,
                        "a timeout in the past: {next} at {}",
                        self.now
                    );
                    at_once = if next == self.now { at_once + 1 } else { 0 };
                    assert!(
                        at_once < 100,
                        "poll_timeout keeps answering now ({})",
                        self.now
                    );
                    self.now = next;
                }
            }
            let due: Vec<(u64, u64, u32)> = self
                .pending
                .range(..=(self.now, u64::MAX, u32::MAX))
                .map(|(key, _)| *key)
                .collect();
            for key in due {
                self.pending.remove(&key);
                let source = self.request_source(RequestId(key.1));
                if let Some(source) = source {
                    self.chunk_to_source.entry(key.2).or_default().push(source);
                }
                let actions = self.scheduler.on_chunk(self.now, RequestId(key.1), key.2);
                self.apply(actions);
            }
            let failed: Vec<(u64, RequestId, Failure)> = self
                .failures
                .iter()
                .filter(|(at, _, _)| *at <= self.now)
                .copied()
                .collect();
            self.failures.retain(|(at, _, _)| *at > self.now);
            for (_, id, failure) in failed {
                let actions = self.scheduler.on_failure(self.now, id, failure);
                self.apply(actions);
            }
            let missing: Vec<(u64, RequestId, u32, u32)> = self
                .missing
                .iter()
                .filter(|(at, ..)| *at <= self.now)
                .copied()
                .collect();
            self.missing.retain(|(at, ..)| *at > self.now);
            for (_, id, index, held) in missing {
                let actions = self.scheduler.on_missing(self.now, id, index, held);
                self.apply(actions);
            }
            let due = match self.wake {
                Wake::Every(_) => true,
                // The timer armed before these answers fired, or they made a poll due now.
                Wake::OnTimeout => [armed, self.scheduler.poll_timeout(self.now)]
                    .into_iter()
                    .flatten()
                    .any(|at| at <= self.now),
            };
            if due {
                self.polls += 1;
                let actions = self.scheduler.poll(self.now);
                self.apply(actions);
            }
            if self.wake == Wake::OnTimeout {
                // Right after a poll nothing more is due at once.
                let again = self.scheduler.poll_timeout(self.now);
                assert!(
                    !due || again.is_none_or(|at| at > self.now),
                    "poll_timeout answers {again:?} right after a poll at {}",
                    self.now
                );
            }
        }
    }

    fn request_source(&self, id: RequestId) -> Option<NodeId> {
        self.log.iter().find_map(|action| match action {
            Action::Fetch {
                id: fetched,
                source,
                ..
            } if *fetched == id => Some(*source),
            _ => None,
        })
    }

    fn fetches_to(&self, source: NodeId) -> usize {
        self.log
            .iter()
            .filter(|action| matches!(action, Action::Fetch { source: s, .. } if *s == source))
            .count()
    }
}

/// A 3-minute track of 180 chunks (1 s each, 16 KiB).
fn plan() -> TrackPlan {
    TrackPlan {
        chunks: 180,
        chunk_bytes: vec![16_400; 180],
        duration_ms: 180_000,
        chunk_end_ms: Vec::new(),
        cached: vec![false; 180],
        start_ms: 0,
    }
}

fn good(latency_ms: u64, per_chunk_ms: u64) -> Behaviour {
    Behaviour::Good {
        latency_ms,
        per_chunk_ms,
    }
}

#[test]
fn opening_from_the_origin_then_peers_carry_the_rest() {
    let mut net = Net::new(SchedulerConfig::default(), good(20, 1));
    let actions = net.scheduler.play(net.now, plan());
    assert!(actions.contains(&Action::FindPeers));
    assert!(
        matches!(
            actions[1],
            Action::Fetch {
                source: ORIGIN,
                first: 0,
                count: 2,
                ..
            }
        ),
        "{actions:?}"
    );
    net.apply(actions);
    // Peers arrive 100 ms later.
    net.run_until(1_100);
    for n in 1..=3 {
        net.behaviour.insert(node(n), good(30, 40));
    }
    let actions = net.scheduler.add_sources(
        net.now,
        &[
            (node(1), SourceKind::Peer),
            (node(2), SourceKind::Peer),
            (node(3), SourceKind::SuperNode),
        ],
    );
    net.apply(actions);
    net.run_until(400_000);
    assert!(net.scheduler.finished());
    let stats = net.scheduler.stats();
    assert_eq!(
        stats.first_audio_ms,
        Some(30),
        "origin latency 20 ms + one chunk, 10 ms steps"
    );
    assert_eq!(stats.stutters, 0);
    let total = 180 * 16_400;
    assert!(stats.bytes_origin + stats.bytes_peers + stats.bytes_super_nodes >= total);
    // The origin carried the opening and little else.
    assert!(
        stats.bytes_origin < total / 10,
        "origin {} of {total}",
        stats.bytes_origin
    );
    assert!(net.events.contains(&PlayerEvent::Finished));
    assert!(net.log.contains(&Action::PrefetchNext));
    // Once the whole track was here, the rates of the (at most two) peers that delivered
    // the most were told, once: each sends a chunk of 16,400 bytes per 40 ms (3,280 kbit/s)
    // per request.
    let delivered: Vec<(NodeId, u32)> = net
        .log
        .iter()
        .filter_map(|action| match action {
            Action::Delivered { peer, kbps } => Some((*peer, *kbps)),
            _ => None,
        })
        .collect();
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    for (peer, kbps) in &delivered {
        assert!([node(1), node(2), node(3)].contains(peer));
        assert!((1_500..=7_000).contains(kbps), "{kbps} kbit/s");
    }
    assert_ne!(delivered[0].0, delivered[1].0);
    // Who delivered what adds up to the per-kind counters, most bytes first.
    assert!(net.scheduler.all_held());
    let by_source = net.scheduler.bytes_by_source();
    assert!(by_source.windows(2).all(|pair| pair[0].2 >= pair[1].2));
    let of_kind = |kind: SourceKind| -> u64 {
        by_source
            .iter()
            .filter(|(_, found, _)| *found == kind)
            .map(|(_, _, bytes)| bytes)
            .sum()
    };
    assert_eq!(of_kind(SourceKind::Origin), stats.bytes_origin);
    assert_eq!(of_kind(SourceKind::Peer), stats.bytes_peers);
    assert_eq!(of_kind(SourceKind::SuperNode), stats.bytes_super_nodes);
    assert!(by_source.iter().any(|(source, _, _)| *source == node(3)));
    // A new track starts the tally over.
    net.scheduler.play(net.now, plan());
    assert!(net.scheduler.bytes_by_source().is_empty());
    assert!(!net.scheduler.all_held());
}

/// The chunks each fetch to `source` asked for, with the time it was asked.
fn fetched_from(net: &Net, source: NodeId) -> usize {
    net.log
        .iter()
        .filter_map(|action| match action {
            Action::Fetch {
                source: s, count, ..
            } if *s == source => Some(*count as usize),
            _ => None,
        })
        .sum()
}

#[test]
fn a_partial_holder_carries_what_it_holds_and_its_misses_are_not_faults() {
    // The peer started the track a minute ago and downloads two chunks a second (twice the
    // play rate). It says it holds 110 chunks and grows by 120 a minute (a little under).
    let mut net = Net::new(SchedulerConfig::default(), good(20, 1));
    let downloading = Behaviour::Downloading {
        held: 120,
        since_ms: net.now,
        ms_per_chunk: 500,
    };
    net.behaviour.insert(node(1), downloading);
    let actions = net.scheduler.play(net.now, plan());
    net.apply(actions);
    let holding = Holding {
        held: 110,
        per_min: 120,
    };
    let actions = net
        .scheduler
        .add_holders(net.now, &[(node(1), SourceKind::Peer, Some(holding))]);
    net.apply(actions);
    net.run_until(400_000);
    assert!(net.scheduler.finished());
    let stats = net.scheduler.stats();
    assert_eq!(stats.stutters, 0);
    // It carried the track but the opening, and was never asked past what it held.
    assert!(fetched_from(&net, node(1)) >= 170, "{stats:?}");
    assert_eq!(net.missed, 0, "asked for chunks it did not hold");
    assert!(
        !net.log
            .iter()
            .any(|action| matches!(action, Action::Report { .. } | Action::Cancel { .. })),
        "{:?}",
        net.log
    );

    // A partial holder that claims far more than it holds (it holds 40 chunks and gets two
    // a second): its misses correct the estimate and are never reported; past four of them
    // it is dropped for the track. The origin covers what is due.
    let mut net = Net::new(SchedulerConfig::default(), good(20, 1));
    net.behaviour.insert(
        node(2),
        Behaviour::Downloading {
            held: 40,
            since_ms: net.now,
            ms_per_chunk: 500,
        },
    );
    let actions = net.scheduler.play(net.now, plan());
    net.apply(actions);
    let boast = Holding {
        held: 170,
        per_min: 6_000,
    };
    let actions = net
        .scheduler
        .add_holders(net.now, &[(node(2), SourceKind::Peer, Some(boast))]);
    net.apply(actions);
    net.run_until(400_000);
    assert!(net.scheduler.finished());
    assert_eq!(net.scheduler.stats().stutters, 0);
    assert!(
        !net.log
            .iter()
            .any(|action| matches!(action, Action::Report { .. })),
        "a partial holder's misses are not reported"
    );
    let from_peer = net
        .chunk_to_source
        .values()
        .filter(|s| s.contains(&node(2)))
        .count();
    assert!(
        from_peer >= 20,
        "the partial holder carried {from_peer} chunks"
    );
    assert_eq!(net.missed, 5, "dropped after its fifth miss");
}

#[test]
fn without_peers_the_origin_carries_the_track_without_stutter() {
    let mut net = Net::new(SchedulerConfig::default(), good(20, 2));
    let actions = net.scheduler.play(net.now, plan());
    net.apply(actions);
    net.run_until(1_300);
    // Before the lookup answers, the origin stays within its lead.
    assert!(!(0..180).all(|index| net.scheduler.holds(index)));
    let actions = net.scheduler.add_sources(net.now, &[]);
    net.apply(actions);
    net.run_until(400_000);
    let stats = net.scheduler.stats();
    assert!(net.scheduler.finished());
    assert_eq!(stats.stutters, 0);
    assert_eq!(stats.bytes_origin, 180 * 16_400);
    assert_eq!(stats.bytes_duplicate, 0);
    // The origin's rate is nobody's business at the tracker.
    assert!(
        !net.log
            .iter()
            .any(|action| matches!(action, Action::Delivered { .. }))
    );
}

#[test]
fn a_stalling_peer_is_dropped_and_urgent_chunks_come_from_the_origin() {
    let mut net = Net::new(SchedulerConfig::default(), good(20, 2));
    net.behaviour.insert(node(1), Behaviour::Stalls);
    net.behaviour.insert(node(2), good(30, 60));
    let actions = net.scheduler.play(net.now, plan());
    net.apply(actions);
    let actions = net.scheduler.add_sources(
        net.now,
        &[
            (node(1), SourceKind::SuperNode),
            (node(2), SourceKind::Peer),
        ],
    );
    net.apply(actions);
    net.run_until(400_000);
    let stats = net.scheduler.stats();
    assert!(net.scheduler.finished());
    assert_eq!(stats.stutters, 0, "the buffer covered the stalled peer");
    assert!(net.log.iter().any(|action| matches!(action, Action::Report { peer, failure: Failure::Unreachable } if *peer == node(1))));
    // Every chunk arrived from somewhere, none from the staller.
    for index in 0..180 {
        let from = &net.chunk_to_source[&index];
        assert!(!from.contains(&node(1)));
    }
}

#[test]
fn liars_and_corrupters_are_reported_and_playback_continues() {
    let mut net = Net::new(SchedulerConfig::default(), good(20, 2));
    net.behaviour.insert(node(1), Behaviour::Lies);
    net.behaviour.insert(node(2), Behaviour::Corrupts);
    net.behaviour.insert(node(3), good(30, 50));
    let actions = net.scheduler.play(net.now, plan());
    net.apply(actions);
    let actions = net.scheduler.add_sources(
        net.now,
        &[
            (node(1), SourceKind::Peer),
            (node(2), SourceKind::Peer),
            (node(3), SourceKind::Peer),
        ],
    );
    net.apply(actions);
    net.run_until(400_000);
    assert!(net.scheduler.finished());
    assert_eq!(net.scheduler.stats().stutters, 0);
    let reported: Vec<(NodeId, Failure)> = net
        .log
        .iter()
        .filter_map(|action| match action {
            Action::Report { peer, failure } => Some((*peer, *failure)),
            _ => None,
        })
        .collect();
    assert!(
        reported.contains(&(node(2), Failure::BadChunk)),
        "{reported:?}"
    );
    assert!(
        reported.contains(&(node(1), Failure::Missing)),
        "{reported:?}"
    );
    // The corrupter was banned at its first bad chunk: nothing asked of it afterwards (only
    // the ranges already pipelined to it before the first answer).
    let banned_at = net
        .log
        .iter()
        .position(|action| matches!(action, Action::Report { peer, .. } if *peer == node(2)))
        .unwrap();
    assert!(
        !net.log[banned_at..]
            .iter()
            .any(|action| matches!(action, Action::Fetch { source, .. } if *source == node(2)))
    );
    assert!(net.fetches_to(node(2)) <= SchedulerConfig::default().requests_per_peer);
}

#[test]
fn cached_chunks_are_not_fetched_and_a_track_change_cancels_everything() {
    let mut net = Net::new(SchedulerConfig::default(), good(20, 2));
    let mut cached = plan();
    cached.cached = vec![true; 180];
    let actions = net.scheduler.play(net.now, cached);
    assert!(
        !actions
            .iter()
            .any(|action| matches!(action, Action::Fetch { .. }))
    );
    net.apply(actions);
    net.run_until(1_020);
    // Everything cached: audio starts at once.
    assert_eq!(net.scheduler.stats().first_audio_ms, Some(0));
    assert_eq!(net.scheduler.stats().bytes_cache, 180 * 16_400);

    let actions = net.scheduler.play(net.now, plan());
    net.apply(actions);
    let outstanding: Vec<RequestId> = net
        .log
        .iter()
        .filter_map(|action| match action {
            Action::Fetch { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert!(!outstanding.is_empty());
    let cancels = net.scheduler.stop();
    for id in outstanding {
        assert!(cancels.contains(&Action::Cancel { id }));
    }
    assert!(net.scheduler.poll(net.now + 100).is_empty());
}

#[test]
fn a_slow_origin_and_no_peers_stutters_and_the_stall_is_counted() {
    // 1 s chunks delivered every 1.5 s: playback must stall now and then.
    let config = SchedulerConfig {
        requests_origin: 1,
        range_chunks: 1,
        ..SchedulerConfig::default()
    };
    let mut net = Net::new(config, good(0, 1_500));
    let actions = net.scheduler.play(
        net.now,
        TrackPlan {
            chunks: 20,
            chunk_bytes: vec![16_400; 20],
            duration_ms: 20_000,
            chunk_end_ms: Vec::new(),
            cached: vec![false; 20],
            start_ms: 0,
        },
    );
    net.apply(actions);
    net.run_until(200_000);
    let stats = net.scheduler.stats();
    assert!(net.scheduler.finished());
    assert!(stats.stutters > 0);
    assert!(stats.stalled_ms > 0);
    assert!(
        net.events
            .iter()
            .any(|event| matches!(event, PlayerEvent::Resumed { .. }))
    );
}

#[test]
fn seeking_moves_the_fetch_front() {
    let mut net = Net::new(SchedulerConfig::default(), good(20, 2));
    let actions = net.scheduler.play(net.now, plan());
    net.apply(actions);
    net.run_until(1_200);
    let actions = net.scheduler.seek(net.now, 120_000);
    assert!(
        actions
            .iter()
            .any(|action| matches!(action, Action::Fetch { first, .. } if *first >= 120)),
        "{actions:?}"
    );
    net.apply(actions);
    net.run_until(200_000);
    assert!(net.scheduler.finished());
}

#[test]
fn pausing_stops_the_play_head_and_neither_pause_nor_seek_counts_as_a_stutter() {
    let mut net = Net::new(SchedulerConfig::default(), good(20, 2));
    let actions = net.scheduler.play(net.now, plan());
    net.apply(actions);
    let actions = net.scheduler.add_sources(net.now, &[]);
    net.apply(actions);
    net.run_until(6_000);
    let before = net.scheduler.position_ms(net.now);
    assert!((4_900..=5_100).contains(&before), "{before}");
    net.scheduler.pause(net.now);
    assert!(net.scheduler.paused());
    net.run_until(16_000);
    assert_eq!(net.scheduler.position_ms(net.now), before, "paused");
    let actions = net.scheduler.resume(net.now);
    net.apply(actions);
    net.run_until(17_000);
    assert!(net.scheduler.position_ms(net.now) > before);
    // Seek far ahead: buffering there is not a stutter.
    let actions = net.scheduler.seek(net.now, 170_000);
    net.apply(actions);
    net.run_until(400_000);
    assert!(net.scheduler.finished());
    assert_eq!(net.scheduler.stats().stutters, 0);
    assert_eq!(net.scheduler.stats().stalled_ms, 0);
}

/// A listener that skipped the track: its prefix stopped growing at 5 chunks, but its last
/// figures still claim growth. Its misses correct them; the origin carries the rest in time.
#[test]
fn a_partial_holder_that_stopped_growing_costs_no_stutter() {
    let mut net = Net::new(SchedulerConfig::default(), good(20, 1));
    net.behaviour.insert(
        node(2),
        Behaviour::Downloading {
            held: 5,
            since_ms: net.now,
            ms_per_chunk: 100_000_000,
        },
    );
    let actions = net.scheduler.play(net.now, plan());
    net.apply(actions);
    let actions = net.scheduler.add_holders(
        net.now,
        &[(
            node(2),
            SourceKind::Peer,
            Some(Holding {
                held: 5,
                per_min: 300,
            }),
        )],
    );
    net.apply(actions);
    net.run_until(400_000);
    assert!(
        net.scheduler.finished(),
        "{:?} {:?}",
        net.scheduler.stats(),
        net.scheduler.requests()
    );
    assert_eq!(net.scheduler.stats().stutters, 0);
}

/// A track whose chunks do not last a whole number of milliseconds (60 over 61,337 ms), so
/// the play head's chunk boundaries fall between milliseconds.
fn uneven_plan() -> TrackPlan {
    TrackPlan {
        chunks: 60,
        chunk_bytes: (0..60).map(|i| 12_000 + 97 * i).collect(),
        duration_ms: 61_337,
        chunk_end_ms: Vec::new(),
        cached: (0..60).map(|i| i == 7 || i == 31).collect(),
        start_ms: 0,
    }
}

/// [`uneven_plan`] with variable-rate timing: a headers-only first chunk, then stretches of
/// loud (short) and quiet (long) chunks, as Vorbis packs them, and two chunks mid-track that
/// play for no time.
fn variable_rate_plan() -> TrackPlan {
    let mut reached = 0u32;
    let chunk_end_ms = (0..60u32)
        .map(|i| {
            reached += match i {
                // The headers; and two chunks inside one long page each.
                0 | 20 | 41 => 0,
                1..=15 => 450,
                16..=30 => 1_700,
                _ => 700 + (i * 37) % 600,
            };
            reached
        })
        .collect::<Vec<_>>();
    TrackPlan {
        duration_ms: u64::from(reached),
        chunk_end_ms,
        ..uneven_plan()
    }
}

/// Starts `plan` and answers its peer lookup at once with `found`.
fn start(net: &mut Net, plan: TrackPlan, found: &[(NodeId, SourceKind)]) {
    let actions = net.scheduler.play(net.now, plan);
    net.apply(actions);
    let actions = net.scheduler.add_sources(net.now, found);
    net.apply(actions);
}

/// Runs `script` twice, once polling every millisecond and once only when an answer arrives
/// or [`Scheduler::poll_timeout`] says, and returns both drivers.
fn both_ways(script: impl Fn(&mut Net)) -> (Net, Net) {
    let mut every = Net::new(SchedulerConfig::default(), good(20, 1));
    every.wake = Wake::Every(1);
    script(&mut every);
    let mut woken = Net::new(SchedulerConfig::default(), good(20, 1));
    woken.wake = Wake::OnTimeout;
    script(&mut woken);
    (every, woken)
}

#[test]
fn polling_on_the_timeout_does_what_polling_every_millisecond_does() {
    type Script = Box<dyn Fn(&mut Net)>;
    let scripts: Vec<(&str, Script)> = vec![
        (
            "peers of several speeds found after 100 ms",
            Box::new(|net: &mut Net| {
                for (n, behaviour) in [(1, good(30, 40)), (2, good(30, 400)), (3, good(10, 5))] {
                    net.behaviour.insert(node(n), behaviour);
                }
                let actions = net.scheduler.play(net.now, uneven_plan());
                net.apply(actions);
                net.run_until(1_100);
                let found = [
                    (node(1), SourceKind::Peer),
                    (node(2), SourceKind::Peer),
                    (node(3), SourceKind::SuperNode),
                ];
                let actions = net.scheduler.add_sources(net.now, &found);
                net.apply(actions);
                net.run_until(200_000);
            }),
        ),
        (
            "a stalling peer and a slow one",
            Box::new(|net: &mut Net| {
                net.behaviour.insert(node(1), Behaviour::Stalls);
                net.behaviour.insert(node(2), good(30, 900));
                let found = [(node(1), SourceKind::Peer), (node(2), SourceKind::Peer)];
                start(net, uneven_plan(), &found);
                net.run_until(200_000);
            }),
        ),
        (
            "partial holders, one honest and one boasting",
            Box::new(|net: &mut Net| {
                let since_ms = net.now;
                net.behaviour.insert(
                    node(1),
                    Behaviour::Downloading {
                        held: 3,
                        since_ms,
                        ms_per_chunk: 700,
                    },
                );
                net.behaviour.insert(
                    node(2),
                    Behaviour::Downloading {
                        held: 2,
                        since_ms,
                        ms_per_chunk: 5_000,
                    },
                );
                let actions = net.scheduler.play(net.now, uneven_plan());
                net.apply(actions);
                let holding = |held, per_min| Some(Holding { held, per_min });
                let found = [
                    (node(1), SourceKind::Peer, holding(3, 80)),
                    (node(2), SourceKind::Peer, holding(2, 90)),
                ];
                let actions = net.scheduler.add_holders(net.now, &found);
                net.apply(actions);
                net.run_until(200_000);
            }),
        ),
        (
            "no peers and a slow origin: stalls",
            Box::new(|net: &mut Net| {
                net.behaviour.insert(ORIGIN, good(20, 1_300));
                let actions = net.scheduler.play(net.now, uneven_plan());
                net.apply(actions);
                net.run_until(1_300);
                let actions = net.scheduler.add_sources(net.now, &[]);
                net.apply(actions);
                net.run_until(300_000);
            }),
        ),
        (
            "an opening that stalls at the origin, with peers busy",
            Box::new(|net: &mut Net| {
                // The origin's first requests stall and are given up, then it recovers.
                net.behaviour.insert(ORIGIN, Behaviour::Stalls);
                for n in 1..=3 {
                    net.behaviour.insert(node(n), good(30, 1_500));
                }
                let found: Vec<_> = (1..=3).map(|n| (node(n), SourceKind::Peer)).collect();
                start(net, uneven_plan(), &found);
                net.run_until(2_500);
                net.behaviour.insert(ORIGIN, good(20, 5));
                net.run_until(300_000);
            }),
        ),
        (
            "a lookup that answers late, a pause, a seek",
            Box::new(|net: &mut Net| {
                net.behaviour.insert(node(4), good(25, 60));
                let actions = net.scheduler.play(net.now, uneven_plan());
                net.apply(actions);
                net.run_until(6_000);
                net.scheduler.pause(net.now);
                net.run_until(9_000);
                let actions = net.scheduler.resume(net.now);
                net.apply(actions);
                net.run_until(14_000);
                let actions = net
                    .scheduler
                    .add_sources(net.now, &[(node(4), SourceKind::Peer)]);
                net.apply(actions);
                net.run_until(20_000);
                let actions = net.scheduler.seek(net.now, 40_000);
                net.apply(actions);
                net.run_until(200_000);
            }),
        ),
        (
            "four peers slower than the music take the whole track",
            Box::new(|net: &mut Net| {
                for n in 1..=4 {
                    net.behaviour.insert(node(n), good(30, 1_900));
                }
                let found: Vec<_> = (1..=4).map(|n| (node(n), SourceKind::Peer)).collect();
                start(net, uneven_plan(), &found);
                net.run_until(200_000);
            }),
        ),
        (
            "a slow origin and slower peers",
            Box::new(|net: &mut Net| {
                net.behaviour.insert(ORIGIN, good(40, 1_400));
                for n in 1..=2 {
                    net.behaviour.insert(node(n), good(30, 2_500));
                }
                let found: Vec<_> = (1..=2).map(|n| (node(n), SourceKind::Peer)).collect();
                start(net, uneven_plan(), &found);
                net.run_until(300_000);
            }),
        ),
        (
            "a play that starts mid-track with nobody else holding it",
            Box::new(|net: &mut Net| {
                let plan = TrackPlan {
                    start_ms: 30_000,
                    ..uneven_plan()
                };
                let actions = net.scheduler.play(net.now, plan);
                net.apply(actions);
                net.run_until(1_200);
                let actions = net.scheduler.add_sources(net.now, &[]);
                net.apply(actions);
                net.run_until(200_000);
            }),
        ),
        (
            "a forward seek with nobody else holding it, chunk lengths that round badly",
            Box::new(|net: &mut Net| {
                // 56,832 ms over 22 chunks: 11 × (56832 / 22) is 28416.000000000004.
                let plan = TrackPlan {
                    chunks: 22,
                    chunk_bytes: vec![20_000; 22],
                    duration_ms: 56_832,
                    chunk_end_ms: Vec::new(),
                    cached: vec![false; 22],
                    start_ms: 0,
                };
                net.behaviour.insert(ORIGIN, good(20, 1_500));
                let actions = net.scheduler.play(net.now, plan);
                net.apply(actions);
                let actions = net.scheduler.add_sources(net.now, &[]);
                net.apply(actions);
                net.run_until(9_000);
                let actions = net.scheduler.seek(net.now, 20_000);
                net.apply(actions);
                net.run_until(200_000);
            }),
        ),
        (
            "variable-rate chunks, peers of several speeds, a seek",
            Box::new(|net: &mut Net| {
                for (n, behaviour) in [(1, good(30, 300)), (2, good(30, 900))] {
                    net.behaviour.insert(node(n), behaviour);
                }
                let found = [
                    (node(1), SourceKind::Peer),
                    (node(2), SourceKind::SuperNode),
                ];
                start(net, variable_rate_plan(), &found);
                net.run_until(12_000);
                let actions = net.scheduler.seek(net.now, 31_000);
                net.apply(actions);
                net.run_until(300_000);
            }),
        ),
        (
            "liars and corrupters",
            Box::new(|net: &mut Net| {
                net.behaviour.insert(node(1), Behaviour::Lies);
                net.behaviour.insert(node(2), Behaviour::Corrupts);
                net.behaviour.insert(node(3), good(30, 50));
                let found = [
                    (node(1), SourceKind::Peer),
                    (node(2), SourceKind::Peer),
                    (node(3), SourceKind::Peer),
                ];
                start(net, uneven_plan(), &found);
                net.run_until(200_000);
            }),
        ),
    ];
    for (name, script) in scripts {
        let (every, woken) = both_ways(script);
        assert!(
            every.scheduler.finished(),
            "{name}: did not finish: {:?} {:?} at {}",
            every.scheduler.stats(),
            every.scheduler.requests(),
            every.now
        );
        let first_difference = every
            .timeline
            .iter()
            .zip(&woken.timeline)
            .position(|(a, b)| a != b);
        assert!(
            first_difference.is_none() && every.timeline.len() == woken.timeline.len(),
            "{name}: the drivers part at {first_difference:?}:\n every ms: {:?}\n on timeout: {:?}",
            first_difference.map(|at| &every.timeline[at.saturating_sub(2)..(at + 3).min(every.timeline.len())]),
            first_difference.map(|at| &woken.timeline[at.saturating_sub(2)..(at + 3).min(woken.timeline.len())]),
        );
        assert_eq!(every.scheduler.stats(), woken.scheduler.stats(), "{name}");
        // And it wakes far less often than a timer would.
        assert!(
            woken.polls * 20 < every.polls,
            "{name}: {} polls on timeout against {} every ms",
            woken.polls,
            every.polls
        );
    }
}

#[test]
fn the_held_prefix_stops_at_the_first_gap() {
    let mut scheduler = Scheduler::new(SchedulerConfig::default(), ORIGIN);
    assert_eq!(scheduler.held_prefix(), 0, "no track");
    let mut track = plan();
    track.cached = (0..track.chunks)
        .map(|index| index < 3 || index == 4)
        .collect();
    scheduler.play(0, track);
    assert_eq!(scheduler.held_prefix(), 3);
    let mut whole = plan();
    whole.cached = vec![true; whole.chunks as usize];
    scheduler.play(0, whole);
    assert_eq!(scheduler.held_prefix(), 180);
}

#[test]
fn the_play_head_spends_each_chunk_its_true_duration() {
    // The origin alone, one chunk a second. Spread evenly, 20 chunks over 20 s keep pace; in
    // truth the first ten are loud (500 ms each) and the rest quiet (1.5 s each), so the start
    // outruns the delivery and stutters where the even model saw none.
    let config = SchedulerConfig {
        requests_origin: 1,
        range_chunks: 1,
        ..SchedulerConfig::default()
    };
    let run = |chunk_end_ms: Vec<u32>| {
        let mut net = Net::new(config.clone(), good(0, 1_000));
        let actions = net.scheduler.play(
            net.now,
            TrackPlan {
                chunks: 20,
                chunk_bytes: vec![16_400; 20],
                duration_ms: 20_000,
                chunk_end_ms,
                cached: vec![false; 20],
                start_ms: 0,
            },
        );
        net.apply(actions);
        net.run_until(200_000);
        assert!(net.scheduler.finished());
        net.scheduler.stats()
    };
    let even = run(Vec::new());
    let ends: Vec<u32> = (1..=20)
        .map(|i| {
            if i <= 10 {
                i * 500
            } else {
                5_000 + (i - 10) * 1_500
            }
        })
        .collect();
    let true_timing = run(ends);
    assert_eq!(even.stutters, 0, "{even:?}");
    assert!(true_timing.stutters > 0, "{true_timing:?}");
    assert!(true_timing.stalled_ms >= 2_000, "{true_timing:?}");
}

#[test]
fn a_chunk_that_spans_no_time_still_has_to_arrive_before_the_audio_after_it() {
    // Chunk 0 holds only the stream headers (it reaches 0 ms); everything else is cached.
    let mut net = Net::new(SchedulerConfig::default(), good(300, 5));
    let mut track = plan();
    track.chunk_end_ms = (0..track.chunks).map(|i| i * 1_000).collect();
    track.duration_ms = u64::from(track.chunks - 1) * 1_000;
    track.cached = (0..track.chunks).map(|i| i != 0).collect();
    let actions = net.scheduler.play(net.now, track);
    assert_eq!(
        net.scheduler.chunk_at(0),
        0,
        "position 0 needs chunk 0 first"
    );
    assert_eq!(net.scheduler.chunk_at(1_500), 2);
    net.apply(actions);
    net.run_until(250);
    assert_eq!(
        net.scheduler.stats().first_audio_ms,
        None,
        "chunk 0 is not in yet"
    );
    net.run_until(2_000);
    let first = net.scheduler.stats().first_audio_ms.expect("started");
    assert!((300..400).contains(&first), "{first}");
}

#[test]
fn a_window_counted_in_chunks_wakes_when_the_head_enters_the_next_start() {
    // Chunks 2 and 3 start together (2 plays for no time). Chunk 4 is missing and nobody
    // may be asked for it until the opening window (two chunks from the head) reaches it:
    // when the head enters chunk 4's own start, not over and over while it plays chunks 2
    // and 3 (the harness fails a wake-up that is due again right after a poll).
    let config = SchedulerConfig {
        requests_origin: 0,
        ..SchedulerConfig::default()
    };
    let mut net = Net::new(config, good(20, 5));
    net.wake = Wake::OnTimeout;
    let plan = TrackPlan {
        chunks: 10,
        chunk_bytes: vec![16_400; 10],
        duration_ms: 9_000,
        chunk_end_ms: vec![
            1_000, 2_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000, 9_000,
        ],
        cached: (0..10).map(|i| i < 4).collect(),
        start_ms: 0,
    };
    // The one peer holds chunks 0-3 and has stopped downloading: it cannot serve chunk 4.
    net.behaviour.insert(
        node(1),
        Behaviour::Downloading {
            held: 4,
            since_ms: 0,
            ms_per_chunk: u64::MAX / 4,
        },
    );
    let actions = net.scheduler.play(net.now, plan);
    net.apply(actions);
    let holding = Holding {
        held: 4,
        per_min: 0,
    };
    let actions = net
        .scheduler
        .add_holders(net.now, &[(node(1), SourceKind::Peer, Some(holding))]);
    net.apply(actions);
    net.run_until(60_000);
    assert!(net.scheduler.finished());
    assert!(net.polls < 100, "{} polls", net.polls);
}
