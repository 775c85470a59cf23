//! The tests' HTTP/1.1 client: hyper's, over one fresh connection per request, bounded in time.
//!
//! Tests that must put malformed or partial bytes on the wire (slowloris, oversized heads)
//! write them on a plain socket instead: a client that speaks correct HTTP cannot.
//!
//! ```no_run
//! # async fn f(addr: std::net::SocketAddr) {
//! use kokuban_testkit::http::Request;
//! let r = Request::post(addr, "/api/rooms").send().await.unwrap();
//! assert_eq!(r.status, 201, "{}", r.text());
//! # }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::TIMEOUT;

/// What went wrong with a request: no connection, a broken answer, or none in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError(String);

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

/// A whole answer: status, headers in the order received, and the body (de-chunked).
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Every header as received (names in lower case), repeated ones included.
    pub headers: Vec<(String, String)>,
    /// The whole body, de-chunked.
    pub body: Bytes,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request, sent on a connection of its own that it closes (`Connection: close`), and
/// failed rather than awaited forever after its timeout ([`TIMEOUT`] unless set).
#[derive(Debug, Clone)]
pub struct Request {
    addr: SocketAddr,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    timeout: Duration,
}

impl Request {
    /// `method path` to the server at `addr`, with `Host: addr`.
    pub fn new(method: &str, addr: SocketAddr, path: &str) -> Request {
        Request {
            addr,
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
            timeout: TIMEOUT,
        }
    }

    /// `GET path`.
    pub fn get(addr: SocketAddr, path: &str) -> Request {
        Self::new("GET", addr, path)
    }

    /// `POST path`, with `Content-Length: 0` unless a body is set.
    pub fn post(addr: SocketAddr, path: &str) -> Request {
        Self::new("POST", addr, path)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body; `Content-Length` follows it.
    pub fn body(mut self, body: impl Into<Bytes>) -> Request {
        self.body = body.into();
        self
    }

    /// Bounds the whole exchange, connecting included.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = timeout;
        self
    }

    /// Sends it and reads the whole answer.
    pub async fn send(self) -> Result<Response, HttpError> {
        let what = format!("{} {} to {}", self.method, self.path, self.addr);
        match tokio::time::timeout(self.timeout, self.exchange()).await {
            Ok(result) => result.map_err(|e| HttpError(format!("{what}: {e}"))),
            Err(_) => Err(HttpError(format!(
                "{what}: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// [`send`](Self::send) from code that cannot await (a `Drop`): on a thread of its own
    /// with a runtime of its own, so that it works inside and outside a runtime alike.
    pub fn send_blocking(self) -> Result<Response, HttpError> {
        std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| HttpError(format!("a runtime for the request: {e}")))?
                    .block_on(self.send())
            })
            .join()
            .unwrap_or_else(|_| Err(HttpError("the request's thread panicked".into())))
        })
    }

    async fn exchange(&self) -> Result<Response, Box<dyn std::error::Error + Send + Sync>> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        let mut request = hyper::Request::builder()
            .method(self.method.as_str())
            .uri(self.path.as_str())
            .header("host", self.addr.to_string())
            .header("connection", "close");
        // An empty POST still says so, as browsers do; a GET says nothing of a body.
        let bodiless = matches!(self.method.as_str(), "GET" | "HEAD");
        if !bodiless || !self.body.is_empty() {
            request = request.header("content-length", self.body.len());
        }
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let request = request.body(Full::new(self.body.clone()))?;
        let exchange = async move {
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>((parts, body))
        };
        // The connection is driven here, beside the exchange, so that no task outlives the
        // request; once it ends (the server closed), what it read is still delivered.
        tokio::pin!(exchange, conn);
        let (parts, body) = tokio::select! {
            r = &mut exchange => r?,
            _ = &mut conn => exchange.await?,
        };
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_owned(), value)
            })
            .collect();
        Ok(Response {
            status: parts.status.as_u16(),
            headers,
            body,
        })
    }
}

/// `method path` with `headers` and no body, as a test asks most things: panics on a failed
/// exchange, since no test expects one.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut r = Request::new(method, addr, path);
    for (k, v) in headers {
        r = r.header(k, v);
    }
    r.send().await.unwrap_or_else(|e| panic!("{e}"))
}
