//! The outbox's storage encoding, which tab may adopt it, and when it is written.

use kokuban_protocol::{Bounded, Color, Point, StrokePoints, Tool, Width};

use super::*;
use crate::rng::stroke_id_from;

const NOW: f64 = 1_700_000_000_000.0;

fn room() -> RoomId {
    RoomId::new("room-1").unwrap()
}

fn begin(n: u128) -> Op {
    Op::StrokeBegin {
        id: stroke_id_from(n),
        tool: Tool::Pen,
        color: Color::rgb(0, 0, 0),
        width: Width::from_px(2.0),
        first: Point::new(0, 0, 100).unwrap(),
    }
}

fn outbox(key: u8) -> Outbox {
    let points = kokuban_protocol::Points::new(vec![Point::new(8, 8, 100).unwrap()]).unwrap();
    Outbox {
        key: ClientKey([key; 16]),
        next: 9,
        ops: vec![
            Kept {
                fate: Fate::InDoubt(7),
                op: begin(1),
            },
            Kept {
                fate: Fate::Refused,
                op: Op::StrokePoints(StrokePoints::new(stroke_id_from(1), 1, points).unwrap()),
            },
            Kept {
                fate: Fate::Applied,
                op: Op::StrokeEnd {
                    id: stroke_id_from(1),
                },
            },
            Kept {
                fate: Fate::Unsent,
                op: Op::Erase {
                    ids: Bounded::new(vec![stroke_id_from(1)]).unwrap(),
                },
            },
            Kept {
                fate: Fate::Unsent,
                op: Op::Clear,
            },
        ],
    }
}

/// A stored entry as another tab left it.
fn entry(key: u8, owner: &str, beat: f64) -> (String, String) {
    let o = outbox(key);
    (entry_name(&room(), &o.key), encode(&o, owner, beat))
}

#[test]
fn an_outbox_survives_its_storage_encoding() {
    let o = outbox(3);
    let text = encode(&o, "tab-a", NOW);
    let stored = decode(&text).unwrap();
    assert_eq!(stored.outbox, o);
    assert_eq!((stored.owner.as_str(), stored.beat), ("tab-a", NOW));
    // An op on the wire is kept as in doubt, under its number.
    let mut on_wire = o.clone();
    on_wire.ops[0].fate = Fate::Sent(7);
    assert_eq!(decode(&encode(&on_wire, "", NOW)).unwrap().outbox, o);
    // The entry is named by room and key, and the key is in the name only as hex.
    assert_eq!(
        entry_name(&room(), &o.key),
        format!("kokuban.outbox.room-1.{}", "03".repeat(16))
    );
}

#[test]
fn what_another_version_wrote_is_refused_not_misread() {
    assert!(matches!(decode("{}"), Err(OutboxError::Json(_))));
    assert!(matches!(decode("not json"), Err(OutboxError::Json(_))));
    let newer = encode(&outbox(1), "", NOW).replace("\"v\":1", "\"v\":2");
    assert_eq!(decode(&newer), Err(OutboxError::Format(2)));
    // An op frame of another protocol version (its first byte) does not decode.
    let mut o = outbox(1);
    o.ops.truncate(1);
    let text = encode(&o, "", NOW);
    let frame = encode_client(&ClientMsg::Op(Submit { n: 7, op: begin(1) }));
    let mut other = frame.clone();
    other[0] = other[0].wrapping_add(1);
    let newer = text.replace(&STANDARD.encode(&frame), &STANDARD.encode(&other));
    assert_eq!(decode(&newer), Err(OutboxError::Op));
    // The version before this one wrote its ops alike: a tab's unsent work survives the
    // upgrade.
    other[0] = kokuban_protocol::OLDEST_KEPT_VERSION;
    let older = text.replace(&STANDARD.encode(&frame), &STANDARD.encode(&other));
    assert_eq!(decode(&older).unwrap().outbox, o);
}

