//! A room's images in Redis: kept by one script (see `scripts/blob.lua`), read by one
//! transaction, both under the room's hash tag, so on the room's shard.

use bytes::Bytes;
use redis::Value;

use super::super::Unreachable;
use super::super::keys::Keys;
use super::super::scripts::BLOB;
use super::super::wire::{as_bytes, as_u64, malformed};
use super::Db;
use crate::blob::{Blob, BlobHash, BlobStored, ImageType};

impl Db {
    /// Keeps `blob` as an image of the room unless it holds it already, within `budget` bytes
    /// of images.
    pub async fn store_blob(
        &self,
        keys: &Keys,
        blob: &Blob,
        budget: u64,
    ) -> Result<BlobStored, Unreachable> {
        let reply: Value = self
            .run(async |conn| {
                BLOB.prepare_invoke()
                    .key(&keys.blobs)
                    .key(&keys.blob_types)
                    .key(&keys.blob_bytes)
                    .key(&keys.epoch)
                    .arg(blob.hash.to_string())
                    .arg(blob.kind.mime())
                    .arg(&blob.bytes[..])
                    .arg(budget)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        match reply {
            Value::Nil => Ok(BlobStored::NoRoom),
            other => match as_u64(&other) {
                Some(0) => Ok(BlobStored::Known),
                Some(1) => Ok(BlobStored::Stored),
                Some(2) => Ok(BlobStored::OverBudget),
                _ => Err(malformed("BLOB")),
            },
        }
    }

    /// The room's image named `hash`.
    pub async fn blob(&self, keys: &Keys, hash: BlobHash) -> Result<Option<Blob>, Unreachable> {
        let field = hash.to_string();
        // One transaction: the type and the bytes of one image, even while the room expires.
        let reply: Value = self
            .run(async |conn| {
                redis::pipe()
                    .atomic()
                    .hget(&keys.blob_types, &field)
                    .hget(&keys.blobs, &field)
                    .query_async(conn)
                    .await
            })
            .await?;
        let mut parts = match reply {
            Value::Array(parts) if parts.len() == 2 => parts,
            _ => return Err(malformed("HGET blob")),
        };
        let bytes = match parts.pop() {
            Some(Value::BulkString(bytes)) => Bytes::from(bytes),
            Some(Value::Nil) => return Ok(None),
            _ => return Err(malformed("HGET blob")),
        };
        let kind = parts
            .first()
            .and_then(as_bytes)
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(ImageType::from_content_type)
            .ok_or_else(|| malformed("HGET blob type"))?;
        Ok(Some(Blob { hash, kind, bytes }))
    }
}
