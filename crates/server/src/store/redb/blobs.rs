//! The images of rooms in the embedded store: one table of images by (room, hash), and one of
//! each room's total, so that the budget is checked by reading one number, not by summing.
//! Images are written by the writer thread, in the group commit, like every other write.

use super::*;
use crate::blob::{Blob, BlobHash, BlobStored, ImageType};

/// An image's key: its room's id and its SHA-256.
type ImageKey = (&'static str, [u8; 32]);
/// An image: its media type and its bytes.
type Image = (&'static str, &'static [u8]);

/// (room id, SHA-256 of the image) → (its media type, its bytes).
pub(super) const BLOBS: TableDefinition<ImageKey, Image> = TableDefinition::new("blobs");
/// Room id → bytes of its images together (absent: none).
pub(super) const BLOB_BYTES: TableDefinition<&str, u64> = TableDefinition::new("blob_bytes");

/// The tables of images, open in one write transaction.
pub(super) struct BlobTables<'t> {
    images: ::redb::Table<'t, ImageKey, Image>,
    totals: ::redb::Table<'t, &'static str, u64>,
}

impl<'t> BlobTables<'t> {
    pub(super) fn open(txn: &'t ::redb::WriteTransaction) -> Result<Self, ::redb::Error> {
        Ok(BlobTables {
            images: txn.open_table(BLOBS)?,
            totals: txn.open_table(BLOB_BYTES)?,
        })
    }

    /// Keeps `blob` as an image of room `id` unless the room holds it already, while its
    /// images weigh at most `budget` bytes with it.
    pub(super) fn keep(
        &mut self,
        id: &str,
        blob: &Blob,
        budget: u64,
    ) -> Result<BlobStored, ::redb::Error> {
        let key = (id, blob.hash.0);
        // Known bytes first: posting an image again never counts against the budget.
        if self.images.get(key)?.is_some() {
            return Ok(BlobStored::Known);
        }
        let before = self.totals.get(id)?.map_or(0, |g| g.value());
        let after = before.saturating_add(blob.bytes.len() as u64);
        if after > budget {
            return Ok(BlobStored::OverBudget);
        }
        self.images
            .insert(key, (blob.kind.mime(), blob.bytes.as_ref()))?;
        self.totals.insert(id, after)?;
        Ok(BlobStored::Stored)
    }

    /// Forgets every image of room `id` (it expired).
    pub(super) fn forget(&mut self, id: &str) -> Result<(), ::redb::Error> {
        self.images
            .retain_in((id, [0; 32])..=(id, [0xFF; 32]), |_, _| false)?;
        self.totals.remove(id)?;
        Ok(())
    }
}

/// The image of room `id` named `hash`, as committed (an upload is answered only once its
/// commit is on disk, so no barrier is needed).
pub(super) fn read(db: &Database, id: &str, hash: BlobHash) -> Result<Option<Blob>, ::redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(BLOBS)?;
    let Some(stored) = table.get((id, hash.0))? else {
        return Ok(None);
    };
    let (mime, bytes) = stored.value();
    // Only a type of the allow-list is ever written.
    let kind = ImageType::from_content_type(mime)
        .ok_or_else(|| ::redb::Error::Corrupted(format!("an image of type {mime:?}")))?;
    Ok(Some(Blob {
        hash,
        kind,
        bytes: Bytes::copy_from_slice(bytes),
    }))
}

impl RedbStore {
    /// See [`Store::store_blob`].
    pub(super) async fn keep_blob(
        &self,
        room: &RoomId,
        blob: Blob,
        budget: u64,
    ) -> Result<BlobStored, StoreError> {
        // A store that is failing or far behind would hold the upload until it recovers:
        // refused now, the client can try again.
        if !self.accepting_writes() {
            return Err(StoreError::Backend(
                "the store is not taking writes now".into(),
            ));
        }
        let (done, wait) = oneshot::channel();
        let stored = Arc::new(Mutex::new(None));
        self.enqueue(Command::StoreBlob {
            room: room.clone(),
            blob,
            budget,
            stored: stored.clone(),
            done,
        })?;
        wait.await.map_err(|_| StoreError::Closed)??;
        let stored = *stored.lock().unwrap_or_else(|p| p.into_inner());
        stored.ok_or_else(|| StoreError::Backend("the image's commit said nothing".into()))
    }

    /// See [`Store::blob`].
    pub(super) async fn read_blob(
        &self,
        room: &RoomId,
        hash: BlobHash,
    ) -> Result<Option<Blob>, StoreError> {
        let db = lock(&self.db)
            .clone()
            .ok_or_else(|| StoreError::Backend("the store is being reopened".into()))?;
        let id = room.as_str().to_owned();
        tokio::task::spawn_blocking(move || read(&db, &id, hash))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
            .map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::hash_of;

    fn image(tag: u8, len: usize) -> Blob {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.resize(len, tag);
        Blob {
            hash: hash_of(&bytes),
            kind: ImageType::Png,
            bytes: Bytes::from(bytes),
        }
    }

    #[tokio::test]
    async fn images_are_kept_once_within_the_budget_and_expire_with_their_room_only() {
        let dir = tempfile::tempdir().unwrap();
        let open = || RedbStore::open(dir.path(), 1000, Duration::from_secs(1), Arc::default());
        let (room, other) = (RoomId::new("room").unwrap(), RoomId::new("other").unwrap());
        let (a, b, c) = (image(1, 100), image(2, 100), image(3, 60));
        let store = open().unwrap();
        let stored = store.store_blob(&room, a.clone(), 250).await.unwrap();
        assert_eq!(stored, BlobStored::NoRoom);
        for r in [&room, &other] {
            store.create_room(r, Epoch(1), Bytes::new()).await.unwrap();
        }
        for (blob, kept) in [
            (&a, BlobStored::Stored),
            (&a, BlobStored::Known),
            (&b, BlobStored::Stored),
            (&c, BlobStored::OverBudget),
            (&a, BlobStored::Known),
        ] {
            let stored = store.store_blob(&room, blob.clone(), 250).await.unwrap();
            assert_eq!(stored, kept, "{blob:?}");
        }
        assert!(store.blob(&other, a.hash).await.unwrap().is_none());
        // An image stored counts as a use of its room: `other` outlives `room`.
        std::thread::sleep(Duration::from_millis(5));
        let between = crate::unix_ms();
        std::thread::sleep(Duration::from_millis(5));
        let stored = store.store_blob(&other, c.clone(), 250).await.unwrap();
        assert_eq!(stored, BlobStored::Stored);
        store.close().await.unwrap();

        let store = open().unwrap();
        let back = store.blob(&room, b.hash).await.unwrap().unwrap();
        assert_eq!((back.kind, &back.bytes), (ImageType::Png, &b.bytes));
        let gone = store.expire(between, Vec::new()).await.unwrap();
        assert_eq!(gone, vec![room.clone()]);
        assert!(store.blob(&room, a.hash).await.unwrap().is_none());
        assert!(store.blob(&other, c.hash).await.unwrap().is_some());
        store.close().await.unwrap();
    }
}
