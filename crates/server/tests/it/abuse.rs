//! Abuse at the protocol level: ops that are well-formed but make no sense on the board
//! (replayed ids, other members' strokes, targets that do not exist) and values outside the
//! protocol's limits. Refused ops must cost nothing: no seq, no relay, no storage.

use crate::harness::{TestClient, TestServer, Watch, stroke_ops};
use kokuban_protocol::Submit;
use kokuban_protocol::limits::{COORD_LIMIT, MAX_POINTS_PER_STROKE};
use kokuban_protocol::{
    Bounded, ClientMsg, Color, ErrorCode, Op, PROTOCOL_VERSION, Placement, Point, Points,
    ServerMsg, StrokeId, StrokePoints, Style, Tool, Width, encode_client,
};

/// Makes `id` red and 6 px wide.
fn restyle(id: StrokeId) -> Op {
    let to = vec![Style {
        id,
        color: Color::rgb(224, 49, 49),
        width: Width::from_px(6.0),
    }];
    Op::Restyle {
        to: Bounded::new(to).unwrap(),
    }
}

fn ids(ids: &[StrokeId]) -> Bounded<StrokeId, { kokuban_protocol::limits::MAX_IDS_PER_OP }> {
    Bounded::new(ids.to_vec()).unwrap()
}

fn batch(id: StrokeId, start: u32, xs: &[i32]) -> Op {
    let points = Points::new(xs.iter().map(|&x| Point::new(x, x, 9).unwrap()).collect()).unwrap();
    Op::StrokePoints(StrokePoints::new(id, start, points).unwrap())
}

/// Sends an op that must be refused and returns the error's message. The refusal answers it,
/// so nothing of this client's is left unanswered.
async fn refused(client: &mut TestClient, op: Op) -> String {
    client.send_op(op).await;
    let message = client.expect_error(ErrorCode::InvalidOp).await;
    assert_eq!(client.pending(), 0, "the refusal answered the op");
    message
}

