//! The session alone against the simulated room, driven by random runs: a user drawing,
//! erasing, restoring and moving, another member drawing, the connection dropping (with
//! frames of the dead connection reaching the server late, or never), the store refusing
//! writes and coming back, and the tab being closed and its outbox opened by a new one.
//!
//! Whatever happens, an op number never carries two different ops, an op is never applied
//! with effect under two numbers, and once the room takes writes and the network holds, the
//! room ends up with exactly what the user (and the other member) drew.

use std::collections::{HashMap, HashSet, VecDeque};

use kokuban_board::Shape;
use kokuban_protocol::{
    Bounded, Dash, Fill, Look, LookOf, Opacity, Placement, Point, Points, StrokePoints, Style,
    Tool, Width,
};
use proptest::prelude::*;

use super::sim::Room;
use super::tests::Tab;
use super::*;
use crate::outbox;
use crate::rng::{Xoshiro256, stroke_id_from};

#[derive(Debug, Clone)]
enum Act {
    /// The user starts a stroke (ending the one in progress, if any).
    Begin,
    /// More points of the stroke in progress.
    Points(u8),
    /// The pen goes up.
    End,
    /// The user erases, restores or moves one of the strokes (picked by index).
    Erase(u8),
    Restore(u8),
    Move(u8),
    /// The user gives one of the strokes another colour and width.
    Restyle(u8),
    /// The user gives one of the strokes another look.
    Look(u8),
    /// The user places a text item.
    Text,
    /// Another member draws a stroke.
    Other,
    /// The tab puts what it may on the wire.
    Send,
    /// The server takes up to this many frames of the live connection.
    Serve(u8),
    /// The tab reads up to this many frames.
    Receive(u8),
    /// A frame of a dead connection reaches the server.
    ServeStale,
    /// The store goes away (true) or comes back.
    ReadOnly(bool),
    /// The connection dies; this many of the frames on the wire may still reach the server.
    Drop(u8),
    /// The tab connects (if it is not connected), resuming by replay or by snapshot.
    Connect(bool),
    /// The retry timer fires.
    Retry,
    /// The tab is closed and the room opened again in a new one, from the kept outbox.
    Reload,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        3 => Just(Act::Begin),
        6 => (1u8..4).prop_map(Act::Points),
        3 => Just(Act::End),
        1 => any::<u8>().prop_map(Act::Erase),
        1 => any::<u8>().prop_map(Act::Restore),
        1 => any::<u8>().prop_map(Act::Move),
        1 => any::<u8>().prop_map(Act::Restyle),
        1 => any::<u8>().prop_map(Act::Look),
        1 => Just(Act::Text),
        1 => Just(Act::Other),
        6 => Just(Act::Send),
        6 => (1u8..6).prop_map(Act::Serve),
        6 => (1u8..6).prop_map(Act::Receive),
        2 => Just(Act::ServeStale),
        2 => any::<bool>().prop_map(Act::ReadOnly),
        2 => (0u8..4).prop_map(Act::Drop),
        3 => any::<bool>().prop_map(Act::Connect),
        2 => Just(Act::Retry),
        1 => Just(Act::Reload),
    ]
}

const USER: MemberId = MemberId(1);
const OTHER_KEY: ClientKey = ClientKey([9; 16]);

struct World {
    room: Room,
    tab: Tab,
    tabs_opened: u64,
    connected: bool,
    up: VecDeque<Submit>,
    down: VecDeque<ServerMsg>,
    /// Frames of dead connections that may still reach the server.
    stale: VecDeque<Submit>,
    /// What the user and the other member did, with the ids the user knows.
    intent: Board,
    /// The user's ids of strokes the session sent again under new ones.
    renamed: HashMap<StrokeId, StrokeId>,
    /// The user's strokes the session gave up as unconfirmable, telling the user.
    unconfirmed: HashSet<StrokeId>,
    drawing: Option<(StrokeId, u32)>,
    next_id: u128,
    next_offset: i32,
    other_n: u64,
    /// The op sent under each number.
    numbers: HashMap<u64, Op>,
    /// The numbers each op was sent under.
    sent_as: HashMap<Vec<u8>, Vec<u64>>,
    /// The ops the user made, as queued (merged with the one before where the session merges
    /// them). Every one is distinct: strokes and texts have fresh ids, moves fresh offsets, and
    /// erases and restores name an id of their own besides. Ops the session makes to bring
    /// strokes in line are new ops, and may look like ops made before.
    user_ops: HashSet<Vec<u8>>,
    notices: Vec<Notice>,
}

