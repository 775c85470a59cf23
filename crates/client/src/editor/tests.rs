use kokuban_protocol::{
    Ack, Bytes, Capability, ClientKey, ClientMsg, Epoch, ErrorCode, ErrorFrame, MemberId, RoomId,
    RoomState, Seq, ServerMsg, Submit, Title, Token, Welcome, encode_server,
};

use super::*;
use crate::clipboard::Clip;
use crate::connection::Next;
use crate::link::RoomLink;
use crate::rng::Xoshiro256;

fn editor(edit: bool) -> Editor {
    let mut rng = Xoshiro256::seeded(9);
    let prefs = Prefs::load(|_| None, &mut rng, false);
    let token = Token::new("tok").unwrap();
    let link = RoomLink {
        room: RoomId::new("room").unwrap(),
        edit: edit.then(|| token.clone()),
        view: (!edit).then_some(token),
    };
    Editor::new(prefs, Some(link), [7; 32], Outbox::new(ClientKey([8; 16])))
}

fn welcome(e: &mut Editor, capability: Capability) {
    let msg = ServerMsg::Welcome(Welcome {
        member: MemberId(5),
        author: MemberId(6),
        capability,
        epoch: Epoch(1),
        state: RoomState::Snapshot {
            board: Bytes(Board::at_start_of(Epoch(1)).snapshot()),
            ops: Vec::new().into(),
        },
        members: Vec::new().into(),
        decided: 0,
    });
    assert!(hello(e).is_some());
    assert_eq!(e.receive(&encode_server(&msg), 0.0), None);
}

fn input(id: i32, x: f64, y: f64, kind: PointerKind, t: f64) -> Input {
    Input {
        id,
        screen: Pt::new(x, y),
        pressure: 0.5,
        kind,
        button: 0,
        time_ms: t,
        shift: false,
    }
}

thread_local! {
    /// The server's side of the connection's handles (see [`hello`]).
    static SERVER: std::cell::RefCell<Handles> = std::cell::RefCell::new(Handles::new());
}

/// The editor's Hello, on a new connection.
fn hello(e: &mut Editor) -> Option<Vec<u8>> {
    SERVER.with(|s| *s.borrow_mut() = Handles::new());
    e.hello()
}

/// The messages of `frames` as the server reads them (point batches by handle in full).
fn ops(frames: &[Vec<u8>]) -> Vec<ClientMsg> {
    SERVER.with(|s| {
        let mut server = s.borrow_mut();
        frames.iter().map(|f| server.decode(f).unwrap()).collect()
    })
}

#[test]
fn a_drag_draws_a_stroke_that_is_sent_once_welcomed() {
    let mut e = editor(true);
    e.pointer_down(input(1, 10.0, 10.0, PointerKind::Mouse, 0.0));
    e.pointer_move(&[
        input(1, 20.0, 10.0, PointerKind::Mouse, 8.0),
        input(1, 30.0, 12.0, PointerKind::Mouse, 12.0),
    ]);
    e.pointer_up(input(1, 40.0, 15.0, PointerKind::Mouse, 16.0));
    assert_eq!(e.board().len(), 1);
    // Not connected yet: nothing goes out, the stroke waits.
    assert!(e.outgoing(20.0).is_empty());
    welcome(&mut e, Capability::Edit);
    assert_eq!(e.status().name(), "connected");
    let sent = ops(&e.outgoing(30.0));
    assert!(matches!(
        sent[0],
        ClientMsg::Op(Submit {
            n: 1,
            op: Op::StrokeBegin { .. }
        })
    ));
    assert!(matches!(
        sent[1],
        ClientMsg::Op(Submit {
            n: 2,
            op: Op::StrokePoints(_)
        })
    ));
    assert!(matches!(
        sent[2],
        ClientMsg::Op(Submit {
            n: 3,
            op: Op::StrokeEnd { .. }
        })
    ));
    assert!(matches!(sent[3], ClientMsg::Cursor(Some(_))));
    assert!(
        matches!(sent[4], ClientMsg::Camera(_)),
        "what we look at, once"
    );
    assert_eq!(sent.len(), 5);
    for seq in 1..=3 {
        let ack = encode_server(&ServerMsg::Ack(Ack {
            epoch: Epoch(1),
            seq: Seq(seq),
        }));
        assert_eq!(e.receive(&ack, 40.0), None);
    }
    assert_eq!(e.session().outstanding(), 0);
    // Undo with the keyboard erases it.
    assert!(e.key_down("z", true, false));
    assert!(e.board().is_empty());
    assert!(e.key_down("Z", true, true));
    assert_eq!(e.board().len(), 1);
}

fn camera_of(member: u64, x_px: i32, zoom_milli: u16) -> Vec<u8> {
    encode_server(&ServerMsg::Camera(kokuban_protocol::CameraUpdate {
        member: MemberId(member),
        camera: kokuban_protocol::Camera::new(Cursor::new(x_px * 8, 0).unwrap(), zoom_milli)
            .unwrap(),
    }))
}

#[test]
fn following_a_member_shows_their_camera_until_we_navigate_or_press_escape() {
    let mut e = editor(false);
    welcome(&mut e, Capability::View);
    e.set_screen(800.0, 600.0, 1.0);
    let bob = kokuban_protocol::Member {
        id: MemberId(9),
        name: kokuban_protocol::Name::new("Bob").unwrap(),
        color: e.prefs().color,
        capability: Capability::Edit,
    };
    let joined = ServerMsg::Presence(kokuban_protocol::PresenceEvent::Joined(bob));
    assert_eq!(e.receive(&encode_server(&joined), 0.0), None);
    assert_eq!(e.receive(&camera_of(9, 100, 2000), 0.0), None);
    assert_eq!(e.viewport().zoom(), 1.0, "not followed yet");
    let centre = |e: &Editor| e.viewport().to_world(Pt::new(400.0, 300.0));

    e.follow(MemberId(5));
    assert_eq!(e.following(), None, "not ourselves");
    e.follow(MemberId(9));
    assert_eq!(e.following(), Some(MemberId(9)));
    assert_eq!(
        (e.viewport().zoom(), centre(&e)),
        (2.0, Pt::new(100.0, 0.0))
    );
    // Bob pans: we go along.
    assert_eq!(e.receive(&camera_of(9, -50, 2000), 1.0), None);
    assert_eq!(centre(&e), Pt::new(-50.0, 0.0));
    // Our own zoom ends it; Bob's next move no longer moves us.
    e.zoom_in();
    assert_eq!(e.following(), None);
    let ours = *e.viewport();
    assert_eq!(e.receive(&camera_of(9, 300, 1000), 2.0), None);
    assert_eq!(*e.viewport(), ours);
    // Escape ends it too, and so does Bob leaving.
    e.follow(MemberId(9));
    assert_eq!(centre(&e), Pt::new(300.0, 0.0));
    assert!(e.key_down("Escape", false, false));
    assert_eq!(e.following(), None);
    e.follow(MemberId(9));
    let left = ServerMsg::Presence(kokuban_protocol::PresenceEvent::Left(MemberId(9)));
    assert_eq!(e.receive(&encode_server(&left), 3.0), None);
    assert_eq!(e.following(), None);
}

