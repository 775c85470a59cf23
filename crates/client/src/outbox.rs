//! The outbox: this tab's own ops that the room has not settled yet, kept in the browser's
//! storage so that they survive closing the tab, and the rules for which tab may use them.
//!
//! An outbox belongs to one client key, that is to one author as the server knows it. Two live
//! tabs must never use the same key: the server would take them for one author and answer the
//! second tab's op number 7 with the first tab's Ack for its own number 7. So each stored
//! outbox names the tab that owns it and when that tab last said it was alive (its heartbeat).
//! A tab adopts a stored outbox only when its owner released it (the page was closed or
//! reloaded) or has been silent for longer than [`STALE_MS`]; otherwise it starts with a fresh
//! key. Before every write a tab checks that it still owns its entry: a tab frozen in the
//! background for longer than that may find its outbox adopted by another, and must then stop
//! instead of sharing the key.
//!
//! The format: one storage entry per outbox, named `kokuban.outbox.<room>.<key in hex>`, holding
//! `{"v":1,"owner":"<tab>","beat":<ms since 1970>,"key":"<base64>","next":<n>,"ops":[[tag,op]…]}`.
//! Each op is its protocol frame (`ClientMsg::Op(Submit)`, numbered 0 when it has no number
//! yet) in base64, and its tag says what became of it: `d` in doubt (sent, unanswered), `u`
//! unsent, `r` refused, `a` applied out of turn (see [`Fate`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kokuban_protocol::{
    ClientKey, ClientMsg, Op, RoomId, Submit, decode_kept_client, encode_client,
};
use serde::{Deserialize, Serialize};

use crate::session::{Fate, Session};

/// A live tab rewrites its entry at least this often while it holds ops, so that other tabs
/// know it is alive.
pub const HEARTBEAT_MS: f64 = 5_000.0;
/// An entry whose owner has been silent this long belongs to nobody. Browsers slow the timers
/// of hidden tabs to one run a minute, so this must be well above a minute, or a live tab in
/// the background would lose its outbox to a tab opened in front.
pub const STALE_MS: f64 = 120_000.0;
/// Ops that only wait (drawn offline, not numbered) are written at most this often, so that
/// a long offline stroke does not rewrite the whole outbox on every frame.
pub const WRITE_EVERY_MS: f64 = 1_000.0;

const FORMAT: u32 = 1;

/// One of our ops and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// What became of it (never [`Fate::Sent`] in an outbox: once the tab is gone, an op on
    /// the wire is in doubt).
    pub fate: Fate,
    /// The op.
    pub op: Op,
}

/// Everything a session must keep to carry on after the tab is closed: its key, the next op
/// number, and its unsettled ops in the order they were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbox {
    /// The client key the ops are numbered under.
    pub key: ClientKey,
    /// The number the next new op gets; above every number used so far.
    pub next: u64,
    /// The ops, oldest first.
    pub ops: Vec<Kept>,
}

impl Outbox {
    /// A fresh outbox: a new key (16 bytes from a secure random source), nothing in it.
    pub fn new(key: ClientKey) -> Self {
        Self {
            key,
            next: 1,
            ops: Vec::new(),
        }
    }
}

/// An outbox as storage holds it, with its owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The tab that owns it; empty when its tab released it.
    pub owner: String,
    /// When the owner last wrote it (ms since 1970).
    pub beat: f64,
    /// The outbox.
    pub outbox: Outbox,
}

impl Stored {
    /// Whether no live tab owns it at `wall_ms`: released, or silent for [`STALE_MS`]. A beat
    /// far in the future (the clock was set back) counts as silent too.
    pub fn is_free(&self, wall_ms: f64) -> bool {
        self.owner.is_empty() || (wall_ms - self.beat).abs() > STALE_MS
    }
}

/// Why a stored outbox cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// Not the JSON this code writes.
    #[error("not an outbox: {0}")]
    Json(String),
    /// Written by another format version.
    #[error("outbox format {0} is not supported")]
    Format(u32),
    /// An op that does not decode (written by another protocol version, or damaged).
    #[error("an op of the outbox does not decode")]
    Op,
}

