//! A client that behaves like the app across faults: it keeps its board across connections,
//! resumes, resends what was not answered, and checks every op it applies against its place.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use kokuban_board::Board;
use kokuban_protocol::{
    ClientKey, ClientMsg, Color, ErrorCode, Handles, Hello, MemberId, Name, Op, Point, Position,
    PresenceEvent, RoomState, Sequenced, ServerMsg, StrokeId, Submit, Text, Token, Width,
    decode_server, encode_client,
};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::TestRoom;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A text item of about `bytes` bytes: independent of every other op, so any subset of them
/// applies, and easy to find on a board by its id.
pub fn text_op(bytes: usize) -> Op {
    let body: String = std::iter::repeat_n('k', bytes.clamp(1, 4000)).collect();
    Op::Text {
        id: StrokeId(uuid::Uuid::new_v4()),
        at: Point::new(rand::random::<i16>() as i32, 0, 0).unwrap(),
        color: Color::rgb(0, 0, 0),
        size: Width::new(16).unwrap(),
        text: Text::new(body).unwrap(),
    }
}

pub fn op_id(op: &Op) -> StrokeId {
    match op {
        Op::Text { id, .. } => *id,
        other => panic!("not a text op: {other:?}"),
    }
}

/// A client that behaves like the app: it keeps its board across connections, resumes from
/// its position when it reconnects, resends whatever was not answered, and checks every op it
/// applies against its position, so that a gap the server did not report (with a snapshot) is
/// caught wherever it happens.
pub struct Pen {
    pub name: String,
    pub room: TestRoom,
    pub token: Token,
    pub ws: Option<Ws>,
    pub member: Option<MemberId>,
    pub board: Board,
    /// Sent and not answered yet, oldest first: its number, the op, when it was first sent.
    pub unanswered: VecDeque<(u64, Op, Instant)>,
    /// This pen's key (its author across connections) and the number of its next op.
    pub key: ClientKey,
    pub next_n: u64,
    pub author: Option<MemberId>,
    /// Ops dropped at a Welcome as decided (applied, or refused without a word).
    pub decided: Vec<Op>,
    /// `BoardPart`s received for the next Welcome.
    parts: Vec<u8>,
    /// What the connection carried, for point batches by handle.
    handles: Handles,
    pub acked: Vec<Op>,
    pub refused: Vec<Op>,
    /// The longest wait from sending an op to its answer, or to the close that told us to
    /// resume (which is an answer too: the client resends it on the next connection).
    pub slowest_answer: Duration,
    /// Ops that arrived out of place: a seq skipped (a gap) or repeated.
    pub misplaced: Vec<String>,
    /// Close codes seen (`None`: the connection ended without one).
    pub closes: Vec<Option<u16>>,
    /// Welcomes that replaced the board (a new history, or too far behind for a replay).
    pub snapshots: usize,
    /// Members seen leaving.
    pub left: Vec<MemberId>,
}

/// What one read gave.
pub enum Got {
    Msg(ServerMsg),
    Closed,
    Nothing,
}

impl Pen {
    pub fn new(name: &str, room: &TestRoom, token: &Token) -> Pen {
        Pen {
            name: name.to_owned(),
            room: room.clone(),
            token: token.clone(),
            ws: None,
            member: None,
            board: Board::new(),
            unanswered: VecDeque::new(),
            key: ClientKey(rand::random()),
            next_n: 1,
            author: None,
            decided: Vec::new(),
            parts: Vec::new(),
            handles: Handles::new(),
            acked: Vec::new(),
            refused: Vec::new(),
            slowest_answer: Duration::ZERO,
            misplaced: Vec::new(),
            closes: Vec::new(),
            snapshots: 0,
            left: Vec::new(),
        }
    }

    pub fn connected(&self) -> bool {
        self.ws.is_some()
    }

    pub fn head(&self) -> Option<Position> {
        self.board.position()
    }

    /// Connects to `addr`, resumes, and resends what was not answered. `Err` if the node
    /// cannot be reached or does not welcome us.
    pub async fn connect(&mut self, addr: SocketAddr) -> Result<(), String> {
        self.connect_with(addr, None).await
    }

