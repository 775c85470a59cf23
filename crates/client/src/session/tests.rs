//! The session against a simulated room (`sim.rs`): a board that sequences ops in arrival
//! order and numbers them per author, as the server does.

use kokuban_protocol::{
    Ack, Bounded, Bytes, Epoch, ErrorCode, ErrorFrame, Point, Points, RoomState, Seq, StrokePoints,
    Tool, Welcome, Width,
};

use super::sim::{ROOM_EPOCH, Room};
use super::*;
use crate::outbox;
use crate::rng::{Xoshiro256, stroke_id_from};

/// A tab: its session and its current member id.
pub(super) struct Tab {
    pub session: Session,
    pub member: MemberId,
    pub rng: Xoshiro256,
}

impl Tab {
    pub fn new(key: u8) -> Tab {
        Tab::restored(Outbox::new(ClientKey([key; 16])))
    }

    pub fn restored(outbox: Outbox) -> Tab {
        Tab {
            session: Session::restore(outbox),
            member: MemberId(0),
            rng: Xoshiro256::seeded(1),
        }
    }

    fn join(room: &mut Room, key: u8) -> Tab {
        let mut tab = Tab::new(key);
        tab.connect(room);
        tab.session.take_redraw();
        tab
    }

    fn key(&self) -> ClientKey {
        self.session.key()
    }

    pub fn hello(&mut self) -> Hello {
        let ClientMsg::Hello(hello) = self.session.hello(
            RoomId::new("room").unwrap(),
            Token::new("t").unwrap(),
            Name::new("Ada").unwrap(),
            Color::rgb(1, 2, 3),
        ) else {
            panic!("hello expected")
        };
        hello
    }

    /// Connects and reads the Welcome: a replay of what it missed where possible.
    fn connect(&mut self, room: &mut Room) -> Vec<Notice> {
        self.connect_with(room, false)
    }

    fn connect_with(&mut self, room: &mut Room, snapshot: bool) -> Vec<Notice> {
        let hello = self.hello();
        let (member, welcome) = room.welcome(&hello, snapshot);
        self.member = member;
        let notices = self.recv(welcome);
        assert!(matches!(notices[0], Notice::Welcomed { .. }), "{notices:?}");
        notices
    }

    /// Takes everything the session would send now.
    pub fn flush(&mut self) -> Vec<Submit> {
        let mut ops = Vec::new();
        while let Some(msg) = self.session.next_op() {
            let ClientMsg::Op(submit) = msg else {
                panic!("an op expected")
            };
            ops.push(submit);
        }
        ops
    }

