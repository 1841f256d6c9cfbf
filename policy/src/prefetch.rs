//! Fetching the next track's opening before it plays (DESIGN §6: peers first).
//!
//! When the scheduler says the current track is near its end
//! ([`crate::scheduler::Action::PrefetchNext`]), the player asks for the next track's grant and
//! its first [`chunks_wanted`] chunks: from the holders the tracker lists that hold all of them
//! ([`holders`]), tried in order for at most [`PEERS_WAIT_MS`]; what they did not deliver by
//! then comes from the origin. The client and the simulator both follow this.

use protocol::NodeId;
use protocol::wire::PeerInfo;

/// Audio fetched ahead for the next track, ms (the player's default).
pub const PREFETCH_MS: u64 = 10_000;

/// How long a prefetch tries peers before it asks the origin for what is still missing.
pub const PEERS_WAIT_MS: u64 = 5_000;

/// Most holders a prefetch tries.
pub const HOLDERS_TRIED: usize = 4;

/// Chunks of a track of `chunks` chunks over `duration_ms` that hold its first `prefetch_ms`
/// of audio: at least one (none for an empty track), at most all.
pub fn chunks_wanted(chunks: u32, duration_ms: u64, prefetch_ms: u64) -> u32 {
    let wanted =
        (u128::from(chunks) * u128::from(prefetch_ms)).div_ceil(u128::from(duration_ms.max(1)));
    u32::try_from(wanted)
        .unwrap_or(u32::MAX)
        .clamp(1, chunks.max(1))
        .min(chunks)
}

/// The holders in a tracker's answer a prefetch of the first `chunks` chunks tries, in the
/// tracker's order (best first): not `me`, holding the whole rendition or (a partial holder)
/// at least those chunks, at most [`HOLDERS_TRIED`].
pub fn holders<'a>(
    peers: &'a [PeerInfo],
    me: &'a NodeId,
    chunks: u32,
) -> impl Iterator<Item = &'a PeerInfo> + 'a {
    peers
        .iter()
        .filter(move |peer| {
            peer.node != *me && peer.holding.is_none_or(|holding| holding.held >= chunks)
        })
        .take(HOLDERS_TRIED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Region;
    use protocol::wire::{Holding, NodeRole};

    fn peer(byte: u8, holding: Option<Holding>) -> PeerInfo {
        PeerInfo {
            node: NodeId([byte; 32]),
            addrs: Vec::new(),
            region: Region::UNKNOWN,
            role: NodeRole::Client,
            upload_spare_kbps: 1_000,
            holding,
        }
    }

    #[test]
    fn ten_seconds_of_a_track_rounds_up_and_stays_within_it() {
        // 150 s in 300 chunks: 10 s is 20 chunks.
        assert_eq!(chunks_wanted(300, 150_000, PREFETCH_MS), 20);
        assert_eq!(chunks_wanted(7, 150_000, PREFETCH_MS), 1, "rounds up");
        assert_eq!(
            chunks_wanted(7, 5_000, PREFETCH_MS),
            7,
            "a short track whole"
        );
        assert_eq!(chunks_wanted(0, 5_000, PREFETCH_MS), 0);
        assert_eq!(chunks_wanted(10, 0, PREFETCH_MS), 10, "no duration: all");
        assert_eq!(chunks_wanted(u32::MAX, 1, u64::MAX), u32::MAX);
    }

    #[test]
    fn holders_hold_the_whole_opening_skip_me_and_are_few() {
        let me = NodeId([0; 32]);
        let grows = |held| Some(Holding { held, per_min: 60 });
        let list = vec![
            peer(0, None),
            peer(1, grows(3)),
            peer(2, None),
            peer(3, grows(20)),
            peer(4, None),
            peer(5, None),
            peer(6, None),
        ];
        let tried: Vec<u8> = holders(&list, &me, 20).map(|p| p.node.0[0]).collect();
        assert_eq!(tried, vec![2, 3, 4, 5]);
    }
}
