//! The session against a simulated room: a board that sequences ops in arrival order, as the
//! server does, and hands out Acks and Ops.

use kokuban_protocol::{Bytes, Epoch, Point, Position, Seq, Tool, Width};

use super::*;
use crate::rng::{Xoshiro256, stroke_id_from};

const ROOM_EPOCH: Epoch = Epoch(7);

/// The server side of one room.
struct Room {
    board: Board,
    log: Vec<Sequenced>,
    next_member: u64,
}

impl Room {
    fn new() -> Self {
        Self {
            board: Board::at_start_of(ROOM_EPOCH),
            log: Vec::new(),
            next_member: 100,
        }
    }

    /// Sequences `op` from `author`; returns (ack for the author, op for the others).
    fn submit(&mut self, author: MemberId, op: Op) -> (ServerMsg, ServerMsg) {
        let seq = Seq(self.log.len() as u64 + 1);
        let s = Sequenced {
            epoch: ROOM_EPOCH,
            seq,
            author,
            op,
        };
        self.board.apply_sequenced(&s).unwrap();
        self.log.push(s.clone());
        (
            ServerMsg::Ack(Ack {
                epoch: ROOM_EPOCH,
                seq,
            }),
            ServerMsg::Op(s),
        )
    }

    fn welcome(&mut self, resume: Option<Position>) -> (MemberId, ServerMsg) {
        self.next_member += 1;
        let member = MemberId(self.next_member);
        let state = match resume {
            Some(p) if p.epoch == ROOM_EPOCH => RoomState::Replay {
                ops: self.log[p.seq.0 as usize..].to_vec().into(),
            },
            _ => RoomState::Snapshot {
                board: Bytes(Board::at_start_of(ROOM_EPOCH).snapshot()),
                ops: self.log.clone().into(),
            },
        };
        (
            member,
            ServerMsg::Welcome(Welcome {
                member,
                capability: Capability::Edit,
                epoch: ROOM_EPOCH,
                state,
                members: Vec::new().into(),
            }),
        )
    }
}

/// A tab: its session and its current member id.
struct Tab {
    session: Session,
    member: MemberId,
    rng: Xoshiro256,
}

impl Tab {
    fn join(room: &mut Room) -> Tab {
        let mut tab = Tab {
            session: Session::new(),
            member: MemberId(0),
            rng: Xoshiro256::seeded(1),
        };
        tab.connect(room);
        tab.session.take_redraw();
        tab
    }

    fn connect(&mut self, room: &mut Room) -> Vec<Notice> {
        let ClientMsg::Hello(hello) = self.session.hello(
            RoomId::new("room").unwrap(),
            Token::new("t").unwrap(),
            Name::new("Ada").unwrap(),
            Color::rgb(1, 2, 3),
        ) else {
            panic!("hello expected")
        };
        let (member, welcome) = room.welcome(hello.resume);
        self.member = member;
        let notices = self.session.receive(welcome, &mut self.rng);
        assert!(matches!(notices[0], Notice::Welcomed { .. }));
        notices
    }

    /// Sends everything unsent; returns the ops as the room received them (unsequenced).
    fn flush(&mut self) -> Vec<Op> {
        let mut ops = Vec::new();
        while let Some(ClientMsg::Op(op)) = self.session.next_op() {
            ops.push(op);
        }
        ops
    }

    fn recv(&mut self, msg: ServerMsg) -> Vec<Notice> {
        self.session.receive(msg, &mut self.rng)
    }
}

fn pt(x: i32) -> Point {
    Point::new(x * 8, x * 8, 128).unwrap()
}

fn begin(n: u128) -> Op {
    Op::StrokeBegin {
        id: stroke_id_from(n),
        tool: Tool::Pen,
        color: Color::rgb(0, 0, 0),
        width: Width::from_px(2.0),
        first: pt(0),
    }
}

fn points(n: u128, start: u32, xs: &[i32]) -> Op {
    let batch = Points::new(xs.iter().map(|&x| pt(x)).collect()).unwrap();
    Op::StrokePoints(StrokePoints::new(stroke_id_from(n), start, batch).unwrap())
}

fn end(n: u128) -> Op {
    Op::StrokeEnd {
        id: stroke_id_from(n),
    }
}

/// The same strokes, in the same order (positions aside: the view has none of its own).
fn assert_same(a: &Board, b: &Board) {
    let sa: Vec<_> = a.all_strokes().collect();
    let sb: Vec<_> = b.all_strokes().collect();
    assert_eq!(sa, sb);
}

