//! The store's writer thread: groups the commands handed over, commits each group in one
//! transaction (again and again while the disk fails), and tells each room what became of its
//! writes.

use kokuban_protocol::kept_server_frame;

use super::blobs::BlobTables;
use super::*;
use crate::unix_ms;

pub(super) struct Writer {
    pub(super) busy_since: Arc<AtomicU64>,
    pub(super) opened: Instant,
    pub(super) db: Slot,
    pub(super) opener: Opener,
    pub(super) rx: mpsc::UnboundedReceiver<Command>,
    pub(super) backlog: Arc<AtomicUsize>,
    pub(super) healthy: Arc<AtomicBool>,
    pub(super) broken: Arc<AtomicBool>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) boot: u64,
    pub(super) failed_once: bool,
}

/// A group smaller than this, of a busy store, waits [`GROUP_LINGER`] for more before it is
/// committed.
const LINGER_BELOW: usize = 64;
/// How long a small group waits for more commands. A commit costs the store about 0.3 ms of
/// CPU (its fsync and the pages it rewrites) on top of some 12 µs an op, so waiting saves CPU;
/// but an author's queue is held behind its Ack (see the local sequencer), so an editor sees
/// the others' ops that much later. With 40 people drawing at 60 Hz on one node, relay runs
/// measured: waiting 1 ms, 15.7 µs of CPU per delivered op and a p99 of 0.8 ms; 4 ms, 12.7 µs
/// and 2.1 ms; 10 ms, 10.3 µs and 7 ms. 4 ms keeps the tail far below a frame.
const GROUP_LINGER: Duration = Duration::from_millis(4);

/// What one command of a group came to.
type Outcome = Result<(), StoreError>;

