//! Which tracker shard holds a rendition: rendezvous (highest-random-weight) hashing over the
//! shards' node ids.
//!
//! Every party computes the same answer from the same list, without asking anyone: the origin
//! names the shard in a play grant, clients and super-nodes announce each rendition to its
//! shard and ask it for peers. A rendition's shard is the one whose
//! `blake3("chorus tracker shard" ‖ shard id ‖ rendition)` is highest, so the list's order
//! does not matter and adding or removing a shard moves only the renditions that go to, or
//! came from, that shard (about `1/n` of them).

use crate::{NodeId, RenditionId};

/// The score of `shard` for `rendition` (the highest wins).
fn score(shard: &NodeId, rendition: &RenditionId) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("chorus tracker shard v1");
    hasher.update(shard.as_bytes());
    hasher.update(rendition.as_bytes());
    *hasher.finalize().as_bytes()
}

/// The index in `shards` of the shard that holds `rendition` (`None` without shards). Ties,
/// which need equal hashes, go to the first.
pub fn shard_of<'a>(
    rendition: &RenditionId,
    shards: impl IntoIterator<Item = &'a NodeId>,
) -> Option<usize> {
    let mut best: Option<(usize, [u8; 32])> = None;
    for (index, shard) in shards.into_iter().enumerate() {
        let score = score(shard, rendition);
        if best.is_none_or(|(_, top)| score > top) {
            best = Some((index, score));
        }
    }
    best.map(|(index, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(count: u8) -> Vec<NodeId> {
        (0..count)
            .map(|n| crate::Identity::from_secret_bytes(&[n + 1; 32]).node_id())
            .collect()
    }

    fn rendition(n: u32) -> RenditionId {
        RenditionId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    #[test]
    fn every_party_agrees_whatever_the_order() {
        let shards = ids(4);
        let mut reversed = shards.clone();
        reversed.reverse();
        for n in 0..200 {
            let id = rendition(n);
            let chosen = shards[shard_of(&id, &shards).unwrap()];
            assert_eq!(reversed[shard_of(&id, &reversed).unwrap()], chosen);
        }
        assert_eq!(shard_of(&rendition(1), &[]), None);
    }

    #[test]
    fn renditions_spread_and_only_a_lost_shards_share_moves() {
        let shards = ids(4);
        let mut counts = [0usize; 4];
        let mut moved = 0;
        let survivors: Vec<NodeId> = shards[..3].to_vec();
        for n in 0..4_000 {
            let id = rendition(n);
            let before = shard_of(&id, &shards).unwrap();
            counts[before] += 1;
            let after = survivors[shard_of(&id, &survivors).unwrap()];
            if after != shards[before] {
                moved += 1;
                assert_eq!(before, 3, "only the lost shard's renditions move");
            }
        }
        for count in counts {
            assert!((800..1_200).contains(&count), "uneven: {counts:?}");
        }
        assert_eq!(moved, counts[3]);
    }
}
