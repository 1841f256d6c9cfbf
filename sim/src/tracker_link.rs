//! The engine's tracker, in line or on a thread of its own.
//!
//! The tracker is one real [`Tracker`] that every listener and super-node talks to. Most of
//! what the engine tells it wants no answer (announces, reports, the expiry walk); a peer
//! lookup or a super-node's popular list does. On its own thread the tracker takes the calls
//! in the order the engine makes them: those without an answer are queued and the engine goes
//! on; a listener's lookup is answered while the engine goes on (below); any other call with
//! an answer waits until every call before it is done. The tracker therefore
//! sees exactly the calls it would see in line, in the same order, with the same times, and
//! answers exactly the same: a run gives the same results on one thread or two (a test
//! compares them).
//!
//! Each call goes over at once, so the tracker works while the engine goes on; each side
//! spins briefly before it sleeps, so a busy run pays for neither a wake-up per call nor a
//! round trip through the kernel per lookup.
//!
//! A listener's peer lookup is sent when the listener asks ([`TrackerLink::query_send`]) and
//! its answer taken when it arrives, a round trip later in simulated time
//! ([`TrackerLink::query_take`]): by then the tracker's thread has long answered it, so the
//! engine rarely waits. Answers come back in the order of their calls; one taken out of turn
//! waits, by its ticket, in [`TrackerLink`] until it is taken.

use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use policy::tracker::{Tracker, TrackerConfig};
use protocol::license::LicenseClaims;
use protocol::wire::{
    Announce, ErrorCode, PeerList, PeerQuery, PeerReport, PopularList, Refresh, WireError,
};
use protocol::{NodeId, UnixMillis};

/// How long a side spins for the other before it sleeps.
const SPIN: Duration = Duration::from_micros(50);

/// What a node announces in full: claims, proofs and the announce.
pub type FullAnnounce = (LicenseClaims, Vec<LicenseClaims>, Announce);

/// What a node announces, handed to the tracker as it stands and built into messages where
/// the tracker runs (on its thread, when it has one): the engine pays for gathering it, not
/// for the announce's lists or the set's digest.
pub trait Announcement: Send {
    /// The announce in full.
    fn full(self: Box<Self>) -> FullAnnounce;
    /// The refresh that names the same set, and the claims it goes with.
    fn refresh(&self) -> (LicenseClaims, Refresh);
}

/// A call to the tracker.
enum Call {
    Announcement {
        now: UnixMillis,
        node: NodeId,
        announcement: Box<dyn Announcement>,
        refresh: bool,
    },
    Announce {
        now: UnixMillis,
        node: NodeId,
        claims: LicenseClaims,
        proofs: Vec<LicenseClaims>,
        announce: Box<Announce>,
    },
    Report {
        now: UnixMillis,
        node: NodeId,
        claims: LicenseClaims,
        report: Box<PeerReport>,
    },
    Expire {
        now: UnixMillis,
    },
    Query {
        now: UnixMillis,
        node: NodeId,
        claims: LicenseClaims,
        query: Box<PeerQuery>,
        list: PeerList,
    },
    Popular {
        now: UnixMillis,
        node: NodeId,
        claims: LicenseClaims,
        want: usize,
    },
    Sizes,
    Finish,
}

/// An answer, to the one call waiting for it.
enum Answer {
    Query(Result<(), WireError>, PeerList),
    Popular(Result<PopularList, WireError>),
    Sizes(Sizes),
}

/// How much the tracker holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// [`Tracker::peers`].
    pub peers: usize,
    /// [`Tracker::entries`].
    pub entries: usize,
    /// [`Tracker::renditions`].
    pub renditions: usize,
}

fn sizes(tracker: &Tracker) -> Sizes {
    Sizes {
        peers: tracker.peers(),
        entries: tracker.entries(),
        renditions: tracker.renditions(),
    }
}

/// A peer lookup sent and not yet taken: [`TrackerLink::query_take`] takes its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(u32);

/// The engine's end of the tracker.
pub struct TrackerLink {
    mode: Mode,
    /// The next ticket handed out.
    next_ticket: u32,
    /// Tickets of calls whose answers are still on their way from the thread, in call order.
    on_the_way: std::collections::VecDeque<u32>,
    /// Answers received (or, in line, computed) and not yet taken, by ticket: at most one per
    /// lookup in flight (the engine takes each when its answer is due; those due after the
    /// run's end go with the link).
    arrived: std::collections::HashMap<u32, Answer>,
}

