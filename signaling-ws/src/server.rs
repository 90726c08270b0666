//! The server side: [`WsServer`], [`accept_stream`] and the handshake hook.
use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use signaling::transport::PeerInfo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderName, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::config::WsConfig;
use crate::connection::{Socket, WsConnection};
use crate::error::AcceptError;

/// The upgrade request as the [`HandshakeHook`] sees it, before anything is upgraded.
#[derive(Clone, Debug)]
pub struct HandshakeRequest {
    peer: PeerInfo,
}

impl HandshakeRequest {
    /// Everything known of the request; this becomes the connection's
    /// [`peer`](signaling::transport::Transport::peer) if the hook accepts it.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// The remote socket address, when known.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.peer.remote_addr
    }

    /// The request path, e.g. `/api/ws`.
    pub fn path(&self) -> &str {
        &self.peer.path
    }

    /// The raw query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.peer.query.as_deref()
    }

    /// A query parameter as it appears in the query string (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.peer.query_param(name)
    }

    /// All headers, names lower-cased, in the order received.
    pub fn headers(&self) -> &[(String, String)] {
        &self.peer.headers
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.peer.header(name)
    }

    /// The `Origin` header, which browsers always send: check it to refuse cross-site sockets.
    pub fn origin(&self) -> Option<&str> {
        self.peer.origin()
    }

    /// A cookie's value from the `Cookie` header(s), as sent (not percent-decoded); see
    /// [`PeerInfo::cookie`].
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.peer.cookie(name)
    }
}

/// Why a [`HandshakeHook`] refused a request: an HTTP status, a body and extra headers, written
/// as the response instead of the upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    status: u16,
    body: String,
    headers: Vec<(String, String)>,
}

impl Rejection {
    /// A rejection with this HTTP status and body. A status outside 300–599 (which could not
    /// stand for a refusal) is replaced by 500.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        let status = if (300..=599).contains(&status) {
            status
        } else {
            500
        };
        Self {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// 401 Unauthorized: no or bad credentials.
    pub fn unauthorized() -> Self {
        Self::new(401, "unauthorized")
    }

    /// 403 Forbidden: credentials fine, access refused (or a foreign origin).
    pub fn forbidden() -> Self {
        Self::new(403, "forbidden")
    }

    /// 404 Not Found: no WebSocket endpoint at this path.
    pub fn not_found() -> Self {
        Self::new(404, "not found")
    }

    /// 429 Too Many Requests: rate-limited.
    pub fn too_many_requests() -> Self {
        Self::new(429, "too many requests")
    }

    /// Adds a response header (`Retry-After`, `WWW-Authenticate`, `Location`...). Headers whose
    /// name or value is not valid HTTP are left out of the response.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response body.
    pub fn body(&self) -> &str {
        &self.body
    }

    fn into_response(self) -> ErrorResponse {
        let mut response = ErrorResponse::new(Some(self.body.clone()));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        for (name, value) in &self.headers {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                _ => tracing::warn!(%name, "invalid rejection header left out"),
            }
        }
        response
    }
}

/// Decides, before the upgrade, whether a WebSocket request is accepted: authentication (a token
/// in the query string or a cookie, since browsers cannot set headers on a WebSocket), origin
/// checks, path routing, rate limits.
///
/// Any `Fn(&HandshakeRequest) -> Result<(), Rejection> + Send + Sync` is a hook:
///
/// ```
/// use signaling_ws::{HandshakeRequest, Rejection};
///
/// let hook = |req: &HandshakeRequest| match req.query_param("token") {
///     Some("secret") => Ok(()),
///     Some(_) => Err(Rejection::forbidden()),
///     None => Err(Rejection::unauthorized()),
/// };
/// # fn is_hook(_: &dyn signaling_ws::HandshakeHook) {}
/// # is_hook(&hook);
/// ```
pub trait HandshakeHook: Send + Sync {
    /// Accepts (`Ok`) or refuses the request. Called once per request, on the handshake's task;
    /// it should not block.
    fn check(&self, request: &HandshakeRequest) -> Result<(), Rejection>;
}

impl<F> HandshakeHook for F
where
    F: Fn(&HandshakeRequest) -> Result<(), Rejection> + Send + Sync,
{
    fn check(&self, request: &HandshakeRequest) -> Result<(), Rejection> {
        self(request)
    }
}

/// A hook that accepts every request.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl HandshakeHook for AcceptAll {
    fn check(&self, _request: &HandshakeRequest) -> Result<(), Rejection> {
        Ok(())
    }
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

