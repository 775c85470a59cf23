//! The test harness: a real server on a loopback port with a temporary data directory, and a
//! typed client that speaks the protocol over a real WebSocket; cluster nodes, nginx, and the
//! clients and watchers of the fault tests beside it. Redis processes, the HTTP client and the
//! fault proxy come from the workspace's test kit, shared with the browser tests.

pub mod bystanders;
pub mod cluster;
pub mod nginx;
pub mod pen;
mod watch;

pub use watch::{Watch, mib, under_attack};

/// The test kit's Redis launcher, under the name the tests have always used.
pub mod redis {
    pub use kokuban_testkit::free_port;
    pub use kokuban_testkit::redis::{RedisConfig, RedisServer};
}
/// The test kit's fault proxy.
pub mod faults {
    pub use kokuban_testkit::proxy::FaultProxy;
}

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kokuban_board::{Board, SequenceError};
use kokuban_protocol::{
    ClientKey, ClientMsg, Color, Cursor, Epoch, ErrorCode, Handles, Hello, MemberId, Name, Op,
    Point, Points, Position, RoomId, RoomState, Seq, Sequenced, ServerMsg, StrokeId, StrokePoints,
    Submit, Token, Tool, Welcome, Width, decode_server,
};
use kokuban_server::{Config, Server, ShutdownHandle};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Generous: tests wait on events, never on timing, and CI machines are slow.
pub use kokuban_testkit::TIMEOUT;

/// A server message with a board that came in parts made whole: `BoardPart`s are gathered
/// into `parts` (and `None` returned), and a Welcome whose state is in parts gets them as its
/// snapshot, so tests see every Welcome with its board.
pub fn whole(msg: ServerMsg, parts: &mut Vec<u8>) -> Option<ServerMsg> {
    match msg {
        ServerMsg::BoardPart(p) => {
            parts.extend(p.0);
            None
        }
        ServerMsg::Welcome(mut w) => {
            if let RoomState::InParts { ops } = w.state {
                w.state = RoomState::Snapshot {
                    board: kokuban_protocol::Bytes(std::mem::take(parts)),
                    ops,
                };
            }
            Some(ServerMsg::Welcome(w))
        }
        other => Some(other),
    }
}

/// A batch of points by handle as the op it stands for, and a short Ack as the Ack, on
/// `board` (the board the messages before it were applied to); other messages as they are.
pub fn in_full(board: &Board, msg: ServerMsg) -> Result<ServerMsg, SequenceError> {
    match msg {
        ServerMsg::Points(live) => board.expand(&live).map(ServerMsg::Op),
        ServerMsg::Acked(check) => board.acked(check).map(ServerMsg::Ack),
        other => Ok(other),
    }
}

/// Settings for tests: port 0, short timers where a test waits for them.
pub fn test_config(data_dir: &Path) -> Config {
    let mut c = Config::new(data_dir);
    c.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.node_id = "test".into();
    c.close_timeout = Duration::from_secs(2);
    c.shutdown_drain = Duration::from_millis(100);
    c.room_grace = Duration::from_millis(500);
    c.cursor_interval = Duration::from_millis(20);
    c
}

/// Lifts the inbound budget, for a test that floods a node on purpose to see something else.
pub fn unmetered(c: &mut Config) {
    c.inbound_frames_per_sec = u32::MAX;
    c.inbound_frame_burst = u32::MAX;
    c.inbound_bytes_per_sec = u32::MAX;
    c.inbound_byte_burst = u32::MAX;
}

/// A running server. Dropping it starts a shutdown.
pub struct TestServer {
    pub addr: SocketAddr,
    pub config: Config,
    dir: tempfile::TempDir,
    handle: ShutdownHandle,
    task: Option<JoinHandle<Result<(), kokuban_server::ServerError>>>,
    /// This server's share of the process (see [`TestServer::run_alone`]).
    turn: std::sync::Mutex<Option<tokio::sync::OwnedRwLockReadGuard<()>>>,
}

/// Every test's server runs in this one process, so a test that judges the process's memory
/// must run with no other test's server beside it: servers hold this shared, and such a test
/// holds it alone ([`TestServer::run_alone`]).
static TURNS: std::sync::LazyLock<std::sync::Arc<tokio::sync::RwLock<()>>> =
    std::sync::LazyLock::new(Default::default);