impl World {
    fn new() -> Self {
        Self {
            room: Room::new(),
            tab: Tab::new(1),
            tabs_opened: 1,
            connected: false,
            up: VecDeque::new(),
            down: VecDeque::new(),
            stale: VecDeque::new(),
            intent: Board::new(),
            renamed: HashMap::new(),
            unconfirmed: HashSet::new(),
            drawing: None,
            next_id: 1,
            next_offset: 1,
            other_n: 0,
            numbers: HashMap::new(),
            sent_as: HashMap::new(),
            user_ops: HashSet::new(),
            notices: Vec::new(),
        }
    }

    fn key(&self) -> ClientKey {
        self.tab.session.key()
    }

    /// The id the session knows a stroke of the user's by now.
    fn current(&self, mut id: StrokeId) -> StrokeId {
        while let Some(to) = self.renamed.get(&id) {
            id = *to;
        }
        id
    }

    fn user(&mut self, op: Op) {
        self.intent.apply(USER, &op);
        let sent = match op {
            Op::Erase { ids } => Op::Erase {
                ids: Bounded::new(ids.iter().map(|id| self.current(*id)).collect()).unwrap(),
            },
            Op::Restore { ids } => Op::Restore {
                ids: Bounded::new(ids.iter().map(|id| self.current(*id)).collect()).unwrap(),
            },
            Op::Move { to } => Op::Move {
                to: Bounded::new(
                    to.iter()
                        .map(|p| Placement::new(self.current(p.id), p.dx, p.dy).unwrap())
                        .collect(),
                )
                .unwrap(),
            },
            Op::Restyle { to } => Op::Restyle {
                to: Bounded::new(
                    to.iter()
                        .map(|s| Style {
                            id: self.current(s.id),
                            ..*s
                        })
                        .collect(),
                )
                .unwrap(),
            },
            Op::Look { to } => Op::Look {
                to: Bounded::new(
                    to.iter()
                        .map(|l| LookOf {
                            id: self.current(l.id),
                            ..*l
                        })
                        .collect(),
                )
                .unwrap(),
            },
            // Points and ends keep the id the pen began with: the session follows renames.
            other => other,
        };
        assert!(self.tab.session.local(sent));
        let queued = &self.tab.session.ops.back().expect("just queued").op;
        self.user_ops.insert(encode_op(queued));
    }

    /// The user's id of a stroke the session knows by `id`.
    fn user_id(&self, id: StrokeId) -> StrokeId {
        self.intent
            .all_strokes()
            .map(|s| s.id)
            .find(|u| self.current(*u) == id)
            .unwrap_or(id)
    }

    fn note(&mut self, notices: Vec<Notice>) {
        for n in &notices {
            if let Notice::Unconfirmed(ids) = n {
                for id in ids {
                    self.unconfirmed.insert(self.user_id(*id));
                }
            }
            if let Notice::Renamed { from, to } = n {
                let user_id = self
                    .renamed
                    .iter()
                    .find(|(_, t)| **t == *from)
                    .map(|(u, _)| *u);
                match user_id {
                    Some(u) => {
                        self.renamed.insert(u, *to);
                    }
                    None => {
                        self.renamed.insert(*from, *to);
                    }
                }
            }
            assert!(
                !matches!(n, Notice::Fatal(_) | Notice::Outdated),
                "unexpected {n:?}"
            );
        }
        self.notices.extend(notices);
    }