enum Mode {
    /// Taken by [`TrackerLink::finish`].
    Done,
    Inline(Box<Tracker>),
    Thread {
        calls: Sender<Call>,
        answers: Receiver<Answer>,
        worker: Option<JoinHandle<Tracker>>,
        config: TrackerConfig,
    },
}

impl TrackerLink {
    /// `tracker`, called in line (`threaded` false) or on a thread of its own (an error when
    /// the system gives no thread).
    pub fn new(tracker: Tracker, threaded: bool) -> std::io::Result<Self> {
        let link = |mode| Self {
            mode,
            next_ticket: 0,
            on_the_way: std::collections::VecDeque::new(),
            arrived: std::collections::HashMap::new(),
        };
        if !threaded {
            return Ok(link(Mode::Inline(Box::new(tracker))));
        }
        let config = tracker.config().clone();
        let (calls, inbox) = mpsc::channel::<Call>();
        let (outbox, answers) = mpsc::channel::<Answer>();
        let worker = std::thread::Builder::new()
            .name("sim-tracker".into())
            .spawn(move || serve(tracker, &inbox, &outbox))?;
        Ok(link(Mode::Thread {
            calls,
            answers,
            worker: Some(worker),
            config,
        }))
    }

    /// Whether the tracker runs on a thread of its own.
    pub fn threaded(&self) -> bool {
        matches!(self.mode, Mode::Thread { .. })
    }

    /// The tracker's settings.
    pub fn config(&self) -> &TrackerConfig {
        match &self.mode {
            Mode::Inline(tracker) => tracker.config(),
            Mode::Thread { config, .. } => config,
            Mode::Done => unreachable_tracker(),
        }
    }

    /// [`Tracker::announce`], whose answer the engine does not use.
    pub fn announce(
        &mut self,
        now: UnixMillis,
        node: NodeId,
        claims: LicenseClaims,
        proofs: Vec<LicenseClaims>,
        announce: Announce,
    ) {
        match &mut self.mode {
            Mode::Inline(tracker) => {
                let _ = tracker.announce(now, &node, &claims, &proofs, &announce);
            }
            Mode::Done => unreachable_tracker(),
            Mode::Thread { .. } => self.queue(Call::Announce {
                now,
                node,
                claims,
                proofs,
                announce: Box::new(announce),
            }),
        }
    }

    /// `announcement` in full ([`Tracker::announce`]) or, when `refresh`, its refresh
    /// ([`Tracker::refresh`]) and, should that be answered `set_unknown`, the announce in
    /// full at the same time (as `client-lib` announces in full on that answer). Neither
    /// answer is used further.
    pub fn announce_built(
        &mut self,
        now: UnixMillis,
        node: NodeId,
        announcement: Box<dyn Announcement>,
        refresh: bool,
    ) {
        match &mut self.mode {
            Mode::Inline(tracker) => announce_built(tracker, now, node, announcement, refresh),
            Mode::Done => unreachable_tracker(),
            Mode::Thread { .. } => self.queue(Call::Announcement {
                now,
                node,
                announcement,
                refresh,
            }),
        }
    }

    /// [`Tracker::report`], whose answer the engine does not use.
    pub fn report(
        &mut self,
        now: UnixMillis,
        node: NodeId,
        claims: LicenseClaims,
        report: PeerReport,
    ) {
        match &mut self.mode {
            Mode::Inline(tracker) => {
                let _ = tracker.report(now, &node, &claims, &report);
            }
            Mode::Done => unreachable_tracker(),
            Mode::Thread { .. } => self.queue(Call::Report {
                now,
                node,
                claims,
                report: Box::new(report),
            }),
        }
    }

    /// [`Tracker::expire`].
    pub fn expire(&mut self, now: UnixMillis) {
        match &mut self.mode {
            Mode::Inline(tracker) => {
                tracker.expire(now);
            }
            Mode::Thread { .. } => self.queue(Call::Expire { now }),
            Mode::Done => unreachable_tracker(),
        }
    }

