//! WHIP (RFC 9725) and WHEP endpoints on axum, over the sans-IO
//! [`signaling_core::whip::Endpoint`].
//!
//! [`WhipEndpoint::new`] gives a cloneable handle whose [`router`](WhipEndpoint::router) serves
//! `/{stream}` (the endpoint URL: `POST` an offer) and `/{stream}/{session}` (the session URL:
//! `PATCH`, `DELETE`), to be nested wherever the application wants it, and a [`WhipEvents`]
//! stream the application reads, in the same event/command style as the WebSocket
//! [`Session`](signaling::session::Session):
//!
//! ```no_run
//! use axum::Router;
//! use signaling_core::whip::{Config, Event};
//! use signaling_http::whip::{WhipEndpoint, WhipEvent};
//!
//! # async fn media_stack_answer(offer: &str) -> String { offer.to_owned() }
//! # async fn run() {
//! let (whip, mut events) = WhipEndpoint::new(Config::whip());
//! let app: Router = Router::new().nest("/whip", whip.router());
//! tokio::spawn(async move {
//!     while let Some(event) = events.next().await {
//!         match event {
//!             WhipEvent::Offer(request) => {
//!                 let answer = media_stack_answer(&request.offer().sdp).await;
//!                 request.accept(answer);
//!             }
//!             WhipEvent::Event(Event::Candidates { session, candidates, .. }) => {
//!                 // to the session's ICE agent
//!             }
//!             WhipEvent::Event(Event::Closed { session, .. }) => { /* tear the media down */ }
//!             _ => {}
//!         }
//!     }
//! });
//! # }
//! ```
//!
//! Every rule of the protocols (status codes, entity-tags, CORS, bounds) is the core
//! endpoint's; this module moves requests in and responses out, waits for the application's
//! answers (at most [`Config::answer_timeout`]; then `503` + `Retry-After`), and runs the
//! endpoint's timers. Request bodies are read up to the larger of [`Config::max_sdp_len`] and
//! the sdpfrag limit; a larger body is answered `413` without reading it all.
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use signaling_core::whip::{
    self, Config, Endpoint, EndpointStats, IceAnswer, Offer, Outcome, Rejection, Restart,
    RestartFailure, SessionId,
};
use tokio::sync::{mpsc, oneshot};

/// How often the endpoint's timers are looked at.
const TICK: Duration = Duration::from_millis(500);

/// A WHIP or WHEP endpoint served by axum. Cheap to clone; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct WhipEndpoint {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    endpoint: Mutex<Endpoint>,
    events: mpsc::Sender<WhipEvent>,
    answer_timeout: Duration,
    retry_after: Duration,
    max_body: usize,
}

/// What the application hears from a [`WhipEndpoint`], from [`WhipEvents::next`].
#[derive(Debug)]
#[non_exhaustive]
pub enum WhipEvent {
    /// A client's offer: answer it through the request (or drop it: `500`).
    Offer(OfferRequest),
    /// An ICE restart: restart the session's ICE agent and complete the request.
    Restart(RestartRequest),
    /// Something the application only needs to hear of: trickled candidates, a WHEP player's
    /// answer to a counter-offer, a session that ended.
    Event(whip::Event),
}

/// The stream of [`WhipEvent`]s of one [`WhipEndpoint`].
#[derive(Debug)]
pub struct WhipEvents {
    rx: mpsc::Receiver<WhipEvent>,
}

impl WhipEvents {
    /// The next event; `None` once every [`WhipEndpoint`] clone is gone.
    pub async fn next(&mut self) -> Option<WhipEvent> {
        self.rx.recv().await
    }
}

enum OfferReply {
    Accept(String),
    CounterOffer(String),
    NotLive(Duration),
    Reject(Rejection),
}

/// A client's offer waiting for the application's answer.
#[derive(Debug)]
pub struct OfferRequest {
    offer: Offer,
    reply: oneshot::Sender<OfferReply>,
}

impl std::fmt::Debug for OfferReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OfferReply")
    }
}

impl OfferRequest {
    /// The offer.
    pub fn offer(&self) -> &Offer {
        &self.offer
    }

    /// Answers with an SDP answer: `201 Created`.
    pub fn accept(self, answer: String) {
        let _ = self.reply.send(OfferReply::Accept(answer));
    }

    /// (WHEP) Answers with the server's own offer: `406` + the counter-offer.
    pub fn counter_offer(self, offer: String) {
        let _ = self.reply.send(OfferReply::CounterOffer(offer));
    }