    pub fn recv(&mut self, msg: ServerMsg) -> Vec<Notice> {
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

fn erase(n: u128) -> Op {
    Op::Erase {
        ids: Bounded::new(vec![stroke_id_from(n)]).unwrap(),
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

fn numbers(sent: &[Submit]) -> Vec<u64> {
    sent.iter().map(|s| s.n).collect()
}

fn toasts(notices: &[Notice]) -> usize {
    notices
        .iter()
        .filter(|n| matches!(n, Notice::Toast(_)))
        .count()
}

/// Sends what a tab has, delivering its answers to it and the ops to the others, until it
/// has nothing more to send; returns the tab's notices.
fn deliver(room: &mut Room, from: &mut Tab, others: &mut [&mut Tab]) -> Vec<Notice> {
    let mut notices = Vec::new();
    loop {
        let sent = from.flush();
        if sent.is_empty() {
            return notices;
        }
        for s in sent {
            let (answer, relay) = room.submit(from.key(), s);
            notices.extend(from.recv(answer));
            for o in others.iter_mut() {
                if relay.is_some()
                    && let Some(live) = &room.live
                {
                    o.recv(live.clone());
                }
            }
        }
    }
}

#[test]
fn own_ink_shows_at_once_and_is_confirmed_by_its_ack() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    let mut bob = Tab::join(&mut room, 2);
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
fn point_batches_of_one_frame_go_out_as_one_op_under_one_number() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    ada.session.local(begin(1));
    ada.session.local(points(1, 1, &[1, 2]));
    ada.session.local(points(1, 3, &[3]));
    ada.session.local(points(1, 4, &[4, 5]));
    let sent = ada.flush();
    assert_eq!(numbers(&sent), [1, 2]);
    assert_eq!(sent[1].op, points(1, 1, &[1, 2, 3, 4, 5]));
    // After the frame is out, new points start a new batch, under the next number.
    ada.session.local(points(1, 6, &[6]));
    assert_eq!(
        ada.flush(),
        [Submit {
            n: 3,
            op: points(1, 6, &[6])
        }]
    );
}

#[test]
fn the_room_order_wins_when_two_strokes_start_together() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    let mut bob = Tab::join(&mut room, 2);
    ada.session.local(begin(1));
    bob.session.local(begin(2));
    // Bob's reaches the room first.
    let bob_op = bob.flush().remove(0);
    let (bob_ack, bob_relay) = room.submit(bob.key(), bob_op);
    let ada_op = ada.flush().remove(0);
    let (ada_ack, ada_relay) = room.submit(ada.key(), ada_op);
    bob.recv(bob_ack);
    bob.recv(ServerMsg::Op(ada_relay.unwrap()));
    ada.recv(ServerMsg::Op(bob_relay.unwrap()));
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
    let mut ada = Tab::join(&mut room, 1);
    let mut bob = Tab::join(&mut room, 2);
    bob.session.local(begin(9));
    deliver(&mut room, &mut bob, &mut [&mut ada]);
    ada.session.local(begin(1));
    ada.session.local(points(1, 1, &[1]));
    bob.session.local(Op::Clear);
    deliver(&mut room, &mut bob, &mut [&mut ada]);
    // The clear came first in the room, so Ada's stroke survives it, and stays on screen.
    assert_eq!(ids(ada.session.view()), vec![stroke_id_from(1)]);
    ada.session.local(points(1, 2, &[2]));
    deliver(&mut room, &mut ada, &mut []);
    assert_same(ada.session.view(), ada.session.confirmed());
    assert_eq!(room.board.get(&stroke_id_from(1)).unwrap().points.len(), 3);
}

#[test]
fn losing_a_race_to_erase_the_same_stroke_is_silent_and_leaves_it_erased() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    let mut bob = Tab::join(&mut room, 2);
    ada.session.local(begin(1));
    ada.session.local(end(1));
    deliver(&mut room, &mut ada, &mut [&mut bob]);
    // Both erase it at once; Ada's reaches the room first.
    ada.session.local(erase(1));
    bob.session.local(erase(1));
    assert!(bob.session.view().is_empty());
    assert_eq!(bob.flush().len(), 1);
    deliver(&mut room, &mut ada, &mut [&mut bob]);
    // The server refuses Bob's erase, which would change nothing now: no message for Bob.
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
    let mut ada = Tab::join(&mut room, 1);
    let mut bob = Tab::join(&mut room, 2);
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
    bob.session.local(begin(1));
    bob.session.local(begin(2));
    let sent = bob.flush();
    room.submit(bob.key(), sent[0].clone());
    let (_, second) = room.submit(bob.key(), sent[1].clone());
    assert_eq!(
        ada.recv(ServerMsg::Op(second.unwrap())),
        vec![Notice::Resync]
    );
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
    let mut ada = Tab::join(&mut room, 1);
    let mut bob = Tab::join(&mut room, 2);
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
fn after_a_reconnect_decided_ops_are_dropped_and_the_rest_resent_under_their_numbers() {
    for snapshot in [false, true] {
        let mut room = Room::new();
        let mut ada = Tab::join(&mut room, 1);
        ada.session.local(begin(1));
        ada.session.local(end(1));
        ada.session.local(begin(2));
        let sent = ada.flush();
        assert_eq!(numbers(&sent), [1, 2, 3]);
        // The room applied the first two; the connection died before any answer came back.
        room.submit(ada.key(), sent[0].clone());
        room.submit(ada.key(), sent[1].clone());
        ada.session.disconnected();
        ada.session.local(end(2));
        ada.connect_with(&mut room, snapshot);
        // Numbers up to `decided` (2) are settled; 3 goes out again as 3, then the new op.
        let resent = ada.flush();
        assert_eq!(
            resent,
            [Submit { n: 3, op: begin(2) }, Submit { n: 4, op: end(2) }],
            "snapshot: {snapshot}"
        );
        for s in resent {
            let (answer, _) = room.submit(ada.key(), s);
            ada.recv(answer);
        }
        assert_eq!(ids(&room.board), vec![stroke_id_from(1), stroke_id_from(2)]);
        assert_eq!(room.applied.len(), 4);
        assert_same(ada.session.view(), ada.session.confirmed());
        assert_eq!(ada.session.outstanding(), 0);
    }
}

/// Issue 12, first measurement: a Clear whose Ack was lost, then someone's new stroke.
#[test]
fn a_clear_decided_before_a_reconnect_never_reaches_the_wire_again() {
    for snapshot in [true, false] {
        let mut room = Room::new();
        let mut ada = Tab::join(&mut room, 1);
        let mut bob = Tab::join(&mut room, 2);
        bob.session.local(begin(9));
        deliver(&mut room, &mut bob, &mut [&mut ada]);
        ada.session.local(Op::Clear);
        let clear = ada.flush().remove(0);
        // The room applies Ada's Clear; her connection dies before she reads the Ack.
        let (_, relay) = room.submit(ada.key(), clear);
        bob.recv(ServerMsg::Op(relay.unwrap()));
        ada.session.disconnected();
        // Bob draws and gets his Ack.
        bob.session.local(begin(2));
        bob.session.local(end(2));
        deliver(&mut room, &mut bob, &mut []);
        // Ada comes back from before the Clear.
        ada.connect_with(&mut room, snapshot);
        assert_eq!(ada.flush(), [], "snapshot: {snapshot}");
        assert_eq!(ada.session.outstanding(), 0);
        assert_eq!(ids(&room.board), vec![stroke_id_from(2)]);
        assert_eq!(ids(ada.session.view()), vec![stroke_id_from(2)]);
        assert_eq!(ids(bob.session.view()), vec![stroke_id_from(2)]);
    }
}

#[test]
fn a_stroke_begun_before_a_reconnect_goes_on_after_it() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    let mut bob = Tab::join(&mut room, 2);
    ada.session.local(begin(1));
    ada.session.local(points(1, 1, &[1, 2]));
    deliver(&mut room, &mut ada, &mut [&mut bob]);
    // The connection drops mid-stroke; Ada keeps drawing, then lifts the pen.
    ada.session.disconnected();
    ada.session.local(points(1, 3, &[3, 4]));
    let notices = ada.connect(&mut room);
    assert!(
        !notices.iter().any(|n| matches!(n, Notice::Renamed { .. })),
        "{notices:?}"
    );
    ada.session.local(end(1));
    deliver(&mut room, &mut ada, &mut [&mut bob]);
    assert_eq!(ids(&room.board), vec![stroke_id_from(1)]);
    let s = room.board.get(&stroke_id_from(1)).unwrap();
    assert_eq!((s.points.len(), s.finished), (5, true));
    assert_same(ada.session.view(), ada.session.confirmed());
    assert_eq!(ids(bob.session.view()), vec![stroke_id_from(1)]);
}

/// Issue 12, second measurement: the store pauses while a stroke is drawn.
#[test]
fn a_stroke_the_room_took_in_part_is_sent_whole_under_a_new_id_once_it_takes_writes() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    let mut bob = Tab::join(&mut room, 2);
    // One op per frame.
    let mut sent = Vec::new();
    for op in [
        begin(1),
        points(1, 1, &[1, 2]),
        points(1, 3, &[3, 4]),
        end(1),
    ] {
        ada.session.local(op);
        sent.extend(ada.flush());
    }
    assert_eq!(numbers(&sent), [1, 2, 3, 4]);
    // The begin is taken, the first batch refused, then the store is back: the second batch
    // (a gap the board ignores) and the end are taken.
    let mut notices = Vec::new();
    for (i, s) in sent.into_iter().enumerate() {
        room.read_only = i == 1;
        let (answer, relay) = room.submit(ada.key(), s);
        if let Some(r) = relay {
            bob.recv(ServerMsg::Op(r));
        }
        notices.extend(ada.recv(answer));
    }
    assert_eq!(room.board.get(&stroke_id_from(1)).unwrap().points.len(), 1);
    // Told once, and the status ended with the next Ack.
    assert_eq!(toasts(&notices), 1, "{notices:?}");
    assert_eq!(
        notices
            .iter()
            .filter(|n| matches!(n, Notice::ReadOnly(_)))
            .collect::<Vec<_>>(),
        [&Notice::ReadOnly(true), &Notice::ReadOnly(false)]
    );
    assert!(!ada.session.writes_refused());
    // Ada's tab never stopped showing the whole stroke.
    let to = match notices.iter().find(|n| matches!(n, Notice::Renamed { .. })) {
        Some(Notice::Renamed { from, to }) if *from == stroke_id_from(1) => *to,
        _ => panic!("expected a rename of the stroke: {notices:?}"),
    };
    assert_eq!(ada.session.view().get(&to).unwrap().points.len(), 5);
    let resent = ada.flush();
    assert!(numbers(&resent).iter().all(|&n| n > 4), "{resent:?}");
    assert_eq!(
        resent.last().map(|s| &s.op),
        Some(&erase(1)),
        "the part goes after the whole is in"
    );
    for s in resent {
        let (answer, relay) = room.submit(ada.key(), s);
        bob.recv(ServerMsg::Op(relay.unwrap()));
        ada.recv(answer);
    }
    let s = room.board.get(&to).unwrap();
    assert_eq!((s.points.len(), s.finished), (5, true));
    assert_eq!(ids(&room.board), vec![to]);
    assert_eq!(ids(bob.session.view()), vec![to]);
    assert_same(ada.session.view(), ada.session.confirmed());
    assert_eq!(ada.session.outstanding(), 0);
    // Later local ops on the old id (the undo of the stroke) go to the new one.
    assert_eq!(ada.session.current_id(stroke_id_from(1)), to);
}