#[test]
fn an_ask_to_follow_is_sent_after_our_camera_and_answered_by_following_or_declining() {
    let mut e = editor(true);
    welcome(&mut e, Capability::View);
    e.set_screen(800.0, 600.0, 1.0);
    let _ = e.outgoing(0.0);
    e.ask_everyone_to_follow();
    let sent = ops(&e.outgoing(200.0));
    let at = |want: fn(&ClientMsg) -> bool| sent.iter().position(want);
    let camera = at(|m| matches!(m, ClientMsg::Camera(_))).expect("our camera, again");
    let ask = at(|m| matches!(m, ClientMsg::AskToFollow)).expect("the ask");
    assert!(camera < ask, "the camera first: {sent:?}");
    assert!(ops(&e.outgoing(400.0)).is_empty(), "asked once");

    let bob = kokuban_protocol::Member {
        id: MemberId(9),
        name: kokuban_protocol::Name::new("Bob").unwrap(),
        color: e.prefs().color,
        capability: Capability::View,
    };
    let joined = ServerMsg::Presence(kokuban_protocol::PresenceEvent::Joined(bob));
    assert_eq!(e.receive(&encode_server(&joined), 500.0), None);
    let ask = encode_server(&ServerMsg::AskToFollow(MemberId(9)));
    assert_eq!(e.receive(&camera_of(9, 100, 2000), 510.0), None);
    assert_eq!(e.receive(&ask, 510.0), None);
    assert_eq!(e.asked_to_follow(), Some(MemberId(9)));
    assert_eq!(e.following(), None, "nobody is followed unasked");
    e.answer_ask_to_follow(false);
    assert_eq!(
        (e.asked_to_follow(), e.following()),
        (None, None),
        "declined"
    );
    // Asking again at once is not shown: a declined member cannot nag.
    assert_eq!(e.receive(&ask, 5_000.0), None);
    assert_eq!(e.asked_to_follow(), None, "quiet after a decline");
    assert_eq!(e.receive(&ask, 70_000.0), None);
    assert_eq!(
        e.asked_to_follow(),
        Some(MemberId(9)),
        "asked again a minute later"
    );
    e.answer_ask_to_follow(true);
    assert_eq!(e.asked_to_follow(), None);
    assert_eq!(e.following(), Some(MemberId(9)));
    assert_eq!(e.viewport().zoom(), 2.0, "where Bob looks");
    // Asked again while following: nothing to answer.
    assert_eq!(e.receive(&ask, 70_030.0), None);
    assert_eq!(e.asked_to_follow(), None);
    // An ask from someone who then leaves is withdrawn.
    e.unfollow();
    assert_eq!(e.receive(&ask, 70_040.0), None);
    assert_eq!(e.asked_to_follow(), Some(MemberId(9)));
    let left = ServerMsg::Presence(kokuban_protocol::PresenceEvent::Left(MemberId(9)));
    assert_eq!(e.receive(&encode_server(&left), 70_050.0), None);
    assert_eq!(e.asked_to_follow(), None);
}

#[test]
fn our_camera_is_sent_when_it_moves_and_again_for_a_newcomer() {
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    let cameras = |frames: Vec<Vec<u8>>| {
        ops(&frames)
            .into_iter()
            .filter(|m| matches!(m, ClientMsg::Camera(_)))
            .count()
    };
    assert_eq!(cameras(e.outgoing(0.0)), 1);
    assert_eq!(cameras(e.outgoing(500.0)), 0, "still");
    e.wheel(Pt::new(10.0, 10.0), 0.0, 40.0, false, false);
    assert_eq!(cameras(e.outgoing(520.0)), 1, "moved");
    e.wheel(Pt::new(10.0, 10.0), 0.0, 40.0, false, false);
    assert_eq!(cameras(e.outgoing(550.0)), 0, "at most every 100 ms");
    assert_eq!(cameras(e.outgoing(620.0)), 1);
    let cy = kokuban_protocol::Member {
        id: MemberId(11),
        name: kokuban_protocol::Name::new("Cy").unwrap(),
        color: e.prefs().color,
        capability: Capability::View,
    };
    let joined = ServerMsg::Presence(kokuban_protocol::PresenceEvent::Joined(cy));
    assert_eq!(e.receive(&encode_server(&joined), 700.0), None);
    assert_eq!(
        cameras(e.outgoing(750.0)),
        1,
        "a newcomer learns where we look"
    );
}

#[test]
fn a_second_finger_turns_a_stroke_into_a_pinch() {
    let mut e = editor(true);
    e.pointer_down(input(1, 100.0, 100.0, PointerKind::Touch, 0.0));
    e.pointer_move(&[input(1, 110.0, 100.0, PointerKind::Touch, 8.0)]);
    assert_eq!(e.board().len(), 1);
    e.pointer_down(input(2, 200.0, 100.0, PointerKind::Touch, 10.0));
    assert!(e.board().is_empty());
    // Fingers spread to twice the distance: zoom doubles around their midpoint.
    e.pointer_move(&[input(2, 290.0, 100.0, PointerKind::Touch, 20.0)]);
    assert!((e.viewport().zoom() - 2.0).abs() < 1e-9);
    e.pointer_up(input(2, 290.0, 100.0, PointerKind::Touch, 30.0));
    e.pointer_up(input(1, 110.0, 100.0, PointerKind::Touch, 30.0));
    assert!(e.board().is_empty());
    assert!(!e.can_undo().0);
}

#[test]
fn a_view_only_link_pans_instead_of_drawing() {
    let mut e = editor(false);
    welcome(&mut e, Capability::View);
    assert!(!e.can_edit());
    e.pointer_down(input(1, 10.0, 10.0, PointerKind::Mouse, 0.0));
    e.pointer_move(&[input(1, 60.0, 10.0, PointerKind::Mouse, 8.0)]);
    e.pointer_up(input(1, 60.0, 10.0, PointerKind::Mouse, 9.0));
    assert!(e.board().is_empty());
    assert_eq!(e.viewport().origin(), Pt::new(-50.0, 0.0));
    assert!(!e.key_down("p", false, false));
}

