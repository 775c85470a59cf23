//! Redis as it is hosted: a password, or an ACL user, given in the URL; and the settings that
//! cannot work (credentials refused, a Redis Cluster given as one Redis or the other way round)
//! stop the binary at start with a message naming the fix.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kokuban_testkit::cluster::RedisCluster;

use crate::harness::TIMEOUT;
use crate::harness::cluster::{create_room_at, node_at};
use crate::harness::pen::{Pen, op_id, text_op};
use crate::harness::redis::{RedisServer, free_port};

/// A Redis that asks for the password `pw` and also knows the ACL user `board` (password
/// `boardpw`), who may use what Kokuban needs and nothing of other applications' keys.
async fn guarded_redis() -> RedisServer {
    let redis = RedisServer::start(false).await;
    redis
        .command(&[
            "ACL",
            "SETUSER",
            "board",
            "on",
            ">boardpw",
            "~kokuban:*",
            "&kokuban:*",
            "+@all",
        ])
        .await;
    // Last: the test's own connections have no password.
    redis.command(&["CONFIG", "SET", "requirepass", "pw"]).await;
    redis
}

/// Runs the binary with `args` and waits for it to exit: its status and what it wrote.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kokuban"))
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(dir.path())
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the kokuban binary starts");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            return (out.status.code(), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "kokuban {args:?} kept running:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_password_or_an_acl_user_in_the_url_is_what_the_nodes_use() {
    let redis = guarded_redis().await;
    let port = redis.port;
    let a = node_at(&format!("redis://:pw@127.0.0.1:{port}/"), "auth-a", |_| {}).await;
    let b = node_at(
        &format!("redis://board:boardpw@127.0.0.1:{port}/"),
        "auth-b",
        |_| {},
    )
    .await;
    let room = create_room_at(a.addr).await;
    let mut ada = Pen::new("ada", &room, &room.edit);
    let mut bob = Pen::new("bob", &room, &room.edit);
    ada.connect(a.addr).await.unwrap();
    bob.connect(b.addr).await.unwrap();
    let op = text_op(40);
    ada.draw(op.clone()).await;
    ada.settle(a.addr, TIMEOUT).await;
    assert_eq!(ada.acked, vec![op.clone()]);
    bob.sync_to(ada.head().unwrap(), TIMEOUT).await;
    assert!(bob.board.get(&op_id(&op)).is_some(), "it crossed nodes");
}

#[tokio::test]
async fn credentials_redis_refuses_stop_the_node_at_start_saying_so() {
    let redis = guarded_redis().await;
    let at = |creds: &str| format!("redis://{creds}127.0.0.1:{}/", redis.port);
    for (url, says) in [
        (at(""), "asks for a password"),
        (at(":wrong@"), "refused the credentials"),
        (at("board:wrong@"), "refused the credentials"),
        (at("nobody:pw@"), "refused the credentials"),
    ] {
        let (status, said) = run_to_exit(&["--redis-url", &url]);
        assert_eq!(status, Some(1), "{url}: {said}");
        assert!(said.contains(says), "{url}: {said}");
        assert!(
            !said.contains("wrong@"),
            "the password is not repeated: {said}"
        );
    }
}

#[tokio::test]
async fn a_redis_cluster_given_as_one_redis_or_the_other_way_round_stops_the_node() {
    let cluster = RedisCluster::shared().await;
    let (status, said) = run_to_exit(&["--redis-url", &cluster.seed_urls()[0]]);
    assert_eq!(status, Some(1), "{said}");
    assert!(said.contains("--redis-cluster"), "{said}");

    let single = RedisServer::shared().await;
    let (status, said) = run_to_exit(&["--redis-cluster", &single.url()]);
    assert_eq!(status, Some(1), "{said}");
    assert!(said.contains("is not a Redis Cluster node"), "{said}");
}