    /// [`Tracker::query_into`], into `list`.
    pub fn query_into(
        &mut self,
        now: UnixMillis,
        node: NodeId,
        claims: &LicenseClaims,
        query: PeerQuery,
        list: &mut PeerList,
    ) -> Result<(), WireError> {
        match &mut self.mode {
            Mode::Inline(tracker) => tracker.query_into(now, &node, claims, &query, list),
            Mode::Done => unreachable_tracker(),
            Mode::Thread { .. } => {
                // The list's buffers go with the call and come back with the answer.
                let lent = PeerList {
                    rendition: list.rendition,
                    peers: std::mem::take(&mut list.peers),
                };
                let call = Call::Query {
                    now,
                    node,
                    claims: claims.clone(),
                    query: Box::new(query),
                    list: lent,
                };
                match self.ask(call) {
                    Answer::Query(result, answered) => {
                        *list = answered;
                        result
                    }
                    _ => unreachable_tracker(),
                }
            }
        }
    }

    /// Sends a peer lookup, [`Tracker::query_into`] at `now`, whose answer
    /// [`TrackerLink::query_take`] takes later. The tracker answers it after every call made
    /// before it and before any made after, so the answer is the same on one thread or two.
    pub fn query_send(
        &mut self,
        now: UnixMillis,
        node: NodeId,
        claims: LicenseClaims,
        query: PeerQuery,
    ) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        let list = PeerList {
            rendition: query.rendition,
            peers: Vec::new(),
        };
        match &mut self.mode {
            Mode::Inline(tracker) => {
                let mut list = list;
                let result = tracker.query_into(now, &node, &claims, &query, &mut list);
                self.arrived.insert(ticket, Answer::Query(result, list));
            }
            Mode::Done => unreachable_tracker(),
            Mode::Thread { calls, .. } => {
                send(
                    calls,
                    Call::Query {
                        now,
                        node,
                        claims,
                        query: Box::new(query),
                        list,
                    },
                );
                self.on_the_way.push_back(ticket);
            }
        }
        Ticket(ticket)
    }

    /// The answer to the lookup `ticket` stands for; waits for it if the tracker's thread has
    /// not answered yet.
    pub fn query_take(&mut self, ticket: Ticket) -> Result<PeerList, WireError> {
        match self.take(ticket.0) {
            Answer::Query(result, list) => result.map(|()| list),
            _ => unreachable_tracker(),
        }
    }

    /// The answer to call `ticket`: arrived already, or the next ones on the way until it.
    fn take(&mut self, ticket: u32) -> Answer {
        loop {
            if let Some(answer) = self.arrived.remove(&ticket) {
                return answer;
            }
            let Mode::Thread {
                answers, worker, ..
            } = &mut self.mode
            else {
                unreachable!("ticket {ticket} taken twice, or never sent");
            };
            let Some(next) = self.on_the_way.pop_front() else {
                unreachable!("ticket {ticket} taken twice, or never sent");
            };
            match receive(answers) {
                Some(answer) => {
                    self.arrived.insert(next, answer);
                }
                // The thread is gone: it panicked, and so does the run, as it would in line.
                None => {
                    join(worker.take());
                    return unreachable_tracker();
                }
            }
        }
    }

    /// [`Tracker::popular`].
    pub fn popular(
        &mut self,
        now: UnixMillis,
        node: NodeId,
        claims: &LicenseClaims,
        want: usize,
    ) -> Result<PopularList, WireError> {
        match &mut self.mode {
            Mode::Inline(tracker) => tracker.popular(now, &node, claims, want),
            Mode::Done => unreachable_tracker(),
            Mode::Thread { .. } => match self.ask(Call::Popular {
                now,
                node,
                claims: claims.clone(),
                want,
            }) {
                Answer::Popular(result) => result,
                _ => unreachable_tracker(),
            },
        }
    }

    /// How much the tracker holds, once every call before has been taken.
    pub fn sizes(&mut self) -> Sizes {
        match &mut self.mode {
            Mode::Inline(tracker) => sizes(tracker),
            Mode::Thread { .. } => match self.ask(Call::Sizes) {
                Answer::Sizes(sizes) => sizes,
                _ => unreachable_tracker(),
            },
            Mode::Done => unreachable_tracker(),
        }
    }

    /// The tracker itself, every call taken (the thread ends).
    pub fn finish(mut self) -> Tracker {
        match std::mem::replace(&mut self.mode, Mode::Done) {
            Mode::Inline(tracker) => *tracker,
            Mode::Thread {
                calls, mut worker, ..
            } => {
                send(&calls, Call::Finish);
                join(worker.take())
            }
            Mode::Done => unreachable_tracker(),
        }
    }

    /// Hands over a call that wants no answer.
    fn queue(&mut self, call: Call) {
        if let Mode::Thread { calls, .. } = &mut self.mode {
            send(calls, call);
        }
    }

    /// Hands over `call`, and waits for its answer (every call before it is done by then).
    fn ask(&mut self, call: Call) -> Answer {
        let Mode::Thread { calls, .. } = &mut self.mode else {
            return unreachable_tracker();
        };
        send(calls, call);
        let ticket = self.next_ticket;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.on_the_way.push_back(ticket);
        self.take(ticket)
    }
}