#[test]
fn a_view_only_member_points_with_the_laser_at_the_cursor_rate() {
    let mut e = editor(false);
    welcome(&mut e, Capability::View);
    assert!(
        e.key_down("k", false, false),
        "the laser is open to viewers"
    );
    assert_eq!(e.tools().kind(), ToolKind::Laser);
    e.pointer_down(input(1, 10.0, 10.0, PointerKind::Mouse, 0.0));
    let moves: Vec<_> = (1..=20)
        .map(|i| {
            input(
                1,
                10.0 + f64::from(i),
                10.0,
                PointerKind::Mouse,
                f64::from(i),
            )
        })
        .collect();
    e.pointer_move(&moves);
    assert_eq!(e.laser().len(20.0), 21, "our own trail has every sample");
    assert_eq!(e.viewport().origin(), Pt::new(0.0, 0.0), "no pan");
    let sent = ops(&e.outgoing(20.0));
    assert_eq!(sent.len(), 2);
    assert!(matches!(sent[0], ClientMsg::Laser(at) if at.x() == 30 * 8));
    assert!(matches!(sent[1], ClientMsg::Camera(_)));
    e.pointer_move(&[input(1, 40.0, 10.0, PointerKind::Mouse, 25.0)]);
    assert!(e.outgoing(30.0).is_empty(), "one position per 40 ms");
    assert!(matches!(ops(&e.outgoing(60.0))[..], [ClientMsg::Laser(_)]));
    e.pointer_up(input(1, 40.0, 10.0, PointerKind::Mouse, 61.0));
    assert!(e.board().is_empty());
    assert_eq!(e.session().outstanding(), 0, "never an op");
    assert!(e.laser().is_empty(1_100.0), "faded within a second");
    assert!(e.key_down("h", false, false));
}

#[test]
fn palm_rejection_after_a_stylus_and_space_drag_pans() {
    let mut e = editor(true);
    e.pointer_down(input(1, 0.0, 0.0, PointerKind::Pen, 0.0));
    e.pointer_up(input(1, 0.0, 0.0, PointerKind::Pen, 1.0));
    let drawn = e.board().len();
    e.pointer_down(input(2, 0.0, 0.0, PointerKind::Touch, 2.0));
    e.pointer_move(&[input(2, 30.0, 0.0, PointerKind::Touch, 3.0)]);
    e.pointer_up(input(2, 30.0, 0.0, PointerKind::Touch, 4.0));
    assert_eq!(e.board().len(), drawn);
    assert_eq!(e.viewport().origin().x, -30.0);
    e.key_down(" ", false, false);
    e.pointer_down(input(3, 0.0, 0.0, PointerKind::Mouse, 5.0));
    e.pointer_move(&[input(3, 0.0, 40.0, PointerKind::Mouse, 6.0)]);
    e.pointer_up(input(3, 0.0, 40.0, PointerKind::Mouse, 7.0));
    e.key_up(" ");
    assert_eq!(e.board().len(), drawn);
    assert_eq!(e.viewport().origin().y, -40.0);
}

#[test]
fn a_forbidden_link_stops_reconnecting_and_errors_become_toasts() {
    let mut e = editor(true);
    hello(&mut e);
    let forbidden = encode_server(&ServerMsg::Error(ErrorFrame::new(
        ErrorCode::Forbidden,
        "no",
    )));
    assert_eq!(e.receive(&forbidden, 0.0), Some(Command::Close));
    assert_eq!(e.disconnected(1008, true, 1.0), Next::Stop);
    assert_eq!(e.status().name(), "closed");

    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    let busy = encode_server(&ServerMsg::Error(ErrorFrame::new(
        ErrorCode::RoomFull,
        "full",
    )));
    assert_eq!(e.receive(&busy, 0.0), None);
    assert_eq!(e.take_toasts().len(), 1);
    assert_eq!(e.receive(&[99, 0], 0.0), Some(Command::Close));
    assert!(matches!(e.disconnected(4002, true, 1.0), Next::Stop));
    assert!(e.status().label().contains("reload"));
}

#[test]
fn wheel_zooms_around_the_pointer_and_fit_frames_the_drawing() {
    let mut e = editor(true);
    e.set_screen(1000.0, 800.0, 1.0);
    let at = Pt::new(250.0, 100.0);
    // The wheel pans; Ctrl+wheel zooms around the pointer.
    e.wheel(at, 0.0, 60.0, false, false);
    assert_eq!(e.viewport().origin(), Pt::new(0.0, 60.0));
    assert_eq!(e.viewport().zoom(), 1.0);
    let under = e.viewport().to_world(at);
    e.wheel(at, 0.0, -100.0, true, false);
    assert!(e.viewport().zoom() > 1.0);
    assert!(e.viewport().to_world(at).dist(under) < 1e-9);
    e.pointer_down(input(1, 0.0, 0.0, PointerKind::Mouse, 0.0));
    e.pointer_up(input(1, 100.0, 100.0, PointerKind::Mouse, 50.0));
    e.zoom_to_fit();
    assert!(e.visible().contains_rect(&content_bounds(e.board())));
    // A small drawing is zoomed in on, not left small.
    assert!(e.viewport().zoom() > 2.0, "{}", e.viewport().zoom());
    e.reset_zoom();
    assert!((e.viewport().zoom() - 1.0).abs() < 1e-12);
}