    /// A stroke of the user's that can be targeted (not the one being drawn).
    fn target(&self, i: u8, erased: bool) -> Option<StrokeId> {
        let drawing = self.drawing.map(|d| d.0);
        let candidates: Vec<StrokeId> = self
            .intent
            .all_strokes()
            .filter(|s| s.author == USER && s.erased == erased && Some(s.id) != drawing)
            .filter(|s| !self.unconfirmed.contains(&s.id))
            .map(|s| s.id)
            .collect();
        (!candidates.is_empty()).then(|| candidates[i as usize % candidates.len()])
    }

    fn step(&mut self, act: &Act) {
        match *act {
            Act::Begin => {
                self.end_stroke();
                let id = stroke_id_from(self.next_id);
                self.next_id += 1;
                self.user(Op::StrokeBegin {
                    id,
                    tool: Tool::Pen,
                    color: Color::rgb(0, 0, 0),
                    width: Width::from_px(2.0),
                    first: pt(0),
                });
                self.drawing = Some((id, 1));
            }
            Act::Points(k) => {
                if let Some((id, count)) = self.drawing {
                    let pts: Vec<Point> = (0..k).map(|i| pt(count as i32 + i as i32)).collect();
                    let batch = StrokePoints::new(id, count, Points::new(pts).unwrap()).unwrap();
                    self.user(Op::StrokePoints(batch));
                    self.drawing = Some((id, count + u32::from(k)));
                }
            }
            Act::End => self.end_stroke(),
            Act::Erase(i) => {
                if let Some(id) = self.target(i, false) {
                    let ids = Bounded::new(vec![id, self.nowhere()]).unwrap();
                    self.user(Op::Erase { ids });
                }
            }
            Act::Restore(i) => {
                if let Some(id) = self.target(i, true) {
                    let ids = Bounded::new(vec![id, self.nowhere()]).unwrap();
                    self.user(Op::Restore { ids });
                }
            }
            Act::Move(i) => {
                if let Some(id) = self.target(i, false) {
                    let d = self.next_offset;
                    self.next_offset += 1;
                    self.user(Op::Move {
                        to: Bounded::new(vec![Placement::new(id, d * 8, -d * 8).unwrap()]).unwrap(),
                    });
                }
            }
            Act::Restyle(i) => {
                if let Some(id) = self.target(i, false) {
                    let shade = self.next_offset.rem_euclid(200) as u8;
                    self.next_offset += 1;
                    self.user(Op::Restyle {
                        to: Bounded::new(vec![Style {
                            id,
                            color: Color::rgb(shade, 0, 0),
                            width: Width::from_px(f64::from(shade % 40 + 1)),
                        }])
                        .unwrap(),
                    });
                }
            }
            Act::Look(i) => {
                if let Some(id) = self.target(i, false) {
                    let k = self.next_offset.rem_euclid(90) as u8;
                    self.next_offset += 1;
                    let look = Look {
                        fill: [Fill::None, Fill::Tint, Fill::Solid, Fill::Hachure]
                            [usize::from(k % 4)],
                        dash: [Dash::Solid, Dash::Dashed, Dash::Dotted][usize::from(k / 3 % 3)],
                        opacity: Opacity::new(10 + k).unwrap(),
                        ..Look::default()
                    };
                    self.user(Op::Look {
                        to: Bounded::new(vec![LookOf { id, look }]).unwrap(),
                    });
                }
            }
            Act::Text => {
                let id = stroke_id_from(self.next_id);
                self.next_id += 1;
                self.user(Op::Text {
                    id,
                    at: pt(3),
                    color: Color::rgb(1, 1, 1),
                    size: Width::from_px(12.0),
                    text: kokuban_protocol::Text::new(format!("t{}", self.next_id)).unwrap(),
                });
            }
            Act::Other => {
                let id = stroke_id_from(1_000_000 + self.next_id);
                self.next_id += 1;
                let begin = Op::StrokeBegin {
                    id,
                    tool: Tool::Pen,
                    color: Color::rgb(9, 9, 9),
                    width: Width::from_px(4.0),
                    first: pt(7),
                };
                for op in [begin, Op::StrokeEnd { id }] {
                    self.other_n += 1;
                    let submit = Submit {
                        n: self.other_n,
                        op: op.clone(),
                    };
                    // The other member's tab has its own story: here it simply gives up when
                    // refused.
                    if let (ServerMsg::Ack(_), Some(relay)) = self.room.submit(OTHER_KEY, submit) {
                        self.intent.apply(MemberId(2), &op);
                        if self.connected {
                            self.down.push_back(ServerMsg::Op(relay));
                        }
                    }
                }
            }
            Act::Send => {
                if self.connected {
                    for s in self.tab.flush() {
                        self.check_send(&s);
                        self.up.push_back(s);
                    }
                }
            }
            Act::Serve(k) => {
                for _ in 0..k {
                    let Some(s) = self.up.pop_front() else { break };
                    let (answer, _) = self.room.submit(self.key(), s);
                    self.down.push_back(answer);
                }
            }
            Act::Receive(k) => {
                for _ in 0..k {
                    let Some(msg) = self.down.pop_front() else {
                        break;
                    };
                    let notices = self.tab.recv(msg);
                    self.note(notices);
                }
            }
            Act::ServeStale => {
                if let Some(s) = self.stale.pop_front() {
                    // Its answer goes to a dead connection; others (our new connection among
                    // them) receive the op if it was applied.
                    if let (_, Some(_)) = self.room.submit(self.key(), s)
                        && self.connected
                        && let Some(live) = self.room.live.clone()
                    {
                        self.down.push_back(live);
                    }
                }
            }
            Act::ReadOnly(on) => self.room.read_only = on,
            Act::Drop(k) => self.drop_connection(k),
            Act::Connect(snapshot) => self.connect(snapshot),
            Act::Retry => {
                let notices = self.tab.session.retry_writes(&mut self.tab.rng);
                self.note(notices);
            }
            Act::Reload => {
                self.drop_connection(3);
                // Closing the tab lifts the pen: that stroke stays as far as it got.
                self.drawing = None;
                let text = outbox::encode(&self.tab.session.outbox(), "old", 0.0);
                let kept = outbox::decode(&text).expect("an outbox decodes").outbox;
                self.tabs_opened += 1;
                self.tab = Tab::restored(kept);
                self.tab.rng = Xoshiro256::seeded(self.tabs_opened);
            }
        }
    }

