//! The names of a room's keys and channel, and of the cluster-wide keys.

use kokuban_protocol::{MemberId, RoomId};

/// The key holding the cluster's capability key.
pub(super) const SECRET_KEY: &str = "kokuban:secret";

/// The names of one room's keys and channel.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(super) epoch: String,
    pub(super) seq: String,
    pub(super) log: String,
    pub(super) snap: String,
    pub(super) members: String,
    pub(super) compact: String,
    pub(super) authors: String,
    pub(super) links: String,
    /// Versions of the board: ids by place, listings, and boards.
    pub(super) versions: String,
    pub(super) version_info: String,
    pub(super) version_board: String,
    /// Set while view links may not read the versions.
    pub(super) private_history: String,
    /// The room's images by hash, their types by hash, and their bytes together.
    pub(super) blobs: String,
    pub(super) blob_types: String,
    pub(super) blob_bytes: String,
    /// The room's sharded pub/sub channel.
    pub channel: String,
    /// The Redis Cluster slot of every key and the channel.
    pub slot: u16,
}

impl Keys {
    /// The list of `author`'s latest op numbers with their places (`n:epoch:seq`, newest first).
    pub fn ring(&self, author: MemberId) -> String {
        format!("{}:ring:{author}", self.channel)
    }

    /// The keys of `room`, all under its hash tag.
    pub fn of(room: &RoomId) -> Keys {
        // Room ids are URL-safe base64, so they never contain the `{}` of a hash tag.
        let base = format!("kokuban:{{{room}}}");
        Keys {
            epoch: format!("{base}:epoch"),
            seq: format!("{base}:seq"),
            log: format!("{base}:log"),
            snap: format!("{base}:snap"),
            members: format!("{base}:members"),
            compact: format!("{base}:compact"),
            authors: format!("{base}:authors"),
            links: format!("{base}:links"),
            versions: format!("{base}:versions"),
            version_info: format!("{base}:version-info"),
            version_board: format!("{base}:version-board"),
            private_history: format!("{base}:private-history"),
            blobs: format!("{base}:blobs"),
            blob_types: format!("{base}:blob-types"),
            blob_bytes: format!("{base}:blob-bytes"),
            channel: base,
            slot: slot_of(room.as_str().as_bytes()),
        }
    }
}

/// Slots of a Redis Cluster.
pub(crate) const SLOTS: usize = 16384;

/// The Redis Cluster slot of a key whose hash tag (or whole name, without one) is `tag`:
/// CRC16 (XMODEM) modulo the slot count, as Redis computes it.
pub(crate) fn slot_of(tag: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in tag {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % SLOTS as u16
}

/// The slot of a whole key name: its hash tag's (the part between the first `{` and the next
/// `}`, when not empty), or else the whole name's.
pub(crate) fn key_slot(key: &str) -> u16 {
    let tag = key
        .split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(tag, _)| tag)
        .filter(|t| !t.is_empty())
        .unwrap_or(key);
    slot_of(tag.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_room_share_one_hash_tag() {
        let k = Keys::of(&RoomId::new("abc_DEF-1").unwrap());
        for key in [
            &k.epoch,
            &k.seq,
            &k.log,
            &k.snap,
            &k.members,
            &k.compact,
            &k.authors,
            &k.links,
            &k.blobs,
            &k.blob_types,
            &k.blob_bytes,
            &k.ring(MemberId(3)),
            &k.channel,
        ] {
            assert!(key.starts_with("kokuban:{abc_DEF-1}"), "{key}");
            assert_eq!(key_slot(key), k.slot, "{key}");
        }
    }

    #[test]
    fn slots_are_the_ones_redis_computes() {
        // From the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot_of(b"123456789"), 0x31C3);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("foo{}{bar}"), slot_of(b"foo{}{bar}"));
    }
}
