//! The board as this tab sees it, kept consistent with the room's total order, and this tab's
//! own ops until the room has settled them.
//!
//! Two boards: `confirmed` holds exactly the room's sequenced ops (others' `Op`s and our own
//! `Ack`ed ones, each applied at its seq), and `view` is what the user sees — `confirmed` plus
//! this tab's own unsettled ops, applied optimistically so that ink appears under the pen at
//! once. Most remote ops commute with our unsettled ones (they touch other strokes) and are
//! simply applied to both boards. Those that do not (a `Clear`, or an erase or move of a
//! stroke we are also changing) rebuild `view` from `confirmed` plus our ops at once, so the
//! server's order wins without the two ever fighting on screen. When the last op is settled,
//! `view` is compared with `confirmed` and replaced by it if they differ (in practice: two
//! strokes begun within one round trip, stacked the other way).
//!
//! Own ops wait in one queue, in the order they were made, each with its [`Fate`]. An op gets
//! its number when it is first sent: the point batches drawn between two frames merge into
//! one op without spending numbers, and numbers reach the wire in increasing order, which the
//! server requires (a number at or below one it decided is never applied). Answers come back
//! in the order the ops were sent, so each one answers the lowest-numbered op on the wire.
//!
//! Reconnecting relies on the numbers, never on an op being harmless twice (a Clear sent again
//! after someone's new stroke would wipe it). A connection that ends leaves its unanswered
//! ops in doubt. The next Welcome's `decided` settles those numbered up to it: when the
//! Welcome replays what we missed, our own ops in the replay are the applied ones and the
//! others were refused. After a snapshot the board tells what it can: what it lacks of an op
//! (a stroke's points, an erase) is brought about again like a refused op's; a stroke or text
//! it lacks altogether was refused, or applied and cleared since, which no board tells apart,
//! so it is given up rather than risk undoing a Clear, and the user is told
//! ([`Notice::Unconfirmed`]). The rest were never applied, and are sent again under their own
//! numbers, so that the server (which applies a number once) cannot apply one twice even if
//! the old connection's copy reaches it late. Our author id is the same on every connection,
//! so a stroke begun before a reconnect simply goes on after it.
//!
//! Refusals. An op refused because the room cannot take writes is refused for good under its
//! number. The tab keeps showing it (the user's drawing is not taken away), the app is told
//! once ([`Notice::ReadOnly`]), and only one op at a time goes out: when the app says to try
//! again ([`Session::retry_writes`], on its timer with backoff) and after each new Welcome,
//! until an op is acknowledged.
//! Then the strokes the refusals touched are brought in line with what the user sees, from
//! state rather than by replaying ops (the room may have applied a later batch of the same
//! stroke, after a gap the board ignores): see `bridge.rs`. A refused `Clear` is dropped with
//! a message rather than sent late, where it would wipe what others drew meanwhile.
//!
//! The queue is what the tab keeps in the browser's storage ([`Session::outbox`]), so that
//! whatever the room has not settled survives closing the tab ([`Session::restore`]).

use std::collections::{HashMap, HashSet, VecDeque};

use kokuban_board::{Board, Change};
use kokuban_protocol::{
    CameraUpdate, Capability, ClientKey, ClientMsg, Color, CursorUpdate, Hello, LaserUpdate,
    Member, MemberId, Name, Op, PresenceEvent, RoomId, Sequenced, ServerMsg, StrokeId, Submit,
    Token,
};

use crate::outbox::{Kept, Outbox};
use crate::rng::Entropy;
use crate::spatial::IndexedBoard;

mod answers;
mod bridge;
mod queue;

use bridge::op_ids;

/// The author used for optimistic ops before the first Welcome names us.
const PROVISIONAL: MemberId = MemberId(0);
/// More changes than this between two frames: redraw everything instead of tracking them.
const MAX_TRACKED_CHANGES: usize = 4096;

/// What the user is told when the room starts refusing writes (once per outage).
pub const READ_ONLY_TOAST: &str = "The board cannot be saved right now. Keep drawing: your changes are kept and sent once it is back.";
/// What the user is told when strokes could not be confirmed ([`Notice::Unconfirmed`]).
pub const UNCONFIRMED_TOAST: &str = "Some of what you drew just before the connection dropped could not be confirmed, and is not on the board.";
/// What the user is told when a Clear was refused.
pub const CLEAR_REFUSED_TOAST: &str =
    "The board was not cleared: it cannot be saved right now. Clear it again once it is back.";

