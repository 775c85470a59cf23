//! Who wrote what: each author's highest op number applied, and where its recent ops landed, so
//! that a retried op is answered with its first Ack and never applied twice.

use std::collections::{HashMap, VecDeque};

use kokuban_protocol::{MemberId, Seq};

/// How many of the room's latest ops keep their place for a retry's Ack. A retry comes from a
/// client that lost its connection with ops in flight, so it names one of its last few
/// hundred ops; one older than this is told it was decided (`ErrorCode::Decided`) instead.
pub(crate) const RECENT_OPS: usize = 4096;

/// What a numbered op is to the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Above everything its author had applied: a new op.
    New,
    /// Applied before, at this place.
    At(Seq),
    /// At or below a number already applied, and not among the recent ops: decided long ago
    /// (applied or refused). Never applied now.
    Decided,
}

/// One recent op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recent {
    seq: Seq,
    author: MemberId,
    n: u64,
}

/// The op numbers a room has applied. Invariant: an author's numbers are applied in increasing
/// order, so `last` alone decides whether a number can still be applied.
#[derive(Debug, Clone, Default)]
pub(crate) struct Authors {
    /// Each author's highest number applied.
    last: HashMap<MemberId, u64>,
    /// Each author's highest number applied and durable (never above `last`): what a
    /// returning client may take as decided, since it survives a crash.
    durable: HashMap<MemberId, u64>,
    /// Ops up to this seq are durable.
    durable_seq: Seq,
    /// The latest ops with their numbers, oldest first.
    recent: VecDeque<Recent>,
}

impl Authors {
    /// What op `n` of `author` is to the room.
    pub fn seen(&self, author: MemberId, n: u64) -> Seen {
        if n > self.last(author) {
            return Seen::New;
        }
        self.recent
            .iter()
            .rev()
            .find(|r| r.author == author && r.n == n)
            .map_or(Seen::Decided, |r| Seen::At(r.seq))
    }

    fn last(&self, author: MemberId) -> u64 {
        self.last.get(&author).copied().unwrap_or(0)
    }

    /// The number up to which every op of `author` is decided for good: applied and durable, or
    /// refused. A returning client forgets its ops up to it and sends the others again.
    pub fn decided(&self, author: MemberId) -> u64 {
        self.durable.get(&author).copied().unwrap_or(0)
    }

    /// Ops up to `seq` are durable.
    pub fn durable_through(&mut self, seq: Seq) {
        if seq <= self.durable_seq {
            return;
        }
        // The ops between the old and the new durable seq are the latest ones, so they are
        // among the recent; any that fell out of it leave `durable` lower, which is safe.
        let from = self.recent.partition_point(|r| r.seq <= self.durable_seq);
        for r in self.recent.iter().skip(from).take_while(|r| r.seq <= seq) {
            let d = self.durable.entry(r.author).or_default();
            *d = (*d).max(r.n);
        }
        self.durable_seq = seq;
    }

    /// Op `n` of `author` was applied at `seq`.
    pub fn record(&mut self, seq: Seq, author: MemberId, n: u64) {
        let last = self.last.entry(author).or_default();
        *last = (*last).max(n);
        if self.recent.len() == RECENT_OPS {
            self.recent.pop_front();
        }
        self.recent.push_back(Recent { seq, author, n });
    }

    /// Which op of which author was applied at `seq`, if it is recent.
    pub fn at(&self, seq: Seq) -> Option<(MemberId, u64)> {
        let i = self.recent.binary_search_by_key(&seq, |r| r.seq).ok()?;
        self.recent.get(i).map(|r| (r.author, r.n))
    }

    /// Takes each author's highest applied number from durable storage (the recent places
    /// are not kept there: a retry of an op from before a restart is told it was decided).
    pub fn restore(&mut self, last: impl IntoIterator<Item = (MemberId, u64)>) {
        for (author, n) in last {
            for map in [&mut self.last, &mut self.durable] {
                let mine = map.entry(author).or_default();
                *mine = (*mine).max(n);
            }
        }
    }

    /// Forgets the places of ops (a new history starts at seq 0, all of it durable), keeping
    /// the numbers: an op applied in the old history must not be applied again in the new one.
    pub fn forget_places(&mut self) {
        self.recent.clear();
        self.durable_seq = Seq(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MemberId = MemberId(1);
    const B: MemberId = MemberId(2);

    #[test]
    fn a_number_is_new_once_then_answered_with_its_place() {
        let mut a = Authors::default();
        assert_eq!(a.seen(A, 1), Seen::New);
        a.record(Seq(10), A, 1);
        assert_eq!(a.seen(A, 1), Seen::At(Seq(10)));
        assert_eq!(a.seen(A, 2), Seen::New);
        assert_eq!(a.seen(B, 1), Seen::New, "numbers are per author");
        assert_eq!(a.decided(A), 0, "applied, not durable yet");
        a.durable_through(Seq(10));
        assert_eq!(a.decided(A), 1);
    }

    #[test]
    fn only_durable_ops_count_as_decided() {
        let mut a = Authors::default();
        a.record(Seq(1), A, 1);
        a.record(Seq(2), B, 1);
        a.record(Seq(3), A, 2);
        a.durable_through(Seq(2));
        assert_eq!((a.decided(A), a.decided(B)), (1, 1));
        a.durable_through(Seq(3));
        assert_eq!(a.decided(A), 2);
    }

    #[test]
    fn a_number_below_an_applied_one_is_never_new_again() {
        let mut a = Authors::default();
        a.record(Seq(1), A, 5);
        // 3 was refused (or never sent): it can no longer be applied.
        assert_eq!(a.seen(A, 3), Seen::Decided);
        assert_eq!(a.seen(A, 5), Seen::At(Seq(1)));
    }

    #[test]
    fn old_places_are_forgotten_but_their_numbers_stay_decided() {
        let mut a = Authors::default();
        for i in 0..(RECENT_OPS as u64 + 10) {
            a.record(Seq(i + 1), A, i + 1);
        }
        assert_eq!(a.seen(A, 1), Seen::Decided);
        assert_eq!(a.seen(A, 11), Seen::At(Seq(11)));
        assert_eq!(a.at(Seq(11)), Some((A, 11)));
        assert_eq!(a.at(Seq(5)), None);
        a.forget_places();
        assert_eq!(a.seen(A, 11), Seen::Decided);
        assert_eq!(a.seen(A, RECENT_OPS as u64 + 11), Seen::New);
    }

    #[test]
    fn restored_numbers_are_decided() {
        let mut a = Authors::default();
        a.restore([(A, 7), (B, 2)]);
        assert_eq!(a.decided(A), 7);
        assert_eq!(a.seen(A, 7), Seen::Decided);
        assert_eq!(a.seen(A, 8), Seen::New);
        assert_eq!(a.decided(B), 2);
    }
}