#[test]
fn a_double_click_edits_a_text_item_and_the_edit_reaches_the_room() {
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    e.set_tool(ToolKind::Text);
    e.pointer_down(input(1, 100.0, 100.0, PointerKind::Mouse, 0.0));
    e.pointer_up(input(1, 100.0, 100.0, PointerKind::Mouse, 5.0));
    let req = e.take_text_request().expect("a text editor for a new item");
    assert_eq!(
        (req.at, req.editing, req.text.as_str()),
        (Pt::new(100.0, 100.0), None, "")
    );
    e.commit_text(Some("note"));
    let old = e.board().strokes().next().unwrap().id;
    e.outgoing(10.0);

    // One click with Select only selects; a second one soon after, close by, edits.
    e.set_tool(ToolKind::Select);
    e.pointer_down(input(1, 104.0, 104.0, PointerKind::Mouse, 1000.0));
    e.pointer_up(input(1, 104.0, 104.0, PointerKind::Mouse, 1050.0));
    assert!(e.take_text_request().is_none());
    e.pointer_down(input(1, 105.0, 104.0, PointerKind::Mouse, 1200.0));
    let req = e.take_text_request().expect("a text editor on the item");
    assert_eq!((req.editing, req.text.as_str()), (Some(old), "note"));
    assert_eq!(e.editing_text(), Some(old));
    e.pointer_up(input(1, 105.0, 104.0, PointerKind::Mouse, 1250.0));
    e.commit_text(Some("notes"));
    assert_eq!(e.editing_text(), None);
    let texts: Vec<String> = e
        .board()
        .strokes()
        .filter_map(|s| match &s.shape {
            kokuban_board::Shape::Text(t) => Some(t.as_str().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["notes"]);
    // What goes out: the new item, then the erase of the old one.
    let sent = ops(&e.outgoing(2000.0));
    assert!(
        matches!(&sent[0], ClientMsg::Op(Submit { op: Op::Text { text, .. }, .. }) if text.as_str() == "notes")
    );
    assert!(
        matches!(&sent[1], ClientMsg::Op(Submit { op: Op::Erase { ids }, .. }) if ids.as_slice() == [old])
    );
    // One undo step brings the old text back.
    e.undo();
    assert_eq!(e.board().strokes().map(|s| s.id).collect::<Vec<_>>(), [old]);

    // Two clicks far apart in time are not a double click; a cancelled editor changes nothing.
    e.pointer_down(input(1, 104.0, 104.0, PointerKind::Mouse, 5000.0));
    e.pointer_up(input(1, 104.0, 104.0, PointerKind::Mouse, 5010.0));
    e.pointer_down(input(1, 104.0, 104.0, PointerKind::Mouse, 6000.0));
    e.pointer_up(input(1, 104.0, 104.0, PointerKind::Mouse, 6010.0));
    assert!(e.take_text_request().is_none());
    e.set_tool(ToolKind::Text);
    e.pointer_down(input(1, 104.0, 104.0, PointerKind::Mouse, 7000.0));
    assert_eq!(e.take_text_request().map(|r| r.editing), Some(Some(old)));
    e.commit_text(None);
    assert_eq!(e.board().strokes().map(|s| s.id).collect::<Vec<_>>(), [old]);
}

#[test]
fn a_view_only_tab_cannot_edit_text() {
    let mut e = editor(false);
    welcome(&mut e, Capability::View);
    e.set_tool(ToolKind::Text);
    e.pointer_down(input(1, 100.0, 100.0, PointerKind::Mouse, 0.0));
    assert!(e.take_text_request().is_none());
    e.commit_text(Some("x"));
    assert!(e.board().is_empty());
}

fn sequenced(seq: u64, author: u64, op: Op) -> Vec<u8> {
    encode_server(&ServerMsg::Op(kokuban_protocol::Sequenced {
        epoch: Epoch(1),
        seq: Seq(seq),
        author: MemberId(author),
        op,
    }))
}

fn draw(e: &mut Editor, from: (f64, f64), to: (f64, f64), t: f64) {
    e.pointer_down(input(1, from.0, from.1, PointerKind::Mouse, t));
    e.pointer_move(&[input(
        1,
        (from.0 + to.0) / 2.0,
        from.1 + 7.0,
        PointerKind::Mouse,
        t + 8.0,
    )]);
    e.pointer_up(input(1, to.0, to.1, PointerKind::Mouse, t + 16.0));
}

fn center(e: &Editor, id: &kokuban_protocol::StrokeId) -> Pt {
    crate::geom::visual_bounds(e.board().get(id).unwrap()).center()
}

#[test]
fn copy_paste_duplicate_and_nudge_send_ops_the_room_applies() {
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    draw(&mut e, (100.0, 100.0), (200.0, 110.0), 0.0);
    let original = e.board().strokes().next().unwrap().id;
    // Nothing selected: nothing to copy, so the browser copies whatever else is selected.
    assert_eq!(e.copy(), None);
    assert!(e.key_down("a", true, false));
    // Copy and paste themselves are the browser's clipboard events, not key presses.
    assert!(!e.key_down("c", true, false));
    let copied = e.copy().expect("the selection as clipboard text");
    e.outgoing(100.0);

    // The pointer rests at (600, 400): the paste is centred there, a new item, selected.
    e.pointer_move(&[input(1, 600.0, 400.0, PointerKind::Mouse, 200.0)]);
    assert!(e.paste(&copied));
    assert_eq!(e.board().len(), 2);
    let pasted = e.tools().selection().to_vec();
    assert_eq!(pasted.len(), 1);
    assert_ne!(pasted[0], original);
    assert!(center(&e, &pasted[0]).dist(Pt::new(600.0, 400.0)) < 0.2);
    assert_eq!(e.tools().kind(), ToolKind::Select);
    let sent = ops(&e.outgoing(300.0));
    let begun: Vec<_> = sent
        .iter()
        .filter_map(|m| match m {
            ClientMsg::Op(Submit {
                op: Op::StrokeBegin { id, .. },
                ..
            }) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(begun, pasted);
    assert!(sent.iter().any(
        |m| matches!(m, ClientMsg::Op(Submit { op: Op::StrokeEnd { id }, .. }) if *id == pasted[0])
    ));

    // Ctrl+D copies the selection 16 screen pixels right and down, and selects the copy.
    e.set_screen(1000.0, 800.0, 1.0);
    e.zoom_by(2.0);
    let before = center(&e, &pasted[0]);
    assert!(e.key_down("d", true, false));
    let dup = e.tools().selection()[0];
    assert_eq!(e.board().len(), 3);
    let moved = center(&e, &dup);
    assert!((moved.x - before.x - 8.0).abs() < 0.2 && (moved.y - before.y - 8.0).abs() < 0.2);

    // Shift+→ nudges it 10 px with one Move; the arrow alone 1 px; undo takes the nudge back.
    e.outgoing(400.0);
    assert!(e.key_down("ArrowRight", false, true));
    assert!(e.key_down("ArrowUp", false, false));
    assert_eq!(e.board().get(&dup).unwrap().offset, (80, -8));
    let sent = ops(&e.outgoing(500.0));
    assert!(
        sent.iter()
            .any(|m| matches!(m, ClientMsg::Op(Submit { op: Op::Move { to }, .. }) if to.as_slice()[0].id == dup))
    );
    e.undo();
    assert_eq!(e.board().get(&dup).unwrap().offset, (80, 0));

    // Cut takes the selection away; one undo brings it back.
    let cut = e.cut().expect("the cut selection");
    assert!(Clip::from_json(&cut).is_some());
    assert!(e.board().get(&dup).unwrap().erased);
    e.undo();
    assert!(!e.board().get(&dup).unwrap().erased);
}

/// A picture is placed centred where it was dropped, at its own size unless that is more than
/// the screen's share, selected; it is sent as one Image op, copies and pastes as a picture of
/// the same blob, and one undo takes it away. A viewer places nothing.
#[test]
fn a_picture_is_placed_fitted_to_the_screen_copied_and_undone() {
    use kokuban_protocol::BlobHash;
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    e.set_screen(1000.0, 800.0, 1.0);
    e.outgoing(0.0);
    let blob = BlobHash([3; 32]);
    // A small picture keeps its size; a large one is fitted into 60 % of the screen.
    assert!(e.place_image(blob, (200.0, 100.0), Some(Pt::new(300.0, 300.0))));
    let small = e.tools().selection()[0];
    let r = crate::geom::visual_bounds(e.board().get(&small).unwrap());
    assert!(
        (r.width() - 200.0).abs() < 0.2 && (r.height() - 100.0).abs() < 0.2,
        "{r:?}"
    );
    assert!(r.center().dist(Pt::new(300.0, 300.0)) < 0.2);
    assert!(e.place_image(blob, (4000.0, 1000.0), None));
    let large = e.tools().selection()[0];
    let r = crate::geom::visual_bounds(e.board().get(&large).unwrap());
    assert!(
        (r.width() - 600.0).abs() < 0.2 && (r.height() - 150.0).abs() < 0.2,
        "{r:?}"
    );
    let sent = ops(&e.outgoing(100.0));
    let placed: Vec<_> = sent
        .iter()
        .filter_map(|m| match m {
            ClientMsg::Op(Submit {
                op: Op::Image(image),
                ..
            }) => Some((image.id, image.blob)),
            _ => None,
        })
        .collect();
    assert_eq!(placed, vec![(small, blob), (large, blob)]);

    // Copied and pasted, it is a new picture of the same blob and box.
    let copied = e.copy().unwrap();
    e.pointer_move(&[input(1, 500.0, 500.0, PointerKind::Mouse, 200.0)]);
    assert!(e.paste(&copied));
    let pasted = e.tools().selection()[0];
    let copy = e.board().get(&pasted).unwrap();
    assert_eq!(copy.shape, kokuban_board::Shape::Image(blob));
    let r = crate::geom::visual_bounds(copy);
    assert!((r.width() - 600.0).abs() < 0.2 && r.center().dist(Pt::new(500.0, 500.0)) < 0.2);

    // One undo each takes them away again.
    e.undo();
    e.undo();
    assert!(e.board().get(&large).unwrap().erased);
    assert!(!e.board().get(&small).unwrap().erased);

    let mut viewer = editor(false);
    welcome(&mut viewer, Capability::View);
    assert!(!viewer.place_image(blob, (10.0, 10.0), None));
}

#[test]
fn plain_text_pastes_as_a_text_item_and_a_viewer_pastes_nothing() {
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    e.set_screen(800.0, 600.0, 1.0);
    e.pointer_leave();
    assert!(e.paste("Shopping list\r\n- milk"));
    let item = e.board().strokes().next().unwrap();
    assert!(
        matches!(&item.shape, kokuban_board::Shape::Text(t) if t.as_str() == "Shopping list\n- milk")
    );
    // No pointer over the board: in the middle of the screen.
    assert!(center(&e, &item.id).dist(Pt::new(400.0, 300.0)) < 40.0);
    assert!(!e.paste("  \n"));
    e.undo();
    assert!(e.board().is_empty());

    let mut v = editor(false);
    welcome(&mut v, Capability::View);
    assert!(!v.paste("hello"));
    assert!(v.board().is_empty());
}

#[test]
fn a_link_without_a_token_says_so_for_good_and_offers_a_new_board() {
    let mut rng = Xoshiro256::seeded(9);
    let prefs = Prefs::load(|_| None, &mut rng, false);
    let link = RoomLink {
        room: RoomId::new("room").unwrap(),
        edit: None,
        view: None,
    };
    let mut e = Editor::new(prefs, Some(link), [7; 32], Outbox::new(ClientKey([8; 16])));
    assert_eq!(e.status().label(), crate::NO_TOKEN);
    assert_eq!(e.closed(), Some(crate::connection::Remedy::NewBoard));
    assert!(!e.can_edit());
    assert!(hello(&mut e).is_none());
    assert_eq!(e.online(), Next::Stop);
    assert_eq!(e.status().label(), crate::NO_TOKEN);
}

#[test]
fn an_invalid_link_hides_the_tools_and_offers_a_new_board() {
    let mut e = editor(true);
    hello(&mut e);
    let forbidden = encode_server(&ServerMsg::Error(ErrorFrame::new(
        ErrorCode::Forbidden,
        "no",
    )));
    assert!(e.can_edit());
    e.receive(&forbidden, 0.0);
    e.disconnected(1008, true, 1.0);
    assert!(!e.can_edit());
    assert_eq!(e.closed(), Some(crate::connection::Remedy::NewBoard));
}

#[test]
fn preferences_are_saved_when_they_change_not_on_every_frame() {
    let mut e = editor(true);
    assert!(e.take_prefs_to_save().is_empty());
    e.set_ink(crate::prefs::PALETTE[4].1);
    assert_eq!(
        e.take_prefs_to_save(),
        [(crate::prefs::keys::INK, "#2f9e44".to_string())]
    );
    assert!(e.take_prefs_to_save().is_empty());
    // Navigating and drawing change no preference.
    e.zoom_in();
    draw(&mut e, (0.0, 0.0), (50.0, 0.0), 0.0);
    assert!(e.take_prefs_to_save().is_empty());
    e.set_profile("Ada", e.prefs().color);
    assert_eq!(
        e.take_prefs_to_save(),
        [(crate::prefs::keys::NAME, "Ada".to_string())]
    );
}

#[test]
fn others_drawing_and_our_renaming_refresh_what_the_page_shows() {
    let mut e = editor(true);
    let me = kokuban_protocol::Member {
        id: MemberId(5),
        name: kokuban_protocol::Name::new("Guest").unwrap(),
        color: Color::rgb(1, 2, 3),
        capability: Capability::Edit,
    };
    let msg = ServerMsg::Welcome(Welcome {
        member: MemberId(5),
        author: MemberId(5),
        capability: Capability::Edit,
        epoch: Epoch(1),
        state: RoomState::Snapshot {
            board: Bytes(Board::at_start_of(Epoch(1)).snapshot()),
            ops: Vec::new().into(),
        },
        members: vec![me].into(),
        decided: 0,
    });
    hello(&mut e);
    e.receive(&encode_server(&msg), 0.0);

    // Someone else's first stroke: the page must learn that the board has content now.
    let v = e.ui_version();
    let id = crate::rng::stroke_id_from(77);
    let begin = Op::StrokeBegin {
        id,
        tool: kokuban_protocol::Tool::Pen,
        color: Color::rgb(0, 0, 0),
        width: kokuban_protocol::Width::from_px(4.0),
        first: kokuban_protocol::Point::from_px(1.0, 1.0, 0.5).unwrap(),
    };
    e.receive(&sequenced(1, 8, begin), 1.0);
    assert!(e.ui_version() > v);
    // More of it changes nothing the page shows.
    let v = e.ui_version();
    e.receive(&sequenced(2, 8, Op::StrokeEnd { id }), 2.0);
    assert_eq!(e.ui_version(), v);
    e.receive(&sequenced(3, 8, Op::Clear), 3.0);
    assert!(e.ui_version() > v);

    // Our own new name shows on our avatar at once.
    e.set_profile("Ada Lovelace", Color::rgb(9, 9, 9));
    assert_eq!(
        e.presence().members().next().unwrap().name.as_str(),
        "Ada Lovelace"
    );

    // A network blip the socket survived: connected again, no reconnect.
    e.offline();
    assert_eq!(e.status().name(), "offline");
    assert_eq!(e.online(), Next::Stay);
    assert_eq!(e.status().name(), "connected");
}

#[test]
fn a_store_outage_shows_read_only_once_retries_on_a_timer_and_ends_with_an_ack() {
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    e.pointer_down(input(1, 10.0, 10.0, PointerKind::Mouse, 0.0));
    e.pointer_up(input(1, 40.0, 15.0, PointerKind::Mouse, 16.0));
    let sent = ops(&e.outgoing(20.0));
    let in_flight = sent
        .iter()
        .filter(|m| matches!(m, ClientMsg::Op(_)))
        .count();
    assert!(in_flight >= 2, "{sent:?}");
    let refused = encode_server(&ServerMsg::Error(ErrorFrame::new(
        ErrorCode::TemporarilyReadOnly,
        "store unreachable",
    )));
    for _ in 0..in_flight {
        assert_eq!(e.receive(&refused, 30.0), None);
    }
    assert_eq!(e.status().name(), "read-only");
    assert_eq!(e.take_toasts().len(), 1, "one message for the outage");
    // The stroke stays on screen; nothing goes out before the retry timer.
    assert_eq!(e.board().len(), 1);
    assert!(e.outgoing(40.0).is_empty());
    assert!(e.outgoing(500.0).is_empty());
    // Within the first ceiling (1 s after the timer was set), one op goes out.
    let probe = ops(&e.outgoing(1_100.0));
    assert_eq!(probe.len(), 1, "{probe:?}");
    let ack = encode_server(&ServerMsg::Ack(Ack {
        epoch: Epoch(1),
        seq: Seq(1),
    }));
    assert_eq!(e.receive(&ack, 1_200.0), None);
    assert_eq!(e.status().name(), "connected");
    // Writes flow again: the rest of the stroke goes out in the next frame.
    assert!(!ops(&e.outgoing(1_300.0)).is_empty());
    assert!(e.take_toasts().is_empty());
}

#[test]
fn an_editor_renames_the_board_for_everyone_and_a_rename_by_another_shows_at_once() {
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    e.outgoing(0.0);
    e.set_title("  Sprint review ");
    assert_eq!(e.title(), Some("Sprint review"));
    let sent = ops(&e.outgoing(1.0));
    assert!(
        sent.iter().any(|m| matches!(m, ClientMsg::Op(s)
            if s.op == Op::Title { title: Title::new("Sprint review").unwrap() })),
        "{sent:?}"
    );
    // Setting the same title again sends nothing.
    e.set_title("Sprint review");
    assert!(
        ops(&e.outgoing(2.0))
            .iter()
            .all(|m| !matches!(m, ClientMsg::Op(_)))
    );
    // Someone else's rename, in the room's order, is what the title then says.
    let before = e.ui_version();
    e.receive(
        &sequenced(
            1,
            8,
            Op::Title {
                title: Title::new("Retro").unwrap(),
            },
        ),
        3.0,
    );
    assert_eq!(
        e.title(),
        Some("Sprint review"),
        "ours is still in flight after theirs"
    );
    e.receive(
        &encode_server(&ServerMsg::Ack(Ack {
            epoch: Epoch(1),
            seq: Seq(2),
        })),
        4.0,
    );
    e.receive(
        &sequenced(
            3,
            8,
            Op::Title {
                title: Title::new("Retro").unwrap(),
            },
        ),
        5.0,
    );
    assert_eq!(e.title(), Some("Retro"));
    assert!(e.ui_version() > before, "the title on screen is refreshed");
}

#[test]
fn a_view_only_tab_cannot_rename_the_board() {
    let mut e = editor(false);
    welcome(&mut e, Capability::View);
    e.set_title("Mine now");
    assert_eq!(e.title(), None);
    assert!(
        ops(&e.outgoing(1.0))
            .iter()
            .all(|m| !matches!(m, ClientMsg::Op(_)))
    );
}

#[test]
fn a_colour_or_size_picked_with_items_selected_restyles_them_undoably_for_everyone() {
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    draw(&mut e, (100.0, 100.0), (300.0, 160.0), 0.0);
    e.set_tool(ToolKind::Text);
    e.pointer_down(input(1, 500.0, 500.0, PointerKind::Mouse, 100.0));
    e.pointer_up(input(1, 500.0, 500.0, PointerKind::Mouse, 110.0));
    e.commit_text(Some("note"));
    e.outgoing(200.0);
    let styles = |e: &Editor| -> Vec<(Color, Width)> {
        e.board().strokes().map(|s| (s.color, s.width)).collect()
    };
    let before = styles(&e);
    let red = Color::rgb(224, 49, 49);

    // Nothing selected: a colour is only the default for new items.
    e.set_ink(red);
    assert_eq!(styles(&e), before);

    assert!(e.perform(crate::keymap::Shortcut::SelectAll));
    e.set_ink(red);
    e.set_size(Size::Xl);
    let after = styles(&e);
    assert!(after.iter().all(|(c, _)| *c == red), "{after:?}");
    assert_eq!(
        after[0].1,
        Size::Xl.pen(),
        "the stroke gets the pen's width"
    );
    assert_eq!(after[1].1, Size::Xl.text(), "the text gets the font size");
    let sent = ops(&e.outgoing(300.0));
    let restyles = sent
        .iter()
        .filter(|m| matches!(m, ClientMsg::Op(s) if matches!(s.op, Op::Restyle { .. })))
        .count();
    assert!(restyles >= 1, "{sent:?}");

    // Undo takes back the size, then the colour; redo gives them again.
    e.undo();
    assert!(styles(&e).iter().all(|(c, _)| *c == red));
    e.undo();
    assert_eq!(styles(&e), before);
    e.redo();
    e.redo();
    assert_eq!(styles(&e), after);
}

#[test]
fn a_look_picked_dresses_new_shapes_and_the_selection_undoably_and_comes_back_after_a_clear() {
    use kokuban_protocol::{Align, Dash, Fill, Opacity};
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    e.set_tool(ToolKind::Rect);
    e.set_look(LookPart::Fill(Fill::Solid));
    e.set_look(LookPart::Dash(Dash::Dashed));
    // Kept for the next visit too.
    let saved = e.take_prefs_to_save();
    assert!(
        saved.contains(&(
            crate::prefs::keys::LOOK,
            "solid dashed 100 left".to_string()
        )),
        "{saved:?}"
    );
    draw(&mut e, (100.0, 100.0), (300.0, 160.0), 0.0);
    let dressed = kokuban_protocol::Look {
        fill: Fill::Solid,
        dash: Dash::Dashed,
        ..Default::default()
    };
    let looks = |e: &Editor| -> Vec<kokuban_protocol::Look> {
        e.board().strokes().map(|s| s.look).collect()
    };
    assert_eq!(looks(&e), [dressed], "a new rectangle gets the picked look");
    let sent = ops(&e.outgoing(200.0));
    let look_ops = |sent: &[ClientMsg]| {
        sent.iter()
            .filter(|m| matches!(m, ClientMsg::Op(s) if matches!(s.op, Op::Look { .. })))
            .count()
    };
    assert_eq!(look_ops(&sent), 1, "{sent:?}");

    // The selection takes a part of a look; undo gives its old look back, redo the new one.
    assert!(e.perform(crate::keymap::Shortcut::SelectAll));
    let half = Opacity::new(50).unwrap();
    e.set_look(LookPart::Opacity(half));
    let faded = kokuban_protocol::Look {
        opacity: half,
        ..dressed
    };
    assert_eq!(looks(&e), [faded]);
    assert_eq!(e.shown_look(), faded);
    assert_eq!(look_ops(&ops(&e.outgoing(300.0))), 1);
    e.undo();
    assert_eq!(looks(&e), [dressed]);
    e.redo();
    assert_eq!(looks(&e), [faded]);
    assert_eq!(
        look_ops(&ops(&e.outgoing(350.0))),
        2,
        "the undo and the redo"
    );
    // A part that changes nothing sends nothing.
    e.set_look(LookPart::Align(Align::Left));
    assert_eq!(look_ops(&ops(&e.outgoing(400.0))), 0);

    // A Clear undone draws the item again in its look.
    e.clear_board();
    assert!(e.board().is_empty());
    e.undo();
    assert_eq!(looks(&e), [faded]);
}

/// An item's colour, width and placed points.
type Look = (Color, Width, Vec<(i32, i32)>);

#[test]
fn undo_after_clear_draws_everything_again_and_redo_clears_it_again() {
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    draw(&mut e, (100.0, 100.0), (300.0, 160.0), 0.0);
    draw(&mut e, (100.0, 400.0), (300.0, 460.0), 100.0);
    // Someone else's stroke is cleared too, and comes back with ours.
    let theirs = kokuban_protocol::StrokeId(uuid::Uuid::from_u128(77));
    let begin = Op::StrokeBegin {
        id: theirs,
        tool: kokuban_protocol::Tool::Rect,
        color: Color::rgb(25, 113, 194),
        width: Size::L.pen(),
        first: kokuban_protocol::Point::new(8000, 8000, 0).unwrap(),
    };
    e.outgoing(200.0);
    e.receive(&sequenced(1, 8, begin), 210.0);
    e.receive(&sequenced(2, 8, Op::StrokeEnd { id: theirs }), 220.0);
    let looks = |e: &Editor| -> Vec<Look> {
        e.board()
            .strokes()
            .map(|s| {
                let pts = s.placed_points().map(|p| (p.x(), p.y())).collect();
                (s.color, s.width, pts)
            })
            .collect()
    };
    let before = looks(&e);
    assert_eq!(before.len(), 3);

    e.clear_board();
    assert!(e.board().is_empty());
    assert_eq!(e.can_undo(), (true, false));
    e.undo();
    assert_eq!(looks(&e), before, "every item back, where and as it was");
    let sent = ops(&e.outgoing(300.0));
    assert!(
        sent.iter()
            .any(|m| matches!(m, ClientMsg::Op(s) if s.op == Op::Clear))
    );
    assert!(
        sent.iter()
            .filter(|m| matches!(m, ClientMsg::Op(s) if matches!(s.op, Op::StrokeBegin { .. })))
            .count()
            >= 3,
        "{sent:?}"
    );
    e.redo();
    assert!(e.board().is_empty());
    e.undo();
    assert_eq!(looks(&e), before);
}

#[test]
fn the_toolbar_shows_the_colour_and_size_the_selected_items_share() {
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    assert_eq!(e.selection_style(), (None, None));
    e.set_ink(Color::rgb(47, 158, 68));
    e.set_size(Size::S);
    draw(&mut e, (100.0, 100.0), (300.0, 160.0), 0.0);
    e.set_ink(Color::rgb(25, 113, 194));
    draw(&mut e, (100.0, 400.0), (300.0, 460.0), 100.0);
    e.set_ink(Color::rgb(224, 49, 49));
    assert!(e.perform(crate::keymap::Shortcut::SelectAll));
    assert_eq!(e.selection_style(), (None, Some(Size::S)), "colours differ");
    e.set_ink(Color::rgb(224, 49, 49));
    assert_eq!(
        e.selection_style(),
        (Some(Color::rgb(224, 49, 49)), Some(Size::S))
    );
}

#[test]
fn what_only_a_newer_server_writes_asks_for_a_reload_instead_of_reconnecting_forever() {
    // A message this build does not know (a variant added since).
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    let unknown = vec![kokuban_protocol::PROTOCOL_VERSION, 0x7f];
    assert_eq!(e.receive(&unknown, 1.0), Some(Command::Close));
    e.disconnected(1000, true, 2.0);
    assert_eq!(e.closed(), Some(Remedy::Reload));

    // A board snapshot in a format written after this build.
    let mut e = editor(true);
    assert!(hello(&mut e).is_some());
    let mut board = Board::at_start_of(Epoch(1)).snapshot();
    board[0] = kokuban_board::SNAPSHOT_VERSION + 1;
    let msg = ServerMsg::Welcome(Welcome {
        member: MemberId(5),
        author: MemberId(6),
        capability: Capability::Edit,
        epoch: Epoch(1),
        state: RoomState::Snapshot {
            board: Bytes(board),
            ops: Vec::new().into(),
        },
        members: Vec::new().into(),
        decided: 0,
    });
    assert_eq!(e.receive(&encode_server(&msg), 1.0), Some(Command::Close));
    e.disconnected(1000, true, 2.0);
    assert_eq!(e.closed(), Some(Remedy::Reload));
}

#[test]
fn a_version_is_shown_read_only_and_brought_back_as_one_undoable_step() {
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    let looks = |b: &Board| -> Vec<Look> {
        b.strokes()
            .map(|s| {
                let pts = s.placed_points().map(|p| (p.x(), p.y())).collect();
                (s.color, s.width, pts)
            })
            .collect()
    };
    // The version: one stroke; then the board moves on to two others.
    draw(&mut e, (100.0, 100.0), (300.0, 160.0), 0.0);
    let version = e.board().clone();
    e.undo();
    draw(&mut e, (100.0, 400.0), (300.0, 460.0), 100.0);
    draw(&mut e, (500.0, 400.0), (600.0, 460.0), 200.0);
    let live = looks(e.board());
    assert_eq!(live.len(), 2);
    e.outgoing(250.0);

    e.show_version(42, version.clone());
    assert_eq!(e.version_shown(), Some(42));
    assert!(e.take_board_swapped());
    assert!(!e.can_edit(), "a version is read-only");
    assert!(e.can_restore());
    assert_eq!(looks(e.shown().board()), looks(&version));
    assert_eq!(looks(e.board()), live, "the live board goes on underneath");
    // Escape shows the live board again, as it is.
    assert!(e.key_down("Escape", false, false));
    assert_eq!(e.version_shown(), None);
    assert!(e.can_edit());
    assert_eq!(looks(e.shown().board()), live);

    e.show_version(42, version.clone());
    e.restore_version();
    assert_eq!(e.version_shown(), None);
    assert_eq!(
        looks(e.board()),
        looks(&version),
        "the version, for everyone"
    );
    let sent = ops(&e.outgoing(300.0));
    let first = sent.iter().find_map(|m| match m {
        ClientMsg::Op(s) => Some(&s.op),
        _ => None,
    });
    assert_eq!(first, Some(&Op::Clear), "{sent:?}");
    // One undo: the board as it was before; redo: the version again.
    e.undo();
    assert_eq!(looks(e.board()), live);
    e.redo();
    assert_eq!(looks(e.board()), looks(&version));

    // A view-only tab may look at versions, never bring one back.
    let mut v = editor(true);
    welcome(&mut v, Capability::View);
    v.show_version(42, version);
    assert!(!v.can_restore());
    v.restore_version();
    assert!(v.board().is_empty());
    let sent = ops(&v.outgoing(10.0));
    assert!(
        !sent.iter().any(|m| matches!(m, ClientMsg::Op(_))),
        "{sent:?}"
    );
}

#[test]
fn batches_go_by_handle_only_once_the_node_shows_it_reads_them() {
    let by_handle = |frames: &[Vec<u8>]| {
        frames.iter().any(|f| {
            matches!(
                kokuban_protocol::decode_client(f).unwrap(),
                ClientMsg::Points(_)
            )
        })
    };
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    e.pointer_down(input(1, 10.0, 10.0, PointerKind::Mouse, 0.0));
    e.pointer_move(&[input(1, 20.0, 10.0, PointerKind::Mouse, 8.0)]);
    let first = e.outgoing(20.0);
    e.pointer_move(&[input(1, 30.0, 12.0, PointerKind::Mouse, 24.0)]);
    let second = e.outgoing(40.0);
    // A node of an older version would not read them: nothing by handle yet.
    assert!(!by_handle(&first) && !by_handle(&second));
    let sent = ops(&first).len() + ops(&second).len();
    assert!(sent >= 3, "a Begin and two batches");
    // The node's short Ack of the Begin shows it reads handles.
    assert_eq!(e.receive(&encode_server(&ServerMsg::Acked(1)), 45.0), None);
    e.pointer_move(&[input(1, 40.0, 14.0, PointerKind::Mouse, 50.0)]);
    let third = e.outgoing(60.0);
    assert!(by_handle(&third));
    // The node reads it as the batch it stands for.
    assert!(ops(&third).iter().any(|m| matches!(
        m,
        ClientMsg::Op(Submit {
            op: Op::StrokePoints(_),
            ..
        })
    )));
}

/// Over a handle of the selection, the board's cursor says what the handle does; elsewhere it
/// is the board's own.
#[test]
fn the_cursor_over_a_handle_says_what_it_does() {
    use kokuban_protocol::BlobHash;
    let mut e = editor(true);
    welcome(&mut e, Capability::Edit);
    e.set_screen(1000.0, 800.0, 1.0);
    // A 200×100 picture centred on (300, 300), selected.
    assert!(e.place_image(
        BlobHash([1; 32]),
        (200.0, 100.0),
        Some(Pt::new(300.0, 300.0))
    ));
    let at = |e: &mut Editor, x: f64, y: f64| {
        e.pointer_move(&[input(1, x, y, PointerKind::Mouse, 10.0)]);
        e.handle_cursor()
    };
    assert_eq!(at(&mut e, 200.0, 250.0), Some("nwse-resize"));
    assert_eq!(at(&mut e, 401.0, 251.0), Some("nesw-resize"));
    assert_eq!(at(&mut e, 300.0, 350.0), Some("ns-resize"));
    assert_eq!(at(&mut e, 200.0, 300.0), Some("ew-resize"));
    assert_eq!(at(&mut e, 300.0, 226.0), Some("grab"));
    assert_eq!(at(&mut e, 300.0, 300.0), None);
}
