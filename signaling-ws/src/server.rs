//! The server side: [`WsServer`] and [`accept_stream`], admitting requests with the same
//! [`Admission`] checks the relay uses; and the two steps of `accept_stream`,
//! [`read_request_head`] and [`accept_request`], for a server that routes requests itself.
use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use signaling::transport::PeerInfo;
use signaling_core::admission::{Admission, AllowAll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::server::{create_response, write_response, Request};
use tokio_tungstenite::tungstenite::http::{self, StatusCode};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use crate::config::WsConfig;
use crate::connection::{linger, Socket, WsConnection};
use crate::error::AcceptError;

/// An HTTP request head, read by [`read_request_head`] within the bounds of a [`WsConfig`]
/// (size, header count, and the handshake's deadline, which it carries on to
/// [`accept_request`]).
#[derive(Debug)]
pub struct RequestHead {
    request: Request,
    /// Bytes read past the head: the start of a body, or WebSocket frames a client sent
    /// without waiting for the response.
    tail: Vec<u8>,
    deadline: Instant,
}

impl RequestHead {
    /// The method (`GET`, `POST`, ...).
    pub fn method(&self) -> &str {
        self.request.method().as_str()
    }

    /// The request target's path, without the query string.
    pub fn path(&self) -> &str {
        self.request.uri().path()
    }

    /// The query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.request.uri().query()
    }

    /// The first value of the header `name` (case-insensitive), if it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.headers().get(name)?.to_str().ok()
    }

    /// Whether the request asks for a WebSocket (`Upgrade: websocket`). Whether it is a valid
    /// upgrade is for [`accept_request`] to check.
    pub fn is_upgrade(&self) -> bool {
        self.request
            .headers()
            .get_all(http::header::UPGRADE)
            .iter()
            .any(|value| {
                value.to_str().is_ok_and(|v| {
                    v.split(',')
                        .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
                })
            })
    }

    /// The whole request, as the `http` crate models it (no body).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// When the handshake's time ([`WsConfig::handshake_timeout`], counted from the start of
    /// [`read_request_head`]) is up. [`accept_request`] finishes by then; bound your own answer
    /// to a request you do not upgrade by it too.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// Reads an HTTP request head from `stream`, within [`WsConfig::handshake_timeout`] (which
/// starts now and goes on to bound [`accept_request`]), [`WsConfig::max_header_bytes`] and
/// [`WsConfig::max_headers`].
///
/// A head over either bound is answered with `431 Request Header Fields Too Large`
/// ([`AcceptError::HeadTooLarge`]), one that is not HTTP/1.x with `400 Bad Request`
/// ([`AcceptError::Malformed`]); a client that has not sent a whole head by the deadline gets
/// no answer ([`AcceptError::TimedOut`]). Drop the stream after an error.
///
/// Use it with [`accept_request`] to route requests before upgrading them (a WebSocket path
/// beside plain HTTP ones); [`accept_stream`] does both.
pub async fn read_request_head<S>(
    stream: &mut S,
    config: &WsConfig,
) -> Result<RequestHead, AcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = Instant::now() + config.handshake_timeout;
    let read = tokio::time::timeout_at(deadline, read_head(stream, config)).await;
    let error = match read {
        Err(_) => return Err(AcceptError::TimedOut),
        Ok(Ok((request, tail))) => {
            return Ok(RequestHead {
                request,
                tail,
                deadline,
            })
        }
        Ok(Err(HeadError::Io(error))) => return Err(AcceptError::Io(error)),
        Ok(Err(HeadError::TooLarge)) => AcceptError::HeadTooLarge,
        Ok(Err(HeadError::Malformed(why))) => AcceptError::Malformed(why),
    };
    let answer = match error {
        AcceptError::HeadTooLarge => Answer::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large\n",
        ),
        _ => Answer::new(StatusCode::BAD_REQUEST, "malformed HTTP request\n"),
    };
    answer.send(stream, deadline, config).await;
    Err(error)
}

