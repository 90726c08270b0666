//! The relay mounted in an axum app: [`route`] serves a [`RelayHandle`] at a path of your
//! router.
//!
//! ```
//! use axum::routing::get;
//! use axum::Router;
//! use signaling::relay::{DriverConfig, RelayConfig, RelayHandle};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let relay = RelayHandle::new(RelayConfig::default(), DriverConfig::default());
//! let app: Router = Router::new()
//!     .route("/hello", get(|| async { "hello" }))
//!     .route("/ws", signaling_http::relay::route(relay.clone()));
//! # let _ = app;
//! # }
//! ```
//!
//! A connection joins the room its URL names, as with the relay's own server
//! ([`join_request_from_peer`]: `?room=NAME`, and `&resume=TOKEN` to resume); without a room it
//! is upgraded and closed at once with [`close_code::BAD_REQUEST`] and the reason
//! `missing ?room=NAME`, which a browser can read (it cannot read an HTTP status). Add an
//! admission check (token, origin) or change the WebSocket limits with [`RelayRoute`].
//!
//! To stop: stop serving HTTP first (the graceful shutdown of
//! [`tls::serve`](crate::tls::serve) or of `axum::serve`), then await
//! [`RelayHandle::shutdown`], which closes the relay's WebSockets with 1001.
use std::fmt;
use std::sync::Arc;

use axum::response::Response;
use axum::routing::{get, MethodRouter};
use signaling::relay::{close_code, join_request_from_peer, RelayHandle};
use signaling::transport::{CloseReason, Transport};
use signaling_core::admission::{Admission, AllowAll};

use crate::ws::{AxumWsConfig, WsUpgrade};

/// The relay at a route, admitting everyone, with the default WebSocket settings: the same as
/// `RelayRoute::new(handle).into_route()`.
pub fn route<S>(handle: RelayHandle) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    RelayRoute::new(handle).into_route()
}

/// The relay's WebSocket endpoint, with its admission check and WebSocket settings.
///
/// ```
/// use signaling::relay::{DriverConfig, RelayConfig, RelayHandle};
/// use signaling_core::admission::{OriginAllowlist, TokenCheck};
/// use signaling_http::relay::RelayRoute;
/// use signaling_http::ws::AxumWsConfig;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let relay = RelayHandle::new(RelayConfig::default(), DriverConfig::default());
/// let admission = (
///     OriginAllowlist::new(["https://example.org"]).expect("an origin"),
///     TokenCheck::new(["s3cret"]).expect("a token").query("token"),
/// );
/// let app: axum::Router = axum::Router::new().route(
///     "/ws",
///     RelayRoute::new(relay)
///         .admission(admission)
///         .ws_config(AxumWsConfig::default().with_max_message_size(16 * 1024))
///         .into_route(),
/// );
/// # let _ = app;
/// # }
/// ```
#[derive(Clone)]
pub struct RelayRoute {
    handle: RelayHandle,
    admission: Arc<dyn Admission>,
    config: AxumWsConfig,
}

impl fmt::Debug for RelayRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayRoute")
            .field("handle", &self.handle)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RelayRoute {
    /// The relay's endpoint, admitting everyone ([`AllowAll`]), with
    /// [`AxumWsConfig::default()`].
    pub fn new(handle: RelayHandle) -> Self {
        Self {
            handle,
            admission: Arc::new(AllowAll),
            config: AxumWsConfig::default(),
        }
    }

    /// Admits the upgrade requests `admission` admits; the others are answered with the
    /// refusal's HTTP status (see [`WsUpgrade::accept`]).
    #[must_use]
    pub fn admission(mut self, admission: impl Admission + 'static) -> Self {
        self.admission = Arc::new(admission);
        self
    }

    /// Uses these WebSocket settings.
    #[must_use]
    pub fn ws_config(mut self, config: AxumWsConfig) -> Self {
        self.config = config;
        self
    }

    /// The `GET` route for an axum router.
    pub fn into_route<S>(self) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        get(move |upgrade: WsUpgrade| {
            let route = self.clone();
            async move { route.accept(upgrade) }
        })
    }

    /// Answers one upgrade request: admits it, upgrades it and serves the connection to the
    /// relay. For a handler of your own that does more before (or instead of) this.
    pub fn accept(&self, upgrade: WsUpgrade) -> Response {
        let handle = self.handle.clone();
        upgrade.accept(&self.config, &*self.admission, |mut conn| async move {
            match join_request_from_peer(conn.peer()) {
                Some(request) => handle.serve(conn, request).await,
                None => {
                    let reason = CloseReason::new(close_code::BAD_REQUEST, "missing ?room=NAME");
                    let _ = conn.close(reason).await;
                }
            }
        })
    }
}