    /// An id no stroke has (the board ignores it): it makes each erase or restore the user
    /// does a distinct op, so that one sent twice can be told from one done twice.
    fn nowhere(&mut self) -> StrokeId {
        self.next_id += 1;
        stroke_id_from(2_000_000 + self.next_id)
    }

    fn end_stroke(&mut self) {
        if let Some((id, _)) = self.drawing.take() {
            self.user(Op::StrokeEnd { id });
        }
    }

    fn connect(&mut self, snapshot: bool) {
        if self.connected {
            return;
        }
        let hello = self.tab.hello();
        let (member, welcome) = self.room.welcome(&hello, snapshot);
        self.tab.member = member;
        self.down.push_back(welcome);
        self.connected = true;
    }

    fn drop_connection(&mut self, keep: u8) {
        let up: Vec<Submit> = self.up.drain(..).collect();
        self.stale.extend(up.into_iter().take(keep as usize));
        self.down.clear();
        self.tab.session.disconnected();
        self.connected = false;
    }

    /// A number carries one op; an op the user made goes out under a second number only if
    /// the first was not applied.
    fn check_send(&mut self, s: &Submit) {
        if let Some(before) = self.numbers.insert(s.n, s.op.clone()) {
            assert_eq!(before, s.op, "number {} reused for another op", s.n);
        }
        let key = encode_op(&s.op);
        if !self.user_ops.contains(&key) {
            return;
        }
        let numbers = self.sent_as.entry(key).or_default();
        for &n in numbers.iter().filter(|&&n| n != s.n) {
            assert!(
                !self.room.was_applied(self.tab.session.key(), n),
                "{:?} sent as {} though {n} was applied",
                s.op,
                s.n
            );
        }
        if !numbers.contains(&s.n) {
            numbers.push(s.n);
        }
    }

