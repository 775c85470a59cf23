//! A room as the server keeps it, for the session's tests: it sequences ops in arrival order
//! and numbers each author's ops as protocol v2 says (each number applied at most once, none
//! at or below the highest one decided), answering with Acks, refusals and Welcomes.

use std::collections::{BTreeMap, HashMap};

use kokuban_protocol::{
    Ack, Bytes, Epoch, ErrorCode, ErrorFrame, Hello, Position, RoomState, Seq, Welcome,
};

use super::*;

pub(super) const ROOM_EPOCH: Epoch = Epoch(7);

/// One author's numbers: the Ack of each applied one, `None` for each refused (or fenced) one.
struct Author {
    id: MemberId,
    decided: BTreeMap<u64, Option<Ack>>,
}

/// The server side of one room.
pub(super) struct Room {
    pub epoch: Epoch,
    pub board: Board,
    pub log: Vec<Sequenced>,
    next_member: u64,
    authors: HashMap<ClientKey, Author>,
    /// Writes are refused (its store is unreachable).
    pub read_only: bool,
    /// Every op applied: its author, its number, itself, and whether it changed the board.
    pub applied: Vec<(MemberId, u64, Op, bool)>,
    /// The last op applied as the others are sent it (a batch of points by handle where it
    /// can be, as the server sends them).
    pub live: Option<ServerMsg>,
}

impl Room {
    pub fn new() -> Self {
        Self {
            epoch: ROOM_EPOCH,
            board: Board::at_start_of(ROOM_EPOCH),
            log: Vec::new(),
            next_member: 100,
            authors: HashMap::new(),
            read_only: false,
            applied: Vec::new(),
            live: None,
        }
    }

    /// The author id of `key` (stable: derived once per key).
    pub fn author_of(&mut self, key: ClientKey) -> MemberId {
        let next = 1000 + self.authors.len() as u64;
        self.authors
            .entry(key)
            .or_insert_with(|| Author {
                id: MemberId(next),
                decided: BTreeMap::new(),
            })
            .id
    }

    /// Whether number `n` of `key` was applied.
    pub fn was_applied(&self, key: ClientKey, n: u64) -> bool {
        self.authors
            .get(&key)
            .is_some_and(|a| matches!(a.decided.get(&n), Some(Some(_))))
    }

    /// Every number of `key` up to this one is decided.
    pub fn decided(&self, key: ClientKey) -> u64 {
        self.authors
            .get(&key)
            .and_then(|a| a.decided.keys().next_back().copied())
            .unwrap_or(0)
    }

    /// The Welcome for `hello`: a replay from its position when it has one in this history
    /// (unless `snapshot`), else the board as a snapshot.
    pub fn welcome(&mut self, hello: &Hello, snapshot: bool) -> (MemberId, ServerMsg) {
        self.next_member += 1;
        let member = MemberId(self.next_member);
        let author = self.author_of(hello.client);
        let state = match hello.resume {
            Some(Position { epoch, seq }) if epoch == self.epoch && !snapshot => {
                RoomState::Replay {
                    ops: self.log[seq.0 as usize..].to_vec().into(),
                }
            }
            _ => RoomState::Snapshot {
                board: Bytes(self.board.snapshot()),
                ops: Vec::new().into(),
            },
        };
        let welcome = Welcome {
            member,
            author,
            capability: Capability::Edit,
            epoch: self.epoch,
            state,
            members: Vec::new().into(),
            decided: self.decided(hello.client),
        };
        (member, ServerMsg::Welcome(welcome))
    }

    /// Takes `submit` from the author of `key`: the answer for the author, and the op as
    /// the others receive it when it was applied.
    pub fn submit(&mut self, key: ClientKey, submit: Submit) -> (ServerMsg, Option<Sequenced>) {
        let author_id = self.author_of(key);
        let author = self.authors.get_mut(&key).expect("known author");
        let Submit { n, op } = submit;
        if let Some(answer) = author.decided.get(&n) {
            let msg = match answer {
                Some(ack) => ServerMsg::Ack(*ack),
                None => decided_error(),
            };
            return (msg, None);
        }
        if author
            .decided
            .keys()
            .next_back()
            .is_some_and(|&top| n < top)
        {
            author.decided.insert(n, None);
            return (decided_error(), None);
        }
        if self.read_only {
            author.decided.insert(n, None);
            return (
                ServerMsg::Error(ErrorFrame::new(ErrorCode::TemporarilyReadOnly, "read-only")),
                None,
            );
        }
        if let Err(why) = self.board.vet(author_id, &op)
            && why.is_final()
        {
            author.decided.insert(n, None);
            return (
                ServerMsg::Error(ErrorFrame::new(ErrorCode::InvalidOp, why.to_string())),
                None,
            );
        }
        let ack = Ack {
            epoch: self.epoch,
            seq: Seq(self.log.len() as u64 + 1),
        };
        author.decided.insert(n, Some(ack));
        let s = Sequenced {
            epoch: ack.epoch,
            seq: ack.seq,
            author: author_id,
            op,
        };
        self.live = Some(match self.board.live_points(&s) {
            Some(live) => ServerMsg::Points(live),
            None => ServerMsg::Op(s.clone()),
        });
        let change = self.board.apply_sequenced(&s).expect("in order");
        self.log.push(s.clone());
        self.applied
            .push((author_id, n, s.op.clone(), change != Change::None));
        (ServerMsg::Ack(ack), Some(s))
    }
}

impl Room {
    /// The room's history is replaced: the board it holds starts `epoch`.
    pub fn reset_history(&mut self, epoch: Epoch) {
        self.epoch = epoch;
        self.board.begin_epoch(epoch);
        self.log.clear();
    }

    /// The Welcome a live connection of `member` gets after its room's history was replaced.
    pub fn rewelcome(&mut self, member: MemberId, key: ClientKey) -> ServerMsg {
        ServerMsg::Welcome(Welcome {
            member,
            author: self.author_of(key),
            capability: Capability::Edit,
            epoch: self.epoch,
            state: RoomState::Snapshot {
                board: Bytes(self.board.snapshot()),
                ops: Vec::new().into(),
            },
            members: Vec::new().into(),
            decided: self.decided(key),
        })
    }
}

fn decided_error() -> ServerMsg {
    ServerMsg::Error(ErrorFrame::new(ErrorCode::Decided, "decided long ago"))
}
