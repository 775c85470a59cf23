//! The browser test harness: servers on loopback ports (a single node, or a two-node cluster on
//! a `redis-server` of the test's own), a cuttable TCP proxy, ChromeDriver and a minimal
//! WebDriver client (JSON over the test kit's HTTP client: the handful of commands these tests
//! need do not justify a WebDriver crate and its dependency tree). Redis, the proxy and the HTTP
//! client are the workspace's test kit, shared with the server tests.
#![allow(dead_code)]

/// The workspace's `redis-server` launcher (the test kit), shared with the server tests so
/// that both suites start Redis the same way.
pub mod redis_server {
    pub use kokuban_testkit::free_port;
    pub use kokuban_testkit::redis::RedisServer;
}

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use kokuban_server::config::ClusterConfig;
use kokuban_server::{Config, Server, ShutdownHandle};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};

use kokuban_testkit::cluster::RedisCluster;
use kokuban_testkit::http::Request;
use kokuban_testkit::proxy::FaultProxy;

use self::redis_server::{RedisServer, free_port};

/// Waits are on conditions, never on fixed sleeps; this bounds each of them.
pub const TIMEOUT: Duration = Duration::from_secs(20);
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Browser tests share two cores with everything else: one at a time.
static BROWSERS: Mutex<()> = Mutex::const_new(());

/// Takes the browser lock; `None` (with a note) when the browser, the built app or (for the
/// cluster) `redis-server` is missing outside CI. In CI (`CI` set) a missing prerequisite fails
/// the test instead.
pub async fn prerequisites() -> Option<MutexGuard<'static, ()>> {
    let missing: Vec<String> = [
        (Path::new(CHROMIUM).exists(), CHROMIUM.to_string()),
        (Path::new(CHROMEDRIVER).exists(), CHROMEDRIVER.to_string()),
        (RedisServer::available(), "redis-server".to_string()),
        (
            dist().join("index.html").exists(),
            "dist/index.html (run `trunk build --release --offline`)".to_string(),
        ),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, what)| what)
    .collect();
    if !missing.is_empty() {
        if std::env::var_os("CI").is_some() {
            panic!("browser tests need {}", missing.join(", "));
        }
        eprintln!("skipping browser test: missing {}", missing.join(", "));
        return None;
    }
    Some(BROWSERS.lock().await)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dist() -> PathBuf {
    workspace().join("dist")
}

