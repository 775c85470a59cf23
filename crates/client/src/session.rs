//! The board as this tab sees it, kept consistent with the room's total order.
//!
//! Two boards: `confirmed` holds exactly the room's sequenced ops (others' `Op`s and our own
//! `Ack`ed ones, each applied at its seq), and `view` is what the user sees — `confirmed` plus
//! this tab's own ops that are not sequenced yet, applied optimistically so that ink appears
//! under the pen at once. Own ops wait in two queues: `unsent` (drawn but not on the wire yet:
//! batched per frame, or offline) and `sent` (on the wire, waiting for their `Ack`). Acks come
//! back in the order the ops were sent, so each one confirms the oldest sent op.
//!
//! Most remote ops commute with our outstanding ones (they touch other strokes) and are
//! simply applied to both boards. Those that do not (a `Clear`, or an erase or move of a
//! stroke we are also changing) rebuild `view` from `confirmed` plus the outstanding ops at
//! once, so the server's order wins without the two ever fighting on screen. When the last
//! outstanding op is acknowledged, `view` is compared with `confirmed` and replaced by it if
//! they differ (in practice: two strokes begun within one round trip, stacked the other way).
//!
//! Reconnection. A connection that ends leaves its unacknowledged ops *in doubt*: some may
//! have been sequenced. The next Welcome replays what we missed (or sends a snapshot); our own
//! ops among the replayed ones (authored by one of our earlier member ids, in the order we
//! sent them) are matched against the in-doubt ops and dropped, and the rest are sent again.
//! Ops are idempotent, so a repeat is harmless — except for strokes: only a stroke's author
//! (a member id, which is new on every connection) may add points to it or end it. So a
//! stroke that was begun on an earlier connection and is not complete in the room is re-sent
//! whole under a fresh id (with an `Erase` of the partial one), and the tools and the undo
//! history follow the new id. A stroke none of whose ops reached the room is simply sent
//! again. This is the offline queue: whatever is drawn while disconnected waits in `unsent`
//! and goes out after the Welcome.

use std::collections::{HashMap, HashSet, VecDeque};

use kokuban_board::{Board, Change, Shape, Stroke};
use kokuban_protocol::limits::{MAX_IDS_PER_OP, MAX_POINTS_PER_BATCH};
use kokuban_protocol::{
    Ack, Bounded, Capability, ClientMsg, Color, CursorUpdate, ErrorCode, ErrorFrame, Hello, Member,
    MemberId, Name, Op, Placement, Points, PresenceEvent, RoomId, RoomState, Sequenced, ServerMsg,
    StrokeId, StrokePoints, Token, Welcome,
};

use crate::rng::{Entropy, new_stroke_id};
use crate::spatial::IndexedBoard;

/// The author used for optimistic ops before the first Welcome names us.
const PROVISIONAL: MemberId = MemberId(0);
/// More changes than this between two frames: redraw everything instead of tracking them.
const MAX_TRACKED_CHANGES: usize = 4096;

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
    /// A stroke of ours got a new id (see the module documentation).
    Renamed {
        /// The old id.
        from: StrokeId,
        /// The new id.
        to: StrokeId,
    },
    /// A short message for the user.
    Toast(String),
    /// Our view of the room can no longer be trusted: reconnect (now) and resume.
    Resync,
    /// This link cannot open the room: stop reconnecting.
    Fatal(String),
    /// The server speaks another protocol version: the page must be reloaded.
    Outdated,
}

/// The board, our outstanding ops, and where we are in the room's history.
#[derive(Debug, Default)]
pub struct Session {
    confirmed: Board,
    view: IndexedBoard,
    me: Option<MemberId>,
    capability: Option<Capability>,
    welcomed: bool,
    /// Our member ids on earlier connections.
    earlier: Vec<MemberId>,
    /// Sent on an earlier connection, not acknowledged: sequenced or not, the next Welcome
    /// tells.
    in_doubt: VecDeque<Op>,
    sent: VecDeque<Op>,
    unsent: VecDeque<Op>,
    /// Strokes and text items created in this tab.
    mine: HashSet<StrokeId>,
    /// Strokes re-sent under a new id; later local ops on the old id go to the new one.
    renamed: HashMap<StrokeId, StrokeId>,
    /// `view` may differ from `confirmed` plus the outstanding ops (drawing order only).
    diverged: bool,
    /// The parts of the board snapshot of the Welcome to come.
    parts: Vec<u8>,
    redraw: Redraw,
}

impl Session {
    /// A session with an empty board, not connected.
    pub fn new() -> Self {
        Self::default()
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
        self.me
    }

