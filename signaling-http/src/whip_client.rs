//! A WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) client for Rust publishers and players,
//! on [reqwest]: the async driver of the sans-IO
//! [`ClientSession`].
//!
//! [`WhipClient::publish`] `POST`s an SDP offer to a WHIP endpoint and returns the
//! [`Session`]; [`WhipClient::play`] does the same for a WHEP endpoint, where the server may
//! answer with its own offer ([`Play::CounterOffer`]). A session trickles candidates, restarts
//! ICE and is deleted with its methods. Every rule of the protocol (redirects, entity-tags,
//! buffered candidates, typed refusals) is the core session's; this module sends its requests
//! one at a time, in order, and hands the responses back.
//!
//! ```no_run
//! use signaling_core::candidate::Candidate;
//! use signaling_http::whip_client::{WhipClient, WhipClientConfig};
//!
//! # async fn run(offer: &str, candidate: Candidate) -> Result<(), Box<dyn std::error::Error>> {
//! let client = WhipClient::new(WhipClientConfig::default())?;
//! let mut session = client.publish("https://example.com/whip/cam", offer).await?;
//! let answer = session.answer(); // to the WebRTC stack
//! session.trickle(candidate).await?;
//! session.end_of_candidates().await?;
//! // ...
//! session.delete().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Bounds
//!
//! Each request has [`WhipClientConfig::request_timeout`] (connect, send and read the whole
//! answer) and [`WhipClientConfig::connect_timeout`]; a response body is read up to the core's
//! [`ClientConfig::max_body_len`]. Redirects are the core's (at most
//! [`ClientConfig::max_redirects`], only for the offer, never from `https` to `http`);
//! reqwest's own redirect handling is off.
use std::time::{Duration, SystemTime};

use signaling_core::candidate::Candidate;
use signaling_core::whip::client::{
    ClientConfig, ClientError, ClientEvent, ClientSession, RemoteIce, ResponseError, Url,
};
use signaling_core::whip::Protocol;
use signaling_core::wire::IceServer;

/// Settings of a [`WhipClient`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WhipClientConfig {
    /// The session settings (bearer token, bounds). Its protocol is set by
    /// [`WhipClient::publish`] (WHIP) or [`WhipClient::play`] (WHEP).
    pub session: ClientConfig,
    /// The whole of one request: connecting, sending, and reading the answer. Default: 10 s.
    pub request_timeout: Duration,
    /// Connecting (TCP and TLS). Default: 5 s.
    pub connect_timeout: Duration,
}