fn ids(b: &Board) -> Vec<StrokeId> {
    b.strokes().map(|s| s.id).collect()
}

/// Sends what a tab has, delivering acks to it and ops to the others, in room order.
fn deliver(room: &mut Room, from: &mut Tab, others: &mut [&mut Tab]) {
    for op in from.flush() {
        let (ack, relay) = room.submit(from.member, op);
        assert!(from.recv(ack).is_empty());
        for o in others.iter_mut() {
            o.recv(relay.clone());
        }
    }
}

#[test]
fn own_ink_shows_at_once_and_is_confirmed_by_its_ack() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room);
    let mut bob = Tab::join(&mut room);
    ada.session.local(begin(1));
    assert_eq!(ids(ada.session.view()), vec![stroke_id_from(1)]);
    assert!(ada.session.confirmed().is_empty());
    assert!(matches!(ada.session.take_redraw(), Redraw::Changes(c) if c.len() == 1));
    deliver(&mut room, &mut ada, &mut [&mut bob]);
    assert_eq!(ids(ada.session.confirmed()), vec![stroke_id_from(1)]);
    assert_eq!(ids(bob.session.view()), vec![stroke_id_from(1)]);
    assert_eq!(ada.session.outstanding(), 0);
    // Nothing had to be redrawn wholesale.
    assert_eq!(ada.session.take_redraw(), Redraw::Nothing);
    assert_same(ada.session.view(), ada.session.confirmed());
}

#[test]
fn point_batches_of_one_frame_go_out_as_one_op() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room);
    ada.session.local(begin(1));
    ada.session.local(points(1, 1, &[1, 2]));
    ada.session.local(points(1, 3, &[3]));
    ada.session.local(points(1, 4, &[4, 5]));
    let ops = ada.flush();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[1], points(1, 1, &[1, 2, 3, 4, 5]));
    // After the frame is out, new points start a new batch.
    ada.session.local(points(1, 6, &[6]));
    assert_eq!(ada.flush(), vec![points(1, 6, &[6])]);
}

#[test]
fn the_room_order_wins_when_two_strokes_start_together() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room);
    let mut bob = Tab::join(&mut room);
    ada.session.local(begin(1));
    bob.session.local(begin(2));
    // Bob's reaches the room first.
    let bob_op = bob.flush().remove(0);
    let (bob_ack, bob_relay) = room.submit(bob.member, bob_op);
    let ada_op = ada.flush().remove(0);
    let (ada_ack, ada_relay) = room.submit(ada.member, ada_op);
    bob.recv(bob_ack);
    bob.recv(ada_relay);
    ada.recv(bob_relay);
    // Until her ack, Ada sees her stroke below Bob's (she drew first)...
    assert_eq!(
        ids(ada.session.view()),
        vec![stroke_id_from(1), stroke_id_from(2)]
    );
    ada.session.take_redraw();
    ada.recv(ada_ack);
    // ...then the room's order.
    assert_eq!(ada.session.take_redraw(), Redraw::All);
    assert_eq!(ids(ada.session.view()), ids(&room.board));
    assert_eq!(ids(bob.session.view()), ids(&room.board));
}

#[test]
fn a_clear_sequenced_before_our_stroke_does_not_take_it_away() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room);
    let mut bob = Tab::join(&mut room);
    bob.session.local(begin(9));
    deliver(&mut room, &mut bob, &mut [&mut ada]);
    ada.session.local(begin(1));
    ada.session.local(points(1, 1, &[1]));
    let (_, clear) = room.submit(bob.member, Op::Clear);
    ada.recv(clear);
    // The clear came first in the room, so Ada's stroke survives it, and stays on screen.
    assert_eq!(ids(ada.session.view()), vec![stroke_id_from(1)]);
    ada.session.local(points(1, 2, &[2]));
    deliver(&mut room, &mut ada, &mut []);
    assert_same(ada.session.view(), ada.session.confirmed());
    assert_eq!(room.board.get(&stroke_id_from(1)).unwrap().points.len(), 3);
}

