//! Round-trips, refusals and robustness of the frame codec.

use kokuban_protocol::arbitrary::{client_msg, room_state, server_msg, welcome};
use kokuban_protocol::limits::*;
use kokuban_protocol::*;
use proptest::prelude::*;
use serde::Serialize;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_client_message_round_trips(msg in client_msg()) {
        let frame = encode_client(&msg);
        // Points by a handle that fits the first byte come without a version byte.
        match &msg {
            ClientMsg::Points(m) if (m.stroke as usize) < live::MAX_OPEN_HANDLES => {
                prop_assert_eq!(frame[0], live::POINTS_FRAME | m.stroke as u8);
            }
            _ => prop_assert_eq!(frame[0], PROTOCOL_VERSION),
        }
        prop_assert_eq!(decode_client(&frame).unwrap(), msg);
    }

    #[test]
    fn what_the_previous_version_kept_reads_alike_but_its_points_by_handle(
        client in client_msg(),
        server in server_msg(),
    ) {
        // A room's log and a tab's outbox hold frames of the version that wrote them.
        let mut kept = encode_client(&client);
        if kept[0] == PROTOCOL_VERSION {
            kept[0] = OLDEST_KEPT_VERSION;
            let refused = matches!(decode_client(&kept), Err(DecodeError::Version { .. }));
            prop_assert!(refused);
            match &client {
                ClientMsg::Points(_) => prop_assert!(decode_kept_client(&kept).is_err()),
                _ => prop_assert_eq!(decode_kept_client(&kept).unwrap(), client.clone()),
            }
        }
        prop_assert_eq!(decode_kept_client(&encode_client(&client)).unwrap(), client.clone());
        let kept = encode_kept_client(&client);
        if !matches!(client, ClientMsg::Points(_)) {
            prop_assert_eq!(kept[0], OLDEST_KEPT_VERSION);
        }
        prop_assert_eq!(decode_kept_client(&kept).unwrap(), client);
        let mut kept = encode_server(&server);
        kept[0] = OLDEST_KEPT_VERSION;
        match &server {
            ServerMsg::Points(_) => prop_assert!(decode_kept_server(&kept).is_err()),
            _ => prop_assert_eq!(decode_kept_server(&kept).unwrap(), server.clone()),
        }
        kept[0] = OLDEST_KEPT_VERSION - 1;
        let refused = matches!(decode_kept_server(&kept), Err(DecodeError::Version { .. }));
        prop_assert!(refused);
    }

    #[test]
    fn every_server_message_round_trips(msg in server_msg()) {
        let frame = encode_server(&msg);
        prop_assert_eq!(decode_server(&frame).unwrap(), msg);
    }

    #[test]
    fn a_welcome_around_a_state_encoded_apart_is_the_welcome_encoded_whole(
        welcome in welcome(),
        other in room_state(),
    ) {
        // The pieces come from a Welcome with any state: only the state given apart counts.
        let shell = Welcome { state: other, ..welcome.clone() };
        let (before, after) = encode_welcome_around(shell);
        let state = encode_state(StateRef::from(&welcome.state));
        prop_assert_eq!(decode_state(&state).unwrap(), welcome.state.clone());
        // Borrowed, the state encodes as it does owned, inside its Welcome.
        let owned = postcard::to_allocvec(&welcome.state).unwrap();
        prop_assert_eq!(&state, &owned);
        let frame = [before, state, after].concat();
        prop_assert_eq!(&frame, &encode_server(&ServerMsg::Welcome(welcome.clone())));
        prop_assert_eq!(decode_server(&frame).unwrap(), ServerMsg::Welcome(welcome));
    }

    #[test]
    fn a_board_part_head_and_its_bytes_are_the_part_encoded_whole(
        len in 0usize..70_000,
        fill in any::<u8>(),
    ) {
        // Lengths of one, two and three varint bytes; what the bytes are does not matter.
        let bytes = vec![fill; len];
        let frame = [board_part_head(bytes.len()), bytes.clone()].concat();
        prop_assert_eq!(&frame, &encode_server(&ServerMsg::BoardPart(Bytes(bytes.clone()))));
        prop_assert_eq!(decode_server(&frame).unwrap(), ServerMsg::BoardPart(Bytes(bytes)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Either a clean error, or a message that re-encodes to a frame that decodes the same.
        if let Ok(msg) = decode_client(&bytes) {
            prop_assert_eq!(decode_client(&encode_client(&msg)).unwrap(), msg);
        }
        if let Ok(msg) = decode_server(&bytes) {
            prop_assert_eq!(decode_server(&encode_server(&msg)).unwrap(), msg);
        }
    }

    #[test]
    fn corrupted_frames_never_panic(
        msg in client_msg(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut frame = encode_client(&msg);
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] = byte;
        }
        let _ = decode_client(&frame);
        let _ = decode_client(&frame[..cut.index(frame.len())]);
    }
}

