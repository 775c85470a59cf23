//! The cluster's capability key, kept in Redis when the nodes are given no secret: the first
//! node stores a random one, every node reads the one stored.

use super::Unreachable;
use super::db::Db;
use super::keys::SECRET_KEY;
use crate::BoxFuture;
use crate::capability::{KEY_BYTES, SharedKeyStore};

impl Db {
    /// The cluster's capability key: the first node to start stores a random one, every node
    /// reads the one stored.
    pub async fn shared_key(&self) -> Result<[u8; 32], Unreachable> {
        let candidate: [u8; 32] = rand::random();
        let stored: Vec<u8> = self
            .run(async |conn| {
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(SECRET_KEY)
                    .arg(&candidate[..])
                    .arg("NX")
                    .ignore()
                    .cmd("GET")
                    .arg(SECRET_KEY);
                let (stored,): (Vec<u8>,) = pipe.query_async(conn).await?;
                Ok(stored)
            })
            .await?;
        let key: [u8; 32] = stored
            .try_into()
            .map_err(|_| Unreachable(format!("{SECRET_KEY} does not hold a 32-byte key")))?;
        let _ = self.key.set(key);
        Ok(key)
    }

    /// Whether Redis keeps an append-only file (`None`: it would not say).
    pub async fn append_only(&self) -> Option<bool> {
        let info: String = self
            .run(async |conn| {
                redis::cmd("INFO")
                    .arg("persistence")
                    .query_async(conn)
                    .await
            })
            .await
            .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("aof_enabled:"))
            .map(|v| v.trim() == "1")
    }
}

impl SharedKeyStore for Db {
    fn wait_up(&self) -> BoxFuture<'_, ()> {
        Box::pin(Db::wait_up(self))
    }

    fn is_up(&self) -> bool {
        Db::is_up(self)
    }

    fn shared_key(&self) -> BoxFuture<'_, Result<[u8; KEY_BYTES], String>> {
        Box::pin(async { Db::shared_key(self).await.map_err(|e| e.to_string()) })
    }

    fn is_durable(&self) -> BoxFuture<'_, Option<bool>> {
        Box::pin(self.append_only())
    }
}