#[test]
fn a_tab_adopts_an_outbox_only_when_no_live_tab_owns_it() {
    let fresh = ClientKey([0xee; 16]);
    // The owner wrote a heartbeat a few seconds ago: it is alive, its outbox is not ours.
    let live = entry(1, "tab-a", NOW - 3_000.0);
    let a = adopt(
        &room(),
        std::slice::from_ref(&live),
        None,
        "tab-b",
        NOW,
        fresh,
    );
    assert!(!a.adopted);
    assert_eq!(a.outbox, Outbox::new(fresh));
    assert_eq!(a.keeper.name(), entry_name(&room(), &fresh));

    // Silent for longer than a hidden tab's slowest timer: adopted, ops, key and numbers.
    let stale = entry(2, "tab-a", NOW - STALE_MS - 1.0);
    let a = adopt(
        &room(),
        &[live.clone(), stale.clone()],
        None,
        "tab-b",
        NOW,
        fresh,
    );
    assert!(a.adopted);
    assert_eq!(a.outbox, outbox(2));

    // Released by a page that closed or reloaded: adopted at once.
    let released = entry(3, "", NOW - 10.0);
    let a = adopt(&room(), &[live, released], None, "tab-b", NOW, fresh);
    assert_eq!(a.outbox.key, ClientKey([3; 16]));

    // Another room's, an empty one and an unreadable one are left alone.
    let other_room = {
        let o = outbox(4);
        let name = entry_name(&RoomId::new("room-2").unwrap(), &o.key);
        (name, encode(&o, "", 0.0))
    };
    let empty = {
        let o = Outbox::new(ClientKey([5; 16]));
        (entry_name(&room(), &o.key), encode(&o, "", 0.0))
    };
    let unreadable = (
        format!("{}{}", prefix(&room()), "06".repeat(16)),
        "{".to_string(),
    );
    let a = adopt(
        &room(),
        &[other_room, empty, unreadable],
        None,
        "tab-b",
        NOW,
        fresh,
    );
    assert!(!a.adopted);

    // Of two free ones, the one waiting longest...
    let older = entry(7, "", NOW - 50_000.0);
    let newer = entry(8, "", NOW - 5_000.0);
    let both = [newer, older];
    let a = adopt(&room(), &both, None, "tab-b", NOW, fresh);
    assert_eq!(a.outbox.key, ClientKey([7; 16]));
    // ...unless this tab, reloaded, used the other one.
    let a = adopt(&room(), &both, Some(&both[0].0), "tab-b", NOW, fresh);
    assert_eq!(a.outbox.key, ClientKey([8; 16]));
    // A preference for one a live tab owns changes nothing.
    let live = entry(9, "tab-a", NOW);
    let a = adopt(
        &room(),
        std::slice::from_ref(&live),
        Some(&live.0),
        "tab-b",
        NOW,
        fresh,
    );
    assert!(!a.adopted);
}

#[test]
fn a_claimed_outbox_is_this_tabs_and_a_taken_over_one_is_not() {
    let stale = entry(2, "tab-a", NOW - STALE_MS - 1.0);
    let mut a = adopt(&room(), &[stale], None, "tab-b", NOW, ClientKey([0; 16]));
    let Write::Put(name, value) = a.keeper.claim(&a.outbox, NOW) else {
        panic!("the claim is a write")
    };
    assert_eq!(name, a.keeper.name());
    assert!(a.keeper.owns(Some(&value)));
    // Tab A wakes up and finds its entry claimed: it does not own it any more.
    let a_keeper = Keeper::new(&room(), "tab-a", &ClientKey([2; 16]), true);
    assert!(!a_keeper.owns(Some(&value)));
    // Nor when its entry is gone (adopted, then emptied by the adopter).
    assert!(!a_keeper.owns(None));
    // A tab that never wrote one owns its key, whatever storage holds.
    assert!(Keeper::new(&room(), "tab-c", &ClientKey([9; 16]), false).owns(None));
    // A released entry may be taken back (a page restored from the back-forward cache).
    let released = encode(&outbox(2), "", NOW);
    assert!(a_keeper.owns(Some(&released)));
    // Woken up with ops to write, tab A writes nothing, and learns it must stop.
    let mut a_keeper = a_keeper;
    let mut session = Session::new(ClientKey([2; 16]));
    session.local(begin(9));
    assert_eq!(
        a_keeper.due(&session, NOW, true, |_| Some(value.clone())),
        Err(Superseded)
    );
    assert_eq!(
        a_keeper.release(&session, NOW, |_| Some(value.clone())),
        None
    );
}

