//! Serving a router over HTTP/1.1, plain or TLS: [`load_pem`] and [`serve`].
//!
//! `axum::serve` serves plain HTTP only; [`serve`] does TLS too (rustls, with the `ring`
//! provider), keeps WebSocket upgrades working over it, and bounds what a server holds for
//! clients that have not sent a request yet:
//!
//! - at most [`ServeConfig::max_connections`] HTTP connections at once (TLS handshakes
//!   included); while that many are open the server stops accepting and new clients wait in
//!   the kernel's backlog. A connection upgraded to a WebSocket leaves this count: the relay
//!   bounds those (`RelayConfig::max_peers`), as your own handlers must;
//! - a TLS handshake must finish within [`ServeConfig::tls_handshake_timeout`];
//! - a request head must arrive within [`ServeConfig::header_read_timeout`] (also on a kept-alive
//!   connection waiting for its next request), and be at most
//!   [`ServeConfig::max_header_bytes`] long.
//!
//! The remote address is put in each request as [`ConnectInfo<SocketAddr>`](ConnectInfo), so
//! `ConnectInfo` extractors and [`ws::peer_info`](crate::ws::peer_info) see it.
//!
//! ```no_run
//! use axum::routing::get;
//! use axum::Router;
//! use signaling_http::tls;
//! use tokio::net::TcpListener;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Router::new().route("/hello", get(|| async { "hello\n" }));
//! let config = tls::load_pem("cert.pem", "key.pem")?;
//! let listener = TcpListener::bind("0.0.0.0:8443").await?;
//! let report = tls::serve(listener, app, Some(config))
//!     .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.ok(); })
//!     .await;
//! eprintln!("{} connections cut at shutdown", report.cut);
//! # Ok(())
//! # }
//! ```
use std::future::{Future, IntoFuture, Pending};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use signaling_core::config::InvalidSetting;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower_service::Service as _;

