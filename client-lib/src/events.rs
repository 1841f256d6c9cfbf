//! Listening events for the origin (`POST /v1/events`): what was played, for how long, and
//! whether it was skipped. The origin counts a play as a stream after 30 s (the 30-second
//! rule), and streams drive trending, recommendations and artists' royalties.
//!
//! [`EventLog`] queues events and sends them in batches. Events that cannot be sent (offline,
//! origin down) stay queued, in memory and in the log file if it has one, and go with the next
//! batch; the origin accepts events up to 30 days old, and each event's id makes a resend
//! harmless. The queue holds at most [`QUEUED_MAX`] events (the oldest go first).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use api::client::OriginApi;

/// Events kept waiting at most.
pub const QUEUED_MAX: usize = 10_000;
/// Events per request (the origin takes up to 500).
pub const BATCH_MAX: usize = 500;

pub use api::events::{Event, EventKind};

/// A fresh random id (128 bits, hex).
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The wall clock, Unix ms (events carry wall time; the origin checks it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Queued listening events and where they go. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    queue: Arc<Mutex<VecDeque<Event>>>,
    /// One JSON event per line; rewritten after each send.
    file: Option<PathBuf>,
}

impl EventLog {
    /// A log kept in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A log that also keeps unsent events in `path` (read back now), so they survive a
    /// restart. Unreadable lines are dropped with a warning.
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let mut queue = VecDeque::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines().filter(|line| !line.trim().is_empty()) {
                    match serde_json::from_str(line) {
                        Ok(event) if queue.len() < QUEUED_MAX => queue.push_back(event),
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "dropping an unreadable queued event"),
                    }
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        Ok(Self {
            queue: Arc::new(Mutex::new(queue)),
            file: Some(path),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Event>> {
        self.queue
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Queues an event.
    pub fn push(&self, event: Event) {
        let mut queue = self.lock();
        while queue.len() >= QUEUED_MAX {
            queue.pop_front();
        }
        queue.push_back(event);
        drop(queue);
        self.save();
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn save(&self) {
        let Some(path) = &self.file else {
            return;
        };
        let mut text = String::new();
        for event in self.lock().iter() {
            if let Ok(line) = serde_json::to_string(event) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        let temporary = path.with_extension("tmp");
        let written =
            std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path));
        if let Err(error) = written {
            tracing::warn!(%error, path = %path.display(), "could not save queued listening events");
        }
    }

    /// Sends what is queued, in batches, with `access_token`. Sent events leave the queue;
    /// on the first failure the rest stay for next time. A batch the origin refuses as
    /// invalid (`4xx` other than 401/429) would be refused forever, so its bad event (named
    /// by index) is dropped and the rest go again. Returns how many the origin took.
    pub async fn flush(&self, api: &OriginApi, access_token: &str) -> anyhow::Result<usize> {
        let mut sent = 0;
        for _ in 0..(QUEUED_MAX / BATCH_MAX + BATCH_MAX) {
            let batch: Vec<Event> = self.lock().iter().take(BATCH_MAX).cloned().collect();
            if batch.is_empty() {
                break;
            }
            match api.post_events(access_token, &batch).await {
                Ok(_) => {
                    let mut queue = self.lock();
                    for _ in 0..batch.len().min(queue.len()) {
                        queue.pop_front();
                    }
                    drop(queue);
                    sent += batch.len();
                    self.save();
                }
                Err(error) => {
                    let refused = api::client::ApiError::of(&error)
                        .filter(|refusal| {
                            (400..500).contains(&refusal.status)
                                && !matches!(refusal.status, 401 | 429)
                        })
                        .and_then(|refusal| refusal.index);
                    match refused {
                        Some(index) if index < batch.len() => {
                            tracing::warn!(%error, "the origin refused a listening event; dropping it");
                            let bad = &batch[index];
                            self.lock().retain(|event| event.id != bad.id);
                            self.save();
                        }
                        _ => return Err(error),
                    }
                }
            }
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Event {
        Event {
            id: format!("e{n}"),
            play_id: "p".into(),
            kind: EventKind::Progress,
            region: None,
            track_id: "t".into(),
            position_ms: n,
            at: n,
            sources: None,
        }
    }

    #[test]
    fn the_queue_is_bounded_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let log = EventLog::open(path.clone()).unwrap();
        for n in 0..(QUEUED_MAX as u64 + 5) {
            log.lock().push_back(event(n));
        }
        log.push(event(1_000_000));
        assert_eq!(log.len(), QUEUED_MAX);
        assert_eq!(
            log.lock().front().unwrap().id,
            "e6",
            "the oldest went first"
        );
        let again = EventLog::open(path.clone()).unwrap();
        assert_eq!(again.len(), QUEUED_MAX);
        assert_eq!(again.lock().back().unwrap().id, "e1000000");
        // A damaged line is dropped, the rest kept.
        std::fs::write(&path, "{\"id\":\n{bad\n").unwrap();
        assert!(EventLog::open(path).unwrap().is_empty());
    }
}
