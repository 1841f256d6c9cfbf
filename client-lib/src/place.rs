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
    last_saved_ms: Option<u64>,
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
            last_saved_ms: None,
        };
        Ok((keeper, state))
    }

    /// Whether the position is due to be saved at `now_ms` (monotonic milliseconds).
    pub fn due(&self, now_ms: u64) -> bool {
        self.last_saved_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= SAVE_EVERY_MS)
    }

    /// Saves `queue`, `index` and `position_ms` at `now_ms`; the state as saved.
    pub async fn save(
        &mut self,
        queue: &[String],
        index: usize,
        position_ms: u64,
        now_ms: u64,
    ) -> anyhow::Result<PlayerState> {
        let mut update = PlayerUpdate {
            queue: queue.to_vec(),
            index: index.min(queue.len().saturating_sub(1)) as u32,
            position_ms,
            device: self.device.clone(),
            version: self.version,
        };
        let saved = match self.api.put_player(&self.access, &update).await {
            Ok(saved) => saved,
            Err(error) if ApiError::code_of(&error) == Some("stale_version") => {
                // Another device wrote since: this one is playing, so its place is the
                // listener's now.
                update.version = self.api.player(&self.access).await?.version;
                self.api.put_player(&self.access, &update).await?
            }
            Err(error) => return Err(error),
        };
        self.version = saved.version;
        self.last_saved_ms = Some(now_ms);
        Ok(saved)
    }
}

/// Where `--resume` starts: the tracks from the saved current one on, and the position in
/// it; `None` when nothing was saved.
pub fn resume_from(state: &PlayerState) -> Option<(Vec<String>, u64)> {
    let index = state.index as usize;
    (index < state.queue.len()).then(|| (state.queue[index..].to_vec(), state.position_ms))
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
            Some((vec!["b".to_string(), "c".to_string()], 61_000))
        );
        assert_eq!(resume_from(&PlayerState::default()), None);
    }
}
