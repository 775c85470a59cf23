//! Room ids and capability tokens.
//!
//! Tokens are derived, not stored: `edit = b64url(blake3::keyed_hash(key, "edit\0" + room))`
//! cut to 22 characters (132 bits), and `view` likewise with `"view\0"`. Only the server knows
//! the key, so holding a token proves that someone who was given the link handed it over; the
//! view token is a different hash, so it reveals nothing about the edit token.
//!
//! Links are revocable: each room has a link generation, 0 until its links are first reset,
//! and a generation above 0 is hashed in after the room id (`"\0"` + its 8 bytes; room ids
//! never hold a NUL, so no two inputs collide). Resetting the links advances it, and every
//! token of an older generation stops matching. Generation 0 hashes exactly as before it
//! existed, so links handed out then still open their rooms.
//!
//! Where the key comes from ([`Capabilities::load_or_create`] for a single node,
//! [`Capabilities::for_cluster`] for a node of a cluster) is decided here too: every node of a
//! cluster must derive the same key, from a shared secret or from the key the first node
//! stored where all of them can read it.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kokuban_protocol::{Capability, ClientKey, MemberId, RoomId, Token};
use rand::RngCore;

use crate::BoxFuture;

/// How long a cluster node waits at start for the shared key when no secret is given.
const STARTUP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where the nodes of a cluster keep the key they share when no secret is given (Redis).
pub(crate) trait SharedKeyStore: Send + Sync {
    /// Resolves once the store is reachable.
    fn wait_up(&self) -> BoxFuture<'_, ()>;
    /// Whether the store is reachable now.
    fn is_up(&self) -> bool;
    /// The key every node uses: stored at random by the first node, read by the others.
    fn shared_key(&self) -> BoxFuture<'_, Result<[u8; KEY_BYTES], String>>;
    /// Whether the store keeps what it holds across its restarts (`None`: it would not say).
    fn is_durable(&self) -> BoxFuture<'_, Option<bool>>;
}

/// Length of room ids and tokens in characters (16 bytes of base64 without padding).
pub const ID_CHARS: usize = 22;

/// Size of the server key in bytes.
pub const KEY_BYTES: usize = 32;

/// A fresh, unguessable room id: 128 random bits, URL-safe base64.
pub fn new_room_id() -> RoomId {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    RoomId::new(URL_SAFE_NO_PAD.encode(bytes)).expect("base64url of 16 bytes is a valid id")
}

/// Derives and checks capability tokens with the server key.
#[derive(Clone)]
pub struct Capabilities {
    key: [u8; KEY_BYTES],
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Capabilities { key: <hidden> }")
    }
}

impl Capabilities {
    /// Uses `key` (keep it secret: whoever has it can mint tokens for every room).
    pub fn new(key: [u8; KEY_BYTES]) -> Self {
        Self { key }
    }