/// Where screenshots go.
pub fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
        .join("e2e-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// A `kokuban` node on a loopback port with its own data directory. Dropping it shuts it down.
pub struct Node {
    pub addr: SocketAddr,
    handle: ShutdownHandle,
    task: tokio::task::JoinHandle<()>,
    config: Config,
    _dir: tempfile::TempDir,
}

impl Node {
    /// A single node with its embedded store.
    pub async fn start() -> Node {
        Node::start_with("e2e", None).await
    }

    /// A single node whose rooms fold their log into a snapshot once it weighs `bytes`.
    pub async fn start_compacting_after(bytes: usize) -> Node {
        Node::start_configured("e2e", None, |c| c.compact_after_bytes = bytes).await
    }

    /// A node named `name`; in cluster mode with `cluster`.
    async fn start_with(name: &str, cluster: Option<ClusterConfig>) -> Node {
        Node::start_configured(name, cluster, |_| {}).await
    }

    /// A node named `name`, in cluster mode with `cluster`, its configuration changed by
    /// `configure`.
    async fn start_configured(
        name: &str,
        cluster: Option<ClusterConfig>,
        configure: impl FnOnce(&mut Config),
    ) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::new(dir.path());
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.node_id = name.into();
        config.cluster = cluster;
        // An operator's stop is what the tests try; the load balancer's grace is not.
        config.shutdown_drain = Duration::from_millis(100);
        configure(&mut config);
        let (addr, handle, task) = Node::serve(config.clone()).await;
        config.listen = addr;
        Node {
            addr,
            handle,
            task,
            config,
            _dir: dir,
        }
    }

    async fn serve(config: Config) -> (SocketAddr, ShutdownHandle, tokio::task::JoinHandle<()>) {
        let server = Server::bind(config).await.expect("server binds");
        let addr = server.local_addr();
        let handle = server.shutdown_handle();
        let task = tokio::spawn(async move {
            let _ = server.serve().await;
        });
        (addr, handle, task)
    }

    /// Stops the node (its connections close, as when an operator stops it) and keeps it
    /// down until [`Node::start_again`].
    pub async fn stop(&mut self) {
        self.handle.shutdown();
        let deadline = Instant::now() + TIMEOUT;
        while !self.task.is_finished() {
            assert!(Instant::now() < deadline, "node {} did not stop", self.addr);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the node again on the same address and data, after [`Node::stop`].
    pub async fn start_again(&mut self) {
        let (addr, handle, task) = Node::serve(self.config.clone()).await;
        assert_eq!(addr, self.addr);
        self.handle = handle;
        self.task = task;
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates a room; returns `(edit path, view path)` as the API gives them.
    pub async fn create_room(&self) -> (String, String) {
        let (status, body) = http(self.addr, "POST", "/api/rooms", None)
            .await
            .expect("POST /api/rooms");
        assert_eq!(status, 201, "{body}");
        (
            body["edit_url"].as_str().expect("edit_url").to_string(),
            body["view_url"].as_str().expect("view_url").to_string(),
        )
    }

    /// A gauge or counter of this node's `GET /metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let (status, text) = http_text(self.addr, "GET", "/metrics", None)
            .await
            .expect("GET /metrics");
        assert_eq!(status, 200, "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the metrics of {}", self.addr))
    }

    /// Waits until `kokuban_members` (the room members connected to this node itself) is `n`.
    pub async fn wait_members(&self, n: u64) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let got = self.metric("kokuban_members").await;
            if got == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} holds {got} members, expected {n}",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Two nodes in cluster mode sharing one `redis-server` of the test's own, as in a
/// deployment behind a load balancer: a room created on either node is served by both (the
/// nodes derive their link tokens from the same secret), and what a member on one node draws
/// reaches the members on the other through Redis. Dropping it stops the nodes, then Redis.
pub struct Cluster {
    pub a: Node,
    pub b: Node,
    pub redis: Redis,
}

/// The Redis a test cluster's nodes share.
pub enum Redis {
    One(RedisServer),
    /// Three masters and a replica of each.
    Cluster(RedisCluster),
}

impl Cluster {
    /// Starts Redis (no persistence: nothing outlives the test) and nodes `e2e-a` and `e2e-b`.
    pub async fn start() -> Cluster {
        let redis = RedisServer::start(false).await;
        let config = ClusterConfig::new(redis.url());
        Cluster::with(config, Redis::One(redis)).await
    }

    /// Starts a Redis Cluster of six processes and nodes `e2e-a` and `e2e-b` on it.
    pub async fn on_redis_cluster() -> Cluster {
        let redis = RedisCluster::start().await;
        let config = ClusterConfig::sharded(redis.seed_urls());
        Cluster::with(config, Redis::Cluster(redis)).await
    }

    async fn with(mut config: ClusterConfig, redis: Redis) -> Cluster {
        config.secret = Some(format!("e2e-{}", uuid::Uuid::new_v4()));
        let a = Node::start_with("e2e-a", Some(config.clone())).await;
        let b = Node::start_with("e2e-b", Some(config)).await;
        Cluster { a, b, redis }
    }

    /// The one Redis of a cluster [`start`](Self::start)ed.
    pub fn one_redis(&self) -> &RedisServer {
        match &self.redis {
            Redis::One(r) => r,
            Redis::Cluster(_) => panic!("this cluster runs on a Redis Cluster"),
        }
    }

    /// The Redis Cluster of a cluster started [`on_redis_cluster`](Self::on_redis_cluster).
    pub fn redis_cluster(&mut self) -> &mut RedisCluster {
        match &mut self.redis {
            Redis::Cluster(r) => r,
            Redis::One(_) => panic!("this cluster runs on one Redis"),
        }
    }

    /// Opens a tab of `width`×`height` on `a_url` (node A) and one on `b_url` (node B, or a
    /// proxy in front of it), and waits until both are connected and each node holds exactly
    /// one member: from then on nothing reaches one tab from the other except through Redis.
    pub async fn two_tabs(
        &self,
        driver: &Driver,
        (width, height): (u32, u32),
        a_url: &str,
        b_url: &str,
    ) -> (Browser, Browser) {
        let a = driver.browser(width, height).await;
        let b = driver.browser(width, height).await;
        a.goto(a_url).await;
        b.goto(b_url).await;
        a.wait_status("connected").await;
        b.wait_status("connected").await;
        self.a.wait_members(1).await;
        self.b.wait_members(1).await;
        (a, b)
    }

    /// A tab of `size` editing a new room through node A, and a view-only tab of it through
    /// node B.
    pub async fn editor_on_a_viewer_on_b(
        &self,
        driver: &Driver,
        size: (u32, u32),
    ) -> (Browser, Browser) {
        let (edit, view) = self.a.create_room().await;
        let a_url = format!("{}{edit}", self.a.url());
        let b_url = format!("{}{view}", self.b.url());
        self.two_tabs(driver, size, &a_url, &b_url).await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// A TCP proxy in front of a node that the test can unplug (cutting every connection and
/// refusing new ones) and plug back in: a network failure on one tab's path only. It is the
/// test kit's fault proxy, whose other faults (latency, a frozen link) are at hand through
/// [`Proxy::faults`].
pub struct Proxy {
    pub addr: SocketAddr,
    inner: FaultProxy,
}

impl Proxy {
    /// A proxy to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let inner = FaultProxy::start(upstream).await;
        Proxy {
            addr: inner.addr,
            inner,
        }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        self.inner.http_url()
    }

    /// Cuts every connection and refuses new ones.
    pub fn unplug(&self) {
        self.inner.cut();
    }

    /// Lets connections through again.
    pub fn plug(&self) {
        self.inner.heal();
    }

    /// The underlying fault proxy, for faults other than a cut.
    pub fn faults(&self) -> &FaultProxy {
        &self.inner
    }
}

/// One HTTP/1.1 request with a JSON body; returns the status and the JSON answer. Bounded in
/// time, so that a wedged browser fails the test instead of hanging it.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let (status, payload) = http_text(addr, method, path, body).await?;
    let value = if payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&payload).map_err(|e| format!("bad JSON from {path}: {e}"))?
    };
    Ok((status, value))
}