/// A room and its two links' tokens.
#[derive(Debug, Clone)]
pub struct TestRoom {
    pub id: RoomId,
    pub edit: Token,
    pub view: Token,
    pub view_url: String,
}

/// `POST /api/rooms` on any node (or a proxy in front of nodes), checked, with the tokens
/// taken from the links' fragments.
pub async fn create_room_at(addr: SocketAddr) -> TestRoom {
    let r = http(addr, "POST", "/api/rooms", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let json: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    let edit_url = json["edit_url"].as_str().unwrap();
    let view_url = json["view_url"].as_str().unwrap().to_owned();
    let edit = edit_url
        .split("#edit=")
        .nth(1)
        .expect("edit token in fragment");
    let view = view_url
        .split("#view=")
        .nth(1)
        .expect("view token in fragment");
    TestRoom {
        id: RoomId::new(json["room"].as_str().unwrap()).unwrap(),
        edit: Token::new(edit).unwrap(),
        view: Token::new(view).unwrap(),
        view_url,
    }
}

impl TestServer {
    /// A server with the test settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server with the test settings, adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        // Server logs in test output, filtered by RUST_LOG (silent by default).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let turn = TURNS.clone().read_owned().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        adjust(&mut config);
        let (addr, handle, task) = launch(config.clone()).await;
        Self {
            addr,
            config,
            dir,
            handle,
            task: Some(task),
            turn: std::sync::Mutex::new(Some(turn)),
        }
    }

    /// Waits until this is the only server of the process, and keeps it so until the guard
    /// is dropped: for a test that judges the process's memory. Its own test must not hold
    /// another server.
    pub async fn run_alone(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        drop(self.turn.lock().unwrap().take());
        TURNS.clone().write_owned().await
    }

    /// Shuts down gracefully and starts again on the same data directory (and a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        let (addr, handle, task) = launch(self.config.clone()).await;
        self.addr = addr;
        self.handle = handle;
        self.task = Some(task);
    }

    /// Shuts down gracefully and waits until the server has finished.
    pub async fn stop(&mut self) {
        self.handle.shutdown();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(TIMEOUT, task)
                .await
                .expect("shutdown in time")
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    /// Starts a shutdown without waiting for it.
    pub fn begin_shutdown(&self) {
        self.handle.shutdown();
    }

    /// Waits for a shutdown begun elsewhere to finish.
    pub async fn finished(&mut self) {
        if let Some(task) = self.task.take() {
            tokio::time::timeout(TIMEOUT, task)
                .await
                .expect("shutdown in time")
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn ws_url(&self, room: &str) -> String {
        format!("ws://{}/ws/{room}", self.addr)
    }

    /// `POST /api/rooms`, checked, with the tokens taken from the links.
    pub async fn create_room(&self) -> TestRoom {
        create_room_at(self.addr).await
    }

    /// The value of one series of `/metrics` (e.g. `kokuban_ops_sequenced_total`).
    pub async fn metric(&self, series: &str) -> f64 {
        let r = http(self.addr, "GET", "/metrics", &[]).await;
        assert_eq!(r.status, 200);
        r.body
            .lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .unwrap_or_else(|| panic!("no series {series} in\n{}", r.body))
            .trim()
            .parse()
            .unwrap()
    }

    /// Polls a metric until `pred` holds.
    pub async fn wait_metric(&self, series: &str, pred: impl Fn(f64) -> bool) -> f64 {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let v = self.metric(series).await;
            if pred(v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{series} stayed at {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client joined to `room` with the edit link.
    pub async fn editor(&self, room: &TestRoom, name: &str) -> TestClient {
        TestClient::join(self, room, &room.edit, name, None).await
    }

    /// A client joined to `room` with the view link.
    pub async fn viewer(&self, room: &TestRoom, name: &str) -> TestClient {
        TestClient::join(self, room, &room.view, name, None).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

async fn launch(
    config: Config,
) -> (
    SocketAddr,
    ShutdownHandle,
    JoinHandle<Result<(), kokuban_server::ServerError>>,
) {
    let server = Server::bind(config).await.expect("server binds");
    let addr = server.local_addr();
    let handle = server.shutdown_handle();
    let task = tokio::spawn(server.serve());
    (addr, handle, task)
}

/// A plain HTTP answer, its body as text.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection, through the test kit's client.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let r = kokuban_testkit::http::request(addr, method, path, headers).await;
    HttpResponse {
        status: r.status,
        body: r.text(),
        headers: r.headers,
    }
}

/// What came off the socket.
#[derive(Debug)]
pub enum Event {
    Msg(ServerMsg),
    /// A close frame (its code), or the connection ended without one (`None`).
    Closed(Option<u16>),
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A protocol client that also keeps its own copy of the board, applying everything it
/// receives exactly as the browser app does.
pub struct TestClient {
    pub ws: Ws,
    pub welcome: Option<Welcome>,
    pub board: Board,
    /// Every sequenced op this client applied (its own, through Acks, and others'), in order.
    pub seen: Vec<Sequenced>,
    /// Ops sent and not yet acknowledged, oldest first.
    pending: std::collections::VecDeque<Op>,
    /// Everything else received, in order (presence, cursors, errors).
    pub other: Vec<ServerMsg>,
    name: String,
    /// This client's key: its author id across connections.
    pub key: ClientKey,
    /// `BoardPart`s received for the next Welcome.
    parts: Vec<u8>,
    /// The number of its next op.
    pub next_n: u64,
    /// What this connection carried, for point batches by handle (sent as the app sends them).
    handles: Handles,
}

impl TestClient {
    /// Connects without saying Hello.
    pub async fn connect(server: &TestServer, room: &str) -> TestClient {
        Self::connect_to(&server.ws_url(room), None)
            .await
            .expect("WebSocket handshake")
    }

    /// Connects with an optional Origin header.
    pub async fn connect_to(
        url: &str,
        origin: Option<&str>,
    ) -> Result<TestClient, tungstenite::Error> {
        let mut request = url.into_client_request()?;
        if let Some(o) = origin {
            request.headers_mut().insert("Origin", o.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async_with_config(request, None, true).await?;
        Ok(Self::wrap(ws))
    }

    /// Connects with a small receive buffer, for a client that is meant to stop reading.
    pub async fn connect_small_buffer(server: &TestServer, room: &str) -> TestClient {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(server.addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (ws, _) =
            tokio_tungstenite::client_async(server.ws_url(room), MaybeTlsStream::Plain(stream))
                .await
                .expect("WebSocket handshake");
        Self::wrap(ws)
    }

    fn wrap(ws: Ws) -> TestClient {
        TestClient {
            ws,
            welcome: None,
            board: Board::new(),
            seen: Vec::new(),
            pending: Default::default(),
            other: Vec::new(),
            name: String::new(),
            key: ClientKey(rand::random()),
            parts: Vec::new(),
            next_n: 1,
            handles: Handles::new(),
        }
    }

    /// Connects, says Hello and waits for the Welcome.
    pub async fn join(
        server: &TestServer,
        room: &TestRoom,
        token: &Token,
        name: &str,
        resume: Option<Position>,
    ) -> TestClient {
        let mut c = Self::connect(server, room.id.as_str()).await;
        c.name = name.to_owned();
        c.hello(&room.id, token, resume).await;
        c.expect_welcome().await;
        c
    }

    /// Reconnects with the board kept from an earlier connection, resuming from its position.
    pub async fn rejoin(
        server: &TestServer,
        room: &TestRoom,
        token: &Token,
        name: &str,
        board: Board,
    ) -> TestClient {
        let mut c = Self::connect(server, room.id.as_str()).await;
        c.name = name.to_owned();
        let resume = board.position();
        c.board = board;
        c.hello(&room.id, token, resume).await;
        c.expect_welcome().await;
        c
    }

    /// Sends Hello.
    pub async fn hello(&mut self, room: &RoomId, token: &Token, resume: Option<Position>) {
        let name = if self.name.is_empty() {
            "tester".to_owned()
        } else {
            self.name.clone()
        };
        self.send(&ClientMsg::Hello(Hello {
            room: room.clone(),
            token: token.clone(),
            resume,
            name: Name::new(name).unwrap(),
            color: Color::rgb(200, 40, 40),
            client: self.key,
        }))
        .await;
    }

    /// Waits for the Welcome and applies its state.
    pub async fn expect_welcome(&mut self) -> Welcome {
        match self.recv().await {
            ServerMsg::Welcome(w) => {
                self.apply_welcome(&w);
                self.welcome = Some(w.clone());
                w
            }
            other => panic!("{}: expected Welcome, got {other:?}", self.name),
        }
    }

    fn apply_welcome(&mut self, w: &Welcome) {
        match &w.state {
            RoomState::Snapshot { board, ops } => {
                self.board = Board::from_snapshot(&board.0).expect("welcome snapshot decodes");
                for op in ops.iter() {
                    self.apply(op.clone());
                }
            }
            RoomState::Replay { ops } => {
                for op in ops.iter() {
                    self.apply(op.clone());
                }
            }
            RoomState::InParts { .. } => unreachable!("made whole on receipt"),
        }
    }

    fn apply(&mut self, op: Sequenced) {
        self.board
            .apply_sequenced(&op)
            .expect("ops arrive in order");
        self.seen.push(op);
    }

    /// This connection's member id (presence, cursors).
    pub fn member(&self) -> MemberId {
        self.welcome.as_ref().expect("joined").member
    }

    /// The author of this client's ops.
    pub fn author(&self) -> MemberId {
        self.welcome.as_ref().expect("joined").author
    }

    pub fn epoch(&self) -> Epoch {
        self.welcome.as_ref().expect("joined").epoch
    }

    /// Where this client is in the room's history.
    pub fn position(&self) -> Position {
        self.board.position().expect("joined")
    }

    /// Sends a message as the app does: a batch of points by handle where it can be.
    pub async fn send(&mut self, msg: &ClientMsg) {
        let frame = self.handles.encode(msg);
        self.send_frame(frame).await;
    }

    /// Sends bytes as they are. The server reads every frame, so what it decodes of these
    /// counts toward handles as it does there.
    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        let _ = self.handles.decode(&bytes);
        self.send_frame(bytes).await;
    }

    async fn send_frame(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    /// Sends a durable op under the next number; its Ack will be applied as the op.
    pub async fn send_op(&mut self, op: Op) {
        let n = self.next_n;
        self.next_n += 1;
        self.send_op_numbered(n, op).await;
    }

    /// Sends a durable op under number `n` (a retry, when `n` was sent before).
    pub async fn send_op_numbered(&mut self, n: u64, op: Op) {
        self.pending.push_back(op.clone());
        self.send(&ClientMsg::Op(Submit { n, op })).await;
    }

    pub async fn send_cursor(&mut self, x: i32, y: i32) {
        self.send(&ClientMsg::Cursor(Some(Cursor::new(x, y).unwrap())))
            .await;
    }

    /// The next event, applying ops and acks to the board.
    pub async fn next_event(&mut self) -> Event {
        // One deadline for the whole wait: pings must not keep a stuck test alive.
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{}: nothing received in time", self.name));
            match msg {
                Some(Ok(Message::Binary(b))) => {
                    let msg = decode_server(&b).expect("server frames decode");
                    let Some(msg) = whole(msg, &mut self.parts) else {
                        continue;
                    };
                    let msg =
                        in_full(&self.board, msg).unwrap_or_else(|e| panic!("{}: {e}", self.name));
                    match &msg {
                        ServerMsg::Op(op) => self.apply(op.clone()),
                        ServerMsg::Ack(ack) => {
                            let op = self.pending.pop_front().expect("an Ack for a pending op");
                            let author = self.author();
                            // An Ack of a retry names a place this client may have applied
                            // already (the op came back as its own when first sequenced).
                            if ack.seq > self.board.position().map_or(Seq(0), |p| p.seq) {
                                self.apply(Sequenced {
                                    epoch: ack.epoch,
                                    seq: ack.seq,
                                    author,
                                    op,
                                });
                            }
                        }
                        // A refusal answers the oldest unanswered op, like an Ack: that op
                        // was not sequenced, so a later Ack belongs to the one after it.
                        ServerMsg::Error(e)
                            if matches!(
                                e.code,
                                ErrorCode::ViewOnly
                                    | ErrorCode::TemporarilyReadOnly
                                    | ErrorCode::InvalidOp
                                    | ErrorCode::Decided
                            ) =>
                        {
                            self.pending.pop_front();
                            self.other.push(msg.clone());
                        }
                        ServerMsg::Welcome(_) => {}
                        _ => self.other.push(msg.clone()),
                    }
                    return Event::Msg(msg);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Event::Closed(frame.map(|f: CloseFrame| u16::from(f.code)));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Event::Closed(None),
            }
        }
    }

    /// The next message; panics if the connection closes.
    pub async fn recv(&mut self) -> ServerMsg {
        match self.next_event().await {
            Event::Msg(m) => m,
            Event::Closed(code) => panic!("{}: connection closed ({code:?})", self.name),
        }
    }

    /// Reads until `pred` accepts a message, returning it.
    pub async fn recv_until(&mut self, mut pred: impl FnMut(&ServerMsg) -> bool) -> ServerMsg {
        loop {
            let m = self.recv().await;
            if pred(&m) {
                return m;
            }
        }
    }

    /// Returns once a message accepted by `pred` was received, now or earlier (presence,
    /// cursors and errors are kept as they pass by while waiting for ops).
    pub async fn until_seen(&mut self, pred: impl Fn(&ServerMsg) -> bool) {
        if !self.other.iter().any(&pred) {
            self.recv_until(pred).await;
        }
    }

    /// Reads until this client has applied the op at `seq`.
    pub async fn sync_to(&mut self, seq: Seq) {
        while self.board.position().is_none_or(|p| p.seq < seq) {
            self.recv().await;
        }
    }

    /// Ops sent and not yet answered (by an Ack or a refusal).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Reads until every op this client sent is acknowledged.
    pub async fn settle(&mut self) {
        while !self.pending.is_empty() {
            self.recv().await;
        }
    }

    /// Reads until an error frame with `code` arrives.
    pub async fn expect_error(&mut self, code: ErrorCode) -> String {
        match self.recv_until(|m| matches!(m, ServerMsg::Error(_))).await {
            ServerMsg::Error(e) if e.code == code => e.message,
            other => panic!("{}: expected error {code:?}, got {other:?}", self.name),
        }
    }

    /// Reads (discarding messages) until the server closes; returns the close code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            if let Event::Closed(code) = self.next_event().await {
                return code;
            }
        }
    }

    /// Draws a whole stroke of `points` points in batches of `batch`, waiting for nothing.
    pub async fn draw_stroke(&mut self, seed: u32, points: usize, batch: usize) -> StrokeId {
        let (id, ops) = stroke_ops(seed, points, batch);
        for op in ops {
            self.send_op(op).await;
        }
        id
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// The ops of one stroke: begin, point batches, end.
pub fn stroke_ops(seed: u32, points: usize, batch: usize) -> (StrokeId, Vec<Op>) {
    let id = StrokeId(uuid::Uuid::new_v4());
    let point = |i: usize| {
        let i = i as i32;
        Point::new(
            seed as i32 * 100 + i * 3,
            (i * i) % 500 - 250,
            (i % 256) as u8,
        )
        .unwrap()
    };
    let mut ops = vec![Op::StrokeBegin {
        id,
        tool: Tool::Pen,
        color: Color::rgb(10, 20, 30),
        width: Width::new(16).unwrap(),
        first: point(0),
    }];
    let mut start = 1;
    while start < points {
        let end = (start + batch).min(points);
        let batch_points = Points::new((start..end).map(point).collect()).unwrap();
        ops.push(Op::StrokePoints(
            StrokePoints::new(id, start as u32, batch_points).unwrap(),
        ));
        start = end;
    }
    ops.push(Op::StrokeEnd { id });
    (id, ops)
}

/// Size of the room's frames in a Welcome, as sent.
pub fn encoded_len(msg: &ServerMsg) -> usize {
    kokuban_protocol::encode_server(msg).len()
}
