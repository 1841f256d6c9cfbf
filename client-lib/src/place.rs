//! The listener's place, kept on the origin (`/v1/me/player`) so another device picks up
//! where this one stopped.
//!
//! A [`PlaceKeeper`] saves the queue, the current track and the position: when a track
//! starts, every [`SAVE_EVERY_MS`] of play, and when playback stops. Each write names the
//! version it was based on. When another device wrote in between (`409 stale_version`), the
//! device that is playing now wins: it reads the new version and writes again, once.

use api::client::{ApiError, OriginApi};
use api::library::{PlayerState, PlayerUpdate};

/// How often the position is saved while a track plays.
pub const SAVE_EVERY_MS: u64 = 15_000;

/// Saves one device's place as it plays.
#[derive(Debug)]
pub struct PlaceKeeper {
    api: OriginApi,
    access: String,
    device: String,
    version: u64,
    /// When the next periodic save is due (monotonic ms): set by every attempt, so a failing
    /// origin is asked at most every [`SAVE_EVERY_MS`].
    next_save_ms: u64,
    /// Off after a refusal that will not change (a bad request, an expired session).
    enabled: bool,
}

impl PlaceKeeper {
    /// Reads the saved state (what `--resume` starts from) and keeps its version for the
    /// first write.
    pub async fn load(
        api: OriginApi,
        access: String,
        device: String,
    ) -> anyhow::Result<(Self, PlayerState)> {
        let state = api.player(&access).await?;
        let keeper = Self {
            api,
            access,
            device,
            version: state.version,
            next_save_ms: 0,
            enabled: true,
        };
        Ok((keeper, state))
    }

    /// Whether a periodic save is due at `now_ms` (monotonic milliseconds).
    pub fn due(&self, now_ms: u64) -> bool {
        self.enabled && now_ms >= self.next_save_ms
    }

    /// Saves `queue`, `index` and `position_ms` at `now_ms`: the state as saved, or `None`
    /// when nothing was written. An `urgent` save (a track started, playback stopped) that
    /// finds another device's write re-reads the version and writes again (the device that
    /// is playing wins); a periodic one leaves the other device's place alone.
    pub async fn save(
        &mut self,
        queue: &[String],
        index: usize,
        position_ms: u64,
        now_ms: u64,
        urgent: bool,
    ) -> anyhow::Result<Option<PlayerState>> {
        if !self.enabled {
            return Ok(None);
        }
        self.next_save_ms = now_ms.saturating_add(SAVE_EVERY_MS);
        let mut update = PlayerUpdate {
            queue: queue.to_vec(),
            index: index.min(queue.len().saturating_sub(1)) as u32,
            position_ms,
            device: self.device.clone(),
            version: self.version,
            updated_at_ms: None,
        };
        let saved = match self.api.put_player(&self.access, &update).await {
            Ok(saved) => saved,
            Err(error) if ApiError::code_of(&error) == Some("stale_version") => {
                if !urgent {
                    return Ok(None);
                }
                update.version = self.api.player(&self.access).await?.version;
                self.api.put_player(&self.access, &update).await?
            }
            Err(error) => {
                let status = ApiError::of(&error).map_or(0, |refusal| refusal.status);
                if (400..500).contains(&status) && status != 429 {
                    self.enabled = false;
                }
                return Err(error);
            }
        };
        self.version = saved.version;
        Ok(Some(saved))
    }
}

/// Where `--resume` starts: the saved queue whole, the saved track's place in it, and the
/// position in that track; `None` when nothing was saved.
pub fn resume_from(state: &PlayerState) -> Option<(Vec<String>, usize, u64)> {
    let index = state.index as usize;
    (index < state.queue.len()).then(|| (state.queue.clone(), index, state.position_ms))
}

/// The place of `track` in `queue`, looking from `from` on and then from the start (a queue
/// may hold a track twice: the next occurrence is the one playing).
pub fn locate(queue: &[String], from: usize, track: &str) -> Option<usize> {
    let from = from.min(queue.len());
    (from..queue.len())
        .chain(0..from)
        .find(|&index| queue[index] == track)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_starts_at_the_saved_track_and_position() {
        let state = PlayerState {
            queue: vec!["a".into(), "b".into(), "c".into()],
            index: 1,
            position_ms: 61_000,
            ..PlayerState::default()
        };
        assert_eq!(
            resume_from(&state),
            Some((
                vec!["a".to_string(), "b".to_string(), "c".to_string()],
                1,
                61_000
            ))
        );
        assert_eq!(resume_from(&PlayerState::default()), None);
    }

    #[test]
    fn a_repeated_track_is_found_at_its_next_place() {
        let queue: Vec<String> = ["a", "b", "a"].iter().map(|id| id.to_string()).collect();
        assert_eq!(locate(&queue, 0, "a"), Some(0));
        assert_eq!(locate(&queue, 1, "a"), Some(2));
        assert_eq!(locate(&queue, 3, "a"), Some(0), "wraps (repeat all)");
        assert_eq!(locate(&queue, 0, "z"), None);
    }
}
