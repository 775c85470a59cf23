//! A member's ops not answered yet, and the order its answers go out in.
//!
//! A member's own op comes back to its node on the room's channel like everyone else's and
//! becomes its Ack there, so the Ack takes its place in the room's order. An op that could not
//! be sequenced is refused (an error frame) at its place among the answers: a client matches
//! answers to its ops by their order, so answers must go out in the order the ops were sent,
//! whatever order Redis and the writer settle them in.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

/// Tells an op from the others of its author: a hash of its encoded bytes, as sent to Redis
/// and as read back from the channel or the log (the same bytes).
pub(super) fn digest(encoded: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    encoded.hash(&mut h);
    h.finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Sent to Redis (or about to be): acknowledged when the op with this digest is delivered.
    Pending { id: u64, digest: u64 },
    /// Not sequenced: refused once every op before it is answered.
    Failed,
}

/// What one member is owed. Invariants: entries are in the order the ops were submitted; an
/// answer goes out only from the front, so answers keep that order.
#[derive(Debug, Default)]
pub(super) struct Answers {
    entries: VecDeque<Entry>,
    next_id: u64,
}

impl Answers {
    /// Ops not answered yet.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether an op sent to Redis waits for its Ack (its fate may be unknown).
    pub fn has_pending(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, Entry::Pending { .. }))
    }

    /// An op handed to the writer with the digest of its bytes; returns its id, by which the
    /// writer reports a failure.
    pub fn push(&mut self, digest: u64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push_back(Entry::Pending { id, digest });
        id
    }

    /// An op refused before it reached the writer. True if it takes its place behind
    /// unanswered ones (refused later, in order); false if nothing is unanswered, and the
    /// caller refuses it at once.
    pub fn refuse_in_place(&mut self) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        self.entries.push_back(Entry::Failed);
        true
    }

    /// The op `id` was not sequenced; returns how many refusals are now due (see [`Answers::due_refusals`]).
    pub fn fail(&mut self, id: u64) -> usize {
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| matches!(e, Entry::Pending { id: i, .. } if *i == id))
        {
            *e = Entry::Failed;
        }
        self.due_refusals()
    }

    /// An op of this member with `digest` was delivered. True if it is the op awaited at the
    /// front: it is acknowledged now, followed by [`Answers::due_refusals`] refusals. False for
    /// any other op (one already refused whose pipeline ran late, say): it is delivered to its
    /// author like anyone else's op, never as an Ack.
    pub fn delivered(&mut self, digest: u64) -> bool {
        match self.entries.front() {
            Some(Entry::Pending { digest: d, .. }) if *d == digest => {
                self.entries.pop_front();
                true
            }
            _ => false,
        }
    }

    /// Takes the refusals at the front, now owed in order; returns how many.
    pub fn due_refusals(&mut self) -> usize {
        let mut n = 0;
        while let Some(Entry::Failed) = self.entries.front() {
            self.entries.pop_front();
            n += 1;
        }
        n
    }

    /// Forgets every unanswered op (the history they were sent for is gone); returns how many,
    /// each owed a refusal.
    pub fn refuse_all(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_come_in_the_order_the_ops_were_sent() {
        let mut a = Answers::default();
        let (x, y) = (digest(b"x"), digest(b"y"));
        a.push(x);
        a.push(y);
        assert!(!a.delivered(y), "not awaited yet: x is first");
        assert!(a.delivered(x));
        assert!(a.delivered(y));
        assert_eq!(a.len(), 0);
    }

    #[test]
    fn a_refusal_waits_for_the_answers_before_it() {
        let mut a = Answers::default();
        a.push(digest(b"x"));
        let second = a.push(digest(b"y"));
        assert!(a.refuse_in_place(), "behind the first two");
        assert_eq!(a.fail(second), 0, "the first is not answered yet");
        assert!(a.delivered(digest(b"x")));
        assert_eq!(a.due_refusals(), 2, "the failed op, then the refused one");
        assert!(!a.has_pending());
    }

    #[test]
    fn with_nothing_unanswered_a_refusal_goes_at_once() {
        let mut a = Answers::default();
        assert!(!a.refuse_in_place());
        assert_eq!(a.len(), 0);
    }

    #[test]
    fn a_late_op_already_refused_is_never_an_ack() {
        let mut a = Answers::default();
        let late = a.push(digest(b"late"));
        assert_eq!(a.fail(late), 1, "refused at once: nothing before it");
        a.push(digest(b"next"));
        // The pipeline that timed out ran after all: its op arrives, but the member waits for
        // "next", so "late" reaches it as an ordinary op.
        assert!(!a.delivered(digest(b"late")));
        assert!(a.delivered(digest(b"next")));
    }

    #[test]
    fn a_new_history_refuses_everything_unanswered() {
        let mut a = Answers::default();
        a.push(1);
        a.push(2);
        assert!(a.refuse_in_place());
        assert_eq!(a.refuse_all(), 3);
        assert_eq!(a.len(), 0);
        assert!(!a.delivered(1));
    }

    #[test]
    fn digests_tell_ops_apart() {
        assert_eq!(digest(b"op"), digest(b"op"));
        assert_ne!(digest(b"op"), digest(b"oq"));
    }
}