/// What the user is told when a change did not fit on the board.
pub const BOARD_FULL_TOAST: &str =
    "This board is full: that change was not saved. Erase something, or start a new board.";

/// What the renderer must redraw since it last asked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Redraw {
    /// Nothing changed.
    #[default]
    Nothing,
    /// These changes to the view, in order.
    Changes(Vec<Change>),
    /// Anything may have changed.
    All,
}

/// Something the app should react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The server accepted our Hello.
    Welcomed {
        /// Our id on this connection.
        member: MemberId,
        /// Whether we may draw.
        capability: Capability,
        /// Everyone in the room, us included.
        members: Vec<Member>,
    },
    /// Someone joined, left or changed their profile.
    Presence(PresenceEvent),
    /// Someone's pointer moved.
    Cursor(CursorUpdate),
    /// Someone's laser pointer moved.
    Laser(LaserUpdate),
    /// Someone's camera moved.
    Camera(CameraUpdate),
    /// Someone asks everyone to follow their camera.
    AskToFollow(MemberId),
    /// A stroke of ours that the room does not hold as the user sees it (a part of it, or
    /// none, after refusals) is sent again whole under a new id (see `bridge.rs`); what refers
    /// to it (the undo history) should follow.
    Renamed {
        /// The old id.
        from: StrokeId,
        /// The new id.
        to: StrokeId,
    },
    /// The room refuses our writes (`true`, once until it takes one again) or takes them
    /// again (`false`).
    ReadOnly(bool),
    /// These strokes or texts of ours were decided while we could not hear the answer, and
    /// the board does not have them: refused, or cleared since. They are not sent again (that
    /// could undo a Clear) and no longer shown; the user should be told.
    Unconfirmed(Vec<StrokeId>),
    /// A short message for the user.
    Toast(String),
    /// Our view of the room can no longer be trusted: reconnect (now) and resume.
    Resync,
    /// This link cannot open the room: stop reconnecting.
    Fatal(String),
    /// The server speaks another protocol version: the page must be reloaded.
    Outdated,
}

/// What became of one of our ops, as far as this tab knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Not on the wire yet: it gets the next number when it is sent.
    Unsent,
    /// Sent under this number on an earlier connection and not answered. The next Welcome
    /// settles it, or it is sent again under the same number.
    InDoubt(u64),
    /// On the wire of this connection under this number, waiting for its answer.
    Sent(u64),
    /// Refused for good (its number is spent). Kept so that the view still shows it until
    /// the strokes it touched are brought in line by new ops.
    Refused,
    /// Applied, but after an earlier op on the same strokes was refused: kept so that the view
    /// shows what the user meant until those strokes are brought in line.
    Applied,
}

impl Fate {
    /// The number it was sent under, while that number may still be answered.
    pub fn number(self) -> Option<u64> {
        match self {
            Fate::InDoubt(n) | Fate::Sent(n) => Some(n),
            Fate::Unsent | Fate::Refused | Fate::Applied => None,
        }
    }
}

/// One of our ops not settled yet.
#[derive(Debug, Clone)]
struct Entry {
    op: Op,
    fate: Fate,
}

/// The board, our unsettled ops, and where we are in the room's history.
#[derive(Debug)]
pub struct Session {
    key: ClientKey,
    /// The number the next new op gets; above every number used under `key`.
    next_n: u64,
    confirmed: Board,
    view: IndexedBoard,
    /// Our author id (the same on every connection of `key`), once a Welcome named it.
    author: Option<MemberId>,
    member: Option<MemberId>,
    capability: Option<Capability>,
    welcomed: bool,
    /// Our unsettled ops, in the order they were made.
    ops: VecDeque<Entry>,
    /// Strokes and text items created in this tab.
    mine: HashSet<StrokeId>,
    /// Strokes sent again whole under a new id; later local ops on the old id go to the new one.
    renamed: HashMap<StrokeId, StrokeId>,
    /// The room refused our last answered write: only probes go out.
    refused: bool,
    /// One op may go out while `refused`.
    probe: bool,
    /// `view` may differ from `confirmed` plus our ops (drawing order only).
    diverged: bool,
    /// The parts of the board snapshot of the Welcome to come.
    parts: Vec<u8>,
    redraw: Redraw,
    /// Grows whenever what [`Session::outbox`] returns changes.
    version: u64,
}