    /// (WHEP) The stream is not live: `409` + `Retry-After`.
    pub fn not_live(self, retry_after: Duration) {
        let _ = self.reply.send(OfferReply::NotLive(retry_after));
    }

    /// Refuses the offer.
    pub fn reject(self, rejection: Rejection) {
        let _ = self.reply.send(OfferReply::Reject(rejection));
    }
}

/// An ICE restart waiting for the application.
#[derive(Debug)]
pub struct RestartRequest {
    restart: Restart,
    reply: oneshot::Sender<Result<IceAnswer, RestartFailure>>,
}

impl RestartRequest {
    /// The client's new ICE credentials and candidates.
    pub fn restart(&self) -> &Restart {
        &self.restart
    }

    /// The ICE agent restarted with these local credentials and candidates: `200` + sdpfrag.
    pub fn restarted(self, answer: IceAnswer) {
        let _ = self.reply.send(Ok(answer));
    }

    /// The ICE agent could not restart; the session keeps its ICE session.
    pub fn fail(self, failure: RestartFailure) {
        let _ = self.reply.send(Err(failure));
    }
}

impl WhipEndpoint {
    /// An endpoint with `config`, and the stream of its events (bounded by
    /// [`Config::max_events`]). Starts a task for the endpoint's timers, which ends when the
    /// last clone is dropped; call it inside a tokio runtime.
    pub fn new(config: Config) -> (Self, WhipEvents) {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random source");
        let (tx, rx) = mpsc::channel(config.max_events.max(1));
        let answer_timeout = config.answer_timeout;
        // The engine's own expiry is a backstop for an answer that is never given; the
        // handler's wait ends first, so a request that waited its full time is answered
        // `503` + `Retry-After` (the engine still holds the offer), never `404`.
        let engine_timeout = answer_timeout.saturating_add(TICK * 2);
        let shared = Arc::new(Shared {
            answer_timeout,
            retry_after: config.retry_after,
            max_body: config.max_sdp_len.max(config.frag_limits.max_len),
            endpoint: Mutex::new(Endpoint::new(
                config.with_answer_timeout(engine_timeout),
                key,
            )),
            events: tx,
        });
        tokio::spawn(tick(Arc::downgrade(&shared)));
        (Self { shared }, WhipEvents { rx })
    }