#[test]
fn while_the_room_refuses_writes_one_op_goes_out_at_a_time_and_one_toast_says_so() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    room.read_only = true;
    for n in 1..=3 {
        ada.session.local(begin(n));
        ada.session.local(end(n));
    }
    let mut notices = deliver(&mut room, &mut ada, &mut []);
    assert_eq!(toasts(&notices), 1, "{notices:?}");
    assert!(ada.session.writes_refused());
    // Everything drawn stays on screen, and nothing goes out until a retry is due.
    assert_eq!(ada.session.view().len(), 3);
    assert!(ada.flush().is_empty());
    for _ in 0..2 {
        ada.session.retry_writes(&mut ada.rng);
        let probe = ada.flush();
        assert_eq!(probe.len(), 1, "one op at a time: {probe:?}");
        let (answer, _) = room.submit(ada.key(), probe[0].clone());
        notices.extend(ada.recv(answer));
    }
    assert_eq!(toasts(&notices), 1, "still one outage: {notices:?}");
    room.read_only = false;
    ada.session.retry_writes(&mut ada.rng);
    notices.extend(deliver(&mut room, &mut ada, &mut []));
    assert_eq!(notices.last(), Some(&Notice::ReadOnly(false)));
    assert!(!ada.session.writes_refused());
    assert_eq!(room.board.len(), 3);
    assert!(room.board.strokes().all(|s| s.finished));
    assert_same(ada.session.view(), ada.session.confirmed());
    assert_eq!(ada.session.outstanding(), 0);
}