impl Session {
    /// A session with an empty board, not connected, whose ops are numbered under `key` (16
    /// bytes from a secure random source: whoever knows it can write as us).
    pub fn new(key: ClientKey) -> Self {
        Self {
            key,
            next_n: 1,
            confirmed: Board::new(),
            view: IndexedBoard::default(),
            author: None,
            member: None,
            capability: None,
            welcomed: false,
            ops: VecDeque::new(),
            mine: HashSet::new(),
            renamed: HashMap::new(),
            refused: false,
            probe: false,
            diverged: false,
            redraw: Redraw::Nothing,
            version: 0,
            parts: Vec::new(),
        }
    }

    /// A session that carries on with a kept outbox: its ops show at once and are settled and
    /// sent after the first Welcome, in-doubt ones under their own numbers.
    pub fn restore(outbox: Outbox) -> Self {
        let mut s = Self::new(outbox.key);
        let mut top = 0;
        for Kept { fate, op } in outbox.ops {
            let fate = match fate {
                Fate::InDoubt(n) | Fate::Sent(n) if n > 0 => {
                    top = top.max(n);
                    Fate::InDoubt(n)
                }
                Fate::InDoubt(_) | Fate::Sent(_) => Fate::Unsent,
                other => other,
            };
            if let Op::StrokeBegin { id, .. } | Op::Text { id, .. } = &op {
                s.mine.insert(*id);
            }
            s.ops.push_back(Entry { op, fate });
        }
        s.next_n = outbox.next.max(top + 1);
        s.rebase();
        s
    }

    /// What must be kept for this session to carry on in another tab: the key, the next
    /// number and the unsettled ops (those on the wire count as in doubt).
    pub fn outbox(&self) -> Outbox {
        Outbox {
            key: self.key,
            next: self.next_n,
            ops: self
                .ops
                .iter()
                .map(|e| Kept {
                    fate: match e.fate {
                        Fate::Sent(n) => Fate::InDoubt(n),
                        other => other,
                    },
                    op: e.op.clone(),
                })
                .collect(),
        }
    }

    /// Grows whenever the outbox changes (a new op, a number given, an op settled).
    pub fn outbox_version(&self) -> u64 {
        self.version
    }

    /// The number the next new op will get.
    pub fn next_number(&self) -> u64 {
        self.next_n
    }

    /// The key our ops are numbered under.
    pub fn key(&self) -> ClientKey {
        self.key
    }

    /// What the user sees.
    pub fn view(&self) -> &Board {
        self.view.board()
    }

    /// What the user sees, with its spatial index (for the tools and the renderer).
    pub fn indexed(&self) -> &IndexedBoard {
        &self.view
    }

    /// The room's board as sequenced so far.
    pub fn confirmed(&self) -> &Board {
        &self.confirmed
    }

    /// Our member id on the current connection.
    pub fn me(&self) -> Option<MemberId> {
        self.member
    }

    /// Our author id (the author of our ops on every connection), once a Welcome named it.
    pub fn author(&self) -> Option<MemberId> {
        self.author
    }

    /// What the server said we may do (None before the first Welcome).
    pub fn capability(&self) -> Option<Capability> {
        self.capability
    }

    /// Whether a Welcome arrived on the current connection.
    pub fn is_welcomed(&self) -> bool {
        self.welcomed
    }

    /// Whether the room refused our last answered write; it ends with the next Ack.
    pub fn writes_refused(&self) -> bool {
        self.refused
    }

    /// Whether this tab drew the stroke.
    pub fn is_mine(&self, id: &StrokeId) -> bool {
        self.mine.contains(id)
    }

    /// The id a stroke of ours goes by now (see [`Notice::Renamed`]).
    pub fn current_id(&self, id: StrokeId) -> StrokeId {
        *self.renamed.get(&id).unwrap_or(&id)
    }

    /// Own ops the room has not settled (unsent, in flight, in doubt, refused and not yet
    /// made good).
    pub fn outstanding(&self) -> usize {
        self.ops.len()
    }

    /// Own ops waiting to be sent for the first time.
    pub fn unsent(&self) -> usize {
        self.ops.iter().filter(|e| e.fate == Fate::Unsent).count()
    }

    /// The first message of a connection: our key, and the last confirmed position to resume
    /// from.
    pub fn hello(&mut self, room: RoomId, token: Token, name: Name, color: Color) -> ClientMsg {
        self.welcomed = false;
        ClientMsg::Hello(Hello {
            room,
            token,
            resume: self.confirmed.position(),
            name,
            color,
            client: self.key,
        })
    }

