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
    /// The room's pub/sub channel.
    pub channel: String,
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
            channel: base,
        }
    }
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
            &k.ring(MemberId(3)),
            &k.channel,
        ] {
            assert!(key.starts_with("kokuban:{abc_DEF-1}"), "{key}");
        }
    }
}
