//! Any sequence of ops that decode from client frames, by any authors, leaves the board
//! consistent: applying an op never panics, repeating it at once changes nothing, what the
//! board reports as changed is what changed, the same ops in a room's order build the same
//! strokes, and a snapshot taken half-way continues exactly like the original.
//!
//! Input: records of `[author: u8][length: u16 LE][body: length bytes]`. The protocol version
//! byte is put in front of each body here, so the fuzzer spends its time on op bodies rather
//! than rediscovering the version byte in every record.
#![no_main]

use std::collections::HashSet;

use kokuban_board::{Board, Change, MAX_TOMBSTONES};
use kokuban_protocol::limits::MAX_POINTS_PER_STROKE;
use kokuban_protocol::{
    ClientMsg, Epoch, MemberId, Op, PROTOCOL_VERSION, Position, Seq, Sequenced, Submit,
    decode_client,
};
use libfuzzer_sys::fuzz_target;

/// Splits the input into decoded ops with their authors; records that do not decode to an op
/// are skipped, as the server would refuse them.
fn ops(mut data: &[u8]) -> Vec<(MemberId, Op)> {
    let mut ops = Vec::new();
    while let [author, lo, hi, rest @ ..] = data {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len());
        let (body, tail) = rest.split_at(len);
        data = tail;
        let mut frame = Vec::with_capacity(body.len() + 1);
        frame.push(PROTOCOL_VERSION);
        frame.extend_from_slice(body);
        // Few authors, so that ops often touch strokes of the same member.
        if let Ok(ClientMsg::Op(Submit { op, .. })) = decode_client(&frame) {
            ops.push((MemberId(u64::from(author % 4)), op));
        }
    }
    ops
}

/// The invariants a board keeps whatever it was given.
fn check(board: &Board) {
    let mut ids = HashSet::new();
    let mut points = 0;
    for stroke in board.all_strokes() {
        assert!(ids.insert(stroke.id), "stroke id listed twice");
        assert_eq!(board.get(&stroke.id), Some(stroke), "index out of step");
        assert!(!stroke.points.is_empty(), "stroke without points");
        assert!(stroke.points.len() <= MAX_POINTS_PER_STROKE as usize);
        points += stroke.points.len();
    }
    assert_eq!(board.point_count(), points);
    assert_eq!(board.len(), board.strokes().count());
    assert!(
        ids.len() - board.len() <= MAX_TOMBSTONES,
        "tombstones unbounded"
    );
}

/// What `change` says happened is what the board now shows.
fn check_change(board: &Board, change: &Change) {
    let visible = |id| board.get(id).is_some_and(|s| !s.erased);
    match change {
        Change::None => {}
        Change::Added(ids) => assert!(ids.iter().all(visible)),
        // An erased stroke can be moved (undoing the erase shows it where it was moved to).
        Change::Moved(ids) => assert!(ids.iter().all(|id| board.get(id).is_some())),
        Change::Grew(id, from) => {
            let stroke = board.get(id).expect("grown stroke exists");
            assert!(*from < stroke.points.len(), "grew by nothing");
        }
        Change::Finished(id) => assert!(board.get(id).expect("finished stroke exists").finished),
        Change::Removed(ids) => assert!(!ids.iter().any(visible)),
        Change::Cleared => assert_eq!(board.all_strokes().count(), 0),
        // A restyled stroke may be erased too, like a moved one.
        Change::Restyled(ids) => assert!(ids.iter().all(|id| board.get(id).is_some())),
        Change::Retitled => assert!(board.title().is_none_or(|t| !t.as_str().is_empty())),
    }
}

fuzz_target!(|data: &[u8]| {
    let ops = ops(data);
    let half = ops.len() / 2;
    let mut board = Board::new();
    let mut resumed = None;
    for (i, (author, op)) in ops.iter().enumerate() {
        if i == half {
            resumed = Some(Board::from_snapshot(&board.snapshot()).expect("own snapshot decodes"));
        }
        let change = board.apply(*author, op);
        check_change(&board, &change);
        assert_eq!(
            board.apply(*author, op),
            Change::None,
            "repeat changed the board: {op:?}"
        );
        check(&board);
    }
    let snapshot = board.snapshot();
    assert_eq!(Board::from_snapshot(&snapshot).as_ref(), Ok(&board));
    // The same ops given their places in a room's order build the same strokes.
    let epoch = Epoch(7);
    let mut ordered = Board::at_start_of(epoch);
    for (i, (author, op)) in ops.iter().enumerate() {
        let place = Sequenced {
            epoch,
            seq: Seq(i as u64 + 1),
            author: *author,
            op: op.clone(),
        };
        ordered.apply_sequenced(&place).expect("next in order");
    }
    assert!(ordered.all_strokes().eq(board.all_strokes()));
    assert_eq!(
        ordered.position(),
        Some(Position {
            epoch,
            seq: Seq(ops.len() as u64)
        })
    );
    if let Some(mut resumed) = resumed {
        for (author, op) in &ops[half..] {
            resumed.apply(*author, op);
        }
        assert_eq!(resumed.snapshot(), snapshot, "a restored board diverged");
    }
});