    /// What the server said we may do (None before the first Welcome).
    pub fn capability(&self) -> Option<Capability> {
        self.capability
    }

    /// Whether a Welcome arrived on the current connection.
    pub fn is_welcomed(&self) -> bool {
        self.welcomed
    }

    /// Whether this tab drew the stroke.
    pub fn is_mine(&self, id: &StrokeId) -> bool {
        self.mine.contains(id)
    }

    /// Own ops not yet confirmed by the room (offline queue, in flight, in doubt).
    pub fn outstanding(&self) -> usize {
        self.in_doubt.len() + self.sent.len() + self.unsent.len()
    }

    /// Own ops waiting to be sent.
    pub fn unsent(&self) -> usize {
        self.unsent.len()
    }

    /// The first message of a connection: resumes from the last confirmed position.
    pub fn hello(&mut self, room: RoomId, token: Token, name: Name, color: Color) -> ClientMsg {
        self.welcomed = false;
        ClientMsg::Hello(Hello {
            room,
            token,
            resume: self.confirmed.position(),
            name,
            color,
            client: kokuban_protocol::ClientKey([0; 16]),
        })
    }

    /// The connection ended: whatever was in flight is now in doubt.
    pub fn disconnected(&mut self) {
        self.in_doubt.extend(self.sent.drain(..));
        if let Some(me) = self.me.take() {
            self.earlier.push(me);
        }
        self.welcomed = false;
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
        let author = self.local_author(&op);
        let change = self.view.apply(author, &op);
        self.note(change);
        self.queue(op);
        true
    }

    /// The next op to put on the wire, if we are connected and may write.
    pub fn next_op(&mut self) -> Option<ClientMsg> {
        if !self.welcomed || self.capability != Some(Capability::Edit) {
            return None;
        }
        let op = self.unsent.pop_front()?;
        self.sent.push_back(op.clone());
        Some(ClientMsg::Op(kokuban_protocol::Submit { n: 0, op }))
    }

    /// What the renderer must redraw since the last call.
    pub fn take_redraw(&mut self) -> Redraw {
        std::mem::take(&mut self.redraw)
    }