#[test]
fn a_refused_clear_is_dropped_with_a_message_and_never_sent_later() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    let mut bob = Tab::join(&mut room, 2);
    bob.session.local(begin(9));
    deliver(&mut room, &mut bob, &mut [&mut ada]);
    room.read_only = true;
    ada.session.local(Op::Clear);
    assert!(ada.session.view().is_empty());
    let notices = deliver(&mut room, &mut ada, &mut []);
    assert!(
        notices.contains(&Notice::Toast(CLEAR_REFUSED_TOAST.into())),
        "{notices:?}"
    );
    // The board comes back on screen, and the Clear is gone for good.
    assert_eq!(ids(ada.session.view()), vec![stroke_id_from(9)]);
    room.read_only = false;
    ada.session.retry_writes(&mut ada.rng);
    assert_eq!(ada.flush(), []);
    assert_eq!(ids(&room.board), vec![stroke_id_from(9)]);
}

#[test]
fn a_repeat_decided_long_ago_is_forgotten_quietly() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    ada.session.local(begin(1));
    let sent = ada.flush();
    // The op was applied (Ada received it among the room's ops), and its own answer says it
    // was decided long ago.
    let (_, relay) = room.submit(ada.key(), sent[0].clone());
    assert!(ada.recv(ServerMsg::Op(relay.unwrap())).is_empty());
    let notices = ada.recv(ServerMsg::Error(ErrorFrame::new(
        ErrorCode::Decided,
        "decided",
    )));
    assert_eq!(notices, []);
    assert_eq!(ada.session.outstanding(), 0);
    assert_eq!(ids(ada.session.view()), vec![stroke_id_from(1)]);
    assert_eq!(ada.flush(), []);
}