/// [`http`], with the answer as text.
async fn http_text(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, String), String> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    // Starting a browser session can take most of a minute on a busy CI core.
    let r = Request::new(method, addr, path)
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8(r.body.to_vec()).map_err(|e| format!("{path}: not UTF-8: {e}"))?;
    Ok((r.status, text))
}

/// A running ChromeDriver (killed on drop; its browsers are closed by [`Browser`]'s drop).
pub struct Driver {
    addr: SocketAddr,
    _child: Child,
}

impl Driver {
    /// Starts ChromeDriver on a free port and waits until it answers.
    pub async fn start() -> Driver {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok((200, v)) = http(addr, "GET", "/status", None).await
                && v["value"]["ready"] == json!(true)
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver {
            addr,
            _child: child,
        }
    }

    /// A new headless Chromium window of `width × height`.
    pub async fn browser(&self, width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--force-device-scale-factor=1",
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ]);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let (_, v) = http(self.addr, "POST", "/session", Some(&caps))
            .await
            .expect("new session");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Browser {
            driver: self.addr,
            session,
            _profile: profile,
        }
    }
}

/// One browser window, driven over WebDriver.
pub struct Browser {
    driver: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, v) = http(self.driver, method, &path, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        assert_eq!(status, 200, "WebDriver {path}: {v}");
        v["value"].clone()
    }

    /// Opens a URL.
    pub async fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs a script (with `arguments`) and returns its value.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Polls `script` until it returns true.
    pub async fn wait_for(&self, what: &str, script: &str, args: Value) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if self.js(script, args.clone()).await == json!(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The `data-status` of the connection status element.
    pub async fn status(&self) -> String {
        self.js(
            "const s = document.getElementById('status'); return s ? s.dataset.status : null;",
            json!([]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Waits until the connection status is `status`.
    pub async fn wait_status(&self, status: &str) {
        let now = self.status().await;
        let page = self
            .js(
                "return document.body ? document.body.innerText.slice(0, 300) : '';",
                json!([]),
            )
            .await;
        self.wait_for(
            &format!("status {status} (was {now:?}, page {page})"),
            "const s = document.getElementById('status'); return !!s && s.dataset.status === arguments[0];",
            json!([status]),
        )
        .await;
    }

    /// Draws two waves, one above the other, and waits until `other` shows both: their areas
    /// (CSS pixels) and the ink `other` shows in each.
    pub async fn draw_two_strokes_seen_by(
        &self,
        other: &Browser,
    ) -> ([(u32, u32, u32, u32); 2], [u64; 2]) {
        let areas = [(250, 250, 750, 350), (250, 450, 750, 550)];
        self.draw(&wave(300, 700, 300)).await;
        self.draw(&wave(300, 700, 500)).await;
        other.wait_ink("the first stroke", areas[0], 50).await;
        other.wait_ink("the second stroke", areas[1], 50).await;
        let mut drawn = [0; 2];
        for (ink, a) in drawn.iter_mut().zip(areas) {
            *ink = other.ink(a.0, a.1, a.2, a.3).await;
        }
        (areas, drawn)
    }

    /// Opens the menu and chooses its item labelled `label`.
    pub async fn choose_from_menu(&self, label: &str) {
        self.press("[aria-label='Menu: export, theme, shortcuts']")
            .await;
        let item = format!("[aria-label='{label}']");
        self.wait_for(
            &format!("the menu open, offering {label}"),
            "return !!document.querySelector(arguments[0]);",
            json!([item]),
        )
        .await;
        self.press(&item).await;
    }

    /// Pixels of `#board` within the CSS rectangle that are clearly not background.
    pub async fn ink(&self, x0: u32, y0: u32, x1: u32, y1: u32) -> u64 {
        self.js(INK_SCRIPT, json!([x0, y0, x1, y1]))
            .await
            .as_u64()
            .unwrap_or(0)
    }

    /// Waits until the rectangle holds at least `min` ink pixels (or, with `min == 0`, none).
    pub async fn wait_ink(&self, what: &str, rect: (u32, u32, u32, u32), min: u64) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let n = self.ink(rect.0, rect.1, rect.2, rect.3).await;
            if (min == 0 && n == 0) || (min > 0 && n >= min) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {n} ink pixels"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the rectangle holds at most `max` ink pixels.
    pub async fn wait_ink_below(&self, what: &str, rect: (u32, u32, u32, u32), max: u64) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let n = self.ink(rect.0, rect.1, rect.2, rect.3).await;
            if n <= max {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {n} ink pixels, at most {max} expected"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Performs a sequence of WebDriver mouse actions, then releases whatever they hold.
    async fn mouse(&self, actions: Vec<Value>) {
        self.perform(json!({
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": actions
        }))
        .await;
    }

    /// Performs a sequence of WebDriver key actions, then releases whatever they hold.
    async fn keyboard(&self, actions: Vec<Value>) {
        self.perform(json!({"type": "key", "id": "keyboard", "actions": actions}))
            .await;
    }

    async fn perform(&self, source: Value) {
        self.command("POST", "/actions", Some(json!({ "actions": [source] })))
            .await;
        self.command("DELETE", "/actions", None).await;
    }

    /// Drags the mouse through `points` (CSS pixels of the viewport).
    pub async fn draw(&self, points: &[(i64, i64)]) {
        self.draw_paced(points, 16).await;
    }

    /// [`Browser::draw`], taking `step_ms` from each point to the next.
    pub async fn draw_paced(&self, points: &[(i64, i64)], step_ms: u64) {
        let mut actions = vec![
            json!({"type": "pointerMove", "duration": 0, "x": points[0].0, "y": points[0].1}),
            json!({"type": "pointerDown", "button": 0}),
        ];
        for &(x, y) in &points[1..] {
            actions.push(json!({"type": "pointerMove", "duration": step_ms, "x": x, "y": y}));
        }
        actions.push(json!({"type": "pointerUp", "button": 0}));
        self.mouse(actions).await;
    }

    /// Clicks the mouse at a point of the viewport, `times` times in quick succession (2: a
    /// double click).
    pub async fn click(&self, x: i64, y: i64, times: usize) {
        let mut actions = vec![json!({"type": "pointerMove", "duration": 0, "x": x, "y": y})];
        for _ in 0..times {
            actions.push(json!({"type": "pointerDown", "button": 0}));
            actions.push(json!({"type": "pointerUp", "button": 0}));
        }
        self.mouse(actions).await;
    }

    /// Types `text` into whatever has the keyboard focus (WebDriver key codes such as
    /// `\u{E007}`, Enter, work too).
    pub async fn type_keys(&self, text: &str) {
        let actions: Vec<Value> = text
            .chars()
            .flat_map(|c| {
                let key = c.to_string();
                [
                    json!({"type": "keyDown", "value": key}),
                    json!({"type": "keyUp", "value": key}),
                ]
            })
            .collect();
        self.keyboard(actions).await;
    }

    /// Clicks the first element matching a CSS selector (a toolbar button, say).
    pub async fn press(&self, css: &str) {
        let found = self
            .js(
                "const e = document.querySelector(arguments[0]); if (e) { e.click(); } return !!e;",
                json!([css]),
            )
            .await;
        assert_eq!(found, json!(true), "no element matches {css}");
    }

    /// Presses a key with Control held (e.g. `z` for undo).
    pub async fn ctrl(&self, key: &str) {
        const CONTROL: &str = "\u{E009}";
        self.keyboard(vec![
            json!({"type": "keyDown", "value": CONTROL}),
            json!({"type": "keyDown", "value": key}),
            json!({"type": "keyUp", "value": key}),
            json!({"type": "keyUp", "value": CONTROL}),
        ])
        .await;
    }

    /// How many elements match a CSS selector.
    pub async fn count(&self, css: &str) -> u64 {
        self.js(
            "return document.querySelectorAll(arguments[0]).length;",
            json!([css]),
        )
        .await
        .as_u64()
        .unwrap_or(0)
    }

    /// Saves a screenshot as `<test>-<name>.png` in the screenshot directory.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.command("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot written");
        path
    }

    /// Closes the window.
    pub async fn quit(self) {
        // Dropping closes it.
    }
}

impl Drop for Browser {
    /// Ends the WebDriver session, which closes Chromium, even when the test failed midway.
    /// Blocking on purpose: drop cannot await, and this is one short request to loopback.
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = Request::new("DELETE", self.driver, &path)
            .timeout(Duration::from_secs(10))
            .send_blocking();
    }
}

/// Counts non-background pixels of `#board` in a CSS rectangle. The background is read from
/// the canvas's top-left device pixel, which the app's toolbars never draw on the canvas.
const INK_SCRIPT: &str = r#"
const [x0, y0, x1, y1] = arguments;
const c = document.getElementById('board');
if (!c || c.width === 0) return 0;
const r = window.devicePixelRatio || 1;
const ctx = c.getContext('2d');
const bg = ctx.getImageData(0, 0, 1, 1).data;
const w = Math.max(1, Math.round((x1 - x0) * r)), h = Math.max(1, Math.round((y1 - y0) * r));
const d = ctx.getImageData(Math.round(x0 * r), Math.round(y0 * r), w, h).data;
let n = 0;
for (let i = 0; i < d.length; i += 4) {
  if (Math.abs(d[i] - bg[0]) + Math.abs(d[i + 1] - bg[1]) + Math.abs(d[i + 2] - bg[2]) > 90) n++;
}
return n;
"#;

/// A wavy stroke across the rectangle `(x0, y0)..(x1, y1)`'s middle.
pub fn wave(x0: i64, x1: i64, y: i64) -> Vec<(i64, i64)> {
    (0..=30)
        .map(|i| {
            let x = x0 + (x1 - x0) * i / 30;
            let dy = ((i as f64) / 3.0).sin() * 20.0;
            (x, y + dy as i64)
        })
        .collect()
}

// ---- The UI tests' helpers (`tests/ui.rs`): key chords, the wheel, clicks on elements ----

/// WebDriver's key values for modifiers and keys without a character.
pub mod keys {
    /// Shift.
    pub const SHIFT: &str = "\u{E008}";
    /// Control.
    pub const CONTROL: &str = "\u{E009}";
    /// Escape.
    pub const ESCAPE: &str = "\u{E00C}";
    /// Arrow right.
    pub const RIGHT: &str = "\u{E014}";
    /// Arrow down.
    pub const DOWN: &str = "\u{E015}";
}

impl Browser {
    /// Presses `key` with `modifiers` held (WebDriver key values, e.g. [`keys::SHIFT`]).
    pub async fn chord(&self, modifiers: &[&str], key: &str) {
        let mut actions: Vec<Value> = modifiers
            .iter()
            .map(|m| json!({"type": "keyDown", "value": m}))
            .collect();
        actions.push(json!({"type": "keyDown", "value": key}));
        actions.push(json!({"type": "keyUp", "value": key}));
        actions.extend(
            modifiers
                .iter()
                .rev()
                .map(|m| json!({"type": "keyUp", "value": m})),
        );
        self.keyboard(actions).await;
    }

    /// Turns the mouse wheel over `(x, y)` by `(dx, dy)` pixels, with Control held if `ctrl`
    /// (as a trackpad pinch arrives).
    pub async fn wheel(&self, (x, y): (i64, i64), (dx, dy): (i64, i64), ctrl: bool) {
        let scroll = json!({
            "type": "wheel", "id": "wheel",
            "actions": [
                {"type": "pause", "duration": 0},
                {"type": "scroll", "x": x, "y": y, "deltaX": dx, "deltaY": dy, "duration": 0},
                {"type": "pause", "duration": 0},
            ]
        });
        let mut sources = vec![scroll];
        if ctrl {
            sources.push(json!({
                "type": "key", "id": "keyboard",
                "actions": [
                    {"type": "keyDown", "value": keys::CONTROL},
                    {"type": "pause", "duration": 0},
                    {"type": "keyUp", "value": keys::CONTROL},
                ]
            }));
        }
        self.command("POST", "/actions", Some(json!({ "actions": sources })))
            .await;
        self.command("DELETE", "/actions", None).await;
    }

    /// Moves the mouse to `(x, y)` without pressing anything.
    pub async fn hover(&self, x: i64, y: i64) {
        self.mouse(vec![
            json!({"type": "pointerMove", "duration": 0, "x": x, "y": y}),
        ])
        .await;
    }

    /// The centre of the first element matching a CSS selector, in CSS pixels of the viewport.
    pub async fn center(&self, css: &str) -> (i64, i64) {
        let v = self
            .js(
                "const e = document.querySelector(arguments[0]); if (!e) return null; \
                 const r = e.getBoundingClientRect(); \
                 return [Math.round(r.left + r.width / 2), Math.round(r.top + r.height / 2)];",
                json!([css]),
            )
            .await;
        let xy = v
            .as_array()
            .unwrap_or_else(|| panic!("no element matches {css}"));
        (xy[0].as_i64().unwrap(), xy[1].as_i64().unwrap())
    }

    /// Clicks the first element matching a CSS selector with the mouse, as a person would
    /// (pointer down and up at its centre, so the page sees every event of a real click).
    pub async fn click_on(&self, css: &str) {
        let (x, y) = self.center(css).await;
        self.click(x, y, 1).await;
    }

    /// Makes the page a phone's of `width × height` CSS pixels (a mobile viewport; the
    /// window itself cannot be narrower than 500 px in headless Chromium).
    pub async fn emulate_phone(&self, width: u32, height: u32) {
        self.command(
            "POST",
            "/goog/cdp/execute",
            Some(json!({
                "cmd": "Emulation.setDeviceMetricsOverride",
                "params": {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": true},
            })),
        )
        .await;
    }

    /// Opens a new tab in this browser (which shares its clipboard) and switches to it.
    pub async fn new_tab(&self) {
        let v = self
            .command("POST", "/window/new", Some(json!({"type": "tab"})))
            .await;
        let handle = v["handle"].as_str().expect("a window handle").to_string();
        self.command("POST", "/window", Some(json!({ "handle": handle })))
            .await;
    }

    /// The handle of the current tab.
    pub async fn current_tab(&self) -> Value {
        self.command("GET", "/window", None).await
    }

    /// Makes the tab of `handle` the current one.
    pub async fn switch_to(&self, handle: &Value) {
        self.command("POST", "/window", Some(json!({ "handle": handle })))
            .await;
    }

    /// Closes the current tab as a user would, leaving the page through its `beforeunload`
    /// question (answered "leave") and `pagehide`, then switches to another tab of this
    /// browser (which must have one: see [`Browser::new_tab`]).
    pub async fn close_tab(&self) {
        let current = self.command("GET", "/window", None).await;
        // Leaving by navigation runs the page's unload handlers as closing does, and lets
        // the test answer the question the page may ask.
        let leave = self.command_raw(
            "POST",
            "/execute/sync",
            Some(json!({"script": "setTimeout(() => { window.location.href = 'about:blank'; }, 0); return true;", "args": []})),
        );
        leave.await;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            // Either the page asks (accept it), or it has gone.
            let (status, _) = self.command_raw("POST", "/alert/accept", None).await;
            let url = self.command_raw("GET", "/url", None).await;
            if status == 200 || url.1["value"] == json!("about:blank") {
                break;
            }
            assert!(Instant::now() < deadline, "the tab did not leave its page");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.command("DELETE", "/window", None).await;
        let handles = self.command("GET", "/window/handles", None).await;
        let other = handles
            .as_array()
            .and_then(|h| h.iter().find(|h| **h != current))
            .expect("another tab to switch to")
            .clone();
        self.command("POST", "/window", Some(json!({ "handle": other })))
            .await;
    }

    /// One WebDriver command whose failure is an answer, not a test failure.
    async fn command_raw(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let path = format!("/session/{}{path}", self.session);
        http(self.driver, method, &path, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
    }

    /// Gives the file at `path` to the first `<input type="file">` matching a CSS selector, as
    /// a person picking it in the browser's file chooser would (its `change` event fires).
    pub async fn pick_file(&self, css: &str, path: &std::path::Path) {
        let found = self
            .command(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element matches {css}: {found}"))
            .to_owned();
        let text = path.to_str().expect("a path in UTF-8");
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The text of the first element matching a CSS selector (empty if there is none).
    pub async fn text(&self, css: &str) -> String {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
            json!([css]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }
}

/// A protocol connection to the room of `edit` (a path with its edit token) on `node`, as a
/// member named `Member i`: its Hello is sent, nothing is read yet.
pub async fn member_of(
    node: &Node,
    edit: &str,
    i: usize,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use futures_util::SinkExt;
    use kokuban_protocol::{ClientKey, ClientMsg, Color, Hello, Name, RoomId, Token};
    let (path, token) = edit.split_once("#edit=").expect("an edit link");
    let room = RoomId::new(path.trim_start_matches("/r/")).unwrap();
    let url = format!("ws://{}/ws/{room}", node.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects");
    let hello = ClientMsg::Hello(Hello {
        room,
        token: Token::new(token).unwrap(),
        resume: None,
        name: Name::new(format!("Member {i}")).unwrap(),
        color: Color::rgb(40, (i * 7 % 200) as u8, 160),
        client: ClientKey(*uuid::Uuid::new_v4().as_bytes()),
    });
    let hello = kokuban_protocol::encode_client(&hello);
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        hello.into(),
    ))
    .await
    .expect("the Hello is sent");
    ws
}