/// Mirrors of the protocol's enums with unchecked fields, to write frames a well-behaved
/// encoder never would. serde numbers variants by position, so only the order matters.
#[derive(Serialize)]
#[allow(dead_code)]
enum RawClient {
    Hello(RawHello),
    /// A `Submit`: the op's number (always 0 here, one byte), then the op.
    Op(u64, RawOp),
    Cursor(Option<(i32, i32)>),
}

#[derive(Serialize)]
struct RawHello {
    room: String,
    token: String,
    resume: Option<(u64, u64)>,
    name: String,
    color: u32,
    client: [u8; 16],
}

#[derive(Serialize)]
#[allow(dead_code)]
enum RawOp {
    StrokeBegin {
        id: [u8; 16],
        tool: u32,
        color: u32,
        width: u16,
        first: (i32, i32, u8),
    },
    StrokePoints {
        id: [u8; 16],
        start: u32,
        len: u32,
        deltas: Deltas,
    },
    StrokeEnd,
    Text,
    Erase {
        ids: Vec<[u8; 16]>,
    },
}

/// Point deltas as the protocol lays them out: no length of their own (it precedes them).
struct Deltas(Vec<(i32, i32, u8)>);

impl Serialize for Deltas {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(self.0.len())?;
        for d in &self.0 {
            t.serialize_element(d)?;
        }
        t.end()
    }
}

fn raw_frame(msg: &RawClient) -> Vec<u8> {
    let mut frame = vec![PROTOCOL_VERSION];
    frame.extend(postcard::to_allocvec(msg).unwrap());
    frame
}

fn begin(width: u16, color: u32, first: (i32, i32, u8)) -> RawClient {
    RawClient::Op(
        0,
        RawOp::StrokeBegin {
            id: [7; 16],
            tool: 0,
            color,
            width,
            first,
        },
    )
}

fn points(start: u32, len: u32, deltas: Vec<(i32, i32, u8)>) -> RawClient {
    RawClient::Op(
        0,
        RawOp::StrokePoints {
            id: [7; 16],
            start,
            len,
            deltas: Deltas(deltas),
        },
    )
}

fn assert_malformed(frame: &[u8]) {
    match decode_client(frame) {
        Err(DecodeError::Malformed(_)) => {}
        other => panic!("expected a malformed-frame error, got {other:?}"),
    }
}

#[test]
fn a_valid_raw_frame_decodes_so_the_mirrors_are_faithful() {
    // Uuid serializes as a length-prefixed byte string, which postcard lays out exactly like
    // a 16-byte array preceded by its length; patch that length byte in.
    let frame = raw_frame(&begin(16, 0x112233ff, (5, -5, 9)));
    let mut fixed = frame[..4].to_vec();
    fixed.push(16);
    fixed.extend_from_slice(&frame[4..]);
    let msg = decode_client(&fixed).expect("mirror layout matches the protocol");
    let ClientMsg::Op(Submit {
        op: Op::StrokeBegin { width, first, .. },
        ..
    }) = msg
    else {
        panic!("decoded {msg:?}");
    };
    assert_eq!((width.units(), first.x(), first.y()), (16, 5, -5));
}

