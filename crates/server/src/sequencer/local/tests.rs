use super::*;
use crate::sequencer::room::fixtures::{member, stroke};
use crate::sequencer::{MemberLink, Outbox, Outgoing};
use crate::store::{RedbStore, StoredOp};
use kokuban_board::Board;
use kokuban_protocol::{
    Epoch, OLDEST_KEPT_VERSION, Op, PresenceEvent, RoomState, Seq, Sequenced, decode_server,
    encode_server,
};

fn settings(ops: usize, bytes: usize) -> RoomSettings {
    RoomSettings {
        cursor_interval: Duration::from_millis(5),
        room_grace: Duration::from_secs(60),
        compact_after_ops: ops,
        compact_after_bytes: bytes,
        budget: crate::sequencer::Budget::UNLIMITED,
        max_rooms: 0,
        max_members_per_room: 0,
        room_ttl: None,
        room_sweep_interval: Duration::from_secs(3600),
        checkpoints: crate::sequencer::room::Retention {
            every: Duration::ZERO,
            kept: 10,
            bytes: usize::MAX,
        },
    }
}

async fn setup(dir: &std::path::Path, s: RoomSettings) -> (LocalSequencer, RoomId, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let store = RedbStore::open(dir, 10_000, Duration::from_secs(1), metrics.clone()).unwrap();
    let seq = LocalSequencer::new(Arc::new(store), s, metrics.clone());
    let room = RoomId::new("room").unwrap();
    seq.create_room(&room).await.unwrap();
    (seq, room, metrics)
}

async fn join(
    seq: &LocalSequencer,
    room: &RoomId,
    id: u64,
    resume: Option<Position>,
) -> (Joined, Outbox) {
    let (link, outbox) = MemberLink::channel(1024);
    let joined = seq
        .join(JoinRequest {
            room: room.clone(),
            member: member(id),
            author: MemberId(id),
            resume,
            link,
        })
        .await
        .unwrap();
    (joined, outbox)
}

/// What a join's Welcome carries for the board.
fn state(joined: &Joined) -> RoomState {
    kokuban_protocol::decode_state(&joined.state).unwrap()
}

fn snapshot_of(state: &RoomState) -> (usize, usize) {
    match state {
        RoomState::Snapshot { board, ops } => (board.0.len(), ops.len()),
        RoomState::Replay { ops } | RoomState::InParts { ops } => (0, ops.len()),
    }
}

#[tokio::test]
async fn compaction_bounds_the_log_by_count_and_keeps_the_board() {
    let dir = tempfile::tempdir().unwrap();
    let (seq, room, metrics) = setup(dir.path(), settings(10, usize::MAX)).await;
    let (a, _out) = join(&seq, &room, 1, None).await;
    for n in 0..25 {
        a.membership.submit(n as u64 + 1, stroke(n)).unwrap();
    }
    assert_eq!(metrics.compactions.load(Relaxed), 2);
    let (b, _out_b) = join(&seq, &room, 2, None).await;
    let RoomState::Snapshot { board, ops } = &state(&b) else {
        panic!("snapshot expected")
    };
    assert_eq!(ops.len(), 5);
    let mut rebuilt = Board::from_snapshot(&board.0).unwrap();
    for op in ops.iter() {
        rebuilt.apply_sequenced(op).unwrap();
    }
    assert_eq!(rebuilt.len(), 25);
    assert_eq!(rebuilt.position().unwrap().seq, Seq(25));
    drop((a, b));
    seq.shutdown().await.unwrap();
}

#[tokio::test]
async fn compaction_by_bytes_and_on_clear_keeps_the_welcome_small() {
    let dir = tempfile::tempdir().unwrap();
    let (seq, room, _metrics) = setup(dir.path(), settings(usize::MAX, 2000)).await;
    let (a, _out) = join(&seq, &room, 1, None).await;
    for n in 0..200 {
        a.membership.submit(n as u64 + 1, stroke(n)).unwrap();
    }
    let (b, _ob) = join(&seq, &room, 2, None).await;
    let (_, ops) = snapshot_of(&state(&b));
    // A StrokeBegin frame is about 40 bytes: the log holds about 2000 bytes of them.
    assert!((1..80).contains(&ops), "log holds {ops} ops");
    a.membership.submit(1000, Op::Clear).unwrap();
    let (c, _oc) = join(&seq, &room, 3, None).await;
    let (board_bytes, ops) = snapshot_of(&state(&c));
    assert_eq!(ops, 0);
    assert!(
        board_bytes < 64,
        "empty board snapshot is {board_bytes} bytes"
    );
    drop((a, b, c));
    seq.shutdown().await.unwrap();
}