    /// The connection ended: whatever was on the wire is now in doubt.
    pub fn disconnected(&mut self) {
        for e in &mut self.ops {
            if let Fate::Sent(n) = e.fate {
                e.fate = Fate::InDoubt(n);
            }
        }
        self.welcomed = false;
        self.probe = false;
        // A board the server was part way through sending comes again, whole, next time.
        self.parts.clear();
    }

    /// Applies a local op: remapped to renamed strokes, shown at once, queued for sending.
    /// Returns false (and does nothing) on a view-only connection.
    pub fn local(&mut self, op: Op) -> bool {
        if self.capability == Some(Capability::View) {
            return false;
        }
        let op = self.remap(op);
        if let Op::StrokeBegin { id, .. } | Op::Text { id, .. } = &op {
            self.mine.insert(*id);
        }
        let author = self.local_author_on(self.view.board(), &op);
        let change = self.view.apply(author, &op);
        self.note(change);
        self.queue(op);
        self.version += 1;
        true
    }

    /// The next op to put on the wire, numbered, if we are connected and may write: first
    /// the in-doubt ones under their own numbers, then the others in the order they were made,
    /// each under the next number. While the room refuses writes, only a probe goes out.
    pub fn next_op(&mut self) -> Option<ClientMsg> {
        if !self.welcomed || self.capability != Some(Capability::Edit) {
            return None;
        }
        if self.refused && (!self.probe || self.in_flight()) {
            return None;
        }
        let i = match self.lowest(|f| matches!(f, Fate::InDoubt(_))) {
            Some(i) => i,
            None => {
                let i = self.ops.iter().position(|e| e.fate == Fate::Unsent)?;
                // An op on strokes waiting to be brought in line goes out with them, later.
                if self.has_dirt() && bridge::blocked(&self.ops[i].op, &self.dirty()) {
                    return None;
                }
                i
            }
        };
        let n = match self.ops[i].fate {
            Fate::InDoubt(n) => n,
            _ => {
                let n = self.next_n;
                self.next_n += 1;
                n
            }
        };
        self.ops[i].fate = Fate::Sent(n);
        self.probe = false;
        self.version += 1;
        Some(ClientMsg::Op(Submit {
            n,
            op: self.ops[i].op.clone(),
        }))
    }

    /// Lets one op go out while the room refuses writes (the app calls this on a timer with
    /// backoff); its answer tells whether the room takes writes again. Strokes waiting to be
    /// brought in line are, first, so that the probe carries them.
    pub fn retry_writes(&mut self, rng: &mut dyn Entropy) -> Vec<Notice> {
        if self.refused {
            self.probe = true;
        }
        self.bridge(rng)
    }

    /// What the renderer must redraw since the last call.
    pub fn take_redraw(&mut self) -> Redraw {
        std::mem::take(&mut self.redraw)
    }

    /// Handles one message from the server.
    pub fn receive(&mut self, msg: ServerMsg, rng: &mut dyn Entropy) -> Vec<Notice> {
        let mut notices = match msg {
            ServerMsg::Welcome(w) => self.welcome(w),
            ServerMsg::BoardPart(part) => {
                // Bounded like any frame the server may send: a board larger than that is not
                // one this app can hold.
                if self.parts.len() + part.0.len()
                    > kokuban_protocol::limits::MAX_SERVER_FRAME_BYTES
                {
                    self.parts.clear();
                    return self.resync_from_scratch();
                }
                self.parts.extend(part.0);
                return Vec::new();
            }
            ServerMsg::Op(s) => return self.remote(s),
            // A batch by handle reads as an op on the board the room's order has reached.
            ServerMsg::Points(live) if self.welcomed => match self.confirmed.expand(&live) {
                Ok(s) => return self.remote(s),
                Err(_) => return vec![Notice::Resync],
            },
            ServerMsg::Points(_) => return Vec::new(),
            ServerMsg::Ack(ack) => self.ack(ack),
            ServerMsg::Acked(check) => match self.confirmed.acked(check) {
                Ok(ack) => self.ack(ack),
                Err(_) => return vec![Notice::Resync],
            },
            ServerMsg::Presence(p) => return vec![Notice::Presence(p)],
            ServerMsg::Cursor(c) => return vec![Notice::Cursor(c)],
            ServerMsg::Laser(l) => return vec![Notice::Laser(l)],
            ServerMsg::Camera(c) => return vec![Notice::Camera(c)],
            ServerMsg::AskToFollow(m) => return vec![Notice::AskToFollow(m)],
            ServerMsg::Error(e) => self.error(e),
        };
        // An answer or a Welcome may be what the strokes to bring in line were waiting for.
        if !notices.contains(&Notice::Resync) {
            notices.extend(self.bridge(rng));
        }
        notices
    }