fn with_uuid_len(frame: Vec<u8>) -> Vec<u8> {
    let mut fixed = frame[..4].to_vec();
    fixed.push(16);
    fixed.extend_from_slice(&frame[4..]);
    fixed
}

#[test]
fn out_of_range_values_are_refused_at_decode() {
    assert_malformed(&with_uuid_len(raw_frame(&begin(0, 0x112233ff, (0, 0, 0)))));
    assert_malformed(&with_uuid_len(raw_frame(&begin(
        MAX_WIDTH + 1,
        0x112233ff,
        (0, 0, 0),
    ))));
    assert_malformed(&with_uuid_len(raw_frame(&begin(16, 0x11223300, (0, 0, 0)))));
    assert_malformed(&with_uuid_len(raw_frame(&begin(
        16,
        0x112233ff,
        (COORD_LIMIT + 1, 0, 0),
    ))));
    assert_malformed(&with_uuid_len(raw_frame(&begin(
        16,
        0x112233ff,
        (0, i32::MIN, 0),
    ))));
}

#[test]
fn point_batches_are_bounded_and_deltas_cannot_escape_the_world() {
    let ok = with_uuid_len(raw_frame(&points(1, 2, vec![(1, 1, 0), (2, 2, 0)])));
    assert!(decode_client(&ok).is_ok());
    // Empty batch, a batch declaring more than the limit, and a length the data does not hold.
    assert_malformed(&with_uuid_len(raw_frame(&points(1, 0, vec![]))));
    let n = MAX_POINTS_PER_BATCH as u32 + 1;
    assert_malformed(&with_uuid_len(raw_frame(&points(
        1,
        n,
        vec![(1, 1, 0); n as usize],
    ))));
    assert_malformed(&with_uuid_len(raw_frame(&points(1, 5, vec![(1, 1, 0)]))));
    // Each delta is small but together they walk out of bounds.
    let walk = vec![(COORD_LIMIT, 0, 0), (COORD_LIMIT, 0, 0)];
    assert_malformed(&with_uuid_len(raw_frame(&points(1, 2, walk))));
    // Deltas that overflow i32.
    let overflow = vec![(COORD_LIMIT, 0, 0), (i32::MAX, 0, 0)];
    assert_malformed(&with_uuid_len(raw_frame(&points(1, 2, overflow))));
    // A batch that would take the stroke past its point limit, and point 0 (StrokeBegin's).
    assert_malformed(&with_uuid_len(raw_frame(&points(
        MAX_POINTS_PER_STROKE,
        1,
        vec![(0, 0, 0)],
    ))));
    assert_malformed(&with_uuid_len(raw_frame(&points(0, 1, vec![(0, 0, 0)]))));
}

#[test]
fn erase_lists_are_bounded() {
    let ids = |n: usize| {
        // Each Uuid is a 16-byte string with its length byte.
        let mut frame = vec![PROTOCOL_VERSION, 1, 0, 4];
        let mut len = Vec::new();
        let mut n2 = n;
        loop {
            let byte = (n2 & 0x7f) as u8;
            n2 >>= 7;
            if n2 == 0 {
                len.push(byte);
                break;
            }
            len.push(byte | 0x80);
        }
        frame.extend(len);
        for _ in 0..n {
            frame.push(16);
            frame.extend([3u8; 16]);
        }
        frame
    };
    let ok = decode_client(&ids(MAX_IDS_PER_OP)).unwrap();
    assert!(
        matches!(ok, ClientMsg::Op(Submit { op: Op::Erase { ids }, .. }) if ids.len() == MAX_IDS_PER_OP)
    );
    assert_malformed(&ids(MAX_IDS_PER_OP + 1));
}