/// Why [`load_pem`] could not make a TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file could not be read, or holds a malformed PEM section.
    #[error("cannot read certificates from {}: {source}", path.display())]
    Certificates {
        /// The certificate file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("no certificate in {}", path.display())]
    NoCertificates {
        /// The certificate file.
        path: PathBuf,
    },
    /// The key file could not be read, or holds no private key (PKCS #8, PKCS #1 or SEC1).
    #[error("cannot read a private key from {}: {source}", path.display())]
    PrivateKey {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: pem::Error,
    },
    /// rustls refused the certificates and key (a key that does not match the certificate,
    /// an unsupported key type).
    #[error("the certificates and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A TLS server configuration from PEM files: the certificate chain (leaf first) in
/// `cert_path` and the private key in `key_path`, with rustls' safe default protocol versions,
/// the `ring` provider, no client authentication, and ALPN `http/1.1` (what [`serve`]
/// speaks).
pub fn load_pem(
    cert_path: impl AsRef<Path>,
    key_path: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_path = cert_path.as_ref();
    let key_path = key_path.as_ref();
    let certificates = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Certificates {
            path: cert_path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificates {
            path: cert_path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsError::PrivateKey {
        path: key_path.to_owned(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certificates, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Bounds of [`serve`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeConfig {
    /// HTTP connections served at once, TLS handshakes included; at the bound the server stops
    /// accepting until one ends. A connection upgraded to a WebSocket no longer counts.
    /// Default 1024. A value of 0 is treated as 1.
    pub max_connections: usize,
    /// The deadline for a TLS handshake, from the TCP accept. Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// The deadline for a whole request head, counted from when the connection is ready for
    /// one (after the TLS handshake, after the previous response on a kept-alive
    /// connection); a connection that misses it is closed. Default 10 s.
    pub header_read_timeout: Duration,
    /// The largest request head accepted, in bytes (request line and headers); a larger one is
    /// answered with `431 Request Header Fields Too Large`. Default 16 KiB (a browser's
    /// upgrade request is about 0.5 KiB, plus its cookies).
    pub max_header_bytes: usize,
    /// After the shutdown signal: how long open connections may take to finish the request
    /// they are serving (idle ones close at once) before they are cut. Default 5 s.
    pub drain_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

impl ServeConfig {
    /// Sets [`max_connections`](Self::max_connections).
    pub fn with_max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// Sets [`tls_handshake_timeout`](Self::tls_handshake_timeout).
    pub fn with_tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.tls_handshake_timeout = timeout;
        self
    }

    /// Sets [`header_read_timeout`](Self::header_read_timeout).
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`max_header_bytes`](Self::max_header_bytes).
    pub fn with_max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Sets [`drain_timeout`](Self::drain_timeout).
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The smallest [`max_header_bytes`](Self::max_header_bytes) [`validate`](Self::validate)
    /// accepts: the HTTP library reads at least this much at once.
    pub const MIN_HEADER_BYTES: usize = 8 * 1024;

    /// Refuses settings that cannot work: timeouts of 0, and a `max_header_bytes` under
    /// [`MIN_HEADER_BYTES`](Self::MIN_HEADER_BYTES).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        InvalidSetting::check_nonzero_duration(
            "tls_handshake_timeout",
            self.tls_handshake_timeout,
            "no TLS handshake could finish",
        )?;
        InvalidSetting::check_nonzero_duration(
            "header_read_timeout",
            self.header_read_timeout,
            "no request could be read",
        )?;
        InvalidSetting::check_nonzero_duration(
            "drain_timeout",
            self.drain_timeout,
            "every request in progress would be cut at shutdown (use a short one instead)",
        )?;
        if self.max_header_bytes < Self::MIN_HEADER_BYTES {
            return Err(InvalidSetting::new(
                "max_header_bytes",
                self.max_header_bytes,
                "must be at least 8192: the HTTP library reads that much at once",
            ));
        }
        Ok(())
    }
}

/// What [`serve`] did at its shutdown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeReport {
    /// HTTP connections open when the shutdown signal came (upgraded WebSockets not
    /// included).
    pub connections: usize,
    /// Of those, the ones still open at the end of the drain time, which were cut.
    pub cut: usize,
}

/// Serves `router` on `listener`: over TLS with `tls`, plain HTTP without. HTTP/1.1, with
/// WebSocket upgrades. Await the returned [`Serve`]; it runs until its
/// [graceful shutdown](Serve::with_graceful_shutdown) signal, with [`ServeConfig::default()`]
/// unless [`Serve::config`] says otherwise.
///
/// Accept errors (out of file descriptors, say) are logged and accepting resumes shortly
/// after; a client's failed TLS handshake or broken connection is logged at `debug` level.
/// Must be awaited within a tokio runtime.
pub fn serve(listener: TcpListener, router: Router, tls: Option<Arc<ServerConfig>>) -> Serve {
    Serve {
        listener,
        router,
        tls,
        config: ServeConfig::default(),
        shutdown: std::future::pending(),
    }
}

/// A server being set up by [`serve`]; await it to run it.
#[must_use = "a server does nothing until awaited"]
pub struct Serve<F = Pending<()>> {
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<ServerConfig>>,
    config: ServeConfig,
    shutdown: F,
}

impl<F> std::fmt::Debug for Serve<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<F> Serve<F> {
    /// Uses these bounds.
    pub fn config(mut self, config: ServeConfig) -> Self {
        self.config = config;
        self
    }

    /// Stops when `signal` resolves: stops accepting (the listener is closed), lets each open
    /// connection finish the request it is serving and closes it, for at most
    /// [`ServeConfig::drain_timeout`], then cuts the rest and returns. WebSockets already
    /// upgraded are not closed: they belong to whoever serves them (see
    /// [`RelayHandle::shutdown`](signaling::relay::RelayHandle::shutdown)).
    pub fn with_graceful_shutdown<G>(self, signal: G) -> Serve<G>
    where
        G: Future<Output = ()> + Send + 'static,
    {
        Serve {
            listener: self.listener,
            router: self.router,
            tls: self.tls,
            config: self.config,
            shutdown: signal,
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl<F> IntoFuture for Serve<F>
where
    F: Future<Output = ()> + Send + 'static,
{
    type Output = ServeReport;
    type IntoFuture = Pin<Box<dyn Future<Output = ServeReport> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self))
    }
}

/// How long the accept loop pauses after a listener error that is not about one connection
/// (such as running out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn run<F>(serve: Serve<F>) -> ServeReport
where
    F: Future<Output = ()> + Send + 'static,
{
    let Serve {
        listener,
        router,
        tls,
        config,
        shutdown,
    } = serve;
    let config = Arc::new(config);
    let tls = tls.map(TlsAcceptor::from);
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let (stop, stopped) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // the semaphore is never closed
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
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
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%remote, %error, "set_nodelay failed");
        }
        let connection = Connection {
            remote,
            router: router.clone(),
            config: config.clone(),
            stopped: stopped.clone(),
        };
        let tls = tls.clone();
        connections.spawn(async move {
            // Held while the connection is served as HTTP.
            let _permit = permit;
            connection.run(tcp, tls).await;
        });
    }
    drop(listener);
    while connections.try_join_next().is_some() {}
    let open = connections.len();
    let _ = stop.send(());
    let drained = tokio::time::timeout(config.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    let cut = if drained.is_ok() {
        0
    } else {
        connections.len()
    };
    if cut > 0 {
        tracing::debug!(cut, "connections cut at the end of the drain time");
    }
    connections.shutdown().await;
    ServeReport {
        connections: open,
        cut,
    }
}

/// One accepted TCP connection.
struct Connection {
    remote: SocketAddr,
    router: Router,
    config: Arc<ServeConfig>,
    stopped: watch::Receiver<()>,
}

impl Connection {
    async fn run(self, tcp: TcpStream, tls: Option<TlsAcceptor>) {
        let Some(tls) = tls else {
            return self.serve_http(tcp).await;
        };
        let handshake = tokio::time::timeout(self.config.tls_handshake_timeout, tls.accept(tcp));
        match handshake.await {
            Ok(Ok(stream)) => self.serve_http(stream).await,
            Ok(Err(error)) => {
                tracing::debug!(remote = %self.remote, %error, "TLS handshake failed")
            }
            Err(_) => tracing::debug!(remote = %self.remote, "TLS handshake timed out"),
        }
    }

    async fn serve_http<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            remote,
            router,
            config,
            mut stopped,
        } = self;
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            router.clone().call(request)
        });
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(config.max_header_bytes.max(ServeConfig::MIN_HEADER_BYTES));
        let connection = http
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let mut connection = pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            _ = stopped.changed() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = result {
            tracing::debug!(%remote, %error, "HTTP connection failed");
        }
    }
}
