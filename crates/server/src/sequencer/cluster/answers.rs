//! A member's ops not answered yet, and the order its answers go out in.
//!
//! A member's own op comes back to its node on the room's channel like everyone else's and
//! becomes its Ack there, so the Ack takes its place in the room's order. An op that could not
//! be sequenced is refused (an error frame) at its place among the answers: a client matches
//! answers to its ops by their order, so answers must go out in the order the ops were sent,
//! whatever order Redis and the writer settle them in.

use std::collections::VecDeque;

use kokuban_protocol::Seq;

use crate::sequencer::WriteRefused;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Sent to Redis (or about to be) as op `n`: acknowledged when it is delivered.
    Pending { id: u64, n: u64 },
    /// A retry of an op Redis had applied at `seq`: acknowledged once delivery reaches it.
    AppliedAt(Seq),
    /// Not sequenced: refused once every op before it is answered.
    Refused(WriteRefused),
}

/// An answer now owed, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// The op is at this place.
    Ack(Seq),
    /// The op was not applied.
    Refuse(WriteRefused),
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

    /// Op `n` handed to the writer; returns its id, by which the writer reports what became
    /// of it.
    pub fn push(&mut self, n: u64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push_back(Entry::Pending { id, n });
        id
    }

    /// A retry of an op known to be applied at `seq`: acknowledged in its place.
    pub fn push_applied(&mut self, seq: Seq) {
        self.entries.push_back(Entry::AppliedAt(seq));
    }

    /// An op refused before it reached the writer. True if it takes its place behind
    /// unanswered ones (refused later, in order); false if nothing is unanswered, and the
    /// caller refuses it at once.
    pub fn refuse_in_place(&mut self, why: WriteRefused) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        self.entries.push_back(Entry::Refused(why));
        true
    }

    /// The op `id` was not applied.
    pub fn fail(&mut self, id: u64, why: WriteRefused) {
        self.settle(id, Entry::Refused(why));
    }

    /// The op `id` turned out to be a retry of one applied at `seq`.
    pub fn applied_at(&mut self, id: u64, seq: Seq) {
        self.settle(id, Entry::AppliedAt(seq));
    }

    fn settle(&mut self, id: u64, to: Entry) {
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| matches!(e, Entry::Pending { id: i, .. } if *i == id))
        {
            *e = to;
        }
    }

    /// Op `n` of this member's author was delivered at `seq`. True if it is the op awaited at
    /// the front: it is acknowledged now (before [`Answers::due`]). False for any other op (one
    /// already refused whose pipeline ran late, say): it is delivered to its author like anyone
    /// else's op, never as an Ack.
    pub fn delivered(&mut self, n: u64) -> bool {
        match self.entries.front() {
            Some(Entry::Pending { n: m, .. }) if *m == n => {
                self.entries.pop_front();
                true
            }
            _ => false,
        }
    }

    /// Takes the answers now owed at the front, in order, with delivery at `head`.
    pub fn due(&mut self, head: Seq) -> Vec<Answer> {
        let mut out = Vec::new();
        loop {
            match self.entries.front() {
                Some(Entry::Refused(why)) => out.push(Answer::Refuse(*why)),
                Some(Entry::AppliedAt(seq)) if *seq <= head => out.push(Answer::Ack(*seq)),
                _ => return out,
            }
            self.entries.pop_front();
        }
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

    const RO: WriteRefused = WriteRefused::ReadOnly;

    #[test]
    fn acks_come_in_the_order_the_ops_were_sent() {
        let mut a = Answers::default();
        a.push(1);
        a.push(2);
        assert!(!a.delivered(2), "not awaited yet: 1 is first");
        assert!(a.delivered(1));
        assert!(a.delivered(2));
        assert_eq!(a.len(), 0);
    }

    #[test]
    fn a_refusal_waits_for_the_answers_before_it() {
        let mut a = Answers::default();
        a.push(1);
        let second = a.push(2);
        assert!(a.refuse_in_place(RO), "behind the first two");
        a.fail(second, RO);
        assert!(a.due(Seq(0)).is_empty(), "the first is not answered yet");
        assert!(a.delivered(1));
        assert_eq!(a.due(Seq(1)), vec![Answer::Refuse(RO), Answer::Refuse(RO)]);
        assert!(!a.has_pending());
    }

    #[test]
    fn with_nothing_unanswered_a_refusal_goes_at_once() {
        let mut a = Answers::default();
        assert!(!a.refuse_in_place(RO));
        assert_eq!(a.len(), 0);
    }

    #[test]
    fn a_late_op_already_refused_is_never_an_ack() {
        let mut a = Answers::default();
        let late = a.push(5);
        a.fail(late, RO);
        assert_eq!(a.due(Seq(0)), vec![Answer::Refuse(RO)], "refused at once");
        a.push(6);
        // The pipeline that timed out ran after all: its op arrives, but the member waits for
        // 6, so 5 reaches it as an ordinary op.
        assert!(!a.delivered(5));
        assert!(a.delivered(6));
    }

    #[test]
    fn a_retry_is_acknowledged_once_delivery_reaches_its_first_place() {
        let mut a = Answers::default();
        let retry = a.push(3);
        a.push(4);
        a.applied_at(retry, Seq(20));
        assert!(
            a.due(Seq(19)).is_empty(),
            "its first place is not delivered yet"
        );
        assert_eq!(a.due(Seq(20)), vec![Answer::Ack(Seq(20))]);
        assert!(a.delivered(4));
    }

    #[test]
    fn a_new_history_refuses_everything_unanswered() {
        let mut a = Answers::default();
        a.push(1);
        a.push(2);
        assert!(a.refuse_in_place(RO));
        assert_eq!(a.refuse_all(), 3);
        assert_eq!(a.len(), 0);
        assert!(!a.delivered(1));
    }
}