/// Why a request head could not be read.
enum HeadError {
    Io(io::Error),
    TooLarge,
    Malformed(&'static str),
}

impl From<io::Error> for HeadError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// Reads until the blank line that ends the head (at most `max_header_bytes`, counting header
/// lines as they arrive), then parses it. Each byte is looked at once, however the head is
/// split into reads.
async fn read_head<S>(stream: &mut S, config: &WsConfig) -> Result<(Request, Vec<u8>), HeadError>
where
    S: AsyncRead + Unpin,
{
    let max_bytes = config.max_header_bytes;
    let mut buf: Vec<u8> = Vec::with_capacity(max_bytes.min(1024));
    let mut chunk = [0u8; 1024];
    let end = loop {
        let room = max_bytes.saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return Err(HeadError::TooLarge);
        }
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Err(HeadError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        buf.extend_from_slice(&chunk[..n]);
        // The head ends with an empty line: parse again only when a line has ended (so a
        // client trickling bytes costs one parse per line, at most `max_headers` + 2).
        if !chunk[..n].contains(&b'\n') {
            continue;
        }
        let mut headers = vec![httparse::EMPTY_HEADER; config.max_headers];
        match httparse::Request::new(&mut headers).parse(&buf) {
            Ok(httparse::Status::Complete(len)) => break len,
            Ok(httparse::Status::Partial) => continue,
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(error) => return Err(HeadError::Malformed(describe(error))),
        }
    };
    let tail = buf.split_off(end);
    let mut headers = vec![httparse::EMPTY_HEADER; config.max_headers];
    let mut parsed = httparse::Request::new(&mut headers);
    if !matches!(parsed.parse(&buf), Ok(httparse::Status::Complete(_))) {
        // The same bytes parsed complete above.
        return Err(HeadError::Malformed("incomplete request head"));
    }
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    let mut request = http::Request::builder()
        .method(method)
        .uri(target)
        .version(match minor {
            0 => http::Version::HTTP_10,
            _ => http::Version::HTTP_11,
        });
    for header in parsed.headers.iter() {
        request = request.header(header.name, header.value);
    }
    let request = request
        .body(())
        .map_err(|_| HeadError::Malformed("invalid method, request target or header"))?;
    Ok((request, tail))
}

fn describe(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid request line",
        httparse::Error::Version => "invalid HTTP version",
        _ => "invalid request head",
    }
}

/// A response refusing a request: a status, extra headers and a `text/plain` body; the
/// connection closes after it.
struct Answer {
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
}

impl Answer {
    fn new(status: StatusCode, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Writes the response before `deadline`, then shuts the write side and discards what
    /// the client still sends for a short while (at most `close_timeout`, and not past the
    /// deadline), so that the response is not destroyed by a TCP reset for unread bytes.
    async fn send<S>(self, stream: &mut S, deadline: Instant, config: &WsConfig)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut text = format!(
            "HTTP/1.1 {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.body.len()
        );
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        text.push_str(&self.body);
        let write = async {
            stream.write_all(text.as_bytes()).await?;
            stream.flush().await
        };
        if let Ok(Ok(())) = tokio::time::timeout_at(deadline, write).await {
            let left = deadline.saturating_duration_since(Instant::now());
            linger(stream, config.close_timeout.min(left)).await;
        }
    }
}