#[test]
fn a_refusal_lost_with_the_connection_is_found_out_and_made_good() {
    for snapshot in [false, true] {
        let mut room = Room::new();
        let mut ada = Tab::join(&mut room, 1);
        for op in [begin(1), points(1, 1, &[1, 2]), end(1)] {
            ada.session.local(op);
        }
        let sent = ada.flush();
        // Taken, refused, taken; Ada reads none of the answers.
        for (i, s) in sent.into_iter().enumerate() {
            room.read_only = i == 1;
            room.submit(ada.key(), s);
        }
        room.read_only = false;
        ada.session.disconnected();
        let notices = ada.connect_with(&mut room, snapshot);
        let to = match notices.iter().find(|n| matches!(n, Notice::Renamed { .. })) {
            Some(Notice::Renamed { to, .. }) => *to,
            _ => panic!("expected a rename ({snapshot}): {notices:?}"),
        };
        deliver(&mut room, &mut ada, &mut []);
        assert_eq!(ids(&room.board), vec![to], "snapshot: {snapshot}");
        assert_eq!(room.board.get(&to).unwrap().points.len(), 3);
        assert_same(ada.session.view(), ada.session.confirmed());
    }
}

#[test]
fn ops_in_flight_across_a_history_reset_on_a_live_connection_are_still_acknowledged() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    ada.session.local(begin(1));
    let sent = ada.flush();
    assert_eq!(sent.len(), 1);
    // The room's history is replaced while begin(1) is on the wire: the server queues a new
    // Welcome (same member, new epoch), then answers begin(1) in the new epoch.
    room.reset_history(Epoch(8));
    let notices = ada.recv(room.rewelcome(ada.member, ada.key()));
    assert!(!notices.contains(&Notice::Resync));
    assert_eq!(ids(ada.session.view()), vec![stroke_id_from(1)]);
    assert!(ada.flush().is_empty(), "begin(1) is not sent twice");
    let (answer, _) = room.submit(ada.key(), sent[0].clone());
    let notices = ada.recv(answer);
    assert!(notices.is_empty(), "{notices:?}");
    assert_eq!(ids(&ada.session.confirmed), vec![stroke_id_from(1)]);
}

#[test]
fn ops_a_new_history_lost_are_sent_again_after_its_welcome() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    for op in [begin(1), points(1, 1, &[1, 2]), end(1)] {
        ada.session.local(op);
    }
    let sent = ada.flush();
    // The begin is taken; then the room loses its store and starts a new history from the
    // board it held, refusing the two ops it does not hold, before its Welcome.
    let (answer, _) = room.submit(ada.key(), sent[0].clone());
    let mut notices = ada.recv(answer);
    room.reset_history(Epoch(8));
    for _ in 0..2 {
        notices.extend(ada.recv(ServerMsg::Error(ErrorFrame::new(
            ErrorCode::TemporarilyReadOnly,
            "lost",
        ))));
    }
    notices.extend(ada.recv(room.rewelcome(ada.member, ada.key())));
    assert_eq!(toasts(&notices), 1);
    deliver(&mut room, &mut ada, &mut []);
    let strokes: Vec<_> = room.board.strokes().collect();
    assert_eq!(strokes.len(), 1);
    assert_eq!((strokes[0].points.len(), strokes[0].finished), (3, true));
    assert_same(ada.session.view(), ada.session.confirmed());
    assert!(!ada.session.writes_refused());
}