#[derive(Serialize, Deserialize)]
struct Json {
    v: u32,
    owner: String,
    beat: f64,
    key: String,
    next: u64,
    ops: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct OwnerOnly {
    owner: String,
}

/// The storage name of every outbox of `room` starts with this.
pub fn prefix(room: &RoomId) -> String {
    format!("kokuban.outbox.{}.", room.as_str())
}

/// The storage name of the outbox of `key` in `room`.
pub fn entry_name(room: &RoomId, key: &ClientKey) -> String {
    let mut name = prefix(room);
    for b in key.0 {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

/// Encodes an outbox owned by `owner`, alive at `beat`.
pub fn encode(outbox: &Outbox, owner: &str, beat: f64) -> String {
    let ops = outbox
        .ops
        .iter()
        .map(|k| {
            let (tag, n) = match k.fate {
                Fate::InDoubt(n) | Fate::Sent(n) => ("d", n),
                Fate::Unsent => ("u", 0),
                Fate::Refused => ("r", 0),
                Fate::Applied => ("a", 0),
            };
            let frame = encode_client(&ClientMsg::Op(Submit {
                n,
                op: k.op.clone(),
            }));
            (tag.to_string(), STANDARD.encode(frame))
        })
        .collect();
    let json = Json {
        v: FORMAT,
        owner: owner.to_string(),
        beat,
        key: STANDARD.encode(outbox.key.0),
        next: outbox.next,
        ops,
    };
    serde_json::to_string(&json).expect("plain data always serializes")
}

/// Decodes a stored outbox.
pub fn decode(text: &str) -> Result<Stored, OutboxError> {
    let json: Json = serde_json::from_str(text).map_err(|e| OutboxError::Json(e.to_string()))?;
    if json.v != FORMAT {
        return Err(OutboxError::Format(json.v));
    }
    let key: [u8; 16] = STANDARD
        .decode(&json.key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| OutboxError::Json("bad key".into()))?;
    let mut ops = Vec::with_capacity(json.ops.len());
    for (tag, b64) in &json.ops {
        let bytes = STANDARD.decode(b64).map_err(|_| OutboxError::Op)?;
        // Kept by this version of the app or the one before: the ops read alike.
        let Ok(ClientMsg::Op(Submit { n, op })) = decode_kept_client(&bytes) else {
            return Err(OutboxError::Op);
        };
        let fate = match (tag.as_str(), n) {
            ("d", n) if n > 0 => Fate::InDoubt(n),
            ("u", _) => Fate::Unsent,
            ("r", _) => Fate::Refused,
            ("a", _) => Fate::Applied,
            _ => return Err(OutboxError::Op),
        };
        ops.push(Kept { fate, op });
    }
    Ok(Stored {
        owner: json.owner,
        beat: json.beat,
        outbox: Outbox {
            key: ClientKey(key),
            next: json.next.max(1),
            ops,
        },
    })
}

/// A write to storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Set this entry to this value.
    Put(String, String),
    /// Remove this entry.
    Remove(String),
}

/// Another tab has taken this tab's outbox over (this one was silent too long): this tab must
/// not write it, nor send under its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superseded;

/// What a tab opening a room starts with.
#[derive(Debug)]
pub struct Adoption {
    /// The outbox to start the session with: an adopted one, or a fresh one.
    pub outbox: Outbox,
    /// Writes the outbox for this tab from now on.
    pub keeper: Keeper,
    /// Whether `outbox` was adopted (its entry must be claimed at once, see [`Keeper::claim`]).
    pub adopted: bool,
}

/// Picks the outbox a tab opening `room` starts with, among the `stored` entries (name,
/// value) of storage: a free one (see [`Stored::is_free`]) with ops, `preferred` if it is one
/// (the entry this same tab used before it was reloaded), else the one that has waited
/// longest; or else a fresh outbox under `fresh`. Entries that do not decode are left alone:
/// they may belong to another version of the app open in another tab.
pub fn adopt(
    room: &RoomId,
    stored: &[(String, String)],
    preferred: Option<&str>,
    tab: &str,
    wall_ms: f64,
    fresh: ClientKey,
) -> Adoption {
    let prefix = prefix(room);
    let best = stored
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .filter_map(|(name, value)| decode(value).ok().map(|s| (name, s)))
        .filter(|(name, s)| {
            s.is_free(wall_ms)
                && !s.outbox.ops.is_empty()
                && **name == entry_name(room, &s.outbox.key)
        })
        .min_by(|a, b| {
            let other = |name: &String| Some(name.as_str()) != preferred;
            other(a.0)
                .cmp(&other(b.0))
                .then(a.1.beat.total_cmp(&b.1.beat))
        });
    match best {
        Some((_, s)) => Adoption {
            keeper: Keeper::new(room, tab, &s.outbox.key, true),
            outbox: s.outbox,
            adopted: true,
        },
        None => Adoption {
            keeper: Keeper::new(room, tab, &fresh, false),
            outbox: Outbox::new(fresh),
            adopted: false,
        },
    }
}

/// Decides when a tab writes its outbox, and whether it still owns it.
///
/// Invariant: an op number is written to storage before the op goes out under it (the
/// caller asks [`Keeper::due`] after taking the frame's ops and before sending them), so a
/// tab that is closed at any moment leaves an outbox that never reuses a number for another op.
#[derive(Debug, Clone)]
pub struct Keeper {
    tab: String,
    name: String,
    /// Our entry is in storage (we wrote it and did not remove it).
    present: bool,
    written_version: Option<u64>,
    written_next: u64,
    written_at: f64,
}

impl Keeper {
    /// The keeper of the outbox of `key` in `room` for tab `tab`; `present` when its entry is
    /// already in storage (it was adopted).
    pub fn new(room: &RoomId, tab: &str, key: &ClientKey, present: bool) -> Self {
        Self {
            tab: tab.to_string(),
            name: entry_name(room, key),
            present,
            written_version: None,
            written_next: 0,
            written_at: f64::NEG_INFINITY,
        }
    }

    /// The storage name of this tab's outbox.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What to write now, if anything: at once when ops were numbered since the last write
    /// (before they go out), otherwise at most every [`WRITE_EVERY_MS`] while the outbox
    /// changes (at once with `force`: the tab is being hidden or closed), and every
    /// [`HEARTBEAT_MS`] while the entry exists. An empty outbox removes the entry.
    ///
    /// Before any write, `stored` reads this tab's entry as storage holds it now: when
    /// another tab has taken it over, nothing is written and this tab must stop.
    pub fn due(
        &mut self,
        session: &Session,
        wall_ms: f64,
        force: bool,
        stored: impl FnOnce(&str) -> Option<String>,
    ) -> Result<Option<Write>, Superseded> {
        let changed = self.written_version != Some(session.outbox_version());
        let numbered = session.next_number() != self.written_next;
        let since = wall_ms - self.written_at;
        let heartbeat = self.present && since >= HEARTBEAT_MS;
        if !(numbered || heartbeat || (changed && (force || since >= WRITE_EVERY_MS))) {
            return Ok(None);
        }
        if !self.owns(stored(&self.name).as_deref()) {
            return Err(Superseded);
        }
        Ok(self.write(session, &self.tab.clone(), wall_ms))
    }

    /// The write that claims an adopted `outbox` for this tab, before any session uses it.
    pub fn claim(&mut self, outbox: &Outbox, wall_ms: f64) -> Write {
        self.present = true;
        self.written_at = wall_ms;
        Write::Put(self.name.clone(), encode(outbox, &self.tab, wall_ms))
    }

    /// The write that hands the outbox to whichever tab opens the room next (the page is
    /// going away); nothing when another tab has taken it over (see [`Keeper::due`]).
    pub fn release(
        &mut self,
        session: &Session,
        wall_ms: f64,
        stored: impl FnOnce(&str) -> Option<String>,
    ) -> Option<Write> {
        if !self.owns(stored(&self.name).as_deref()) {
            return None;
        }
        self.write(session, "", wall_ms)
    }

    /// Whether this tab still owns its outbox, given its entry as storage holds it now
    /// (`None`: absent). An entry we wrote that is gone, or that names another tab, was
    /// adopted by another tab.
    pub fn owns(&self, stored: Option<&str>) -> bool {
        match stored {
            None => !self.present,
            Some(text) => serde_json::from_str::<OwnerOnly>(text)
                .is_ok_and(|o| o.owner == self.tab || o.owner.is_empty()),
        }
    }

    fn write(&mut self, session: &Session, owner: &str, wall_ms: f64) -> Option<Write> {
        self.written_version = Some(session.outbox_version());
        self.written_next = session.next_number();
        if session.outstanding() == 0 && !self.present {
            return None;
        }
        self.written_at = wall_ms;
        if session.outstanding() == 0 {
            // Nothing to keep: a key without ops is worth nothing to another tab.
            self.present = false;
            return Some(Write::Remove(self.name.clone()));
        }
        self.present = true;
        Some(Write::Put(
            self.name.clone(),
            encode(&session.outbox(), owner, wall_ms),
        ))
    }
}

#[cfg(test)]
mod tests;