#[tokio::test]
async fn resume_replays_exactly_the_missed_ops_or_falls_back_to_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (seq, room, _) = setup(dir.path(), settings(100, usize::MAX)).await;
    let (a, _out) = join(&seq, &room, 1, None).await;
    for n in 0..5 {
        a.membership.submit(n as u64 + 1, stroke(n)).unwrap();
    }
    let epoch = a.epoch;
    let (b, _ob) = join(&seq, &room, 2, Some(Position { epoch, seq: Seq(3) })).await;
    let RoomState::Replay { ops } = &state(&b) else {
        panic!("replay expected")
    };
    assert_eq!(
        ops.iter().map(|o| o.seq).collect::<Vec<_>>(),
        vec![Seq(4), Seq(5)]
    );
    // Ahead of the head, or another epoch: a snapshot.
    let (c, _oc) = join(&seq, &room, 3, Some(Position { epoch, seq: Seq(9) })).await;
    assert!(matches!(state(&c), RoomState::Snapshot { .. }));
    let (d, _od) = join(
        &seq,
        &room,
        4,
        Some(Position {
            epoch: Epoch(epoch.0 ^ 1),
            seq: Seq(1),
        }),
    )
    .await;
    assert!(matches!(state(&d), RoomState::Snapshot { .. }));
    drop((a, b, c, d));
    seq.shutdown().await.unwrap();
}

/// Hears nothing: the test reads the store back itself.
#[derive(Debug)]
struct Deaf;

impl Durability for Deaf {
    fn durable(&self, _: Epoch, _: Seq) {}
    fn lost(&self) {}
}

/// The store of `dir`, once the last one has let go of its file.
async fn reopen(dir: &std::path::Path) -> RedbStore {
    loop {
        match RedbStore::open(
            dir,
            10_000,
            Duration::from_secs(1),
            Arc::new(Metrics::default()),
        ) {
            Ok(s) => break s,
            // The old writer thread may hold the file for a moment longer.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The board a join's Welcome gives.
fn board_of(joined: &Joined) -> Board {
    let RoomState::Snapshot { board, ops } = &state(joined) else {
        panic!("a new member gets a snapshot")
    };
    let mut rebuilt = Board::from_snapshot(&board.0).unwrap();
    for op in ops.iter() {
        rebuilt.apply_sequenced(op).unwrap();
    }
    rebuilt
}

#[tokio::test]
async fn ops_are_kept_in_the_previous_protocol_versions_frames_so_a_rollback_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut quick = settings(100, usize::MAX);
    quick.room_grace = Duration::from_millis(20);
    let (seq, room, _) = setup(dir.path(), quick).await;
    let (a, _out) = join(&seq, &room, 1, None).await;
    a.membership.submit(1, stroke(1)).unwrap();
    a.membership.submit(2, stroke(2)).unwrap();
    let (b, _ob) = join(&seq, &room, 2, None).await;
    assert_eq!(board_of(&b).len(), 2);
    drop((a, b));
    seq.shutdown().await.unwrap();

    let stored = reopen(dir.path())
        .await
        .load_room(&room)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.ops.len(), 2, "both ops after the snapshot");
    for (frame, want) in stored.ops.iter().zip([stroke(1), stroke(2)]) {
        assert_eq!(
            frame[0], OLDEST_KEPT_VERSION,
            "kept under the older version's byte"
        );
        // What the older version decodes: its own byte, then the body this version wrote.
        let mut as_today = frame.to_vec();
        as_today[0] = kokuban_protocol::PROTOCOL_VERSION;
        match decode_server(&as_today).unwrap() {
            ServerMsg::Op(op) => assert_eq!(op.op, want),
            other => panic!("not an op: {other:?}"),
        }
    }
}

#[tokio::test]
async fn ops_kept_by_the_previous_protocol_version_read_back_after_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let mut quick = settings(100, usize::MAX);
    quick.room_grace = Duration::from_millis(20);
    let (seq, room, _) = setup(dir.path(), quick.clone()).await;
    let (a, _out) = join(&seq, &room, 1, None).await;
    a.membership.submit(1, stroke(1)).unwrap();
    let (b, _ob) = join(&seq, &room, 2, None).await;
    let at = board_of(&b).position().unwrap();
    drop((a, b));
    seq.shutdown().await.unwrap();

    // The next op, as a node of the previous version kept it: its frame starts with that
    // version's byte.
    let store = reopen(dir.path()).await;
    let next = Sequenced {
        epoch: at.epoch,
        seq: at.seq.next(),
        author: MemberId(1),
        op: stroke(2),
    };
    let mut frame = encode_server(&ServerMsg::Op(next));
    frame[0] = OLDEST_KEPT_VERSION;
    assert!(decode_server(&frame).is_err(), "not this version's frame");
    let op = StoredOp {
        seq: at.seq.next(),
        frame: frame.into(),
        author: MemberId(1),
        n: 2,
    };
    store.append(&room, at.epoch, op, Arc::new(Deaf));
    assert_eq!(store.load_room(&room).await.unwrap().unwrap().ops.len(), 2);

    let seq = LocalSequencer::new(Arc::new(store), quick, Arc::new(Metrics::default()));
    let (c, _oc) = join(&seq, &room, 3, None).await;
    let board = board_of(&c);
    assert_eq!(board.len(), 2, "both strokes, the kept one too");
    assert_eq!(board.position().unwrap().seq, at.seq.next());
    drop(c);
    seq.shutdown().await.unwrap();
}