#[test]
fn a_view_only_tab_cannot_draw() {
    let mut s = Session::new(ClientKey([3; 16]));
    let mut rng = Xoshiro256::seeded(3);
    s.receive(
        ServerMsg::Welcome(Welcome {
            member: MemberId(3),
            author: MemberId(3),
            capability: Capability::View,
            epoch: ROOM_EPOCH,
            state: RoomState::Snapshot {
                board: Bytes(Board::at_start_of(ROOM_EPOCH).snapshot()),
                ops: Vec::new().into(),
            },
            members: Vec::new().into(),
            decided: 0,
        }),
        &mut rng,
    );
    assert!(!s.local(begin(1)));
    assert!(s.view().is_empty());
    assert!(s.next_op().is_none());
}

/// Issue 12, third measurement: strokes drawn while the node was down, then the tab closed.
#[test]
fn the_outbox_of_a_closed_tab_is_sent_by_the_next_one_under_its_key_and_numbers() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    ada.session.local(begin(1));
    ada.session.local(end(1));
    let sent = ada.flush();
    // The begin reaches the room; the node goes down before the end does, or any answer.
    room.submit(ada.key(), sent[0].clone());
    ada.session.disconnected();
    ada.session.local(begin(2));
    ada.session.local(points(2, 1, &[5]));
    // The tab is closed; the next one reads what it kept.
    let text = outbox::encode(&ada.session.outbox(), "tab-a", 0.0);
    drop(ada);
    let kept = outbox::decode(&text).unwrap().outbox;
    let mut next = Tab::restored(kept);
    assert_eq!(next.session.view().len(), 2, "shown before any connection");
    next.connect(&mut room);
    let resent = next.flush();
    assert_eq!(
        resent,
        [
            Submit { n: 2, op: end(1) },
            Submit { n: 3, op: begin(2) },
            Submit {
                n: 4,
                op: points(2, 1, &[5])
            },
        ]
    );
    for s in resent {
        let (answer, _) = room.submit(next.key(), s);
        next.recv(answer);
    }
    assert_eq!(ids(&room.board), vec![stroke_id_from(1), stroke_id_from(2)]);
    // One author throughout: the stroke begun in the first tab was finished by the second.
    assert!(room.board.get(&stroke_id_from(1)).unwrap().finished);
    assert_eq!(room.applied.len(), 4);
    assert_same(next.session.view(), next.session.confirmed());
}

#[test]
fn a_stroke_a_snapshot_lacks_after_its_answer_was_lost_is_given_up_and_the_user_told() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    ada.session.local(begin(1));
    ada.session.local(end(1));
    let sent = ada.flush();
    // The store is down: both are refused, and the tab is closed before it reads why.
    room.read_only = true;
    for s in sent {
        room.submit(ada.key(), s);
    }
    room.read_only = false;
    let mut next = Tab::restored(ada.session.outbox());
    // The next tab has no position to resume from: its Welcome is a snapshot, which cannot
    // tell a refused stroke from one someone cleared since. Sending it again could undo a
    // Clear; it is given up, and said so.
    let notices = next.connect(&mut room);
    assert!(
        notices.contains(&Notice::Unconfirmed(vec![stroke_id_from(1)])),
        "{notices:?}"
    );
    assert!(next.session.view().is_empty());
    assert_eq!(next.flush(), []);
    assert_eq!(next.session.outstanding(), 0);
}