    fn remote(&mut self, s: Sequenced) -> Vec<Notice> {
        if !self.welcomed {
            return Vec::new();
        }
        let change = match self.confirmed.apply_sequenced(&s) {
            Ok(change) => change,
            Err(_) => return vec![Notice::Resync],
        };
        if s.op == Op::Clear && self.ops.iter().any(|e| e.fate == Fate::Applied) {
            // What the room applied of ours before this Clear is gone with everything else.
            self.ops.retain(|e| e.fate != Fate::Applied);
            self.version += 1;
            self.rebase();
            return Vec::new();
        }
        match change {
            Change::None => {}
            _ if self.has_outstanding() && self.conflicts(&s.op) => self.rebase(),
            _ => {
                let change = self.view.apply(s.author, &s.op);
                if self.has_outstanding() {
                    self.diverged = true;
                }
                self.note(change);
            }
        }
        Vec::new()
    }

    /// The entry with the lowest number among those whose fate matches.
    fn lowest(&self, matches: impl Fn(Fate) -> bool) -> Option<usize> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, e)| matches(e.fate))
            .filter_map(|(i, e)| Some((e.fate.number()?, i)))
            .min()
            .map(|(_, i)| i)
    }

    fn in_flight(&self) -> bool {
        self.ops.iter().any(|e| matches!(e.fate, Fate::Sent(_)))
    }

    fn has_outstanding(&self) -> bool {
        !self.ops.is_empty()
    }

    /// Whether a remote op touches a stroke our ops touch, or clears the board.
    fn conflicts(&self, op: &Op) -> bool {
        match op {
            Op::Clear => true,
            // Ours, if we renamed the board too, must be replayed after it.
            Op::Title { .. } => self.ops.iter().any(|e| matches!(e.op, Op::Title { .. })),
            Op::Erase { .. }
            | Op::Restore { .. }
            | Op::Move { .. }
            | Op::Restyle { .. }
            | Op::Look { .. }
            | Op::Form { .. } => {
                let ours = self.outstanding_ids();
                op_ids(op).iter().any(|id| ours.contains(id))
            }
            // Others' strokes have ids of their own.
            Op::StrokeBegin { .. }
            | Op::StrokePoints(_)
            | Op::StrokeEnd { .. }
            | Op::Text { .. }
            | Op::Image(_) => false,
        }
    }

    fn outstanding_ids(&self) -> HashSet<StrokeId> {
        self.ops.iter().flat_map(|e| op_ids(&e.op)).collect()
    }

    /// `view = confirmed + our unsettled ops`, in the order they were made.
    fn rebase(&mut self) {
        let mut view = self.view_base();
        for e in &self.ops {
            let author = self.local_author_on(&view, &e.op);
            view.apply(author, &e.op);
        }
        // Indexed once at the end rather than op by op: a rebase replays many ops.
        self.view = IndexedBoard::new(view);
        // Our ops are replayed in the order they were made, which is not always the order
        // they reach the room (ops in doubt go first): compare once they are all settled.
        self.diverged = self.has_outstanding();
        self.redraw = Redraw::All;
    }

    /// Who a local op is applied as on `view`: a stroke continues under the author it was
    /// begun with, anything new under our author id.
    fn local_author_on(&self, view: &Board, op: &Op) -> MemberId {
        let continues = match op {
            Op::StrokePoints(b) => Some(b.id),
            Op::StrokeEnd { id } => Some(*id),
            _ => None,
        };
        continues
            .filter(|id| self.mine.contains(id))
            .and_then(|id| view.get(&id))
            .map(|s| s.author)
            .or(self.author)
            .unwrap_or(PROVISIONAL)
    }

    fn note(&mut self, change: Change) {
        if change == Change::None {
            return;
        }
        match &mut self.redraw {
            Redraw::All => {}
            Redraw::Changes(list) if list.len() >= MAX_TRACKED_CHANGES => {
                self.redraw = Redraw::All;
            }
            Redraw::Changes(list) => list.push(change),
            Redraw::Nothing => self.redraw = Redraw::Changes(vec![change]),
        }
    }
}

/// Whether two boards show the same strokes in the same order.
fn same_content(a: &Board, b: &Board) -> bool {
    a.len() == b.len()
        && a.strokes().zip(b.strokes()).all(|(x, y)| {
            x.id == y.id
                && x.points.len() == y.points.len()
                && x.finished == y.finished
                && x.offset == y.offset
        })
}

#[cfg(test)]
mod prop;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