    /// Reads the key from `path`, or creates it there (mode 0600) on first start.
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        match fs::read(path) {
            Ok(bytes) => {
                let key: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} must hold exactly {KEY_BYTES} bytes", path.display()),
                    )
                })?;
                Ok(Self::new(key))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut key = [0u8; KEY_BYTES];
                rand::rng().fill_bytes(&mut key);
                let mut options = fs::OpenOptions::new();
                // create_new: two nodes starting on one data dir must not overwrite each
                // other's key (the loser fails to start and says why).
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                let mut file = options.open(path)?;
                file.write_all(&key)?;
                file.sync_all()?;
                Ok(Self::new(key))
            }
            Err(e) => Err(e),
        }
    }

    /// The key derived from a secret every node of a cluster is given (see [`check_secret`]).
    pub fn from_secret(secret: &str) -> Self {
        Self::new(blake3::derive_key(
            "kokuban capability key v1",
            secret.as_bytes(),
        ))
    }

    /// The key of a node of a cluster: derived from `secret` when there is one (the store is
    /// waited for only up to `brief`, and the node starts not ready without it); otherwise the
    /// key in `store`, waited for up to half a minute.
    pub(crate) async fn for_cluster(
        secret: Option<&str>,
        store: &dyn SharedKeyStore,
        brief: std::time::Duration,
    ) -> Result<Self, String> {
        if let Some(secret) = secret {
            let _ = tokio::time::timeout(brief, store.wait_up()).await;
            return Ok(Self::from_secret(secret));
        }
        let key = tokio::time::timeout(STARTUP_WAIT, async {
            loop {
                store.wait_up().await;
                match store.shared_key().await {
                    Ok(key) => return Ok(key),
                    Err(e) if store.is_up() => return Err(e),
                    Err(_) => continue,
                }
            }
        })
        .await
        .map_err(|_| {
            format!(
                "Redis is unreachable: cannot read the cluster's capability key within \
                 {STARTUP_WAIT:?} (or pass --secret)"
            )
        })??;
        if store.is_durable().await != Some(true) {
            tracing::warn!(
                "the capability key is kept in Redis, which has no append-only file: a restart \
                 may forget it, and every link handed out would stop working (turn on \
                 appendonly, or pass the same --secret to every node)"
            );
        }
        Ok(Self::new(key))
    }

    /// The token that grants `capability` in `room` while its links are of generation 0.
    pub fn token(&self, room: &RoomId, capability: Capability) -> Token {
        self.token_at(room, capability, 0)
    }

    /// The token that grants `capability` in `room` while its links are of `generation`.
    pub fn token_at(&self, room: &RoomId, capability: Capability, generation: u64) -> Token {
        let label: &[u8] = match capability {
            Capability::Edit => b"edit\0",
            Capability::View => b"view\0",
        };
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(label);
        hasher.update(room.as_str().as_bytes());
        if generation > 0 {
            hasher.update(b"\0");
            hasher.update(&generation.to_le_bytes());
        }
        let mut text = URL_SAFE_NO_PAD.encode(hasher.finalize().as_bytes());
        text.truncate(ID_CHARS);
        Token::new(text).expect("base64url is a valid token")
    }

    /// The author id of the client that holds `key` in `room`: the same on every connection
    /// of that key, and unforgeable without the key (which only that client knows) and the
    /// server key. Never 0, which clients use for their own ops before the Welcome.
    pub fn author(&self, room: &RoomId, key: &ClientKey) -> MemberId {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(b"author\0");
        hasher.update(&key.0);
        hasher.update(room.as_str().as_bytes());
        let bytes = hasher.finalize();
        let id = u64::from_le_bytes(bytes.as_bytes()[..8].try_into().unwrap_or([1; 8]));
        MemberId(id.max(1))
    }

    /// What `token` grants in `room`, if anything. Both candidates are always compared in
    /// full, so the time taken says nothing about how much of a guess was right.
    /// Tokens of another generation than `generation` grant nothing.
    pub fn check(&self, room: &RoomId, token: &Token, generation: u64) -> Option<Capability> {
        let edit = constant_time_eq(
            self.token_at(room, Capability::Edit, generation)
                .as_str()
                .as_bytes(),
            token.as_str().as_bytes(),
        );
        let view = constant_time_eq(
            self.token_at(room, Capability::View, generation)
                .as_str()
                .as_bytes(),
            token.as_str().as_bytes(),
        );
        match (edit, view) {
            (true, _) => Some(Capability::Edit),
            (_, true) => Some(Capability::View),
            _ => None,
        }
    }
}

/// Compares without an early exit. Lengths are public (every token has [`ID_CHARS`]).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Shortest `--secret` a node accepts. Anyone holding a view link can test guesses of the
/// secret offline against its token, so the secret must be out of reach of a search: 32 bytes
/// of a random generator.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a cluster secret is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--secret is {0} bytes long; it must be at least {MIN_SECRET_BYTES} random bytes, e.g. the \
     output of `openssl rand -base64 32` (give every node the same one)"
)]
pub struct WeakSecret(pub usize);