    /// The network holds and the store is up: everything settles.
    fn heal(&mut self) {
        self.room.read_only = false;
        self.end_stroke();
        while !self.stale.is_empty() {
            self.step(&Act::ServeStale);
        }
        for _ in 0..100 {
            self.connect(false);
            self.step(&Act::Retry);
            self.step(&Act::Send);
            self.step(&Act::Serve(u8::MAX));
            self.step(&Act::Receive(u8::MAX));
            if self.up.is_empty()
                && self.down.is_empty()
                && self.tab.session.outstanding() == 0
                && self.tab.session.is_welcomed()
            {
                return;
            }
        }
        panic!(
            "the session did not settle: {} ops outstanding",
            self.tab.session.outstanding()
        );
    }
}

fn pt(x: i32) -> Point {
    Point::new(x * 8, x * 4, 100).unwrap()
}

fn encode_op(op: &Op) -> Vec<u8> {
    kokuban_protocol::encode_client(&ClientMsg::Op(Submit {
        n: 0,
        op: op.clone(),
    }))
}

/// The visible strokes, by content (ids aside: a stroke sent again has a new one), sorted.
fn content(board: &Board) -> Vec<String> {
    content_without(board, &HashSet::new())
}

fn content_without(board: &Board, left_out: &HashSet<StrokeId>) -> Vec<String> {
    let mut all: Vec<String> = board
        .strokes()
        .filter(|s| !left_out.contains(&s.id))
        .map(|s| {
            let shape = match &s.shape {
                Shape::Ink(t) => format!("{t:?}"),
                Shape::Text(t) => t.as_str().to_string(),
                Shape::Image(blob) => blob.to_string(),
            };
            format!(
                "{shape} {:?} {:?} {:?} {} {:?} {:?}",
                s.color, s.width, s.points, s.finished, s.offset, s.look
            )
        })
        .collect();
    all.sort();
    all
}

/// Runs `acts`, heals, and checks what must hold.
fn check(acts: &[Act]) -> Result<(), TestCaseError> {
    let mut w = World::new();
    w.connect(false);
    for a in acts {
        w.step(a);
    }
    w.heal();

    // Exactly once: no op the user made changed the board under two numbers.
    let mut seen: HashMap<Vec<u8>, u64> = HashMap::new();
    let author = w.room.author_of(w.key());
    for (who, n, op, changed) in &w.room.applied {
        let op_key = encode_op(op);
        if *who == author
            && *changed
            && w.user_ops.contains(&op_key)
            && let Some(first) = seen.insert(op_key, *n)
        {
            prop_assert!(false, "{op:?} applied as {first} and as {n}");
        }
    }
    // Nothing lost: the room holds what was drawn, and the tab shows the room.
    prop_assert_eq!(
        content(&w.room.board),
        content_without(&w.intent, &w.unconfirmed)
    );
    prop_assert_eq!(content(w.tab.session.view()), content(&w.room.board));
    let view: Vec<_> = w.tab.session.view().strokes().cloned().collect();
    let confirmed: Vec<_> = w.tab.session.confirmed().strokes().cloned().collect();
    prop_assert_eq!(view, confirmed);
    // One message per outage.
    let outages = w
        .notices
        .iter()
        .filter(|n| **n == Notice::ReadOnly(true))
        .count();
    let told = w
        .notices
        .iter()
        .filter(|n| **n == Notice::Toast(READ_ONLY_TOAST.into()))
        .count();
    prop_assert_eq!(outages, told);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn no_op_is_applied_twice_or_lost_whatever_the_network_and_the_store_do(
        acts in proptest::collection::vec(act(), 1..400)
    ) {
        check(&acts)?;
    }
}
