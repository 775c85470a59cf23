//! proptest strategies for every protocol type (feature `proptest`).

use proptest::collection::vec;
use proptest::prelude::*;
use uuid::Uuid;

use crate::limits::{COORD_LIMIT, MAX_WIDTH, MAX_ZOOM_MILLI, MIN_WIDTH, MIN_ZOOM_MILLI};
use crate::*;

/// Stroke ids drawn from a small pool, so that generated op sequences refer to the same strokes.
pub fn stroke_id() -> impl Strategy<Value = StrokeId> {
    (0u8..12).prop_map(|n| StrokeId(Uuid::from_bytes([n; 16])))
}

/// Members from a small pool.
pub fn member_id() -> impl Strategy<Value = MemberId> {
    (0u64..4).prop_map(MemberId)
}

/// Points anywhere in bounds, biased towards small coordinates.
pub fn point() -> impl Strategy<Value = Point> {
    let coord = prop_oneof![-1000i32..1000, -COORD_LIMIT..=COORD_LIMIT];
    (coord.clone(), coord, any::<u8>()).prop_map(|(x, y, p)| Point::new(x, y, p).unwrap())
}

/// Point batches of 1 to 40 points.
pub fn points() -> impl Strategy<Value = Points> {
    vec(point(), 1..40).prop_map(|p| Points::new(p).unwrap())
}

/// Valid colours.
pub fn color() -> impl Strategy<Value = Color> {
    any::<u32>().prop_map(|c| Color::new(c | 1).unwrap())
}

/// Valid widths.
pub fn width() -> impl Strategy<Value = Width> {
    (MIN_WIDTH..=MAX_WIDTH).prop_map(|w| Width::new(w).unwrap())
}

/// Tools.
pub fn tool() -> impl Strategy<Value = Tool> {
    prop_oneof![
        Just(Tool::Pen),
        Just(Tool::Highlighter),
        Just(Tool::Line),
        Just(Tool::Arrow),
        Just(Tool::Rect),
        Just(Tool::Ellipse),
    ]
}

/// Short valid texts.
pub fn text() -> impl Strategy<Value = Text> {
    "[a-zA-Z0-9 äö漢\n]{0,40}".prop_map(|s| Text::new(s).unwrap())
}

/// Valid names.
pub fn name() -> impl Strategy<Value = Name> {
    "[a-zA-Z0-9 äö漢]{0,12}".prop_map(|s| Name::new(s).unwrap())
}

/// Room ids and tokens.
pub fn id_string() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

fn ids() -> impl Strategy<Value = Bounded<StrokeId, { limits::MAX_IDS_PER_OP }>> {
    vec(stroke_id(), 0..6).prop_map(|v| Bounded::new(v).unwrap())
}

/// Any op, over a small pool of strokes.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (stroke_id(), tool(), color(), width(), point()).prop_map(
            |(id, tool, color, width, first)| Op::StrokeBegin { id, tool, color, width, first }
        ),
        4 => (stroke_id(), 1u32..60, points())
            .prop_map(|(id, start, points)| Op::StrokePoints(StrokePoints::new(id, start, points).unwrap())),
        2 => stroke_id().prop_map(|id| Op::StrokeEnd { id }),
        1 => (stroke_id(), point(), color(), width(), text())
            .prop_map(|(id, at, color, size, text)| Op::Text { id, at, color, size, text }),
        2 => ids().prop_map(|ids| Op::Erase { ids }),
        2 => ids().prop_map(|ids| Op::Restore { ids }),
        1 => vec((stroke_id(), -5000i32..5000, -5000i32..5000), 0..4).prop_map(|v| Op::Move {
            to: Bounded::new(v.into_iter().map(|(id, dx, dy)| Placement::new(id, dx, dy).unwrap()).collect()).unwrap()
        }),
        1 => Just(Op::Clear),
        1 => "[a-zA-Z0-9 äö漢]{0,16}".prop_map(|s| Op::Title { title: Title::new(s).unwrap() }),
        1 => vec((stroke_id(), color(), width()), 0..4).prop_map(|v| Op::Restyle {
            to: Bounded::new(v.into_iter().map(|(id, color, width)| Style { id, color, width }).collect()).unwrap()
        }),
        1 => vec((stroke_id(), look()), 0..4).prop_map(|v| Op::Look {
            to: Bounded::new(v.into_iter().map(|(id, look)| LookOf { id, look }).collect()).unwrap()
        }),
        1 => (stroke_id(), blob_hash(), point(), 1i32..4000, 1i32..4000).prop_filter_map(
            "the box must fit in the world",
            |(id, blob, at, w, h)| {
                let to = Point::new(at.x().checked_add(w)?, at.y().checked_add(h)?, 0).ok()?;
                Some(Op::Image(PlacedImage::new(id, blob, at, to).unwrap()))
            }
        ),
        1 => vec((stroke_id(), form()), 0..4).prop_map(|v| Op::Form {
            to: Bounded::new(v.into_iter().map(|(id, form)| FormOf { id, form }).collect()).unwrap()
        }),
    ]
}