impl Writer {
    pub(super) fn run(mut self) {
        let mut group = Vec::with_capacity(256);
        loop {
            // Writes waiting already when the last commit ended: they come faster than the
            // commits, so a moment's wait gathers more of them into the next one.
            let (first, busy) = match self.rx.try_recv() {
                Ok(c) => (c, true),
                Err(mpsc::error::TryRecvError::Empty) => match self.rx.blocking_recv() {
                    Some(c) => (c, false),
                    None => break,
                },
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            group.push(first);
            self.take_waiting(&mut group);
            // A commit costs about as much for one op as for dozens, and only authors' Acks
            // wait for it (everyone else already sees the ops). An idle store never waits.
            if busy
                && group.len() < LINGER_BELOW
                && !group.iter().any(|c| matches!(c, Command::Close(_)))
            {
                std::thread::sleep(GROUP_LINGER);
                self.take_waiting(&mut group);
            }
            let closing = group.iter().any(|c| matches!(c, Command::Close(_)));
            let writes_anything =
                closing || group.iter().any(|c| !matches!(c, Command::Barrier(_)));
            // Barriers alone need no commit: everything before them was committed by the
            // groups before this one.
            let outcome = if writes_anything {
                self.commit_until_done(&group, closing)
            } else {
                Ok(vec![Ok(()); group.len()])
            };
            let writes = group
                .iter()
                .filter(|c| {
                    matches!(
                        c,
                        Command::Append { .. }
                            | Command::Compact { .. }
                            | Command::Checkpoint { .. }
                            | Command::Expire { .. }
                    )
                })
                .count();
            self.backlog.fetch_sub(writes, Ordering::Release);
            tell_ears(&group, outcome.is_ok());
            for (command, result) in group.drain(..).zip(outcomes(&outcome)) {
                match command {
                    Command::Create { done, .. }
                    | Command::Expire { done, .. }
                    | Command::ResetLinks { done, .. }
                    | Command::HistoryForViewers { done, .. }
                    | Command::StoreBlob { done, .. }
                    | Command::Barrier(done)
                    | Command::Close(done) => {
                        let _ = done.send(result);
                    }
                    Command::Append { .. }
                    | Command::Compact { .. }
                    | Command::Checkpoint { .. } => {}
                }
            }
            if closing {
                break;
            }
        }
    }

    /// Adds the commands waiting to `group`, up to [`MAX_GROUP`].
    fn take_waiting(&mut self, group: &mut Vec<Command>) {
        while group.len() < MAX_GROUP {
            match self.rx.try_recv() {
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
    }

    /// Commits a group, and a group that failed again and again until it is committed, so
    /// that no write handed over is ever dropped while the node runs (redb commits are atomic:
    /// a failed one left nothing behind). Meanwhile the store does not accept writes (rooms are
    /// read-only, `/readyz` answers 503); after [`BROKEN_AFTER`] it counts as broken. A
    /// closing store gives up after [`CLOSE_ATTEMPTS`].
    fn commit_until_done(
        &mut self,
        group: &[Command],
        closing: bool,
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut pause = RETRY_MIN;
        let mut attempts = 0;
        let mut failing_since = None;
        loop {
            let started = Instant::now();
            self.busy_since
                .store(millis_since(self.opened) + 1, Ordering::Relaxed);
            let outcome = self.commit(group, closing);
            self.busy_since.store(0, Ordering::Relaxed);
            self.metrics.store_write_latency.observe(started.elapsed());
            let error = match outcome {
                Ok(outcomes) => {
                    if failing_since.is_some() {
                        tracing::info!("the store commits again; rooms take writes");
                    }
                    self.healthy.store(true, Ordering::Relaxed);
                    self.broken.store(false, Ordering::Relaxed);
                    return Ok(outcomes);
                }
                Err(e) => e,
            };
            attempts += 1;
            self.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
            self.healthy.store(false, Ordering::Relaxed);
            self.failed_once = true;
            let since = *failing_since.get_or_insert_with(Instant::now);
            if attempts == 1 {
                tracing::error!(error = %error, "store commit failed; rooms are read-only while it is retried");
            }
            if closing && attempts >= CLOSE_ATTEMPTS {
                return Err(error);
            }
            if since.elapsed() >= BROKEN_AFTER && !self.broken.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    "store commits have failed for {BROKEN_AFTER:?}: the node reports itself unhealthy"
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(RETRY_MAX);
            self.reopen();
        }
    }

    /// Reopens the database: after an I/O error redb refuses every later transaction until it
    /// is. Readers are told the store is being reopened meanwhile.
    fn reopen(&self) {
        drop(lock(&self.db).take());
        // The file's lock goes with the last reference (a reader may hold one a moment).
        for _ in 0..50 {
            match (self.opener)() {
                Ok(db) => {
                    *lock(&self.db) = Some(Arc::new(db));
                    return;
                }
                Err(e) => {
                    tracing::debug!("reopening the store: {e}");
                    std::thread::sleep(RETRY_MIN);
                }
            }
        }
    }

    /// Writes a group in one transaction. Ok holds the outcome of each command (a create can
    /// fail alone, when its id exists).
    fn commit(&self, group: &[Command], closing: bool) -> Result<Vec<Outcome>, StoreError> {
        let Some(db) = lock(&self.db).clone() else {
            return Err(StoreError::Backend("the store is not open".into()));
        };
        let inner = || -> Result<Vec<Outcome>, ::redb::Error> {
            let txn = db.begin_write()?;
            let mut outcomes = Vec::with_capacity(group.len());
            {
                let mut rooms = txn.open_table(ROOMS)?;
                let mut snapshots = txn.open_table(SNAPSHOTS)?;
                let mut ops = txn.open_table(OPS)?;
                let mut authors = txn.open_table(AUTHORS)?;
                let mut touched = txn.open_table(TOUCHED)?;
                let mut links = txn.open_table(LINKS)?;
                let mut checkpoints = txn.open_table(CHECKPOINTS)?;
                let mut private_history = txn.open_table(PRIVATE_HISTORY)?;
                let mut blobs = BlobTables::open(&txn)?;
                let now = unix_ms();
                // Rooms written in this group, touched once each after the loop.
                let mut written: Vec<&str> = Vec::new();
                let mut kept = Vec::new();
                for command in group {
                    let mut outcome = Ok(());
                    match command {
                        Command::Create {
                            room,
                            epoch,
                            snapshot,
                            ..
                        } => {
                            let id = room.as_str();
                            if rooms.get(id)?.is_some() {
                                outcome = Err(StoreError::Exists);
                            } else {
                                rooms.insert(id, (epoch.0, self.boot, 0))?;
                                snapshots.insert(id, snapshot.as_ref())?;
                                touched.insert(id, now)?;
                            }
                        }
                        Command::Append { room, op, .. } => {
                            let id = room.as_str();
                            // In the oldest version that reads it alike, so that the node
                            // rolled back to that version reads every op after the snapshot.
                            kept_server_frame(&op.frame, &mut kept);
                            ops.insert((id, op.seq.0), kept.as_slice())?;
                            authors.insert((id, op.author.0), op.n)?;
                            if written.last() != Some(&id) && !written.contains(&id) {
                                written.push(id);
                            }
                        }
                        Command::Compact {
                            room,
                            epoch,
                            seq,
                            snapshot,
                        } => {
                            let id = room.as_str();
                            // Every op stored for the room precedes this snapshot: ops after it
                            // are queued behind it. So all of them go, old epochs' included.
                            ops.retain_in((id, 0u64)..=(id, u64::MAX), |_, _| false)?;
                            snapshots.insert(id, snapshot.as_ref())?;
                            rooms.insert(id, (epoch.0, self.boot, seq.0))?;
                            touched.insert(id, now)?;
                        }
                        Command::Checkpoint {
                            room,
                            checkpoint,
                            keep,
                        } => {
                            keep_version(&mut checkpoints, room.as_str(), checkpoint, *keep)?;
                            written.push(room.as_str());
                        }
                        Command::Expire {
                            before,
                            keep,
                            expired,
                            ..
                        } => {
                            for id in &written {
                                touched.insert(*id, now)?;
                            }
                            written.clear();
                            let tables = RoomTables {
                                rooms: &mut rooms,
                                snapshots: &mut snapshots,
                                ops: &mut ops,
                                authors: &mut authors,
                                touched: &mut touched,
                                checkpoints: &mut checkpoints,
                                blobs: &mut blobs,
                            };
                            let gone = expire(*before, keep, now, tables)?;
                            for room in gone.iter() {
                                links.remove(room.as_str())?;
                                private_history.remove(room.as_str())?;
                            }
                            *expired.lock().unwrap_or_else(|p| p.into_inner()) = gone;
                        }
                        Command::ResetLinks {
                            room,
                            from,
                            generation,
                            ..
                        } => {
                            let id = room.as_str();
                            let now_at = links.get(id)?.map_or(0, |g| g.value());
                            let mut next = None;
                            if rooms.get(id)?.is_some() && now_at == *from {
                                links.insert(id, from + 1)?;
                                next = Some(from + 1);
                            }
                            // Set on every attempt: a commit that failed is tried again whole.
                            *generation.lock().unwrap_or_else(|p| p.into_inner()) = next;
                        }
                        Command::HistoryForViewers {
                            room,
                            allowed,
                            found,
                            ..
                        } => {
                            let id = room.as_str();
                            let exists = rooms.get(id)?.is_some();
                            if exists && *allowed {
                                private_history.remove(id)?;
                            } else if exists {
                                private_history.insert(id, 1)?;
                            }
                            found.store(exists, Ordering::Release);
                        }
                        Command::StoreBlob {
                            room,
                            blob,
                            budget,
                            stored,
                            ..
                        } => {
                            let id = room.as_str();
                            let kept = if rooms.get(id)?.is_none() {
                                BlobStored::NoRoom
                            } else {
                                blobs.keep(id, blob, *budget)?
                            };
                            if kept == BlobStored::Stored {
                                written.push(id);
                            }
                            // Set on every attempt: a commit that failed is tried again whole.
                            *stored.lock().unwrap_or_else(|p| p.into_inner()) = Some(kept);
                        }
                        Command::Barrier(_) | Command::Close(_) => {}
                    }
                    outcomes.push(outcome);
                }
                for id in written {
                    touched.insert(id, now)?;
                }
                if closing {
                    let mut meta = txn.open_table(META)?;
                    // A run in which a commit failed may have lost acknowledged ops: the next
                    // start must treat it as unclean.
                    meta.insert("clean", u64::from(!self.failed_once))?;
                }
            }
            txn.commit()?;
            Ok(outcomes)
        };
        inner().map_err(|e| StoreError::Backend(e.to_string()))
    }
}

/// The tables a room's data lives in, open in one write transaction.
struct RoomTables<'a, 't> {
    rooms: &'a mut ::redb::Table<'t, &'static str, (u64, u64, u64)>,
    snapshots: &'a mut ::redb::Table<'t, &'static str, &'static [u8]>,
    ops: &'a mut ::redb::Table<'t, (&'static str, u64), &'static [u8]>,
    authors: &'a mut ::redb::Table<'t, (&'static str, u64), u64>,
    touched: &'a mut ::redb::Table<'t, &'static str, u64>,
    checkpoints: &'a mut ::redb::Table<'t, (&'static str, u64), &'static [u8]>,
    blobs: &'a mut BlobTables<'t>,
}

/// Keeps `checkpoint` of room `id` unless a version at its place is kept, then drops the
/// oldest versions beyond `keep`.
fn keep_version(
    table: &mut ::redb::Table<'_, (&'static str, u64), &'static [u8]>,
    id: &str,
    checkpoint: &Checkpoint,
    keep: Retention,
) -> Result<(), ::redb::Error> {
    // (version id, bytes), oldest first.
    let mut kept: Vec<(u64, usize)> = Vec::new();
    let mut known = false;
    for entry in table.range((id, 0u64)..=(id, u64::MAX))? {
        let (key, stored) = entry?;
        let stored = stored.value();
        known |= Checkpoint::info_of(stored)
            .is_some_and(|i| (i.epoch, i.seq) == (checkpoint.info.epoch, checkpoint.info.seq));
        kept.push((key.value().1, stored.len()));
    }
    if !known {
        let mut version = checkpoint.clone();
        while kept.iter().any(|(at, _)| *at == version.info.id) {
            version.info.id += 1;
        }
        let stored = version.encode();
        table.insert((id, version.info.id), stored.as_slice())?;
        kept.push((version.info.id, stored.len()));
        kept.sort_unstable();
    }
    let mut bytes: usize = kept.iter().map(|(_, b)| b).sum();
    let mut count = kept.len();
    for (at, b) in kept {
        if count <= keep.kept && bytes <= keep.bytes {
            break;
        }
        table.remove((id, at))?;
        count -= 1;
        bytes -= b;
    }
    Ok(())
}

/// Deletes the rooms last touched before `before`, except `keep`; rooms without a record
/// (from before expiry was kept) count as touched `now`. Returns the rooms deleted.
fn expire(
    before: u64,
    keep: &[RoomId],
    now: u64,
    t: RoomTables<'_, '_>,
) -> Result<Vec<RoomId>, ::redb::Error> {
    let RoomTables {
        rooms,
        snapshots,
        ops,
        authors,
        touched,
        checkpoints,
        blobs,
    } = t;
    for room in keep {
        touched.insert(room.as_str(), now)?;
    }
    let mut unrecorded = Vec::new();
    for entry in rooms.iter()? {
        let (id, _) = entry?;
        if touched.get(id.value())?.is_none() {
            unrecorded.push(id.value().to_owned());
        }
    }
    for id in &unrecorded {
        touched.insert(id.as_str(), now)?;
    }
    let mut stale = Vec::new();
    for entry in touched.iter()? {
        let (id, at) = entry?;
        if at.value() < before {
            stale.push(id.value().to_owned());
        }
    }
    let mut gone = Vec::with_capacity(stale.len());
    for id in stale {
        let key = id.as_str();
        rooms.remove(key)?;
        snapshots.remove(key)?;
        touched.remove(key)?;
        ops.retain_in((key, 0u64)..=(key, u64::MAX), |_, _| false)?;
        authors.retain_in((key, 0u64)..=(key, u64::MAX), |_, _| false)?;
        checkpoints.retain_in((key, 0u64)..=(key, u64::MAX), |_, _| false)?;
        blobs.forget(key)?;
        if let Ok(room) = RoomId::new(id) {
            gone.push(room);
        }
    }
    Ok(gone)
}

/// Tells each room with ops in a group what became of them: once per room and commit, with
/// the last of its ops (a room's ops are handed over, and committed, in seq order).
fn tell_ears(group: &[Command], committed: bool) {
    let mut last: Vec<(&Arc<dyn Durability>, Epoch, Seq)> = Vec::new();
    for command in group {
        if let Command::Append { ear, epoch, op, .. } = command {
            match last.iter_mut().find(|(e, _, _)| Arc::ptr_eq(e, ear)) {
                Some(entry) => (entry.1, entry.2) = (*epoch, op.seq),
                None => last.push((ear, *epoch, op.seq)),
            }
        }
    }
    for (ear, epoch, seq) in last {
        if committed {
            ear.durable(epoch, seq);
        } else {
            ear.lost();
        }
    }
}

fn outcomes(result: &Result<Vec<Outcome>, StoreError>) -> Box<dyn Iterator<Item = Outcome> + '_> {
    match result {
        Ok(each) => Box::new(each.iter().cloned()),
        Err(e) => Box::new(std::iter::repeat_with(move || Err(e.clone()))),
    }
}