#[test]
fn names_and_ids_are_checked() {
    let hello = |room: &str, name: &str| {
        raw_frame(&RawClient::Hello(RawHello {
            room: room.into(),
            token: "tok".into(),
            resume: None,
            name: name.into(),
            color: 0xff,
            client: [7; 16],
        }))
    };
    assert!(decode_client(&hello("room_1", "Ada")).is_ok());
    assert_malformed(&hello("room/1", "Ada"));
    assert_malformed(&hello("", "Ada"));
    assert_malformed(&hello("room", "Ada\u{7}"));
    assert_malformed(&hello("room", &"x".repeat(MAX_NAME_BYTES + 1)));
}

#[test]
fn framing_errors_say_what_is_wrong() {
    assert_eq!(decode_client(&[]), Err(DecodeError::Empty));
    let frame = encode_client(&ClientMsg::Cursor(None));
    let mut other = frame.clone();
    other[0] = PROTOCOL_VERSION + 1;
    let err = decode_client(&other).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Version {
            got: PROTOCOL_VERSION + 1,
            supported: PROTOCOL_VERSION
        }
    );
    assert!(
        err.to_string()
            .contains(&format!("speaks version {PROTOCOL_VERSION}"))
    );
    let mut trailing = frame.clone();
    trailing.push(0);
    assert_eq!(decode_client(&trailing), Err(DecodeError::Trailing(1)));
    let big = vec![PROTOCOL_VERSION; MAX_CLIENT_FRAME_BYTES + 1];
    assert!(matches!(
        decode_client(&big),
        Err(DecodeError::TooLarge { .. })
    ));
    assert!(decode_client(&frame).is_ok());
}

#[test]
fn error_messages_are_cut_at_a_character_boundary() {
    let e = ErrorFrame::new(ErrorCode::Internal, "é".repeat(MAX_ERROR_MESSAGE_BYTES));
    assert!(e.message.len() <= MAX_ERROR_MESSAGE_BYTES);
    let frame = encode_server(&ServerMsg::Error(e.clone()));
    assert_eq!(decode_server(&frame).unwrap(), ServerMsg::Error(e));
}

/// The laser messages were appended to their enums: the tags of the messages before them
/// are unchanged, so the new variants take the next tag.
#[test]
fn laser_messages_take_the_last_tags_and_round_trip() {
    let at = Cursor::new(-40, 16).unwrap();
    let up = encode_client(&ClientMsg::Laser(at));
    assert_eq!(up[1], 4, "after Hello, Op, Cursor, Profile");
    assert_eq!(decode_client(&up).unwrap(), ClientMsg::Laser(at));
    let down = ServerMsg::Laser(LaserUpdate {
        member: MemberId(7),
        at,
    });
    let frame = encode_server(&down);
    assert_eq!(
        frame[1], 7,
        "after Welcome, BoardPart, Op, Ack, Presence, Cursor, Error"
    );
    assert_eq!(decode_server(&frame).unwrap(), down);
    // Out of the world: refused like a cursor.
    let mut far = vec![PROTOCOL_VERSION];
    far.extend(postcard::to_allocvec(&(4u8, (COORD_LIMIT + 1, 0i32))).unwrap());
    assert!(matches!(
        decode_client(&far),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn camera_messages_come_after_the_laser_and_their_zoom_is_bounded() {
    let at = Cursor::new(8, -8).unwrap();
    let camera = Camera::new(at, 1500).unwrap();
    let up = encode_client(&ClientMsg::Camera(camera));
    assert_eq!(up[1], 5);
    assert_eq!(decode_client(&up).unwrap(), ClientMsg::Camera(camera));
    let down = ServerMsg::Camera(CameraUpdate {
        member: MemberId(3),
        camera,
    });
    let frame = encode_server(&down);
    assert_eq!(frame[1], 8);
    assert_eq!(decode_server(&frame).unwrap(), down);
    assert!(Camera::new(at, MIN_ZOOM_MILLI - 1).is_err());
    assert!(Camera::new(at, MAX_ZOOM_MILLI + 1).is_err());
    let mut zero = vec![PROTOCOL_VERSION];
    zero.extend(postcard::to_allocvec(&(5u8, ((8i32, -8i32), 0u16))).unwrap());
    assert!(matches!(
        decode_client(&zero),
        Err(DecodeError::Malformed(_))
    ));
}
