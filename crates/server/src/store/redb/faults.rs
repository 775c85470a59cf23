//! A disk that fails: the store keeps every write it was handed and commits it once the
//! disk works again, refusing new writes meanwhile, and says it is broken when it stays so.

use super::*;
use ::redb::StorageBackend;
use ::redb::backends::InMemoryBackend;
use kokuban_protocol::MemberId;

/// In-memory storage that outlives a reopen, whose writes and syncs fail while `fail` is
/// set, as a disk that is full or erroring.
#[derive(Debug)]
struct Faulty {
    memory: Arc<InMemoryBackend>,
    fail: Arc<AtomicBool>,
}

impl Faulty {
    fn check(&self) -> std::io::Result<()> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("injected I/O error"));
        }
        Ok(())
    }
}

impl StorageBackend for Faulty {
    fn len(&self) -> std::io::Result<u64> {
        self.memory.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.memory.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.memory.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.memory.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.memory.write(offset, data)
    }
}

#[derive(Debug, Default)]
struct Ear(Mutex<Vec<Option<Seq>>>);

impl Durability for Ear {
    fn durable(&self, _: Epoch, seq: Seq) {
        self.0.lock().unwrap().push(Some(seq));
    }
    fn lost(&self) {
        self.0.lock().unwrap().push(None);
    }
}

#[tokio::test]
async fn a_failing_disk_loses_no_write_and_recovers_by_itself() {
    let memory = Arc::new(InMemoryBackend::new());
    let fail = Arc::new(AtomicBool::new(false));
    let (m, f) = (memory.clone(), fail.clone());
    let opener: Opener = Arc::new(move || {
        Database::builder().create_with_backend(Faulty {
            memory: m.clone(),
            fail: f.clone(),
        })
    });
    let metrics = Arc::new(Metrics::default());
    let store = RedbStore::open_with(
        PathBuf::from("memory"),
        opener,
        1000,
        Duration::from_secs(5),
        metrics.clone(),
    )
    .unwrap();
    let room = RoomId::new("room").unwrap();
    store
        .create_room(&room, Epoch(7), Bytes::new())
        .await
        .unwrap();
    let ear = Arc::new(Ear::default());
    let op = |seq: u64| StoredOp {
        seq: Seq(seq),
        frame: Bytes::from(format!("op{seq}")),
        author: MemberId(1),
        n: seq,
    };
    store.append(&room, Epoch(7), op(1), ear.clone());
    store.barrier().await.unwrap();
    assert!(store.accepting_writes());

    // The disk fails: the next writes are held, not lost, and the room is read-only.
    fail.store(true, Ordering::Relaxed);
    store.append(&room, Epoch(7), op(2), ear.clone());
    store.append(&room, Epoch(7), op(3), ear.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.accepting_writes() {
        assert!(Instant::now() < deadline, "a failing disk stops writes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(metrics.store_errors.load(Ordering::Relaxed) >= 1);
    assert!(!store.is_broken(), "a short failure is not yet broken");
    assert_eq!(ear.0.lock().unwrap().clone(), vec![Some(Seq(1))]);

    // It works again: everything held is committed, and writes are taken again.
    fail.store(false, Ordering::Relaxed);
    store.barrier().await.unwrap();
    assert!(store.accepting_writes());
    assert_eq!(ear.0.lock().unwrap().last(), Some(&Some(Seq(3))));
    let loaded = store.load_room(&room).await.unwrap().unwrap();
    assert_eq!(loaded.ops.len(), 3, "no write was dropped");
    store.close().await.unwrap();
}