#[test]
fn a_refused_op_leaves_the_view() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room);
    ada.session.local(begin(1));
    ada.flush();
    let notices = ada.recv(ServerMsg::Error(ErrorFrame::new(
        ErrorCode::TemporarilyReadOnly,
        "read-only",
    )));
    assert!(matches!(&notices[..], [Notice::Toast(_)]));
    assert!(ada.session.view().is_empty());
    assert_eq!(ada.session.outstanding(), 0);
}

#[test]
fn losing_a_race_to_erase_the_same_stroke_is_silent_and_leaves_it_erased() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room);
    let mut bob = Tab::join(&mut room);
    ada.session.local(begin(1));
    ada.session.local(end(1));
    deliver(&mut room, &mut ada, &mut [&mut bob]);
    let erase = Op::Erase {
        ids: kokuban_protocol::Bounded::new(vec![stroke_id_from(1)]).unwrap(),
    };
    // Both erase it at once; Ada's reaches the room first.
    ada.session.local(erase.clone());
    bob.session.local(erase);
    assert!(bob.session.view().is_empty());
    let bobs = bob.flush();
    assert_eq!(bobs.len(), 1);
    deliver(&mut room, &mut ada, &mut [&mut bob]);
    // The room refuses Bob's erase, which would change nothing now: no message for Bob.
    let notices = bob.recv(ServerMsg::Error(ErrorFrame::new(
        ErrorCode::InvalidOp,
        "nothing to erase",
    )));
    assert_eq!(notices, Vec::new());
    assert_eq!(bob.session.outstanding(), 0);
    assert!(bob.session.view().is_empty());
    assert_same(bob.session.view(), bob.session.confirmed());
}

#[test]
fn rate_limits_gaps_and_unknown_acks_resync() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room);
    let n = ada.recv(ServerMsg::Error(ErrorFrame::new(
        ErrorCode::RateLimited,
        "slow",
    )));
    assert!(n.contains(&Notice::Resync));
    assert_eq!(
        ada.recv(ServerMsg::Ack(Ack {
            epoch: ROOM_EPOCH,
            seq: Seq(1)
        })),
        vec![Notice::Resync]
    );
    room.submit(MemberId(5), begin(1));
    let (_, second) = room.submit(MemberId(5), begin(2));
    assert_eq!(ada.recv(second), vec![Notice::Resync]);
    assert_eq!(
        ada.recv(ServerMsg::Error(ErrorFrame::new(
            ErrorCode::Forbidden,
            "no"
        ))),
        vec![Notice::Fatal(
            "This board does not exist, or the link is not valid.".into()
        )]
    );
}

#[test]
fn strokes_drawn_offline_are_sent_after_reconnecting() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room);
    let mut bob = Tab::join(&mut room);
    ada.session.disconnected();
    ada.session.local(begin(1));
    ada.session.local(points(1, 1, &[1, 2, 3]));
    ada.session.local(end(1));
    // Offline: nothing goes out, the stroke is on screen.
    assert!(ada.flush().is_empty());
    assert_eq!(ada.session.view().len(), 1);
    // Meanwhile Bob draws.
    bob.session.local(begin(2));
    deliver(&mut room, &mut bob, &mut []);
    ada.connect(&mut room);
    assert_eq!(ada.session.view().len(), 2);
    deliver(&mut room, &mut ada, &mut [&mut bob]);
    assert_same(ada.session.view(), ada.session.confirmed());
    assert_eq!(ids(&room.board), vec![stroke_id_from(2), stroke_id_from(1)]);
    assert_eq!(room.board.get(&stroke_id_from(1)).unwrap().points.len(), 4);
    assert_eq!(ids(bob.session.view()), ids(&room.board));
}

#[test]
fn in_doubt_ops_the_room_has_are_not_sent_twice() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room);
    ada.session.local(begin(1));
    ada.session.local(end(1));
    ada.session.local(Op::Clear);
    // The room sequenced the first two; the connection died before the acks.
    let ops = ada.flush();
    assert_eq!(ops.len(), 3);
    room.submit(ada.member, ops[0].clone());
    room.submit(ada.member, ops[1].clone());
    ada.session.disconnected();
    ada.connect(&mut room);
    assert_eq!(ada.flush(), vec![Op::Clear]);
}