    /// The routes: `/{stream}` and `/{stream}/{session}`. Nest them under the path the
    /// endpoint should have (`Router::new().nest("/whip", endpoint.router())`).
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/{stream}", any(on_endpoint))
            .route("/{stream}/{session}", any(on_session))
            .with_state(self.clone())
    }

    /// Ends `session` from the server's side (its media ended). Returns whether it existed.
    pub fn close(&self, session: &SessionId) -> bool {
        self.lock().close(session)
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> EndpointStats {
        self.lock().stats()
    }

    /// Sessions at the moment.
    pub fn session_count(&self) -> usize {
        self.lock().session_count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Endpoint> {
        // A panic while holding the lock leaves a consistent endpoint (each call is one state
        // change), so a poisoned lock is taken over.
        self.shared
            .endpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves the endpoint's queued events to the application, as far as the channel has room
    /// (the rest wait in the endpoint, whose own bound then refuses further `PATCH`es).
    fn forward_events(&self, endpoint: &mut Endpoint) {
        while let Ok(permit) = self.shared.events.try_reserve() {
            match endpoint.poll_event() {
                Some(event) => permit.send(WhipEvent::Event(event)),
                None => break,
            }
        }
    }

    async fn serve(
        &self,
        method: Method,
        path: String,
        target: Target,
        headers: HeaderMap,
        body: Body,
    ) -> Response {
        let body = match axum::body::to_bytes(body, self.shared.max_body).await {
            Ok(body) => body,
            Err(_) => {
                return (StatusCode::PAYLOAD_TOO_LARGE, "the body is too large\n").into_response()
            }
        };
        let outcome = {
            let mut endpoint = self.lock();
            let request = match &target {
                Target::Endpoint(stream) => {
                    whip::Request::endpoint(&method, &path, stream, &headers, &body)
                }
                Target::Session(id) => whip::Request::session(&method, &path, id, &headers, &body),
            };
            let outcome = endpoint.handle(&request, Instant::now());
            self.forward_events(&mut endpoint);
            outcome
        };
        match outcome {
            Outcome::Respond(response) => into_axum(response),
            Outcome::Offer(offer) => self.on_offer(offer).await,
            Outcome::Restart(restart) => self.on_restart(restart).await,
        }
    }

    async fn on_offer(&self, offer: Offer) -> Response {
        let session = offer.session.clone();
        let (tx, rx) = oneshot::channel();
        let request = OfferRequest { offer, reply: tx };
        if self
            .shared
            .events
            .try_send(WhipEvent::Offer(request))
            .is_err()
        {
            return self
                .complete(|e| e.reject(&session, Rejection::Unavailable(self.shared.retry_after)));
        }
        let reply = tokio::time::timeout(self.shared.answer_timeout, rx).await;
        let now = Instant::now();
        let unix = unix_time();
        match reply {
            Ok(Ok(OfferReply::Accept(answer))) => {
                self.complete(|e| e.accept(&session, &answer, unix))
            }
            Ok(Ok(OfferReply::CounterOffer(sdp))) => {
                self.complete(|e| e.counter_offer(&session, &sdp, now, unix))
            }
            Ok(Ok(OfferReply::NotLive(after))) => self.complete(|e| e.not_live(&session, after)),
            Ok(Ok(OfferReply::Reject(rejection))) => {
                self.complete(|e| e.reject(&session, rejection))
            }
            Ok(Err(_)) => self.complete(|e| {
                e.reject(
                    &session,
                    Rejection::Internal("the offer was not answered".into()),
                )
            }),
            Err(_) => self
                .complete(|e| e.reject(&session, Rejection::Unavailable(self.shared.retry_after))),
        }
    }

    async fn on_restart(&self, restart: Restart) -> Response {
        let session = restart.session.clone();
        let (tx, rx) = oneshot::channel();
        let request = RestartRequest { restart, reply: tx };
        if self
            .shared
            .events
            .try_send(WhipEvent::Restart(request))
            .is_err()
        {
            return self.complete(|e| {
                e.restart_failed(
                    &session,
                    RestartFailure::Unavailable(Duration::from_secs(1)),
                )
            });
        }
        match tokio::time::timeout(self.shared.answer_timeout, rx).await {
            Ok(Ok(Ok(answer))) => self.complete(|e| e.restarted(&session, &answer)),
            Ok(Ok(Err(failure))) => self.complete(|e| e.restart_failed(&session, failure)),
            Ok(Err(_)) => self.complete(|e| {
                e.restart_failed(
                    &session,
                    RestartFailure::Internal("the restart was not answered".into()),
                )
            }),
            Err(_) => self.complete(|e| {
                e.restart_failed(
                    &session,
                    RestartFailure::Unavailable(self.shared.retry_after),
                )
            }),
        }
    }

    /// Applies a completion call and turns its result into a response: an application's
    /// answer that cannot be used (a bad SDP) is a `500`, a session that is gone meanwhile a
    /// `404`.
    fn complete(
        &self,
        call: impl FnOnce(&mut Endpoint) -> Result<http::Response<String>, whip::CompletionError>,
    ) -> Response {
        let result = {
            let mut endpoint = self.lock();
            let result = call(&mut endpoint);
            self.forward_events(&mut endpoint);
            result
        };
        match result {
            Ok(response) => into_axum(response),
            Err(whip::CompletionError::NotWaiting(_)) => {
                (StatusCode::NOT_FOUND, "no such session\n").into_response()
            }
            Err(e) => {
                tracing::warn!(error = %e, "the application's answer could not be used");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the server could not answer\n",
                )
                    .into_response()
            }
        }
    }
}

enum Target {
    Endpoint(String),
    Session(String),
}

async fn on_endpoint(
    State(endpoint): State<WhipEndpoint>,
    Path(stream): Path<String>,
    OriginalUri(uri): OriginalUri,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = uri.path().to_owned();
    endpoint
        .serve(
            parts.method,
            path,
            Target::Endpoint(stream),
            parts.headers,
            body,
        )
        .await
}

async fn on_session(
    State(endpoint): State<WhipEndpoint>,
    Path((_stream, session)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = uri.path().to_owned();
    endpoint
        .serve(
            parts.method,
            path,
            Target::Session(session),
            parts.headers,
            body,
        )
        .await
}

fn into_axum(response: http::Response<String>) -> Response {
    response.map(Body::from)
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs the endpoint's timers until the endpoint is dropped.
async fn tick(shared: Weak<Shared>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let handle = WhipEndpoint { shared };
        let mut endpoint = handle.lock();
        endpoint.handle_timeout(Instant::now());
        handle.forward_events(&mut endpoint);
    }
}