/// Upgrades the request `head` (read from `stream` by [`read_request_head`]) to a WebSocket
/// connection, asking `admission` first (with the request's [`PeerInfo`]: path, query,
/// headers, address); finishes by the head's [`deadline`](RequestHead::deadline).
///
/// Answers instead of upgrading, and returns the matching error: a request that is not an
/// upgrade with `426 Upgrade Required` and `Upgrade: websocket` ([`AcceptError::NotUpgrade`]),
/// an invalid upgrade with `400 Bad Request` ([`AcceptError::Protocol`]), a refused one with
/// the refusal's status and its reason as the body ([`AcceptError::Rejected`]).
pub async fn accept_request<S>(
    mut stream: S,
    head: RequestHead,
    remote_addr: Option<SocketAddr>,
    config: &WsConfig,
    admission: &dyn Admission,
) -> Result<WsConnection, AcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = head.deadline;
    let refusal = if !head.is_upgrade() {
        (
            AcceptError::NotUpgrade,
            Answer::new(
                StatusCode::UPGRADE_REQUIRED,
                "this is a WebSocket endpoint: upgrade required\n",
            )
            .header("Upgrade", "websocket"),
        )
    } else {
        match create_response(&head.request) {
            Err(error) => {
                let mut answer = Answer::new(StatusCode::BAD_REQUEST, format!("{error}\n"));
                if matches!(
                    error,
                    WsError::Protocol(ProtocolError::MissingSecWebSocketVersionHeader)
                ) {
                    // RFC 6455 §4.4: name the versions this server speaks.
                    answer = answer.header("Sec-WebSocket-Version", "13");
                }
                (AcceptError::Protocol(Box::new(error)), answer)
            }
            Ok(response) => {
                let peer = peer_info(&head.request, remote_addr);
                match admission.admit(&peer) {
                    Ok(()) => {
                        let upgrade = upgrade(stream, response, head.tail, peer, config);
                        return tokio::time::timeout_at(deadline, upgrade)
                            .await
                            .unwrap_or(Err(AcceptError::TimedOut));
                    }
                    Err(refusal) => {
                        let status = StatusCode::from_u16(refusal.status)
                            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                        (
                            AcceptError::Rejected {
                                status: status.as_u16(),
                            },
                            Answer::new(status, refusal.reason.as_str()),
                        )
                    }
                }
            }
        }
    };
    let (error, answer) = refusal;
    answer.send(&mut stream, deadline, config).await;
    Err(error)
}

/// Writes the `101 Switching Protocols` response and wraps the stream.
async fn upgrade<S>(
    mut stream: S,
    response: http::Response<()>,
    tail: Vec<u8>,
    peer: PeerInfo,
    config: &WsConfig,
) -> Result<WsConnection, AcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut bytes = Vec::with_capacity(256);
    write_response(&mut bytes, &response).map_err(AcceptError::from_ws)?;
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    // A plain TCP stream is driven by its readiness directly (see `tcp`); any other stream
    // through `tokio_tungstenite`'s adapter.
    let mut stream = Some(stream);
    let tcp = (&mut stream as &mut dyn Any)
        .downcast_mut::<Option<TcpStream>>()
        .and_then(Option::take);
    let socket: Box<dyn Socket> = match (tcp, stream) {
        (Some(tcp), _) => Box::new(crate::tcp::upgraded(
            tcp,
            tail,
            config.tungstenite(),
            config.read_ahead,
        )),
        (None, Some(stream)) => Box::new(
            WebSocketStream::from_partially_read(
                stream,
                tail,
                Role::Server,
                Some(config.tungstenite()),
            )
            .await,
        ),
        // Taken only as a `TcpStream`, in the first arm: not a case that happens.
        (None, None) => return Err(AcceptError::from_ws(WsError::AlreadyClosed)),
    };
    Ok(WsConnection::new(socket, peer, config))
}

fn peer_info(request: &Request, remote_addr: Option<SocketAddr>) -> PeerInfo {
    let mut peer = PeerInfo::new("ws");
    peer.remote_addr = remote_addr;
    peer.path = request.uri().path().to_owned();
    peer.query = request.uri().query().map(str::to_owned);
    peer.headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(), // `http` stores names lower-cased
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    peer
}

/// Performs the server side of the WebSocket handshake on an accepted stream, asking
/// `admission` first (with the request's [`PeerInfo`]: path, query, headers, address), and
/// returns the connection: [`read_request_head`], then [`accept_request`]. Use it to serve
/// WebSockets from a server you already run (after your own TLS, or from your own accept
/// loop); [`AllowAll`](signaling_core::admission::AllowAll) admits everyone.
///
/// The whole handshake is bounded by [`WsConfig::handshake_timeout`], and the request head by
/// [`WsConfig::max_header_bytes`] and [`WsConfig::max_headers`]. A request that is refused, or
/// that cannot be upgraded, is answered with an HTTP status (see [`accept_request`] and
/// [`AcceptError`]); nothing is upgraded.
pub async fn accept_stream<S>(
    mut stream: S,
    remote_addr: Option<SocketAddr>,
    config: &WsConfig,
    admission: &dyn Admission,
) -> Result<WsConnection, AcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let head = read_request_head(&mut stream, config).await?;
    accept_request(stream, head, remote_addr, config, admission).await
}