    pub async fn connect_with(
        &mut self,
        addr: SocketAddr,
        recv_buffer: Option<u32>,
    ) -> Result<(), String> {
        let url = format!("ws://{addr}/ws/{}", self.room.id);
        let attempt = async {
            let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
            if let Some(bytes) = recv_buffer {
                socket
                    .set_recv_buffer_size(bytes)
                    .map_err(|e| e.to_string())?;
            }
            let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (mut ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
                .await
                .map_err(|e| e.to_string())?;
            let hello = ClientMsg::Hello(Hello {
                room: self.room.id.clone(),
                token: self.token.clone(),
                resume: self.board.position(),
                name: Name::new(self.name.clone()).unwrap(),
                color: Color::rgb(20, 90, 200),
                client: self.key,
            });
            ws.send(Message::Binary(encode_client(&hello).into()))
                .await
                .map_err(|e| e.to_string())?;
            let mut parts = Vec::new();
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => match decode_server(&b) {
                        Ok(ServerMsg::BoardPart(p)) => parts.extend(p.0),
                        Ok(ServerMsg::Welcome(w)) => {
                            let Some(ServerMsg::Welcome(w)) =
                                super::whole(ServerMsg::Welcome(w), &mut parts)
                            else {
                                unreachable!("a Welcome stays one")
                            };
                            return Ok((ws, w));
                        }
                        Ok(other) => return Err(format!("expected Welcome, got {other:?}")),
                        Err(e) => return Err(e.to_string()),
                    },
                    Some(Ok(Message::Close(f))) => return Err(format!("closed: {f:?}")),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("closed".into()),
                }
            }
        };
        let (ws, welcome) = tokio::time::timeout(super::TIMEOUT, attempt)
            .await
            .map_err(|_| "no Welcome in time".to_owned())??;
        self.member = Some(welcome.member);
        self.author = Some(welcome.author);
        self.apply_state(&welcome.state);
        self.ws = Some(ws);
        self.handles = Handles::new();
        // Ops not answered on the last connection may or may not have been sequenced: those
        // the Welcome says are decided are settled (applied ones are in its state), the rest
        // are sent again under their numbers, so none is applied twice.
        while self
            .unanswered
            .front()
            .is_some_and(|(n, _, _)| *n <= welcome.decided)
        {
            let (_, op, _) = self.unanswered.pop_front().expect("checked");
            self.decided.push(op);
        }
        let resend: Vec<(u64, Op)> = self
            .unanswered
            .iter()
            .map(|(n, op, _)| (*n, op.clone()))
            .collect();
        for (_, _, sent) in &mut self.unanswered {
            *sent = Instant::now();
        }
        for (n, op) in resend {
            self.write(n, &op).await;
        }
        Ok(())
    }

    pub fn apply_state(&mut self, state: &RoomState) {
        match state {
            RoomState::Snapshot { board, ops } => {
                self.snapshots += 1;
                self.board = Board::from_snapshot(&board.0).expect("snapshot decodes");
                for op in ops.iter() {
                    self.apply(op);
                }
            }
            RoomState::Replay { ops } => {
                for op in ops.iter() {
                    self.apply(op);
                }
            }
            RoomState::InParts { .. } => unreachable!("made whole on receipt"),
        }
    }

    /// Applies the next op of the room, which must be exactly the one after our position.
    pub fn apply(&mut self, s: &Sequenced) {
        let expected = self.board.position().map(|p| (p.epoch, p.seq.next()));
        if expected != Some((s.epoch, s.seq)) {
            self.misplaced.push(format!(
                "{}: got {:?}/{} at {:?}",
                self.name,
                s.epoch,
                s.seq.0,
                self.board.position()
            ));
            return;
        }
        self.board.apply_sequenced(s).expect("the next op applies");
    }

    pub async fn write(&mut self, n: u64, op: &Op) {
        let Some(ws) = self.ws.as_mut() else { return };
        let msg = ClientMsg::Op(Submit { n, op: op.clone() });
        let frame = Message::Binary(self.handles.encode(&msg).into());
        if ws.send(frame).await.is_err() {
            self.lost(None);
        }
    }

    /// Sends an op (or queues it, offline, for the next connection).
    pub async fn draw(&mut self, op: Op) {
        let n = self.next_n;
        self.next_n += 1;
        self.unanswered.push_back((n, op.clone(), Instant::now()));
        self.write(n, &op).await;
    }

    pub fn lost(&mut self, code: Option<u16>) {
        self.ws = None;
        self.closes.push(code);
        if let Some((_, _, sent)) = self.unanswered.front() {
            self.slowest_answer = self.slowest_answer.max(sent.elapsed());
        }
    }

    pub fn answered(&mut self) -> Option<Op> {
        let (_, op, sent) = self.unanswered.pop_front()?;
        self.slowest_answer = self.slowest_answer.max(sent.elapsed());
        Some(op)
    }

    /// Reads one message, waiting at most `wait`.
    pub async fn read(&mut self, wait: Duration) -> Got {
        let Some(ws) = self.ws.as_mut() else {
            return Got::Closed;
        };
        let deadline = tokio::time::Instant::now() + wait;
        let msg = loop {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => return Got::Nothing,
                Ok(Some(Ok(Message::Binary(b)))) => {
                    let msg = decode_server(&b).expect("server frames decode");
                    let Some(msg) = super::whole(msg, &mut self.parts) else {
                        continue;
                    };
                    match super::in_full(&self.board, msg) {
                        Ok(msg) => break msg,
                        Err(e) => {
                            self.misplaced.push(format!("{}: {e}", self.name));
                            continue;
                        }
                    }
                }
                Ok(Some(Ok(Message::Close(f)))) => {
                    self.lost(f.map(|f| u16::from(f.code)));
                    return Got::Closed;
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => {
                    self.lost(None);
                    return Got::Closed;
                }
            }
        };
        match &msg {
            ServerMsg::Op(s) => self.apply(s),
            ServerMsg::Ack(a) => {
                let op = self.answered().expect("an Ack answers an op we sent");
                let s = Sequenced {
                    epoch: a.epoch,
                    seq: a.seq,
                    author: self.author.expect("joined"),
                    op: op.clone(),
                };
                // The Ack of a retry names the place the op first took, which this pen may
                // have applied already (it came back as its own op).
                if self
                    .head()
                    .is_none_or(|p| p.epoch != a.epoch || p.seq < a.seq)
                {
                    self.apply(&s);
                }
                self.acked.push(op);
            }
            ServerMsg::Error(e)
                if matches!(
                    e.code,
                    ErrorCode::TemporarilyReadOnly | ErrorCode::InvalidOp | ErrorCode::Decided
                ) =>
            {
                let op = self.answered().expect("a refusal answers an op we sent");
                if e.code == ErrorCode::TemporarilyReadOnly {
                    self.refused.push(op);
                }
            }
            // A new history on a live connection: the board starts over (a reported reset).
            ServerMsg::Welcome(w) => self.apply_state(&w.state),
            ServerMsg::Presence(PresenceEvent::Left(id)) => self.left.push(*id),
            _ => {}
        }
        Got::Msg(msg)
    }

    /// Reads until nothing arrives for `quiet` (or the connection ends).
    pub async fn drain(&mut self, quiet: Duration) {
        while let Got::Msg(_) = self.read(quiet).await {}
    }

    /// Reads until every op sent is answered, reconnecting to `addr` after a close; panics
    /// after `within`.
    pub async fn settle(&mut self, addr: SocketAddr, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.unanswered.is_empty() {
            assert!(
                Instant::now() < deadline,
                "{}: {} ops unanswered after {within:?}",
                self.name,
                self.unanswered.len()
            );
            if !self.connected() {
                if self.connect(addr).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
            self.read(Duration::from_millis(200)).await;
        }
    }

    /// Reads until the board is at `head`.
    pub async fn sync_to(&mut self, head: Position, within: Duration) {
        let deadline = Instant::now() + within;
        while self.board.position() != Some(head) {
            assert!(
                Instant::now() < deadline,
                "{}: at {:?}, expected {head:?}",
                self.name,
                self.board.position()
            );
            self.read(Duration::from_millis(200)).await;
        }
    }
}
