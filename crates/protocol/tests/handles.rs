//! Stroke handles: whatever a client sends on a connection, the server reads back exactly the
//! ops it meant, short forms included; handles never cross a reconnect.

use kokuban_protocol::arbitrary::{point, stroke_id};
use kokuban_protocol::*;
use proptest::prelude::*;

/// What a client may send, as far as handles go: strokes begun, continued (in order, from
/// further back, or from a point of another batch), ended; other messages; numbers skipped.
#[derive(Debug, Clone)]
enum Step {
    Begin(StrokeId, Point),
    Points(StrokeId, u32, Vec<Point>),
    End(StrokeId),
    Cursor,
    SkipNumbers(u64),
    Reconnect,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (stroke_id(), point()).prop_map(|(id, p)| Step::Begin(id, p)),
        6 => (stroke_id(), 0u32..40, proptest::collection::vec(point(), 1..6))
            .prop_map(|(id, start, ps)| Step::Points(id, start, ps)),
        1 => stroke_id().prop_map(Step::End),
        1 => Just(Step::Cursor),
        1 => (0u64..3).prop_map(Step::SkipNumbers),
        1 => Just(Step::Reconnect),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn the_server_reads_every_op_as_sent(steps in proptest::collection::vec(step(), 1..80)) {
        let (mut client, mut server) = (Handles::new(), Handles::new());
        let mut n = 0u64;
        // Where each stroke's next batch starts, as the client last sent it.
        let mut next = std::collections::HashMap::new();
        for step in steps {
            n += 1;
            let msg = match step {
                Step::Begin(id, first) => {
                    next.insert(id, 1u32);
                    ClientMsg::Op(Submit { n, op: Op::StrokeBegin {
                        id, tool: Tool::Pen, color: Color::rgb(0, 0, 0),
                        width: Width::new(8).unwrap(), first,
                    }})
                }
                Step::Points(id, start, points) => {
                    // Mostly the batch that follows; sometimes one from anywhere.
                    let start = if start % 4 == 0 { start + 1 } else { *next.get(&id).unwrap_or(&1) };
                    next.insert(id, start + points.len() as u32);
                    let b = StrokePoints::new(id, start, Points::new(points).unwrap()).unwrap();
                    ClientMsg::Op(Submit { n, op: Op::StrokePoints(b) })
                }
                Step::End(id) => ClientMsg::Op(Submit { n, op: Op::StrokeEnd { id } }),
                Step::Cursor => ClientMsg::Cursor(None),
                Step::SkipNumbers(k) => { n += k; continue; }
                Step::Reconnect => {
                    client = Handles::new();
                    server = Handles::new();
                    continue;
                }
            };
            let frame = client.encode(&msg);
            let got = decode_client(&frame).unwrap();
            prop_assert_eq!(server.expand(got).unwrap(), msg);
        }
    }

    #[test]
    fn a_handle_from_before_a_reconnect_is_refused_not_misread(
        first in point(), more in proptest::collection::vec(point(), 1..4),
    ) {
        let id = StrokeId(uuid::Uuid::from_u128(7));
        let mut client = Handles::new();
        let begin = ClientMsg::Op(Submit { n: 1, op: Op::StrokeBegin {
            id, tool: Tool::Pen, color: Color::rgb(0, 0, 0), width: Width::new(8).unwrap(), first,
        }});
        client.encode(&begin);
        let b = StrokePoints::new(id, 1, Points::new(more).unwrap()).unwrap();
        let short = client.encode(&ClientMsg::Op(Submit { n: 2, op: Op::StrokePoints(b) }));
        // The server of a new connection never saw the Begin.
        let mut server = Handles::new();
        prop_assert!(server.expand(decode_client(&short).unwrap()).is_err());
    }

    #[test]
    fn a_reused_handle_names_the_stroke_begun_last(
        a in point(), b in point(), more in proptest::collection::vec(point(), 1..4),
    ) {
        // Stroke 1 ends and stroke 2 begins: handle 0 now names stroke 2.
        let (one, two) = (StrokeId(uuid::Uuid::from_u128(1)), StrokeId(uuid::Uuid::from_u128(2)));
        let begin = |n, id, first| ClientMsg::Op(Submit { n, op: Op::StrokeBegin {
            id, tool: Tool::Pen, color: Color::rgb(0, 0, 0), width: Width::new(8).unwrap(), first,
        }});
        let (mut client, mut server) = (Handles::new(), Handles::new());
        for msg in [begin(1, one, a), ClientMsg::Op(Submit { n: 2, op: Op::StrokeEnd { id: one } }), begin(3, two, b)] {
            server.expand(decode_client(&client.encode(&msg)).unwrap()).unwrap();
        }
        let batch = StrokePoints::new(two, 1, Points::new(more).unwrap()).unwrap();
        let msg = ClientMsg::Op(Submit { n: 4, op: Op::StrokePoints(batch) });
        let frame = client.encode(&msg);
        let handle = match decode_client(&frame).unwrap() {
            ClientMsg::Points(more) => Some(more.stroke),
            _ => None,
        };
        prop_assert_eq!(handle, Some(0));
        prop_assert_eq!(server.expand(decode_client(&frame).unwrap()).unwrap(), msg);
    }
}