#[tokio::test]
async fn ops_the_board_would_ignore_are_refused_before_they_are_sequenced() {
    let server = TestServer::start().await;
    let mut watch = Watch::start(&server).await;
    let room = server.create_room().await;
    let mut ada = server.editor(&room, "ada").await;
    let mut bob = server.editor(&room, "bob").await;

    // Ada's stroke, still being drawn: begin and two points.
    let (stroke, ops) = stroke_ops(1, 3, 2);
    ada.send_op(ops[0].clone()).await;
    ada.send_op(ops[1].clone()).await;
    ada.settle().await;
    bob.sync_to(ada.position().seq).await;
    let head = ada.position().seq;

    // Bob replays her stroke id, continues and ends her stroke.
    let messages = vec![
        refused(&mut bob, ops[0].clone()).await,
        refused(&mut bob, batch(stroke, 3, &[5])).await,
        refused(&mut bob, Op::StrokeEnd { id: stroke }).await,
        // Strokes that do not exist: erased, restored, moved, continued.
        refused(
            &mut bob,
            Op::Erase {
                ids: ids(&[StrokeId(uuid::Uuid::new_v4())]),
            },
        )
        .await,
        refused(
            &mut bob,
            Op::Restore {
                ids: ids(&[StrokeId(uuid::Uuid::new_v4()), stroke]),
            },
        )
        .await,
        refused(
            &mut bob,
            Op::Move {
                to: Bounded::new(vec![
                    Placement::new(StrokeId(uuid::Uuid::new_v4()), 8, 8).unwrap(),
                ])
                .unwrap(),
            },
        )
        .await,
        refused(&mut bob, batch(StrokeId(uuid::Uuid::new_v4()), 1, &[1])).await,
        refused(&mut bob, restyle(StrokeId(uuid::Uuid::new_v4()))).await,
    ];
    assert!(
        messages.iter().any(|m| m.contains("author")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("exists")),
        "{messages:?}"
    );
    // Ada's own mistakes: a batch that leaves a hole, a batch she already sent, ending twice.
    refused(&mut ada, batch(stroke, 9, &[9])).await;
    refused(&mut ada, ops[1].clone()).await;
    ada.send_op(Op::StrokeEnd { id: stroke }).await;
    ada.settle().await;
    refused(&mut ada, Op::StrokeEnd { id: stroke }).await;
    refused(&mut ada, batch(stroke, 3, &[3])).await;
    let refusals = 12.0;
    watch.check().await;

    // Erasing, restoring, moving and restyling someone else's stroke is allowed (an eraser erases
    // whatever it touches, and undoing that erase restores it).
    bob.send_op(Op::Erase {
        ids: ids(&[stroke]),
    })
    .await;
    bob.send_op(Op::Restore {
        ids: ids(&[stroke]),
    })
    .await;
    bob.send_op(Op::Move {
        to: Bounded::new(vec![Placement::new(stroke, 16, 0).unwrap()]).unwrap(),
    })
    .await;
    bob.send_op(restyle(stroke)).await;
    bob.settle().await;
    ada.sync_to(bob.position().seq).await;

    // Only the accepted ops took seqs: the end, then Bob's four. Dense, and the same for both.
    assert_eq!(bob.position().seq.0, head.0 + 5);
    for client in [&ada, &bob] {
        let seqs: Vec<u64> = client.seen.iter().map(|s| s.seq.0).collect();
        let first = seqs[0];
        assert_eq!(
            seqs,
            (first..first + seqs.len() as u64).collect::<Vec<_>>(),
            "seqs are dense"
        );
    }
    // Nothing refused was relayed: every op Ada received from Bob is one he had acknowledged.
    let from_bob: Vec<&Op> = ada
        .seen
        .iter()
        .filter(|s| s.author == bob.author())
        .map(|s| &s.op)
        .collect();
    assert_eq!(from_bob.len(), 4, "{from_bob:?}");
    assert!(matches!(from_bob[0], Op::Erase { .. }));
    assert_eq!(
        ada.other
            .iter()
            .filter(|m| matches!(m, ServerMsg::Error(_)))
            .count(),
        4,
        "Ada got her own four refusals and nothing of Bob's"
    );
    // Everyone, a late joiner included, has the same board.
    let late = server.viewer(&room, "late").await;
    assert_eq!(ada.board.snapshot(), bob.board.snapshot());
    assert_eq!(late.board.snapshot(), ada.board.snapshot());
    let stroke_now = late.board.get(&stroke).unwrap();
    assert_eq!(stroke_now.author, ada.author());
    assert_eq!(stroke_now.points.len(), 3);
    assert_eq!(stroke_now.offset, (16, 0));
    assert_eq!(stroke_now.color, Color::rgb(224, 49, 49));
    assert_eq!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"invalid_op\"}")
            .await,
        refusals
    );
    // The probe's ops are sequenced too, in its own room.
    let probe_ops =
        server.metric("kokuban_ops_sequenced_total").await - bob.position().seq.0 as f64;
    assert_eq!(
        probe_ops, 11.0,
        "the probe's ten baseline ops and one check"
    );
    for c in [ada, bob, late] {
        c.close().await;
    }
    watch.finish(&server).await;
}

/// The frame of `Op::StrokePoints`, written by hand so that its fields can break the rules:
/// version, `ClientMsg::Op`, the op's number (1), `Op::StrokePoints`, the id (16
/// length-prefixed bytes), `start`, the point count, then each point as zigzag varints
/// `(dx, dy)` and a pressure byte.
fn points_frame(id: StrokeId, start: u32, count: u32, points: &[(i32, i32)]) -> Vec<u8> {
    let mut f = vec![PROTOCOL_VERSION, 1, 1, 1, 16];
    f.extend_from_slice(id.0.as_bytes());
    varint(&mut f, u64::from(start));
    varint(&mut f, u64::from(count));
    let mut prev = (0i32, 0i32);
    for &(x, y) in points {
        varint(&mut f, zigzag(x.wrapping_sub(prev.0)));
        varint(&mut f, zigzag(y.wrapping_sub(prev.1)));
        f.push(7);
        prev = (x, y);
    }
    f
}

