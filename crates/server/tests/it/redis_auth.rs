//! Redis as it is hosted: a password, or an ACL user, given in the URL; TLS (`rediss://`) with
//! a CA file; and the settings that cannot work (credentials refused, a certificate not
//! trusted, TLS asked of a plain Redis or the other way round, a Redis Cluster given as one
//! Redis or the other way round) stop the binary at start with a message naming the fix.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kokuban_testkit::cluster::RedisCluster;
use kokuban_testkit::tls::Certs;

use crate::harness::TIMEOUT;
use crate::harness::cluster::{an_op_crosses, create_room_at, node_at};
use crate::harness::redis::{RedisConfig, RedisServer, free_port};

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
    an_op_crosses(&room, a.addr, b.addr).await;
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

/// A Redis that speaks TLS, with the certificate of `certs`, on the port returned (and plain
/// text on its own port, for the test's own connections only), and asks for the password `pw`.
async fn tls_redis(certs: &Certs) -> (RedisServer, u16) {
    tls_redis_with(certs, &[]).await
}

/// [`tls_redis`] with more `redis-server` arguments.
async fn tls_redis_with(certs: &Certs, more: &[&str]) -> (RedisServer, u16) {
    let tls_port = free_port();
    let mut args = certs.redis_args(tls_port);
    args.extend(more.iter().map(|a| a.to_string()));
    let redis = RedisServer::start_with(RedisConfig {
        args,
        ..RedisConfig::default()
    })
    .await;
    redis.command(&["CONFIG", "SET", "requirepass", "pw"]).await;
    (redis, tls_port)
}

#[tokio::test]
async fn rediss_with_a_ca_file_carries_ops_across_nodes() {
    let certs = Certs::new();
    let (redis, tls_port) = tls_redis(&certs).await;
    let url = format!("rediss://:pw@127.0.0.1:{tls_port}/");
    let ca = std::fs::read(&certs.ca).unwrap();
    let trusting = |c: &mut kokuban_server::Config| {
        c.cluster.as_mut().unwrap().redis_ca = Some(ca.clone());
    };
    let a = node_at(&url, "tls-a", trusting).await;
    let b = node_at(&url, "tls-b", trusting).await;
    // Sequenced over the command connection, relayed over the pub/sub one: both TLS.
    an_op_crosses(&create_room_at(a.addr).await, a.addr, b.addr).await;
    drop(redis);
}

#[tokio::test]
async fn tls_settings_that_cannot_work_stop_the_node_at_start_saying_so() {
    let certs = Certs::new();
    let (redis, tls_port) = tls_redis(&certs).await;
    let (ca, other_ca) = (
        certs.ca.display().to_string(),
        certs.other_ca.display().to_string(),
    );
    let not_pem = certs.dir().join("not.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let not_pem = not_pem.display().to_string();
    let missing = certs.dir().join("missing.pem").display().to_string();
    let tls_url = format!("rediss://:pw@127.0.0.1:{tls_port}/");
    let plain_to_tls = format!("redis://:pw@127.0.0.1:{tls_port}/");
    let tls_to_plain = format!("rediss://:pw@127.0.0.1:{}/", redis.port);
    let plain = format!("redis://:pw@127.0.0.1:{}/", redis.port);
    // A Redis that asks clients for a certificate of their own (a node has none to give).
    let (_mutual, mutual_port) = tls_redis_with(&certs, &["--tls-auth-clients", "yes"]).await;
    let mutual = format!("rediss://:pw@127.0.0.1:{mutual_port}/");
    let cases: [(Vec<&str>, &str); 8] = [
        (
            vec![&mutual, "--redis-ca-file", &ca],
            "tls-auth-clients to no",
        ),
        (vec![&tls_url, "--redis-ca-file", &other_ca], "not trusted"),
        (
            vec![&tls_url],
            "give the CA that signed it with --redis-ca-file",
        ),
        (vec![&plain_to_tls], "expects TLS: give it as rediss://"),
        (
            vec![&tls_to_plain, "--redis-ca-file", &ca],
            "does not speak TLS",
        ),
        (
            vec![&plain, "--redis-ca-file", &ca],
            "no Redis URL asks for TLS",
        ),
        (
            vec![&tls_url, "--redis-ca-file", &not_pem],
            "no PEM certificate",
        ),
        (
            vec![&tls_url, "--redis-ca-file", &missing],
            "reading --redis-ca-file",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["--redis-url"];
        all.extend(args);
        let started = Instant::now();
        let (status, said) = run_to_exit(&all);
        assert_eq!(status, Some(1), "{all:?}: {said}");
        assert!(said.contains(says), "{all:?} should say {says:?}: {said}");
        assert!(
            !said.contains(":pw@"),
            "the password is not repeated: {said}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{all:?} took {:?}",
            started.elapsed()
        );
    }
    // The right CA: the node starts and serves.
    let ok = node_at(&tls_url, "tls-ok", |c| {
        c.cluster.as_mut().unwrap().redis_ca = Some(std::fs::read(&certs.ca).unwrap());
    })
    .await;
    create_room_at(ok.addr).await;
}