/// Any form, as drawn often.
pub fn form() -> impl Strategy<Value = Form> {
    let scale = prop_oneof![
        Just(1000i32),
        Scale::MIN..=Scale::MAX,
        -Scale::MAX..=-Scale::MIN
    ]
    .prop_map(|s| Scale::new(s).unwrap());
    prop_oneof![
        1 => Just(Form::default()),
        3 => (scale.clone(), scale, any::<u16>()).prop_map(|(sx, sy, turn)| Form { sx, sy, turn }),
    ]
}

/// Image hashes, from a small pool (so that ops name the same images).
pub fn blob_hash() -> impl Strategy<Value = BlobHash> {
    (0u8..3).prop_map(|n| BlobHash([n; 32]))
}

/// Any look, the default often (what most items have).
pub fn look() -> impl Strategy<Value = Look> {
    let fill = prop_oneof![
        Just(Fill::None),
        Just(Fill::Tint),
        Just(Fill::Solid),
        Just(Fill::Hachure)
    ];
    let dash = prop_oneof![Just(Dash::Solid), Just(Dash::Dashed), Just(Dash::Dotted)];
    let align = prop_oneof![Just(Align::Left), Just(Align::Center), Just(Align::Right)];
    let opacity =
        prop_oneof![Just(100u8), Opacity::MIN..=100u8].prop_map(|o| Opacity::new(o).unwrap());
    prop_oneof![
        1 => Just(Look::default()),
        3 => (fill, dash, opacity, align).prop_map(|(fill, dash, opacity, align)| Look { fill, dash, opacity, align }),
    ]
}

/// Cursor positions.
pub fn cursor() -> impl Strategy<Value = Cursor> {
    (-COORD_LIMIT..=COORD_LIMIT, -COORD_LIMIT..=COORD_LIMIT)
        .prop_map(|(x, y)| Cursor::new(x, y).unwrap())
}

fn position() -> impl Strategy<Value = Position> {
    (any::<u64>(), any::<u64>()).prop_map(|(e, s)| Position {
        epoch: Epoch(e),
        seq: Seq(s),
    })
}

/// Cameras.
pub fn camera() -> impl Strategy<Value = Camera> {
    (cursor(), MIN_ZOOM_MILLI..=MAX_ZOOM_MILLI).prop_map(|(c, z)| Camera::new(c, z).unwrap())
}

/// Point offsets, small like a pen's and now and then anything.
pub fn offsets() -> impl Strategy<Value = Offsets> {
    let offset = prop_oneof![
        4 => (-200i32..200, -200i32..200, any::<u8>()),
        1 => (any::<i32>(), any::<i32>(), any::<u8>()),
    ];
    vec(offset, 1..12).prop_map(|o| Offsets::new(o).unwrap())
}

/// Any client message.
pub fn client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        (
            id_string(),
            id_string(),
            proptest::option::of(position()),
            name(),
            color(),
            any::<[u8; 16]>()
        )
            .prop_map(
                |(room, token, resume, name, color, key)| ClientMsg::Hello(Hello {
                    room: RoomId::new(room).unwrap(),
                    token: Token::new(token).unwrap(),
                    resume,
                    name,
                    color,
                    client: ClientKey(key),
                })
            ),
        (any::<u64>(), op()).prop_map(|(n, op)| ClientMsg::Op(Submit { n, op })),
        proptest::option::of(cursor()).prop_map(ClientMsg::Cursor),
        (name(), color()).prop_map(|(name, color)| ClientMsg::Profile(Profile { name, color })),
        cursor().prop_map(ClientMsg::Laser),
        camera().prop_map(ClientMsg::Camera),
        Just(ClientMsg::AskToFollow),
        (0u32..20, offsets())
            .prop_map(|(stroke, points)| ClientMsg::Points(MorePoints { stroke, points })),
    ]
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![Just(Capability::Edit), Just(Capability::View)]
}