#[test]
fn numbers_are_written_before_they_go_out_and_waiting_ops_at_most_every_second() {
    let key = ClientKey([1; 16]);
    let mut session = Session::new(key);
    let mut keeper = Keeper::new(&room(), "tab-a", &key, false);
    // Nothing to keep: nothing written.
    assert_eq!(due(&mut keeper, &session, NOW, false), None);
    // Drawing offline: the first change is written (storage has no entry yet, and that is
    // no sign of another tab), the next ones wait a second.
    session.local(begin(1));
    assert!(matches!(
        keeper.due(&session, NOW, false, |_| None),
        Ok(Some(Write::Put(..)))
    ));
    session.local(begin(2));
    assert_eq!(due(&mut keeper, &session, NOW + 100.0, false), None);
    // ...unless the page is being hidden or closed.
    assert!(matches!(
        due(&mut keeper, &session, NOW + 200.0, true),
        Some(Write::Put(..))
    ));
    session.local(begin(3));
    let Some(Write::Put(_, text)) = due(&mut keeper, &session, NOW + 1_300.0, false) else {
        panic!("a second later, the change is written")
    };
    assert_eq!(decode(&text).unwrap().outbox.ops.len(), 3);
    assert_eq!(due(&mut keeper, &session, NOW + 1_400.0, false), None);
    // A heartbeat while the entry exists, even without a change.
    assert!(matches!(
        due(&mut keeper, &session, NOW + 1_300.0 + HEARTBEAT_MS, false),
        Some(Write::Put(..))
    ));
    let wall = NOW + 1_300.0 + HEARTBEAT_MS;
    // Ops given numbers are written at once, whatever the last write: before they go out.
    session.receive(welcome(), &mut crate::rng::Xoshiro256::seeded(1));
    let submit = session.next_op().unwrap();
    let Some(Write::Put(_, text)) = due(&mut keeper, &session, wall + 1.0, false) else {
        panic!("numbers are written at once")
    };
    let kept = decode(&text).unwrap().outbox;
    assert_eq!(kept.next, 2);
    assert_eq!(kept.ops[0].fate, Fate::InDoubt(1));
    assert!(matches!(submit, ClientMsg::Op(Submit { n: 1, .. })));
    // Once everything is settled, the entry goes.
    for seq in 1..=3 {
        if seq > 1 {
            session.next_op().unwrap();
        }
        session.receive(
            kokuban_protocol::ServerMsg::Ack(kokuban_protocol::Ack {
                epoch: kokuban_protocol::Epoch(1),
                seq: kokuban_protocol::Seq(seq),
            }),
            &mut crate::rng::Xoshiro256::seeded(1),
        );
    }
    assert_eq!(session.outstanding(), 0);
    assert_eq!(
        due(&mut keeper, &session, wall + 2.0, false),
        Some(Write::Remove(keeper.name().to_string()))
    );
    assert_eq!(
        due(&mut keeper, &session, wall + 2.0 + HEARTBEAT_MS, true),
        None
    );
}

#[test]
fn a_page_going_away_hands_its_outbox_over() {
    let key = ClientKey([1; 16]);
    let mut session = Session::new(key);
    let mut keeper = Keeper::new(&room(), "tab-a", &key, false);
    session.local(begin(1));
    let Some(Write::Put(name, text)) = keeper.release(&session, NOW, |_| None) else {
        panic!("a release is a write")
    };
    // The very next tab to open the room adopts it, however fresh the beat.
    let a = adopt(
        &room(),
        &[(name, text)],
        None,
        "tab-b",
        NOW,
        ClientKey([0; 16]),
    );
    assert!(a.adopted);
    assert_eq!(a.outbox.ops.len(), 1);
}

/// What is due, storage holding whatever this keeper last wrote.
fn due(keeper: &mut Keeper, session: &Session, wall: f64, force: bool) -> Option<Write> {
    let mine = encode(&session.outbox(), "tab-a", 0.0);
    keeper
        .due(session, wall, force, |_| Some(mine))
        .expect("still ours")
}

fn welcome() -> kokuban_protocol::ServerMsg {
    use kokuban_protocol::{Bytes, Capability, Epoch, MemberId, RoomState, ServerMsg, Welcome};
    ServerMsg::Welcome(Welcome {
        member: MemberId(1),
        author: MemberId(1),
        capability: Capability::Edit,
        epoch: Epoch(1),
        state: RoomState::Snapshot {
            board: Bytes(kokuban_board::Board::at_start_of(Epoch(1)).snapshot()),
            ops: Vec::new().into(),
        },
        members: Vec::new().into(),
        decided: 0,
    })
}