/// Refuses a secret shorter than [`MIN_SECRET_BYTES`] (surrounding blanks do not count).
pub fn check_secret(secret: &str) -> Result<(), WeakSecret> {
    let len = secret.trim().len();
    if len < MIN_SECRET_BYTES {
        return Err(WeakSecret(len));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(seed: u8) -> Capabilities {
        Capabilities::new([seed; KEY_BYTES])
    }

    #[test]
    fn short_secrets_are_refused_with_a_way_to_make_a_good_one() {
        let err = check_secret("  hunter2 ").unwrap_err();
        assert_eq!(err, WeakSecret(7));
        assert!(err.to_string().contains("openssl rand"), "{err}");
        assert!(check_secret(&"x".repeat(31)).is_err());
        assert!(check_secret("").is_err());
        assert!(check_secret("hQ3v0JXmQk1y7m2b5o8u6VtCkq0Wm9Yx1rZ8c4PdL0E=").is_ok());
    }

    #[test]
    fn room_ids_are_22_url_safe_characters_and_distinct() {
        let a = new_room_id();
        let b = new_room_id();
        assert_eq!(a.as_str().len(), ID_CHARS);
        assert_ne!(a, b);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn tokens_are_deterministic_per_key_room_and_capability() {
        let room = RoomId::new("room_one").unwrap();
        let other = RoomId::new("room_two").unwrap();
        let c = caps(1);
        let edit = c.token(&room, Capability::Edit);
        assert_eq!(edit, c.token(&room, Capability::Edit));
        assert_eq!(edit.as_str().len(), ID_CHARS);
        assert_ne!(edit, c.token(&room, Capability::View));
        assert_ne!(edit, c.token(&other, Capability::Edit));
        assert_ne!(edit, caps(2).token(&room, Capability::Edit));
    }

    #[test]
    fn check_grants_exactly_what_the_token_names() {
        let room = RoomId::new("room_one").unwrap();
        let other = RoomId::new("room_two").unwrap();
        let c = caps(7);
        let edit = c.token(&room, Capability::Edit);
        let view = c.token(&room, Capability::View);
        assert_eq!(c.check(&room, &edit, 0), Some(Capability::Edit));
        assert_eq!(c.check(&room, &view, 0), Some(Capability::View));
        assert_eq!(c.check(&other, &edit, 0), None);
        assert_eq!(caps(8).check(&room, &edit, 0), None);
        let mut near = edit.as_str().to_owned();
        let last = if near.ends_with('A') { "B" } else { "A" };
        near.replace_range(ID_CHARS - 1.., last);
        assert_eq!(c.check(&room, &Token::new(near).unwrap(), 0), None);
        assert_eq!(c.check(&room, &Token::new("short").unwrap(), 0), None);
    }

    #[test]
    fn a_reset_of_the_links_revokes_every_older_token() {
        let room = RoomId::new("room_one").unwrap();
        let c = caps(7);
        let old = c.token(&room, Capability::Edit);
        assert_eq!(old, c.token_at(&room, Capability::Edit, 0));
        let new = c.token_at(&room, Capability::Edit, 1);
        let view = c.token_at(&room, Capability::View, 1);
        assert_ne!(old, new);
        assert_eq!(c.check(&room, &old, 1), None);
        assert_eq!(c.check(&room, &c.token(&room, Capability::View), 1), None);
        assert_eq!(c.check(&room, &new, 1), Some(Capability::Edit));
        assert_eq!(c.check(&room, &view, 1), Some(Capability::View));
        assert_eq!(c.check(&room, &new, 2), None);
    }

    #[test]
    fn an_author_id_is_stable_per_client_key_and_room_and_keyed() {
        let room = RoomId::new("room_one").unwrap();
        let other = RoomId::new("room_two").unwrap();
        let key = ClientKey([5; 16]);
        let c = caps(1);
        assert_eq!(c.author(&room, &key), c.author(&room, &key));
        assert_ne!(c.author(&room, &key), c.author(&room, &ClientKey([6; 16])));
        assert_ne!(c.author(&room, &key), c.author(&other, &key));
        assert_ne!(c.author(&room, &key), caps(2).author(&room, &key));
    }

    #[test]
    fn the_key_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        let room = RoomId::new("r").unwrap();
        let first = Capabilities::load_or_create(&path).unwrap();
        let again = Capabilities::load_or_create(&path).unwrap();
        assert_eq!(
            first.token(&room, Capability::Edit),
            again.token(&room, Capability::Edit)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(&path, b"too short").unwrap();
        assert!(Capabilities::load_or_create(&path).is_err());
    }
}