/// How long the accept loop pauses after a listener error that is not about one connection
/// (such as running out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A WebSocket server on a TCP listener.
///
/// A background task accepts TCP connections and runs each handshake on its own task, so one
/// slow client cannot hold up others; at most [`WsConfig::max_handshakes_in_flight`] run at
/// once, and at most [`WsConfig::accept_queue`] upgraded connections wait for
/// [`accept`](Self::accept). A client that fails or is refused the handshake never reaches
/// `accept`: it is logged (tracing, `debug` level) and the server keeps accepting. Listener
/// errors are logged at `warn` level and accepting resumes shortly after.
///
/// Dropping the server stops accepting and aborts handshakes in progress; connections already
/// returned by `accept` are unaffected.
#[derive(Debug)]
pub struct WsServer {
    local_addr: SocketAddr,
    connections: mpsc::Receiver<WsConnection>,
    task: tokio::task::JoinHandle<()>,
}

impl WsServer {
    /// Binds a listener to `addr` and serves every request ([`AllowAll`]).
    pub async fn bind(addr: impl ToSocketAddrs, config: WsConfig) -> io::Result<Self> {
        Self::bind_with_admission(addr, config, AllowAll).await
    }

    /// Binds a listener to `addr` and serves the requests `admission` admits.
    pub async fn bind_with_admission(
        addr: impl ToSocketAddrs,
        config: WsConfig,
        admission: impl Admission + 'static,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Self::from_listener(listener, config, admission)
    }

    /// Serves the requests `admission` admits on an already bound listener. Must be called
    /// within a tokio runtime.
    pub fn from_listener(
        listener: TcpListener,
        config: WsConfig,
        admission: impl Admission + 'static,
    ) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, connections) = mpsc::channel(config.accept_queue.max(1));
        let admission: Arc<dyn Admission> = Arc::new(admission);
        let task = tokio::spawn(accept_loop(listener, Arc::new(config), admission, tx));
        Ok(Self {
            local_addr,
            connections,
            task,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next upgraded connection. Cancel-safe. Never fails because of a single client
    /// (refused and failed handshakes are only logged, and an admission check that panics loses
    /// only that handshake); `None` would mean the accept loop itself has stopped, which it does not do
    /// while the server exists.
    pub async fn accept(&mut self) -> Option<WsConnection> {
        self.connections.recv().await
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<WsConfig>,
    admission: Arc<dyn Admission>,
    tx: mpsc::Sender<WsConnection>,
) {
    let limit = Arc::new(Semaphore::new(config.max_handshakes_in_flight.max(1)));
    let mut handshakes = JoinSet::new();
    loop {
        while handshakes.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return, // the semaphore is never closed
            },
            () = tx.closed() => return,
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => continue,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tx.closed() => return,
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => continue,
        };
        let (stream, remote_addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_connection_error(&error) => {
                tracing::debug!(%error, "accept failed");
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed; pausing");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%remote_addr, %error, "set_nodelay failed");
        }
        let config = config.clone();
        let admission = admission.clone();
        let tx = tx.clone();
        handshakes.spawn(async move {
            // Held until the connection is queued for `accept`, so a full accept queue stops
            // the server from taking more clients.
            let _permit = permit;
            match accept_stream(stream, Some(remote_addr), &config, &*admission).await {
                Ok(connection) => {
                    let _ = tx.send(connection).await;
                }
                Err(error) => {
                    tracing::debug!(%remote_addr, %error, "handshake failed");
                }
            }
        });
    }
}