fn member() -> impl Strategy<Value = Member> {
    (member_id(), name(), color(), capability()).prop_map(|(id, name, color, capability)| Member {
        id,
        name,
        color,
        capability,
    })
}

/// Sequenced ops.
pub fn sequenced() -> impl Strategy<Value = Sequenced> {
    (any::<u64>(), any::<u64>(), member_id(), op()).prop_map(|(e, s, author, op)| Sequenced {
        epoch: Epoch(e),
        seq: Seq(s),
        author,
        op,
    })
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::VersionMismatch),
        Just(ErrorCode::Malformed),
        Just(ErrorCode::UnexpectedMessage),
        Just(ErrorCode::Forbidden),
        Just(ErrorCode::ViewOnly),
        Just(ErrorCode::RateLimited),
        Just(ErrorCode::InvalidOp),
        Just(ErrorCode::TemporarilyReadOnly),
        Just(ErrorCode::RoomFull),
        Just(ErrorCode::Overloaded),
        Just(ErrorCode::Decided),
        Just(ErrorCode::BoardFull),
        Just(ErrorCode::Internal),
    ]
}

/// A Welcome's state: a replay, a whole snapshot, or a snapshot in parts.
pub fn room_state() -> impl Strategy<Value = RoomState> {
    prop_oneof![
        vec(sequenced(), 0..5).prop_map(|ops| RoomState::Replay { ops: ops.into() }),
        vec(sequenced(), 0..5).prop_map(|ops| RoomState::InParts { ops: ops.into() }),
        (vec(any::<u8>(), 0..64), vec(sequenced(), 0..5)).prop_map(|(b, ops)| {
            RoomState::Snapshot {
                board: Bytes(b),
                ops: ops.into(),
            }
        }),
    ]
}

/// A Welcome.
pub fn welcome() -> impl Strategy<Value = Welcome> {
    (
        (member_id(), member_id(), capability()),
        any::<u64>(),
        room_state(),
        vec(member(), 0..4),
        any::<u64>(),
    )
        .prop_map(
            |((member, author, capability), epoch, state, members, decided)| Welcome {
                member,
                author,
                capability,
                epoch: Epoch(epoch),
                state,
                members: members.into(),
                decided,
            },
        )
}

/// Any server message.
pub fn server_msg() -> impl Strategy<Value = ServerMsg> {
    prop_oneof![
        welcome().prop_map(ServerMsg::Welcome),
        sequenced().prop_map(ServerMsg::Op),
        vec(any::<u8>(), 0..64).prop_map(|b| ServerMsg::BoardPart(Bytes(b))),
        position().prop_map(|p| ServerMsg::Ack(Ack {
            epoch: p.epoch,
            seq: p.seq
        })),
        prop_oneof![
            member().prop_map(PresenceEvent::Joined),
            member().prop_map(PresenceEvent::Updated),
            member_id().prop_map(PresenceEvent::Left),
        ]
        .prop_map(ServerMsg::Presence),
        (member_id(), proptest::option::of(cursor()))
            .prop_map(|(member, at)| ServerMsg::Cursor(CursorUpdate { member, at })),
        (error_code(), "[ -~]{0,80}")
            .prop_map(|(code, m)| ServerMsg::Error(ErrorFrame::new(code, m))),
        (member_id(), cursor())
            .prop_map(|(member, at)| ServerMsg::Laser(LaserUpdate { member, at })),
        member_id().prop_map(ServerMsg::AskToFollow),
        any::<u8>().prop_map(ServerMsg::Acked),
        (any::<u8>(), 0u32..70, offsets()).prop_map(|(check, stroke, points)| {
            ServerMsg::Points(LivePoints {
                check,
                stroke,
                points,
            })
        }),
    ]
}