impl std::fmt::Debug for TrackerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerLink")
            .field("threaded", &self.threaded())
            .finish_non_exhaustive()
    }
}

impl Drop for TrackerLink {
    fn drop(&mut self) {
        if let Mode::Thread { calls, worker, .. } = &mut self.mode {
            // An engine dropped before its end (an error stopped the run): let the thread go.
            let _ = calls.send(Call::Finish);
            if let Some(worker) = worker.take() {
                let _ = worker.join();
            }
        }
    }
}

fn send(calls: &Sender<Call>, call: Call) {
    // Refused only when the thread is gone, which the next answer (or `finish`) tells.
    let _ = calls.send(call);
}

/// Waits for the tracker's thread and hands back its tracker; its panic, if it panicked.
fn join(worker: Option<JoinHandle<Tracker>>) -> Tracker {
    match worker.map(JoinHandle::join) {
        Some(Ok(tracker)) => tracker,
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        None => unreachable_tracker(),
    }
}

/// The next message, spinning for [`SPIN`] before sleeping on it; none once the other side
/// is gone.
fn receive<T>(from: &Receiver<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        match from.try_recv() {
            Ok(message) => return Some(message),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if started.elapsed() < SPIN => std::hint::spin_loop(),
            Err(TryRecvError::Empty) => return from.recv().ok(),
        }
    }
}

/// An announcement in full, or its refresh and on `set_unknown` the announce in full.
fn announce_built(
    tracker: &mut Tracker,
    now: UnixMillis,
    node: NodeId,
    announcement: Box<dyn Announcement>,
    refresh: bool,
) {
    if refresh {
        let (claims, refresh) = announcement.refresh();
        match tracker.refresh(now, &node, &claims, &refresh) {
            Err(error) if error.code == ErrorCode::SetUnknown => {}
            _ => return,
        }
    }
    let (claims, proofs, announce) = announcement.full();
    let _ = tracker.announce(now, &node, &claims, &proofs, &announce);
}

/// The tracker's thread: every call in order, answers to those that want one.
fn serve(mut tracker: Tracker, inbox: &Receiver<Call>, outbox: &Sender<Answer>) -> Tracker {
    while let Some(call) = receive(inbox) {
        let answer = match call {
            Call::Announce {
                now,
                node,
                claims,
                proofs,
                announce,
            } => {
                let _ = tracker.announce(now, &node, &claims, &proofs, &announce);
                continue;
            }
            Call::Report {
                now,
                node,
                claims,
                report,
            } => {
                let _ = tracker.report(now, &node, &claims, &report);
                continue;
            }
            Call::Announcement {
                now,
                node,
                announcement,
                refresh,
            } => {
                announce_built(&mut tracker, now, node, announcement, refresh);
                continue;
            }
            Call::Expire { now } => {
                tracker.expire(now);
                continue;
            }
            Call::Query {
                now,
                node,
                claims,
                query,
                mut list,
            } => {
                let result = tracker.query_into(now, &node, &claims, &query, &mut list);
                Answer::Query(result, list)
            }
            Call::Popular {
                now,
                node,
                claims,
                want,
            } => Answer::Popular(tracker.popular(now, &node, &claims, want)),
            Call::Sizes => Answer::Sizes(sizes(&tracker)),
            Call::Finish => return tracker,
        };
        if outbox.send(answer).is_err() {
            return tracker;
        }
    }
    tracker
}

/// A state the link never reaches: each call is answered with its own kind, and nothing is
/// called after `finish`.
fn unreachable_tracker<T>() -> T {
    unreachable!("the tracker link answers each call with its own kind")
}