    /// Handles one message from the server.
    pub fn receive(&mut self, msg: ServerMsg, rng: &mut dyn Entropy) -> Vec<Notice> {
        match msg {
            ServerMsg::Welcome(w) => self.welcome(w, rng),
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
                Vec::new()
            }
            ServerMsg::Op(s) => self.remote(s),
            ServerMsg::Ack(ack) => self.ack(ack),
            ServerMsg::Presence(p) => vec![Notice::Presence(p)],
            ServerMsg::Cursor(c) => vec![Notice::Cursor(c)],
            ServerMsg::Error(e) => self.error(e),
        }
    }

    fn welcome(&mut self, w: Welcome, rng: &mut dyn Entropy) -> Vec<Notice> {
        let Welcome {
            member,
            capability,
            epoch,
            state,
            members,
            ..
        } = w;
        let mut board = self.confirmed.clone();
        let ops = match state {
            RoomState::Snapshot { board: bytes, ops } => {
                match Board::from_snapshot(&bytes.0) {
                    Ok(b) => board = b,
                    Err(_) => return self.resync_from_scratch(),
                }
                ops
            }
            RoomState::InParts { ops } => {
                match Board::from_snapshot(&std::mem::take(&mut self.parts)) {
                    Ok(b) => board = b,
                    Err(_) => return self.resync_from_scratch(),
                }
                ops
            }
            RoomState::Replay { ops } => {
                if board.position().map(|p| p.epoch) != Some(epoch) {
                    // A replay only makes sense on top of our own history.
                    return self.resync_from_scratch();
                }
                ops
            }
        };
        for s in ops.iter() {
            if board.apply_sequenced(s).is_err() {
                return self.resync_from_scratch();
            }
        }
        self.confirmed = board;
        self.me = Some(member);
        self.capability = Some(capability);
        self.welcomed = true;

        // Our in-doubt ops that the replay shows were sequenced, in the order we sent them.
        let earlier = &self.earlier;
        let mut ours = ops
            .iter()
            .filter(|s| earlier.contains(&s.author))
            .map(|s| &s.op)
            .peekable();
        let mut unconfirmed = VecDeque::new();
        for op in self.in_doubt.drain(..) {
            if ours.peek() == Some(&&op) {
                ours.next();
            } else {
                unconfirmed.push_back(op);
            }
        }
        unconfirmed.extend(self.unsent.drain(..));
        // `sent` is empty at the first Welcome of a connection (a disconnect moves it to
        // `in_doubt`). A later Welcome on the same connection (the room's history was replaced)
        // comes after the answers to every op sent before the server queued it, so what is
        // still in `sent` will be answered after it, in the new epoch: keep waiting for it.

        let mut notices = Vec::new();
        if capability == Capability::View {
            if !unconfirmed.is_empty() {
                notices.push(Notice::Toast(
                    "This link can only view the board; your changes were not saved.".into(),
                ));
            }
        } else {
            let fixed = self.reconcile(unconfirmed, rng, &mut notices);
            self.unsent = fixed;
        }
        self.rebase();
        notices.insert(
            0,
            Notice::Welcomed {
                member,
                capability,
                members: members.into_inner(),
            },
        );
        notices
    }

    /// Turns our unconfirmed ops into the ops that bring the room to what we drew (see the
    /// module documentation). `self.view` still holds our local copies.
    fn reconcile(
        &mut self,
        unconfirmed: VecDeque<Op>,
        rng: &mut dyn Entropy,
        notices: &mut Vec<Notice>,
    ) -> VecDeque<Op> {
        /// What happens to the unconfirmed ops of one stroke, decided at its first op.
        #[derive(PartialEq)]
        enum Fate {
            /// Sent again as they are.
            Keep,
            /// Already covered (complete in the room, re-sent whole, or gone).
            Skip,
        }
        let begun: HashSet<StrokeId> = unconfirmed
            .iter()
            .filter_map(|op| match op {
                Op::StrokeBegin { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        let mut fates: HashMap<StrokeId, Fate> = HashMap::new();
        let mut out = VecDeque::new();
        for op in unconfirmed {
            let id = match &op {
                Op::StrokeBegin { id, .. } | Op::StrokeEnd { id } => *id,
                Op::StrokePoints(b) => b.id,
                Op::Text { id, .. } => {
                    if self.confirmed.get(id).is_none() {
                        out.push_back(op);
                    }
                    continue;
                }
                // Erase, restore, move and clear are idempotent: sending them again is safe.
                _ => {
                    out.push_back(self.remap(op));
                    continue;
                }
            };
            if let Some(fate) = fates.get(&id) {
                if *fate == Fate::Keep {
                    out.push_back(op);
                }
                continue;
            }
            let local = self.view.get(&id).cloned();
            let confirmed = self.confirmed.get(&id);
            let fate = match (local, confirmed) {
                // Gone locally (cleared): nothing to send.
                (None, _) => Fate::Skip,
                (Some(_), None) if begun.contains(&id) => {
                    out.push_back(op);
                    Fate::Keep
                }
                // Begun in a history the room has lost: send it whole again.
                (Some(local), None) => {
                    out.extend(whole(&local, id));
                    Fate::Skip
                }
                // Someone erased it meanwhile: theirs was the later word.
                (Some(_), Some(c)) if c.erased => Fate::Skip,
                (Some(local), Some(c))
                    if c.points.len() >= local.points.len() && (c.finished || !local.finished) =>
                {
                    Fate::Skip
                }
                // Begun on an earlier connection and incomplete in the room: only that
                // connection could have finished it, so a fresh copy replaces it.
                (Some(local), Some(_)) => {
                    let to = new_stroke_id(rng);
                    out.extend(whole(&local, to));
                    if let Ok(ids) = Bounded::new(vec![id]) {
                        out.push_back(Op::Erase { ids });
                    }
                    self.renamed.insert(id, to);
                    self.mine.insert(to);
                    notices.push(Notice::Renamed { from: id, to });
                    Fate::Skip
                }
            };
            fates.insert(id, fate);
        }
        out
    }

    fn resync_from_scratch(&mut self) -> Vec<Notice> {
        // Forget the position so that the next Hello asks for a snapshot.
        self.confirmed = Board::new();
        self.welcomed = false;
        vec![Notice::Resync]
    }

    fn remote(&mut self, s: Sequenced) -> Vec<Notice> {
        if !self.welcomed {
            return Vec::new();
        }
        match self.confirmed.apply_sequenced(&s) {
            Ok(Change::None) => {}
            Ok(_) if self.has_outstanding() && self.conflicts(&s.op) => self.rebase(),
            Ok(_) => {
                let change = self.view.apply(s.author, &s.op);
                if self.has_outstanding() {
                    self.diverged = true;
                }
                self.note(change);
            }
            Err(_) => return vec![Notice::Resync],
        }
        Vec::new()
    }

    fn ack(&mut self, ack: Ack) -> Vec<Notice> {
        let (Some(op), Some(me)) = (self.sent.pop_front(), self.me) else {
            return vec![Notice::Resync];
        };
        let s = Sequenced {
            epoch: ack.epoch,
            seq: ack.seq,
            author: me,
            op,
        };
        if self.confirmed.apply_sequenced(&s).is_err() {
            return vec![Notice::Resync];
        }
        if self.diverged && !self.has_outstanding() {
            self.diverged = false;
            if !same_content(&self.view, &self.confirmed) {
                self.view = IndexedBoard::new(self.confirmed.clone());
                self.redraw = Redraw::All;
            }
        }
        Vec::new()
    }

    fn error(&mut self, e: ErrorFrame) -> Vec<Notice> {
        match e.code {
            // The server refuses only ops that would change nothing by the time they are
            // ordered (a stroke someone else erased first, a move back to where it is), and
            // ops no correct client sends: it leaves the view, without bothering the user.
            ErrorCode::InvalidOp | ErrorCode::Decided | ErrorCode::BoardFull => {
                if self.sent.pop_front().is_some() {
                    self.rebase();
                }
                Vec::new()
            }
            // Refusals of one op: it was not applied, so it leaves the view too.
            ErrorCode::ViewOnly | ErrorCode::TemporarilyReadOnly => {
                if self.sent.pop_front().is_some() {
                    self.rebase();
                }
                let text = match e.code {
                    ErrorCode::ViewOnly => "This link can only view the board.",
                    _ => "The board cannot be saved right now; try again in a moment.",
                };
                vec![Notice::Toast(text.into())]
            }
            // The server drops frames silently once it has said this, so which of our ops
            // arrived is unknown: resume, and let the Welcome sort it out.
            ErrorCode::RateLimited => vec![
                Notice::Toast("Too many changes at once; catching up…".into()),
                Notice::Resync,
            ],
            ErrorCode::Malformed | ErrorCode::UnexpectedMessage => vec![Notice::Resync],
            ErrorCode::Forbidden => vec![Notice::Fatal(
                "This board does not exist, or the link is not valid.".into(),
            )],
            ErrorCode::VersionMismatch => vec![Notice::Outdated],
            ErrorCode::RoomFull => vec![Notice::Toast(
                "This board is full right now; trying again shortly.".into(),
            )],
            ErrorCode::Overloaded => vec![Notice::Toast(
                "The server is busy; trying again shortly.".into(),
            )],
            ErrorCode::Internal => {
                vec![Notice::Toast("Something went wrong on the server.".into())]
            }
        }
    }

    fn has_outstanding(&self) -> bool {
        self.outstanding() > 0
    }

    /// Whether a remote op touches a stroke our outstanding ops touch, or clears the board.
    fn conflicts(&self, op: &Op) -> bool {
        let ids: &[StrokeId] = match op {
            Op::Clear => return true,
            Op::Erase { ids } | Op::Restore { ids } => ids,
            Op::Move { to } => {
                let ours = self.outstanding_ids();
                return to.iter().any(|p| ours.contains(&p.id));
            }
            // Others' strokes have ids of their own.
            Op::StrokeBegin { .. }
            | Op::StrokePoints(_)
            | Op::StrokeEnd { .. }
            | Op::Text { .. } => {
                return false;
            }
        };
        let ours = self.outstanding_ids();
        ids.iter().any(|id| ours.contains(id))
    }

    fn outstanding_ids(&self) -> HashSet<StrokeId> {
        let mut ids = HashSet::new();
        for op in self.in_doubt.iter().chain(&self.sent).chain(&self.unsent) {
            match op {
                Op::StrokeBegin { id, .. } | Op::StrokeEnd { id } | Op::Text { id, .. } => {
                    ids.insert(*id);
                }
                Op::StrokePoints(b) => {
                    ids.insert(b.id);
                }
                Op::Erase { ids: list } | Op::Restore { ids: list } => ids.extend(list.iter()),
                Op::Move { to } => ids.extend(to.iter().map(|p| p.id)),
                Op::Clear => {}
            }
        }
        ids
    }

    /// `view = confirmed + outstanding ops`.
    fn rebase(&mut self) {
        let mut view = self.confirmed.clone();
        let ops: Vec<Op> = self
            .in_doubt
            .iter()
            .chain(&self.sent)
            .chain(&self.unsent)
            .cloned()
            .collect();
        for op in &ops {
            let author = self.local_author_on(&view, op);
            view.apply(author, op);
        }
        // Indexed once at the end rather than op by op: a rebase replays many ops.
        self.view = IndexedBoard::new(view);
        self.diverged = false;
        self.redraw = Redraw::All;
    }

    /// Who a local op is applied as on `view`: a stroke continues under the author it was
    /// begun with (which may be an earlier connection's id), anything new under our current
    /// id.
    fn local_author(&self, op: &Op) -> MemberId {
        self.local_author_on(&self.view, op)
    }

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
            .or(self.me)
            .unwrap_or(PROVISIONAL)
    }

    fn remap(&self, op: Op) -> Op {
        if self.renamed.is_empty() {
            return op;
        }
        let map = |id: StrokeId| *self.renamed.get(&id).unwrap_or(&id);
        match op {
            Op::StrokePoints(b) => match StrokePoints::new(map(b.id), b.start, b.points.clone()) {
                Ok(b) => Op::StrokePoints(b),
                Err(_) => Op::StrokePoints(b),
            },
            Op::StrokeEnd { id } => Op::StrokeEnd { id: map(id) },
            Op::Erase { ids } => Op::Erase {
                ids: remap_ids(ids, map),
            },
            Op::Restore { ids } => Op::Restore {
                ids: remap_ids(ids, map),
            },
            Op::Move { to } => {
                let moved: Vec<Placement> = to
                    .iter()
                    .filter_map(|p| Placement::new(map(p.id), p.dx, p.dy).ok())
                    .collect();
                match Bounded::new(moved) {
                    Ok(to) => Op::Move { to },
                    Err(_) => Op::Move { to },
                }
            }
            other => other,
        }
    }

    /// Adds an op to the unsent queue, merging it into the last one where that keeps the
    /// meaning: consecutive point batches of a stroke become one batch (this is the per-frame
    /// batching), consecutive moves of the same strokes keep only the last, erases join.
    fn queue(&mut self, op: Op) {
        if let Some(last) = self.unsent.back_mut() {
            match (last, &op) {
                (Op::StrokePoints(a), Op::StrokePoints(b))
                    if a.id == b.id
                        && a.start as usize + a.points.len() == b.start as usize
                        && a.points.len() + b.points.len() <= MAX_POINTS_PER_BATCH =>
                {
                    let mut pts = a.points.as_slice().to_vec();
                    pts.extend_from_slice(b.points.as_slice());
                    if let Ok(points) = Points::new(pts)
                        && let Ok(merged) = StrokePoints::new(a.id, a.start, points)
                    {
                        *a = merged;
                        return;
                    }
                }
                (Op::Move { to: a }, Op::Move { to: b })
                    if a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.id == y.id) =>
                {
                    *a = b.clone();
                    return;
                }
                (Op::Erase { ids: a }, Op::Erase { ids: b })
                    if a.len() + b.len() <= MAX_IDS_PER_OP =>
                {
                    let mut all = a.as_slice().to_vec();
                    all.extend(b.iter().filter(|id| !a.contains(id)));
                    if let Ok(ids) = Bounded::new(all) {
                        *a = ids;
                        return;
                    }
                }
                _ => {}
            }
        }
        self.unsent.push_back(op);
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

fn remap_ids(
    ids: Bounded<StrokeId, MAX_IDS_PER_OP>,
    map: impl Fn(StrokeId) -> StrokeId,
) -> Bounded<StrokeId, MAX_IDS_PER_OP> {
    let mapped: Vec<StrokeId> = ids.iter().map(|id| map(*id)).collect();
    Bounded::new(mapped).unwrap_or(ids)
}

/// The ops that draw `stroke` from scratch under `id`.
fn whole(stroke: &Stroke, id: StrokeId) -> Vec<Op> {
    let Shape::Ink(tool) = stroke.shape else {
        return Vec::new();
    };
    let mut ops = vec![Op::StrokeBegin {
        id,
        tool,
        color: stroke.color,
        width: stroke.width,
        first: stroke.points[0],
    }];
    let mut start = 1;
    for chunk in stroke.points[1..].chunks(MAX_POINTS_PER_BATCH) {
        if let Ok(points) = Points::new(chunk.to_vec())
            && let Ok(batch) = StrokePoints::new(id, start as u32, points)
        {
            ops.push(Op::StrokePoints(batch));
        }
        start += chunk.len();
    }
    if stroke.finished {
        ops.push(Op::StrokeEnd { id });
    }
    if stroke.offset != (0, 0)
        && let Ok(p) = Placement::new(id, stroke.offset.0, stroke.offset.1)
        && let Ok(to) = Bounded::new(vec![p])
    {
        ops.push(Op::Move { to });
    }
    ops
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
mod tests;