#[test]
fn a_stroke_cut_by_a_disconnect_is_replaced_by_a_whole_copy() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room);
    let mut bob = Tab::join(&mut room);
    ada.session.local(begin(1));
    ada.session.local(points(1, 1, &[1, 2]));
    deliver(&mut room, &mut ada, &mut [&mut bob]);
    // The connection drops mid-stroke; Ada keeps drawing, then lifts the pen.
    ada.session.disconnected();
    ada.session.local(points(1, 3, &[3, 4]));
    let notices = ada.connect(&mut room);
    let Some(Notice::Renamed { from, to }) = notices
        .iter()
        .find(|n| matches!(n, Notice::Renamed { .. }))
        .cloned()
    else {
        panic!("expected a rename: {notices:?}")
    };
    assert_eq!(from, stroke_id_from(1));
    // The pen is still down: its next points follow the new id.
    ada.session.local(points(1, 5, &[5]));
    ada.session.local(end(1));
    deliver(&mut room, &mut ada, &mut [&mut bob]);
    assert_eq!(ids(&room.board), vec![to]);
    let s = room.board.get(&to).unwrap();
    assert_eq!((s.points.len(), s.finished), (6, true));
    assert!(room.board.get(&from).unwrap().erased);
    assert_same(ada.session.view(), ada.session.confirmed());
    assert_eq!(ids(bob.session.view()), vec![to]);
    assert!(ada.session.is_mine(&to));
}

#[test]
fn a_new_epoch_replaces_the_board_and_keeps_what_we_drew() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room);
    ada.session.local(begin(1));
    deliver(&mut room, &mut ada, &mut []);
    ada.session.disconnected();
    ada.session.local(begin(2));
    // The room lost its history and starts over.
    let mut fresh = Room::new();
    fresh.board = Board::at_start_of(Epoch(8));
    let (member, _) = fresh.welcome(None);
    ada.member = member;
    let ClientMsg::Hello(hello) = ada.session.hello(
        RoomId::new("room").unwrap(),
        Token::new("t").unwrap(),
        Name::new("Ada").unwrap(),
        Color::rgb(1, 2, 3),
    ) else {
        panic!()
    };
    assert_eq!(hello.resume.unwrap().seq, Seq(1));
    ada.recv(ServerMsg::Welcome(Welcome {
        member,
        capability: Capability::Edit,
        epoch: Epoch(8),
        state: RoomState::Snapshot {
            board: Bytes(Board::at_start_of(Epoch(8)).snapshot()),
            ops: Vec::new().into(),
        },
        members: Vec::new().into(),
    }));
    assert_eq!(ids(ada.session.view()), vec![stroke_id_from(2)]);
    assert_eq!(ada.session.take_redraw(), Redraw::All);
    assert_eq!(ada.flush(), vec![begin(2)]);
}

#[test]
fn a_view_only_tab_cannot_draw() {
    let mut s = Session::new();
    let mut rng = Xoshiro256::seeded(3);
    s.receive(
        ServerMsg::Welcome(Welcome {
            member: MemberId(3),
            capability: Capability::View,
            epoch: ROOM_EPOCH,
            state: RoomState::Snapshot {
                board: Bytes(Board::at_start_of(ROOM_EPOCH).snapshot()),
                ops: Vec::new().into(),
            },
            members: Vec::new().into(),
        }),
        &mut rng,
    );
    assert!(!s.local(begin(1)));
    assert!(s.view().is_empty());
    assert!(s.next_op().is_none());
}

#[test]
fn ops_in_flight_across_a_history_reset_on_a_live_connection_are_still_acknowledged() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room);
    ada.session.local(begin(1));
    assert_eq!(ada.flush(), vec![begin(1)]);
    // The room's history is replaced while begin(1) is on the wire: the server queues a new
    // Welcome (same member, new epoch), then answers begin(1) in the new epoch.
    let epoch = Epoch(8);
    let notices = ada.recv(ServerMsg::Welcome(Welcome {
        member: ada.member,
        capability: Capability::Edit,
        epoch,
        state: RoomState::Snapshot {
            board: Bytes(Board::at_start_of(epoch).snapshot()),
            ops: Vec::new().into(),
        },
        members: Vec::new().into(),
    }));
    assert!(!notices.contains(&Notice::Resync));
    assert_eq!(ids(ada.session.view()), vec![stroke_id_from(1)]);
    assert!(ada.flush().is_empty(), "begin(1) is not sent twice");
    let notices = ada.recv(ServerMsg::Ack(Ack { epoch, seq: Seq(1) }));
    assert!(notices.is_empty(), "{notices:?}");
    assert_eq!(ids(&ada.session.confirmed), vec![stroke_id_from(1)]);
}