/// Performs the server side of the WebSocket handshake on an accepted stream, asking `hook`
/// first, and returns the connection. Use it to serve WebSockets from a server you already run
/// (after your own TLS, or from your own accept loop).
///
/// The whole handshake is bounded by [`WsConfig::handshake_timeout`]. A refused request gets the
/// hook's HTTP response and yields [`AcceptError::Rejected`]; nothing is upgraded.
pub async fn accept_stream<S>(
    stream: S,
    remote_addr: Option<SocketAddr>,
    config: &WsConfig,
    hook: &dyn HandshakeHook,
) -> Result<WsConnection, AcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut outcome: Option<Result<PeerInfo, u16>> = None;
    // The callback's signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        let request = HandshakeRequest {
            peer: peer_info(request, remote_addr),
        };
        match hook.check(&request) {
            Ok(()) => {
                outcome = Some(Ok(request.peer));
                Ok(response)
            }
            Err(rejection) => {
                outcome = Some(Err(rejection.status));
                Err(rejection.into_response())
            }
        }
    };
    // A plain TCP stream is driven by its readiness directly (see `tcp`); any other stream
    // through `tokio_tungstenite`'s adapter.
    let mut stream = Some(stream);
    let tcp = (&mut stream as &mut dyn Any)
        .downcast_mut::<Option<TcpStream>>()
        .and_then(Option::take);
    let result = match (tcp, stream) {
        (Some(tcp), _) => {
            let handshake = crate::tcp::accept(tcp, callback, config.tungstenite());
            tokio::time::timeout(config.handshake_timeout, handshake)
                .await
                .map(|r| r.map(|ws| Box::new(ws) as Box<dyn Socket>))
        }
        (None, Some(stream)) => {
            let handshake = tokio_tungstenite::accept_hdr_async_with_config(
                stream,
                callback,
                Some(config.tungstenite()),
            );
            tokio::time::timeout(config.handshake_timeout, handshake)
                .await
                .map(|r| r.map(|ws| Box::new(ws) as Box<dyn Socket>))
        }
        // Taken only as a `TcpStream`, in the first arm: not a case that happens.
        (None, None) => Ok(Err(WsError::AlreadyClosed)),
    };
    match (result, outcome) {
        (Err(_), _) => Err(AcceptError::TimedOut),
        (Ok(Ok(ws)), Some(Ok(peer))) => Ok(WsConnection::new(ws, peer, config)),
        (Ok(_), Some(Err(status))) => Err(AcceptError::Rejected { status }),
        (Ok(Err(error)), _) => Err(AcceptError::from_ws(error)),
        (Ok(Ok(_)), None) => Err(AcceptError::Protocol(Box::new(
            tokio_tungstenite::tungstenite::Error::Protocol(
                tokio_tungstenite::tungstenite::error::ProtocolError::HandshakeIncomplete,
            ),
        ))),
    }
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
    /// Binds a listener to `addr` and serves every request ([`AcceptAll`]).
    pub async fn bind(addr: impl ToSocketAddrs, config: WsConfig) -> io::Result<Self> {
        Self::bind_with_hook(addr, config, AcceptAll).await
    }

    /// Binds a listener to `addr` and serves the requests `hook` accepts.
    pub async fn bind_with_hook(
        addr: impl ToSocketAddrs,
        config: WsConfig,
        hook: impl HandshakeHook + 'static,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Self::from_listener(listener, config, hook)
    }

    /// Serves the requests `hook` accepts on an already bound listener. Must be called within a
    /// tokio runtime.
    pub fn from_listener(
        listener: TcpListener,
        config: WsConfig,
        hook: impl HandshakeHook + 'static,
    ) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, connections) = mpsc::channel(config.accept_queue.max(1));
        let task = tokio::spawn(accept_loop(listener, Arc::new(config), Arc::new(hook), tx));
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
    /// (refused and failed handshakes are only logged, and a hook that panics loses only that
    /// handshake); `None` would mean the accept loop itself has stopped, which it does not do
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
    hook: Arc<dyn HandshakeHook>,
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
        let hook = hook.clone();
        let tx = tx.clone();
        handshakes.spawn(async move {
            // Held until the connection is queued for `accept`, so a full accept queue stops
            // the server from taking more clients.
            let _permit = permit;
            match accept_stream(stream, Some(remote_addr), &config, &*hook).await {
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