impl Default for WhipClientConfig {
    fn default() -> Self {
        Self {
            session: ClientConfig::whip(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl WhipClientConfig {
    /// Sets the bearer token sent with every request.
    pub fn with_bearer_token(mut self, token: Option<String>) -> Self {
        self.session.bearer_token = token;
        self
    }

    /// Sets the timeout of one request.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint URL is not a URL.
    #[error("the endpoint URL is not valid: {0}")]
    Url(#[from] url::ParseError),
    /// The call cannot be made in the session's state, or with these arguments.
    #[error(transparent)]
    Usage(#[from] ClientError),
    /// The server refused the request, or answered what cannot be used; see
    /// [`ResponseError::retry_after`] for `409` and `503`.
    #[error(transparent)]
    Refused(ResponseError),
    /// No response: connecting, TLS, sending or reading failed, or the request timed out.
    #[error("HTTP request failed: {0}")]
    Http(#[source] reqwest::Error),
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built: {0}")]
    Build(#[source] reqwest::Error),
}

impl Error {
    /// The server's refusal, if that is what this is.
    pub fn refusal(&self) -> Option<&ResponseError> {
        match self {
            Error::Refused(e) => Some(e),
            _ => None,
        }
    }
}

/// A WHIP/WHEP client: an HTTP connection pool and settings. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WhipClient {
    http: reqwest::Client,
    config: WhipClientConfig,
}

impl WhipClient {
    /// A client with `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Build`] when reqwest cannot set up TLS.
    pub fn new(config: WhipClientConfig) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(Error::Build)?;
        Ok(Self { http, config })
    }

    /// Publishes: `POST`s `offer` to the WHIP endpoint at `endpoint` and returns the session
    /// the server created, with its answer.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] with the server's refusal (`409`, `503` with their `Retry-After`),
    /// [`Error::Http`] when no answer came, [`Error::Usage`] for an offer that is not usable,
    /// [`Error::Url`].
    pub async fn publish(&self, endpoint: &str, offer: &str) -> Result<Session, Error> {
        match self.post(Protocol::Whip, endpoint, offer).await? {
            Play::Answered(session) => Ok(session),
            // The core reads a counter-offer only from a WHEP endpoint.
            Play::CounterOffer(_) => Err(Error::Refused(ResponseError::UnexpectedStatus(
                http::StatusCode::NOT_ACCEPTABLE,
            ))),
        }
    }

    /// Plays: `POST`s `offer` to the WHEP endpoint at `endpoint`. The server either answers
    /// ([`Play::Answered`]) or sends its own offer ([`Play::CounterOffer`]), to answer with
    /// [`CounterOffer::answer`].
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish); a `409` means the stream is not live yet: try again
    /// after its [`ResponseError::retry_after`].
    pub async fn play(&self, endpoint: &str, offer: &str) -> Result<Play, Error> {
        self.post(Protocol::Whep, endpoint, offer).await
    }

    async fn post(&self, protocol: Protocol, endpoint: &str, offer: &str) -> Result<Play, Error> {
        let mut config = self.config.session.clone();
        config.protocol = protocol;
        let endpoint = Url::parse(endpoint)?;
        let mut session = Session {
            http: self.http.clone(),
            core: ClientSession::new(config, endpoint),
        };
        session.core.offer(offer)?;
        for event in session.drive().await? {
            match event {
                ClientEvent::Answered { .. } => return Ok(Play::Answered(session)),
                ClientEvent::CounterOffer {
                    sdp, valid_until, ..
                } => {
                    return Ok(Play::CounterOffer(CounterOffer {
                        session,
                        sdp,
                        valid_until,
                    }))
                }
                _ => {}
            }
        }
        Err(Error::Refused(ResponseError::NoResponse))
    }
}

/// What a WHEP endpoint made of a player's offer.
#[derive(Debug)]
pub enum Play {
    /// It answered: the session exists.
    Answered(Session),
    /// It sent its own offer (`406`): answer it.
    CounterOffer(CounterOffer),
}

/// A WHEP server's counter-offer, waiting for the player's answer.
#[derive(Debug)]
pub struct CounterOffer {
    session: Session,
    sdp: String,
    valid_until: Option<SystemTime>,
}

impl CounterOffer {
    /// The server's SDP offer: give it to the WebRTC stack and create an answer.
    pub fn sdp(&self) -> &str {
        &self.sdp
    }

    /// Until when the server waits for the answer, if it said (the draft's default is 30 s).
    pub fn valid_until(&self) -> Option<SystemTime> {
        self.valid_until
    }

    /// The STUN/TURN servers the server handed out with it.
    pub fn ice_servers(&self) -> &[IceServer] {
        self.session.core.ice_servers()
    }

    /// Sends the player's SDP answer (a `PATCH` of the session); the session is established
    /// when the server takes it.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] (a `404` when the counter-offer expired), [`Error::Http`],
    /// [`Error::Usage`] for an answer that is not usable.
    pub async fn answer(mut self, answer: &str) -> Result<Session, Error> {
        self.session.core.answer_counter_offer(answer)?;
        for event in self.session.drive().await? {
            if event == ClientEvent::CounterAnswered {
                return Ok(self.session);
            }
        }
        Err(Error::Refused(ResponseError::NoResponse))
    }
}

/// One WHIP or WHEP session: trickle, restart ICE, delete.
///
/// Methods take `&mut self`: one request at a time, in order. Dropping a session does not
/// delete it on the server: call [`delete`](Self::delete) (the server also ends it when ICE
/// consent expires).
#[derive(Debug)]
pub struct Session {
    http: reqwest::Client,
    core: ClientSession,
}

impl Session {
    /// The server's SDP answer (after a WHEP counter-offer: the server's offer).
    pub fn answer(&self) -> &str {
        self.core.answer().unwrap_or_default()
    }

    /// The session URL.
    pub fn url(&self) -> Option<&Url> {
        self.core.session_url()
    }

    /// The STUN/TURN servers of the server's `Link` headers.
    pub fn ice_servers(&self) -> &[IceServer] {
        self.core.ice_servers()
    }

    /// The current ICE session's entity-tag, if the server sent one.
    pub fn etag(&self) -> Option<&str> {
        self.core.etag()
    }

    /// The sans-IO session underneath, to read its state.
    pub fn core(&self) -> &ClientSession {
        &self.core
    }

    /// Sends a local candidate in a trickle `PATCH`.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`]: [`ResponseError::StaleEtag`] means the session needs
    /// [`restart_ice`](Self::restart_ice) before more candidates; [`Error::Usage`] after
    /// end-of-candidates or for a candidate of another ICE session; [`Error::Http`].
    pub async fn trickle(&mut self, candidate: Candidate) -> Result<(), Error> {
        self.core.add_local_candidate(candidate)?;
        self.drive().await.map(drop)
    }

    /// Says there are no more local candidates (`a=end-of-candidates`).
    ///
    /// # Errors
    ///
    /// As [`trickle`](Self::trickle).
    pub async fn end_of_candidates(&mut self) -> Result<(), Error> {
        self.core.end_of_candidates()?;
        self.drive().await.map(drop)
    }

    /// Restarts ICE with the local agent's new credentials and candidates (`end` when that is
    /// all of them), and returns the server's new ICE credentials and candidates, which
    /// replace every earlier remote candidate.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] when the server could not restart (the session keeps its ICE
    /// session on the server; restart again or delete), [`Error::Http`], [`Error::Usage`].
    pub async fn restart_ice(
        &mut self,
        ufrag: &str,
        pwd: &str,
        candidates: Vec<Candidate>,
        end: bool,
    ) -> Result<RemoteIce, Error> {
        self.core.restart_ice(ufrag, pwd, candidates, end)?;
        let mut restarted = None;
        for event in self.drive().await? {
            if let ClientEvent::IceRestarted(ice) = event {
                restarted = Some(ice);
            }
        }
        restarted.ok_or(Error::Refused(ResponseError::NoResponse))
    }

    /// Ends the session: `DELETE`. A `404` counts as done (the session was gone already).
    ///
    /// # Errors
    ///
    /// [`Error::Refused`], [`Error::Http`]; the session can be deleted again after either.
    pub async fn delete(&mut self) -> Result<(), Error> {
        self.core.delete()?;
        self.drive().await.map(drop)
    }

    /// Sends every request the core has, one at a time, and returns the events; the first
    /// failure becomes the error.
    async fn drive(&mut self) -> Result<Vec<ClientEvent>, Error> {
        let mut events = Vec::new();
        let mut transport = None;
        while let Some(transmit) = self.core.poll_transmit() {
            let max = self.core.config().max_body_len;
            match send(&self.http, transmit.request, max).await {
                Ok(response) => self.core.handle_response(transmit.id, &response),
                Err(e) => {
                    self.core.handle_failure(transmit.id);
                    transport.get_or_insert(e);
                }
            }
            events.extend(std::iter::from_fn(|| self.core.poll_event()));
        }
        for event in &events {
            if let ClientEvent::Failed { error, .. } = event {
                return Err(match (error, transport) {
                    (ResponseError::NoResponse, Some(e)) => Error::Http(e),
                    (error, _) => Error::Refused(error.clone()),
                });
            }
        }
        Ok(events)
    }
}

/// Sends one request and reads its answer, the body up to `max` bytes (and one more, so that
/// the core sees a body over the bound).
async fn send(
    http: &reqwest::Client,
    request: http::Request<String>,
    max: usize,
) -> Result<http::Response<Vec<u8>>, reqwest::Error> {
    let request = reqwest::Request::try_from(request)?;
    let mut response = http.execute(request).await?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = (max + 1).saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() > max {
            break;
        }
    }
    let mut out = http::Response::new(body);
    *out.status_mut() = response.status();
    *out.headers_mut() = std::mem::take(response.headers_mut());
    Ok(out)
}
