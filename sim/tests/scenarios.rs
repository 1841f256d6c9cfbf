//! Whole runs of the shipped scenarios, scaled down: determinism, the checkers, and the
//! effects each scenario exists to show.

use sim::{Engine, Outcome, Scenario};

fn run(name: &str, sets: &[(&str, &str)]) -> Outcome {
    let text = sim::config::builtin(name).expect("a built-in scenario");
    let sets: Vec<(String, String)> = sets
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    let scenario = Scenario::from_toml(text, &sets).expect("valid scenario");
    Engine::new(scenario)
        .expect("set up")
        .run(&mut |_| {})
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// A small Spotify-like network: 1,500 listeners, one hour, a catalog they can share.
const SMALL: &[(&str, &str)] = &[
    ("peers", "1500"),
    ("duration_s", "3600"),
    ("measure_from_s", "600"),
    ("catalog.tracks", "20000"),
    ("sessions.per_day", "8"),
    ("output.sample_s", "300"),
];

#[test]
fn the_tracker_on_its_own_thread_changes_nothing() {
    for name in [
        "spotify-2010",
        "churn-heavy",
        "flash-crowd",
        "tracker-outage",
    ] {
        let text = sim::config::builtin(name).expect("a built-in scenario");
        let mut sets: Vec<(String, String)> = SMALL
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        // Super-nodes too, for their announces and popular lists.
        sets.push(("super_nodes.per_region".into(), "1".into()));
        if name == "tracker-outage" {
            // The outage inside the run: lookups that time out, answers lost on their way.
            sets.push(("tracker.outages".into(), "[[1200, 2400]]".into()));
        }
        let outcome = |threads: usize| {
            let scenario = Scenario::from_toml(text, &sets).expect("valid scenario");
            Engine::with_threads(scenario, threads)
                .expect("set up")
                .run(&mut |_| {})
                .unwrap_or_else(|error| panic!("{name}: {error}"))
        };
        let (one, two) = (outcome(1), outcome(2));
        assert!(one.summary.plays > 100, "{name}: {:?}", one.summary);
        assert!(one.summary.tracker.announces > 1_000, "{name}");
        // Lookups sent on one event and taken on another, a round trip later: a play's and a
        // prefetch's.
        assert!(one.summary.tracker.queries > 100, "{name}");
        for kind in ["peers", "prefetch_peers"] {
            assert!(one.summary.events_by_kind[kind] > 100, "{name}: {kind}");
        }
        assert_eq!(
            one.summary.deterministic_json(),
            two.summary.deterministic_json(),
            "{name}"
        );
        assert_eq!(one.plays, two.plays, "{name}");
        assert_eq!(one.series, two.series, "{name}");
    }
}

/// Half the listeners on links barely faster than the music, so that plays stall often.
const SLOW_HALF: &str = "[{name = \"slow\", share = 0.5, down_mbps = 0.35, up_mbps = 0.3, \
    upload_slots = 4, reachable = 0.8}, {name = \"adsl\", share = 0.5, down_mbps = 8.0, \
    up_mbps = 0.8, upload_slots = 4, reachable = 0.5}]";

#[test]
fn analytic_delivery_stalls_and_starts_exactly_as_chunk_by_chunk_delivery() {
    // Every chunk its own event and decision round (the reference), against events only
    // where a chunk can change a decision: the same seed must give the same plays, stall
    // for stall and millisecond for millisecond, and the same everything else.
    let mut stalled_plays = 0;
    for (name, extra) in [
        ("spotify-2010", vec![]),
        (
            "spotify-2010",
            vec![("classes", SLOW_HALF), ("faults.corrupt_peers", "0.05")],
        ),
        ("churn-heavy", vec![("classes", SLOW_HALF)]),
        ("flash-crowd", vec![("classes", SLOW_HALF)]),
        (
            "tracker-outage",
            vec![
                ("classes", SLOW_HALF),
                ("tracker.outages", "[[1200, 2400]]"),
            ],
        ),
    ] {
        let text = sim::config::builtin(name).expect("a built-in scenario");
        let outcome = |delivery: &str| {
            let mut sets: Vec<(String, String)> = SMALL
                .iter()
                .chain(&[("super_nodes.per_region", "1")])
                .chain(&extra)
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect();
            sets.push(("network.delivery".into(), delivery.into()));
            let scenario = Scenario::from_toml(text, &sets).expect("valid scenario");
            Engine::new(scenario)
                .expect("set up")
                .run(&mut |_| {})
                .unwrap_or_else(|error| panic!("{name}: {error}"))
        };
        let (chunks, analytic) = (outcome("chunks"), outcome("analytic"));
        assert!(chunks.summary.plays > 100, "{name}: {:?}", chunks.summary);
        // The analytic model saves events: most chunks land without one.
        let flow_events = |outcome: &Outcome| outcome.summary.events_by_kind["flow"];
        assert!(
            flow_events(&analytic) * 4 < flow_events(&chunks),
            "{name}: {} flow events against {}",
            flow_events(&analytic),
            flow_events(&chunks)
        );
        assert_eq!(chunks.plays.len(), analytic.plays.len(), "{name}");
        for (one, other) in chunks.plays.iter().zip(&analytic.plays) {
            assert_eq!(
                (one.first_audio_ms, one.stutters, one.stalled_ms),
                (other.first_audio_ms, other.stutters, other.stalled_ms),
                "{name}: {one:?} against {other:?}"
            );
        }
        stalled_plays += chunks.plays.iter().filter(|play| play.stutters > 0).count();
        assert_eq!(chunks.plays, analytic.plays, "{name}");
        let mut same = analytic.summary.clone();
        same.events = chunks.summary.events;
        same.events_by_kind = chunks.summary.events_by_kind.clone();
        assert_eq!(
            chunks.summary.deterministic_json(),
            same.deterministic_json(),
            "{name}"
        );
        assert_eq!(chunks.series, analytic.series, "{name}");
    }
    // Enough stalls that "the same stalls" says something.
    assert!(stalled_plays > 300, "{stalled_plays} plays stalled");
}

#[test]
fn refreshing_unchanged_sets_changes_only_what_the_tracker_is_sent() {
    for name in ["spotify-2010", "churn-heavy", "tracker-outage"] {
        let text = sim::config::builtin(name).expect("a built-in scenario");
        let outcome = |refresh: bool, threads: usize| {
            let mut sets: Vec<(String, String)> = SMALL
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect();
            sets.push(("client.refresh".into(), refresh.to_string()));
            let scenario = Scenario::from_toml(text, &sets).expect("valid scenario");
            Engine::with_threads(scenario, threads)
                .expect("set up")
                .run(&mut |_| {})
                .unwrap_or_else(|error| panic!("{name}: {error}"))
        };
        let (full, refreshed) = (outcome(false, 1), outcome(true, 2));
        let (sent, kept) = (full.summary.tracker, refreshed.summary.tracker);
        assert_eq!(sent.refreshes, 0, "{name}");
        assert!(
            kept.refreshes > sent.announces / 4,
            "{name}: {sent:?} {kept:?}"
        );
        assert!(kept.refreshes_unknown > 0, "{name}: {kept:?}");
        // Every announce either went in full or was refreshed; one whose refresh was not
        // taken went in full after it.
        assert_eq!(kept.announces + kept.refreshes, sent.announces, "{name}");
        assert!(kept.refreshes_unknown <= kept.announces, "{name}");
        let mut same = refreshed.summary.clone();
        same.tracker = full.summary.tracker;
        assert_eq!(
            full.summary.deterministic_json(),
            same.deterministic_json(),
            "{name}"
        );
        assert_eq!(full.plays, refreshed.plays, "{name}");
        assert_eq!(full.series, refreshed.series, "{name}");
    }
}

#[test]
fn the_same_seed_gives_the_same_summary_and_another_seed_does_not() {
    let first = run("spotify-2010", SMALL);
    let second = run("spotify-2010", SMALL);
    assert_eq!(
        first.summary.deterministic_json(),
        second.summary.deterministic_json()
    );
    assert_eq!(first.plays, second.plays);
    let mut other_seed = SMALL.to_vec();
    other_seed.push(("seed", "99"));
    let third = run("spotify-2010", &other_seed);
    assert_ne!(
        first.summary.deterministic_json(),
        third.summary.deterministic_json()
    );
}

#[test]
fn a_small_network_plays_mostly_from_peers_and_caches_and_checks_everything() {
    let outcome = run("spotify-2010", SMALL);
    let summary = &outcome.summary;
    assert!(summary.plays > 1_000, "{summary:?}");
    let shares = summary.bytes_share;
    assert!((shares.origin + shares.p2p + shares.cache - 1.0).abs() < 1e-3);
    assert!(shares.p2p > 0.1 && shares.cache > 0.2, "{shares:?}");
    assert!(summary.stutter_rate < 0.05, "{summary:?}");
    assert!(summary.first_audio_ms.p50 <= summary.first_audio_ms.p75);
    assert!(summary.first_audio_ms.p75 <= summary.first_audio_ms.p90);
    // The checkers looked at every chunk and every peer list.
    assert!(summary.checks.chunks_delivered > 100_000);
    assert!(summary.checks.peer_lists > 500);
    // Honest listeners prove what they announce, and rank the peers they fetched from.
    assert_eq!(summary.tracker.unproven, 0, "{summary:?}");
    assert!(summary.tracker.rates_reported > 100, "{summary:?}");
    // Shares in the time series add up to the totals.
    let origin: u64 = outcome.series.iter().map(|s| s.bytes_origin).sum();
    assert_eq!(origin, summary.bytes.origin);
    assert!(!outcome.plays.is_empty());
}

#[test]
fn corrupt_peers_are_caught_and_never_reach_a_player() {
    let mut sets = SMALL.to_vec();
    sets.push(("faults.corrupt_peers", "0.2"));
    let outcome = run("spotify-2010", &sets);
    let summary = &outcome.summary;
    // The run finished, so the checker never saw a bad chunk reach a player.
    assert!(summary.checks.bad_chunks_caught > 50, "{summary:?}");
    assert!(summary.checks.reports > 0);
    // Reports from distinct listeners quarantine corrupt peers at the (real) tracker.
    assert!(summary.tracker.quarantined > 0, "{summary:?}");
    assert!(summary.stutter_rate < 0.1);
}

#[test]
fn a_tracker_outage_sends_listeners_to_the_origin_until_it_ends() {
    let outcome = run(
        "tracker-outage",
        &[
            ("peers", "1500"),
            ("duration_s", "5400"),
            ("measure_from_s", "0"),
            ("catalog.tracks", "20000"),
            ("tracker.outages", "[[1800, 3600]]"),
            ("output.sample_s", "300"),
        ],
    );
    let share = |from: u64, to: u64| {
        let window: Vec<_> = outcome
            .series
            .iter()
            .filter(|s| s.t_s > from && s.t_s <= to)
            .collect();
        let origin: u64 = window.iter().map(|s| s.bytes_origin).sum();
        let network: u64 = window
            .iter()
            .map(|s| s.bytes_origin + s.bytes_peers + s.bytes_super_nodes)
            .sum();
        origin as f64 / network.max(1) as f64
    };
    let before = share(900, 1800);
    let during = share(2100, 3600);
    let after = share(4500, 5400);
    assert!(during > before * 1.5, "before {before}, during {during}");
    assert!(after < during, "during {during}, after {after}");
}

#[test]
fn a_release_takes_its_share_of_plays_and_super_nodes_pin_it() {
    let outcome = run(
        "flash-crowd",
        &[
            ("peers", "2000"),
            ("duration_s", "5400"),
            ("measure_from_s", "0"),
            ("catalog.tracks", "20000"),
            ("releases.0.at_s", "1800"),
            ("output.sample_s", "300"),
        ],
    );
    let first_release = 20_000;
    let after: Vec<_> = outcome
        .plays
        .iter()
        .filter(|play| play.pressed_ms > 1_800_000 && play.pressed_ms < 3_600_000)
        .collect();
    let new = after
        .iter()
        .filter(|play| play.track >= first_release)
        .count();
    let share = new as f64 / after.len().max(1) as f64;
    // 40% at the release, halving every hour: about 29% on average over the next half hour.
    assert!((0.2..0.4).contains(&share), "{share}");
    assert!(
        outcome
            .plays
            .iter()
            .all(|play| play.pressed_ms > 1_800_000 || play.track < first_release)
    );
    // The new tracks reach listeners from super-nodes as well as from the origin.
    let from_super: u64 = after
        .iter()
        .filter(|play| play.track >= first_release)
        .map(|play| play.bytes_super_nodes)
        .sum();
    assert!(from_super > 0);
}

#[test]
fn churn_costs_time_outs_but_playback_survives() {
    let outcome = run(
        "churn-heavy",
        &[
            ("peers", "1500"),
            ("duration_s", "3600"),
            ("catalog.tracks", "20000"),
        ],
    );
    let summary = &outcome.summary;
    assert!(summary.crashed_plays > 0, "{summary:?}");
    assert!(summary.checks.failed_unreachable > 0, "{summary:?}");
    assert!(summary.stutter_rate < 0.05, "{summary:?}");
}

#[test]
fn outcome_files_are_written() {
    let outcome = run("devnet-validation", &[]);
    let dir = std::env::temp_dir().join(format!("chorus-sim-test-{}", std::process::id()));
    outcome.write(&dir).unwrap();
    for file in [
        "summary.json",
        "series.csv",
        "plays.csv",
        "first_audio_ms.csv",
        "sources.svg",
        "start_latency.svg",
        "origin_load.svg",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let lines = if file == "summary.json" { 1 } else { 2 };
        assert!(text.lines().count() >= lines, "{file}: {text:?}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert!(summary.get("wall_seconds").is_none());
    assert_eq!(summary["plays"], outcome.summary.plays);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn listeners_downloading_a_track_serve_it_as_partial_holders() {
    // The devnet's crowd, twice as large and with no super-node: listeners start the same
    // few tracks within seconds of each other.
    let crowd = [("peers", "64"), ("super_nodes.per_region", "0")];
    let partial = run("devnet-validation", &crowd);
    let checks = partial.summary.checks;
    assert!(checks.partial_served > 0, "{checks:?}");
    assert_eq!(partial.summary.stutter_rate, 0.0, "{:?}", partial.summary);
    let mut whole_only = crowd.to_vec();
    whole_only.push(("client.partial_holders", "false"));
    let whole = run("devnet-validation", &whole_only);
    let checks = whole.summary.checks;
    assert_eq!((checks.partial_served, checks.partial_misses), (0, 0));
}

#[test]
fn crashes_as_a_rate_bring_listeners_back_within_seconds_as_in_the_devnet() {
    // 30% of the devnet's crowd crashing over 120 s, as `chorus validate --churn 0.3` asks.
    let outcome = run(
        "devnet-validation",
        &[
            ("faults.crash_per_min", "0.15"),
            ("duration_s", "600"),
            ("output.sample_s", "30"),
        ],
    );
    let summary = &outcome.summary;
    assert!(summary.crashed_plays > 0, "{summary:?}");
    // Back 3 to 10 s later: once everyone has arrived, nearly all are online at every
    // sample (sessions last 600 s on average, and a listener gone for the usual gap between
    // sessions would be gone for ten minutes or more).
    let later: Vec<u32> = outcome
        .series
        .iter()
        .filter(|sample| sample.t_s >= 60 && sample.t_s <= 300)
        .map(|sample| sample.online)
        .collect();
    assert!(!later.is_empty());
    assert!(later.iter().all(|&online| online >= 26), "{later:?}");
}

#[test]
fn skips_and_session_ends_waste_bytes_and_the_summary_says_how_many() {
    let quiet = run("devnet-validation", &[("sessions.skip_chance", "0.0")]);
    let skipping = run(
        "devnet-validation",
        &[
            ("sessions.skip_chance", "1.0"),
            ("sessions.skip_after_s", "[2, 4]"),
        ],
    );
    let wasted = |outcome: &Outcome| {
        let wasted = outcome.summary.wasted_bytes;
        wasted.prefetch + wasted.cancelled + wasted.duplicate
    };
    let network = |outcome: &Outcome| {
        let bytes = outcome.summary.bytes;
        bytes.origin + bytes.super_nodes + bytes.peers
    };
    // Skipping within seconds abandons the transfers of every track under way.
    assert!(
        skipping.summary.wasted_bytes.cancelled > 0,
        "{:?}",
        skipping.summary
    );
    assert!(
        wasted(&skipping) > wasted(&quiet),
        "{:?} {:?}",
        skipping.summary,
        quiet.summary
    );
    // A few tracks' worth, not a run's worth.
    assert!(
        wasted(&skipping) < network(&skipping),
        "{:?}",
        skipping.summary
    );
}