#[tokio::test]
async fn after_a_crash_a_room_starts_a_new_epoch_with_the_board_that_survived() {
    let dir = tempfile::tempdir().unwrap();
    let (old_epoch, board) = {
        // A short grace, so that the abandoned room's task ends and lets go of the store.
        let mut quick = settings(100, usize::MAX);
        quick.room_grace = Duration::from_millis(20);
        let (seq, room, _) = setup(dir.path(), quick).await;
        let (a, _out) = join(&seq, &room, 1, None).await;
        for n in 0..3 {
            a.membership.submit(n as u64 + 1, stroke(n)).unwrap();
        }
        let (b, _ob) = join(&seq, &room, 2, None).await;
        let RoomState::Snapshot { board, ops } = &state(&b) else {
            panic!()
        };
        let mut rebuilt = Board::from_snapshot(&board.0).unwrap();
        for op in ops.iter() {
            rebuilt.apply_sequenced(op).unwrap();
        }
        // No shutdown: the store never records a clean stop, as in a crash.
        (a.epoch, rebuilt)
    };
    let reopened = reopen(dir.path()).await;
    let seq = LocalSequencer::new(
        Arc::new(reopened),
        settings(100, usize::MAX),
        Arc::new(Metrics::default()),
    );
    let room = RoomId::new("room").unwrap();
    let resume = board.position();
    let (c, _oc) = join(&seq, &room, 3, resume).await;
    assert_ne!(c.epoch, old_epoch, "a new epoch after an unclean stop");
    let RoomState::Snapshot { board: snap, ops } = &state(&c) else {
        panic!("a client of the old epoch gets a snapshot, not a replay");
    };
    assert!(ops.is_empty());
    let restored = Board::from_snapshot(&snap.0).unwrap();
    assert_eq!(restored.len(), board.len());
    assert_eq!(restored.position().unwrap().epoch, c.epoch);
    // New ops continue the new epoch from seq 1.
    c.membership.submit(1000, Op::Clear).unwrap();
    drop(c);
    seq.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_full_queue_kicks_only_that_member() {
    let dir = tempfile::tempdir().unwrap();
    let (seq, room, metrics) = setup(dir.path(), settings(10_000, usize::MAX)).await;
    let (a, mut out_a) = join(&seq, &room, 1, None).await;
    let (slow_link, slow_out) = MemberLink::channel(4);
    let _slow = seq
        .join(JoinRequest {
            room: room.clone(),
            member: member(2),
            author: MemberId(2),
            resume: None,
            link: slow_link,
        })
        .await
        .unwrap();
    for n in 0..10 {
        a.membership.submit(n as u64 + 1, stroke(n)).unwrap();
    }
    assert!(slow_out.kicked.is_kicked());
    assert_eq!(metrics.slow_consumer_disconnects.load(Relaxed), 1);
    // The author gets every Ack (once its op is on disk), and the slow member's departure.
    let (mut acks, mut left) = (0, 0);
    while acks < 10 {
        let entry = tokio::time::timeout(Duration::from_secs(5), out_a.queue.recv())
            .await
            .expect("every Ack arrives once the store commits");
        let Some(Outgoing::Frame(f)) = entry else {
            continue;
        };
        match decode_server(&f).unwrap() {
            ServerMsg::Ack(_) | ServerMsg::Acked(_) => acks += 1,
            ServerMsg::Presence(PresenceEvent::Left(MemberId(2))) => left += 1,
            _ => {}
        }
    }
    assert_eq!((acks, left), (10, 1));
    drop(a);
    seq.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_room_emptied_by_dropping_its_last_slow_member_unloads() {
    let dir = tempfile::tempdir().unwrap();
    let mut quick = settings(10_000, usize::MAX);
    quick.room_grace = Duration::from_millis(50);
    let (seq, room, metrics) = setup(dir.path(), quick).await;
    let (link, outbox) = MemberLink::channel(2);
    let only = seq
        .join(JoinRequest {
            room: room.clone(),
            member: member(1),
            author: MemberId(1),
            resume: None,
            link,
        })
        .await
        .unwrap();
    // Its session reads nothing: the third Ack finds its queue full and drops it.
    for n in 0..3 {
        only.membership.submit(n as u64 + 1, stroke(n)).unwrap();
    }
    assert!(outbox.kicked.is_kicked());
    assert_eq!(metrics.members.load(Relaxed), 0);
    // Nobody is left: the room unloads after its grace, although the dropped member's
    // handle is still held (its session has not ended yet).
    let unloaded = async {
        while seq.rooms_loaded() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), unloaded)
        .await
        .expect("the emptied room unloads");
    assert_eq!(metrics.rooms_loaded.load(Relaxed), 0);
    drop(only);
    seq.shutdown().await.unwrap();
}