#[test]
fn a_large_board_sent_in_parts_is_put_together_and_half_a_board_is_never_used() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    for n in 1..=20 {
        ada.session.local(begin(n));
        ada.session.local(points(n, 1, &[1, 2, 3]));
        ada.session.local(end(n));
    }
    deliver(&mut room, &mut ada, &mut []);
    let snapshot = room.board.snapshot();
    let in_parts = |tab: &mut Tab, parts: &[u8]| {
        for chunk in parts.chunks(64) {
            assert_eq!(
                tab.recv(ServerMsg::BoardPart(Bytes(chunk.to_vec()))),
                [],
                "a part alone changes nothing"
            );
        }
    };
    let welcome = |member| Welcome {
        member,
        author: member,
        capability: Capability::Edit,
        epoch: ROOM_EPOCH,
        state: RoomState::InParts {
            ops: Vec::new().into(),
        },
        members: Vec::new().into(),
        decided: 0,
    };

    // A tab that lost its connection half way through the parts starts over with the next.
    let mut bob = Tab::new(2);
    bob.hello();
    in_parts(&mut bob, &snapshot[..snapshot.len() / 2]);
    bob.session.disconnected();
    bob.hello();
    in_parts(&mut bob, &snapshot);
    let notices = bob.recv(ServerMsg::Welcome(welcome(MemberId(9))));
    assert!(matches!(notices[0], Notice::Welcomed { .. }), "{notices:?}");
    assert_same(bob.session.view(), &room.board);
    assert_eq!(bob.session.view().len(), 20);
}

#[test]
fn a_change_the_full_board_refused_leaves_the_view_and_the_user_is_told() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    ada.session.local(begin(1));
    let sent = ada.flush();
    assert_eq!(sent.len(), 1);
    let notices = ada.recv(ServerMsg::Error(ErrorFrame::new(
        ErrorCode::BoardFull,
        "the board is full",
    )));
    assert_eq!(notices, [Notice::Toast(BOARD_FULL_TOAST.into())]);
    assert!(ada.session.view().is_empty());
    assert_eq!(ada.session.outstanding(), 0);
    // Never tried again.
    ada.session.retry_writes(&mut ada.rng);
    assert_eq!(ada.flush(), []);
}

#[test]
fn batches_relayed_by_handle_draw_like_the_ops_they_stand_for() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    let mut bob = Tab::join(&mut room, 2);
    ada.session.local(begin(1));
    deliver(&mut room, &mut ada, &mut [&mut bob]);
    for (start, xs) in [(1, [1, 2]), (3, [3, 4])] {
        ada.session.local(points(1, start, &xs));
        let sent = ada.flush();
        let (answer, _) = room.submit(ada.key(), sent[0].clone());
        ada.recv(answer);
        let live = room.live.clone().unwrap();
        assert!(matches!(live, ServerMsg::Points(_)), "{live:?}");
        assert!(bob.recv(live).is_empty());
    }
    assert_same(bob.session.confirmed(), &room.board);
    assert_eq!(bob.session.view().point_count(), 5);
    // A batch that does not follow bob's board (one op of the room missed) is not misread:
    // bob starts afresh from the room.
    ada.session.local(points(1, 5, &[5]));
    let (answer, _) = room.submit(ada.key(), ada.flush()[0].clone());
    ada.recv(answer);
    ada.session.local(points(1, 6, &[6]));
    room.submit(ada.key(), ada.flush()[0].clone());
    let skipped = room.live.clone().unwrap();
    assert_eq!(bob.recv(skipped), vec![Notice::Resync]);
}

#[test]
fn a_short_ack_settles_the_oldest_op_at_the_next_place_or_asks_for_the_room() {
    let mut room = Room::new();
    let mut ada = Tab::join(&mut room, 1);
    ada.session.local(begin(1));
    let sent = ada.flush();
    let (answer, _) = room.submit(ada.key(), sent[0].clone());
    let ServerMsg::Ack(ack) = answer else {
        panic!("{answer:?}")
    };
    assert!(ada.recv(ServerMsg::Acked(ack.seq.0 as u8)).is_empty());
    assert_eq!(ada.session.outstanding(), 0);
    assert_same(ada.session.confirmed(), &room.board);
    // An Ack for a place that is not the next one is not taken for it.
    ada.session.local(end(1));
    let sent = ada.flush();
    room.submit(ada.key(), sent[0].clone());
    assert_eq!(
        ada.recv(ServerMsg::Acked(ack.seq.0 as u8 + 2)),
        vec![Notice::Resync]
    );
}
