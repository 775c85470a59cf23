//! `--redis-replicas`: an op is delivered, and acknowledged to its author, only once the
//! wanted Redis replicas hold it. Against a real primary and replica (`--replicaof`), one of
//! them frozen with SIGSTOP.

use std::time::{Duration, Instant};

use kokuban_protocol::ServerMsg;

use crate::harness::cluster::{create_room_at, metric_at, node_with};
use crate::harness::pen::{Got, Pen, text_op};
use crate::harness::redis::{RedisConfig, RedisServer};
use crate::harness::{self, TIMEOUT};

/// A primary and one replica of it, once the replica has caught up.
async fn primary_and_replica() -> (RedisServer, RedisServer) {
    let primary = RedisServer::start(false).await;
    let replica = RedisServer::start_with(RedisConfig {
        args: vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
        ],
        ..RedisConfig::default()
    })
    .await;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let info = primary.command(&["INFO", "replication"]).await;
        let info: String = redis::from_redis_value(info).unwrap();
        if info.contains("connected_slaves:1") && info.contains("state=online") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never came online:\n{info}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (primary, replica)
}

/// Ops in the room's log on `redis`.
async fn logged(redis: &RedisServer, room: &str) -> u64 {
    let n = redis
        .command(&["XLEN", &format!("kokuban:{{{room}}}:log")])
        .await;
    redis::from_redis_value(n).unwrap()
}

#[tokio::test]
async fn an_op_is_acknowledged_and_shown_only_once_the_replica_holds_it() {
    let (primary, replica) = primary_and_replica().await;
    let node = node_with(&primary, "a", |c| {
        c.cluster.as_mut().expect("cluster mode").replicas = 1;
    })
    .await;
    let room = create_room_at(node.addr).await;
    let mut ada = Pen::new("ada", &room, &room.edit);
    ada.connect(node.addr).await.unwrap();
    let mut bob = Pen::new("bob", &room, &room.edit);
    bob.connect(node.addr).await.unwrap();

    // Healthy: every acknowledged op is on the replica by the time its Ack arrives.
    for _ in 0..10 {
        ada.draw(text_op(50)).await;
        ada.settle(node.addr, TIMEOUT).await;
        assert!(
            logged(&replica, room.id.as_str()).await >= ada.acked.len() as u64,
            "an op was acknowledged before the replica held it"
        );
    }
    bob.sync_to(ada.head().unwrap(), TIMEOUT).await;
    let seen = bob.head();

    // The replica freezes: an op drawn now is in the primary's log, but nobody is shown it
    // and its author is not told it is kept; once a round found the replica missing, later
    // ones are refused as read-only (told in order, after the held op's answer).
    replica.pause();
    ada.draw(text_op(50)).await;
    let frozen = Instant::now() + Duration::from_millis(2500);
    let mut later = 0;
    while Instant::now() < frozen {
        if let Got::Msg(ServerMsg::Ack(a)) = ada.read(Duration::from_millis(100)).await {
            panic!("acknowledged at {a:?} while the replica was frozen");
        }
        bob.read(Duration::from_millis(10)).await;
        // Drawn once a round found the replica missing (on a loaded machine, five ops drawn
        // at once could all be sent before the first round's WAIT ran out).
        if later < 5 && node.metric("kokuban_replica_shortfalls_total").await >= 1.0 {
            ada.draw(text_op(50)).await;
            later += 1;
        }
    }
    assert_eq!(later, 5, "the replica was found missing in time");
    assert_eq!(ada.acked.len(), 10);
    assert_eq!(
        bob.head(),
        seen,
        "bob was shown an op the replica did not hold"
    );
    assert!(
        logged(&primary, room.id.as_str()).await > 10,
        "the op reached the primary"
    );
    assert!(metric_at(node.addr, "kokuban_replica_shortfalls_total").await >= 1.0);

    // Back: the held op is delivered and acknowledged, the refusals follow, both agree.
    replica.resume();
    ada.settle(node.addr, TIMEOUT).await;
    assert!(ada.acked.len() >= 11, "the held op is acknowledged");
    assert!(!ada.refused.is_empty(), "later writes were refused");
    assert_eq!(
        ada.acked.len() + ada.refused.len(),
        16,
        "each op answered once"
    );
    bob.sync_to(ada.head().unwrap(), TIMEOUT).await;
    assert_eq!(bob.board.snapshot(), ada.board.snapshot());
    let acked = ada.acked.len();
    ada.draw(text_op(50)).await;
    ada.settle(node.addr, harness::TIMEOUT).await;
    assert_eq!(ada.acked.len(), acked + 1, "writes are taken again");
}
