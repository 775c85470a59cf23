//! Catching up with the room's log: the missing range read and delivered, a room whose history
//! changed reloaded, a history Redis lost seeded again from this node's board, and one that
//! went back in time under this node forked anew.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use kokuban_protocol::{Epoch, List, Welcome};

use super::super::redis::{Seed, Unreachable};
use super::super::room::{fetch, set_remote};
use super::{Room, Shared, deliver, store_compaction};
use crate::sequencer::room::{new_epoch, state_apart, welcome_pieces};
use crate::sequencer::{KickReason, WriteRefused};

/// Reads the log from the room's head and delivers what is there; reloads the room when its
/// history changed, seeds a new history from this node's board when Redis lost it, and forks
/// a new one from Redis's board when the history went back in time under this node. Returns
/// Redis's clock at the last read.
pub(super) async fn catch_up(shared: &Arc<Shared>, room: &Arc<Room>) -> Result<u64, Unreachable> {
    room.resync_asked.store(false, Relaxed);
    loop {
        let (epoch, head, mine) = {
            let st = room.lock();
            let head = st.history.position();
            (head.epoch, head.seq, st.history.authors().at(head.seq))
        };
        let read = shared
            .redis
            .db(&room.keys)
            .read_room(&room.keys, Some(head))
            .await?;
        match read.epoch {
            Some(e) if e == epoch && read.head >= head => {}
            Some(e) if e != epoch => return reload(shared, room).await,
            _ => {
                // The history is gone (Redis restarted without persistence) or went back
                // behind this node (it lost its last writes): what this node holds is what
                // survived.
                let new = new_epoch(Some(epoch));
                let mut board = room.lock().history.board().clone();
                board.begin_epoch(new);
                let board = board.snapshot();
                let db = shared.redis.db(&room.keys);
                let seeded = db.seed(&room.keys, new, &board, Seed::Reseed(epoch, head));
                if seeded.await? == new {
                    tracing::warn!(room = %room.id, "Redis lost the room's history; it starts a new one from this node's board");
                }
                return reload(shared, room).await;
            }
        }
        if let (Some(mine), Some(theirs)) = (mine, read.at)
            && mine != theirs
        {
            return fork(shared, room, epoch).await;
        }
        if read.head == head {
            room.sequenced_hint.fetch_min(head.0, Relaxed);
            return Ok(read.now_ms);
        }
        if read.entries.first().map(|e| e.seq) != Some(head.next()) {
            // Compacted past this node's head: the gap cannot be replayed to its members.
            return reload(shared, room).await;
        }
        tracing::debug!(room = %room.id, from = head.0 + 1, ops = read.entries.len(), "delivering missed ops from the log");
        shared.redis.replicas(&room.keys).confirm().await?;
        let mut compaction = None;
        {
            let mut st = room.lock();
            for e in &read.entries {
                let at = st.history.position();
                if at.epoch != epoch || e.seq != at.seq.next() {
                    break;
                }
                compaction = deliver(shared, room, &mut st, epoch, e).or(compaction);
            }
        }
        store_compaction(shared, room, compaction);
    }
}

/// The room's history went back in time under this node (Redis restarted from older data)
/// and others have written a different one since: neither can be resumed onto the other. A
/// new history starts from Redis's board (it holds what was acknowledged since the rollback),
/// and every member of every node takes it as a fresh Welcome.
async fn fork(shared: &Arc<Shared>, room: &Arc<Room>, epoch: Epoch) -> Result<u64, Unreachable> {
    let mut fetched = fetch(shared, &room.keys, &room.id).await?;
    if fetched.history.epoch() == epoch {
        let new = new_epoch(Some(epoch));
        let board = fetched.history.begin_epoch(new);
        let seeded = shared
            .redis
            .db(&room.keys)
            .seed(&room.keys, new, &board, Seed::Fork(epoch))
            .await?;
        if seeded == new {
            tracing::warn!(room = %room.id, "the room's history went back in time under this node; it starts a new one from Redis's board");
        }
    }
    reload(shared, room).await
}

/// Reads the room afresh. A new history: every local member has its unanswered ops refused,
/// then gets a new Welcome with the new board (the protocol's way to say "start over"). The
/// same history (this node fell too far behind): members are disconnected to resume, since
/// the ops they missed can no longer be replayed one by one.
async fn reload(shared: &Arc<Shared>, room: &Arc<Room>) -> Result<u64, Unreachable> {
    let fetched = fetch(shared, &room.keys, &room.id).await?;
    let now_ms = fetched.now_ms;
    let mut st = room.lock();
    let same_history = fetched.history.epoch() == st.history.epoch();
    st.history = fetched.history;
    set_remote(shared, &mut st, fetched.members);
    room.sequenced_hint.store(0, Relaxed);
    if same_history {
        tracing::warn!(room = %room.id, "node fell behind the room's log; its members resume");
        for (_, seat) in st.roster.seats() {
            seat.link.kick(KickReason::Resume);
        }
        return Ok(now_ms);
    }
    let epoch = st.history.epoch();
    tracing::info!(room = %room.id, epoch = epoch.0, "room has a new history; members get a fresh board");
    let members = List::from(st.everyone());
    let (state, parts) = st.history.welcome_for(None);
    // The board's parts are made into frames once for all the members.
    let parts = parts.map(|p| p.whole_frames());
    let authors = st.history.authors().clone();
    let mut slow = Vec::new();
    for (id, seat) in st.roster.seats_mut() {
        // Ops sent before the new Welcome are answered before it; none can be acknowledged
        // any more, since the history they were sent for is gone.
        let unanswered = seat.extra.answers.refuse_all();
        let author = seat.extra.author;
        let welcome = Welcome {
            member: id,
            author,
            capability: seat.info.capability,
            epoch,
            state: state_apart(),
            members: members.clone(),
            decided: authors.decided(author),
        };
        // A member's queue takes whole frames: the board is copied into each Welcome here,
        // as it is on this rare path (a history replaced under members already in).
        let welcome = Bytes::from(welcome_pieces(welcome, state.clone()).concat());
        let sent = (0..unanswered)
            .try_for_each(|_| seat.link.refuse(WriteRefused::ReadOnly))
            .and_then(|()| {
                parts
                    .iter()
                    .flat_map(|p| p.iter())
                    .try_for_each(|part| seat.link.send(part.clone()))
            })
            .and_then(|()| seat.link.send(welcome));
        if sent.is_err() {
            slow.push(id);
        }
    }
    let departures = st.roster.evict(slow, KickReason::SlowConsumer);
    room.settle(&st, departures);
    Ok(now_ms)
}
