//! The sequencing script against a real `redis-server`: what makes an op applied exactly
//! once, and a refusal final.

use super::*;
use kokuban_protocol::{MemberId, RoomId};

/// A throwaway `redis-server` on a free loopback port, killed on drop.
struct Redis {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Redis {
    async fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let redis = Redis {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
            _dir: dir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server did not come up");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sequence(epoch: Epoch, n: u64, deadline_ms: u64) -> Command {
    Command::Sequence {
        epoch,
        head: Seq(0),
        author: MemberId(7),
        n,
        op: vec![1, 2, n as u8],
        deadline_ms,
    }
}

#[tokio::test]
async fn an_op_is_applied_once_and_never_after_its_deadline() {
    let redis = Redis::start().await;
    let db = Arc::new(Db::new(
        Client::open(redis.url.as_str()).unwrap(),
        Duration::from_secs(2),
        10_000,
        Duration::from_secs(10),
        Arc::new(Metrics::default()),
        7,
        Arc::default(),
    ));
    let stop = CancellationToken::new();
    tokio::spawn(db.clone().maintain(stop.clone()));
    tokio::time::timeout(Duration::from_secs(5), db.wait_up())
        .await
        .expect("connected");
    let keys = Keys::of(&RoomId::new("room").unwrap());
    let epoch = Epoch(5);
    db.seed(&keys, epoch, b"board", Seed::Init).await.unwrap();
    let run = async |c: Command| {
        let mut out = db.execute(&keys, &[&c], 64).await.unwrap();
        out.remove(0)
    };
    let soon = db.redis_now_ms() + 60_000;
    assert!(matches!(
        run(sequence(epoch, 3, soon)).await,
        Outcome::Sequenced(Seq(1))
    ));
    // The same number again: its first place, not a second one.
    assert!(matches!(
        run(sequence(epoch, 3, soon)).await,
        Outcome::Duplicate(Seq(1))
    ));
    // A number below the last applied one: never applied.
    assert!(matches!(
        run(sequence(epoch, 2, soon)).await,
        Outcome::Decided
    ));
    // Past its deadline on Redis's clock (a pipeline the node gave up on): refused.
    let past = db.redis_now_ms() - 1;
    assert!(matches!(run(sequence(epoch, 4, past)).await, Outcome::Late));
    let read = db.read_room(&keys, Some(Seq(0))).await.unwrap();
    assert_eq!(read.head, Seq(1), "only the first op took a place");
    assert_eq!(read.entries.len(), 1);
    assert_eq!(
        (read.entries[0].author, read.entries[0].n),
        (MemberId(7), 3)
    );
    // A refused number can be sent again under a new one.
    assert!(matches!(
        run(sequence(epoch, 5, soon)).await,
        Outcome::Sequenced(Seq(2))
    ));
    let full = db.read_room(&keys, None).await.unwrap();
    assert_eq!(full.authors, vec![(MemberId(7), 5)]);
    stop.cancel();
}
