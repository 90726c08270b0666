//! The server side: [`WsServer`] and [`accept_stream`], admitting requests with the same
//! [`Admission`] checks the relay uses.
use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use signaling::transport::PeerInfo;
use signaling_core::admission::{Admission, AllowAll, Refusal};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::config::WsConfig;
use crate::connection::{Socket, WsConnection};
use crate::error::AcceptError;

/// The HTTP response refusing an upgrade: the refusal's status, and its reason's wire name as a
/// `text/plain` body.
fn refusal_response(refusal: &Refusal) -> ErrorResponse {
    let body = refusal.reason.as_str();
    let mut response = ErrorResponse::new(Some(body.to_owned()));
    *response.status_mut() =
        StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
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
/// returns the connection. Use it to serve WebSockets from a server you already run (after your
/// own TLS, or from your own accept loop); [`AllowAll`](signaling_core::admission::AllowAll)
/// admits everyone.
///
/// The whole handshake is bounded by [`WsConfig::handshake_timeout`]. A refused request is
/// answered with the refusal's HTTP status (its reason as the body) and yields
/// [`AcceptError::Rejected`]; nothing is upgraded.
pub async fn accept_stream<S>(
    stream: S,
    remote_addr: Option<SocketAddr>,
    config: &WsConfig,
    admission: &dyn Admission,
) -> Result<WsConnection, AcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut outcome: Option<Result<PeerInfo, u16>> = None;
    // The callback's signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        let peer = peer_info(request, remote_addr);
        match admission.admit(&peer) {
            Ok(()) => {
                outcome = Some(Ok(peer));
                Ok(response)
            }
            Err(refusal) => {
                outcome = Some(Err(refusal.status));
                Err(refusal_response(&refusal))
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