fn zigzag(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[tokio::test]
async fn values_outside_the_protocol_limits_are_refused_and_the_board_stays_consistent() {
    let server = TestServer::start().await;
    let mut watch = Watch::start(&server).await;
    let room = server.create_room().await;
    let mut ada = server.editor(&room, "ada").await;
    let mut bob = server.editor(&room, "bob").await;
    let (stroke, ops) = stroke_ops(1, 2, 1);
    ada.send_op(ops[0].clone()).await;
    ada.settle().await;

    // The hand-made encoding is the protocol's own: a valid batch encodes the same.
    let valid = points_frame(stroke, 1, 1, &[(8, -8)]);
    assert_eq!(
        valid,
        encode_client(&ClientMsg::Op(Submit {
            n: 1,
            op: batch_at(stroke, 1, (8, -8))
        }))
    );
    let malformed = [
        // Coordinates beyond the world (fixed point: NaN and infinities cannot be written;
        // the browser's quantizer refuses them before they get here).
        points_frame(stroke, 1, 1, &[(COORD_LIMIT + 1, 0)]),
        points_frame(stroke, 1, 2, &[(COORD_LIMIT, 0), (-COORD_LIMIT - 1, 0)]),
        // A batch that claims a million points (and carries two).
        points_frame(stroke, 1, 1_000_000, &[(0, 0), (1, 1)]),
        // A stroke past its point limit.
        points_frame(stroke, MAX_POINTS_PER_STROKE, 1, &[(0, 0)]),
        // A batch that would overwrite the first point.
        points_frame(stroke, 0, 1, &[(0, 0)]),
        // An empty batch.
        points_frame(stroke, 1, 0, &[]),
    ];
    let n = malformed.len();
    for frame in malformed {
        ada.send_raw(frame).await;
        ada.expect_error(ErrorCode::Malformed).await;
    }
    // Widths below the minimum and above the maximum: the width is the varint just before
    // the first point, whose three zeros end the frame.
    let begin = encode_client(&ClientMsg::Op(Submit {
        n: 1,
        op: Op::StrokeBegin {
            id: StrokeId(uuid::Uuid::new_v4()),
            tool: Tool::Pen,
            color: Color::rgb(1, 2, 3),
            width: Width::new(16).unwrap(),
            first: Point::new(0, 0, 0).unwrap(),
        },
    }));
    let width_at = begin.len() - 4;
    assert_eq!(begin[width_at], 16);
    for width in [vec![0], vec![0xa0, 0x1f]] {
        let mut f = begin[..width_at].to_vec();
        f.extend_from_slice(&width);
        f.extend_from_slice(&begin[width_at + 1..]);
        ada.send_raw(f).await;
        ada.expect_error(ErrorCode::Malformed).await;
    }

    watch.check().await;
    // Nothing of it took a seq or reached Bob; the stroke goes on normally.
    ada.send_op(batch_at(stroke, 1, (8, -8))).await;
    ada.send_op(Op::StrokeEnd { id: stroke }).await;
    ada.settle().await;
    bob.sync_to(ada.position().seq).await;
    assert_eq!(ada.position().seq.0, 3, "begin, the batch, the end");
    assert!(
        !bob.other.iter().any(|m| matches!(m, ServerMsg::Error(_))),
        "{:?}",
        bob.other
    );
    let late = TestClient::join(&server, &room, &room.view, "late", None).await;
    assert_eq!(late.board.snapshot(), bob.board.snapshot());
    assert_eq!(late.board.get(&stroke).unwrap().points.len(), 2);
    assert!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"malformed\"}")
            .await
            >= (n + 2) as f64
    );
    for c in [ada, bob, late] {
        c.close().await;
    }
    watch.finish(&server).await;
}

fn batch_at(id: StrokeId, start: u32, (x, y): (i32, i32)) -> Op {
    let points = Points::new(vec![Point::new(x, y, 7).unwrap()]).unwrap();
    Op::StrokePoints(StrokePoints::new(id, start, points).unwrap())
}
