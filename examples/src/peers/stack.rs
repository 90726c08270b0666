//! What the signaling side of a peer needs from a WebRTC stack, whichever it is: a handle that
//! takes commands (create an offer, apply a remote description, add a candidate, ...) and gives
//! events (a local candidate, a channel opened, a message, ...). Each stack runs in a task of
//! its own behind such a handle, so the peer that drives it is the same code for both stacks.
use std::fmt;

use signaling_core::wire::{IceCandidate, SdpKind};
use tokio::sync::{mpsc, oneshot};

/// A stack could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackError {
    /// Which stack (`str0m` or `webrtc-rs`).
    pub stack: &'static str,
    /// What failed, as the stack reported it.
    pub message: String,
}

impl StackError {
    pub(crate) fn new(stack: &'static str, message: impl fmt::Display) -> Self {
        Self {
            stack,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stack, self.message)
    }
}

impl std::error::Error for StackError {}

/// What a stack reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackEvent {
    /// A local ICE candidate to trickle to the peer.
    LocalCandidate(IceCandidate),
    /// Gathering finished for the current local ICE generation.
    EndOfCandidates,
    /// ICE and DTLS are up (or up again after a restart).
    Connected,
    /// ICE lost the peer.
    Disconnected,
    /// A data channel opened (ours or the peer's).
    ChannelOpen(String),
    /// A message arrived on a data channel.
    Message {
        /// The channel's label.
        label: String,
        /// The message.
        data: Vec<u8>,
    },
    /// The peer's description added a media section, or media arrived on one.
    Media {
        /// The section's `mid`.
        mid: String,
        /// `audio` or `video`.
        kind: String,
        /// RTP payloads received on it so far (0 when it was just negotiated).
        packets: u64,
    },
}

/// A command to a stack's task.
pub(crate) enum StackCommand {
    /// Create an offer with every pending change (channels, media, ICE restart) and set it as
    /// the local description; reply with its SDP.
    CreateOffer(oneshot::Sender<Result<String, StackError>>),
    /// Apply a remote description; for an offer, create and set the answer and reply with it.
    ApplyRemote(
        SdpKind,
        String,
        oneshot::Sender<Result<Option<String>, StackError>>,
    ),
    /// Abandon the local offer.
    Rollback(oneshot::Sender<Result<(), StackError>>),
    /// Add a remote candidate.
    AddRemoteCandidate(IceCandidate, oneshot::Sender<Result<(), StackError>>),
    /// Restart ICE with the next offer.
    RestartIce(oneshot::Sender<Result<(), StackError>>),
    /// Open a data channel (negotiated with the next offer if the call has none yet).
    OpenChannel(String, oneshot::Sender<Result<(), StackError>>),
    /// Add a media section that sends audio (negotiated with the next offer).
    AddAudio(oneshot::Sender<Result<(), StackError>>),
    /// Send a message on an open data channel.
    Send(String, Vec<u8>, oneshot::Sender<Result<(), StackError>>),
    /// Whether changes wait for an offer (after a rollback gave them back, say).
    HasChanges(oneshot::Sender<Result<bool, StackError>>),
}

/// The handle on a stack's task.
#[derive(Debug)]
pub struct StackHandle {
    name: &'static str,
    commands: mpsc::Sender<StackCommand>,
    events: mpsc::Receiver<StackEvent>,
}

impl StackHandle {
    pub(crate) fn new(
        name: &'static str,
        commands: mpsc::Sender<StackCommand>,
        events: mpsc::Receiver<StackEvent>,
    ) -> Self {
        Self {
            name,
            commands,
            events,
        }
    }

    /// Which stack this is.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The stack's next event; `None` once its task ended.
    pub async fn next_event(&mut self) -> Option<StackEvent> {
        self.events.recv().await
    }

    async fn call<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<R, StackError>>) -> StackCommand,
    ) -> Result<R, StackError> {
        let (tx, rx) = oneshot::channel();
        let gone = || StackError::new(self.name, "the stack's task ended");
        self.commands.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Creates an offer with every pending change and sets it locally; its SDP.
    pub async fn create_offer(&self) -> Result<String, StackError> {
        self.call(StackCommand::CreateOffer).await
    }

    /// Applies a remote description; for an offer, the answer that was set locally.
    pub async fn apply_remote(
        &self,
        kind: SdpKind,
        sdp: String,
    ) -> Result<Option<String>, StackError> {
        self.call(|tx| StackCommand::ApplyRemote(kind, sdp, tx))
            .await
    }

    /// Abandons the local offer.
    pub async fn rollback(&self) -> Result<(), StackError> {
        self.call(StackCommand::Rollback).await
    }

    /// Adds a remote candidate.
    pub async fn add_remote_candidate(&self, candidate: IceCandidate) -> Result<(), StackError> {
        self.call(|tx| StackCommand::AddRemoteCandidate(candidate, tx))
            .await
    }

    /// Restarts ICE with the next offer.
    pub async fn restart_ice(&self) -> Result<(), StackError> {
        self.call(StackCommand::RestartIce).await
    }

    /// Opens a data channel.
    pub async fn open_channel(&self, label: &str) -> Result<(), StackError> {
        self.call(|tx| StackCommand::OpenChannel(label.to_owned(), tx))
            .await
    }

    /// Adds a media section that sends audio.
    pub async fn add_audio(&self) -> Result<(), StackError> {
        self.call(StackCommand::AddAudio).await
    }

    /// Whether changes wait for an offer.
    pub async fn has_changes(&self) -> Result<bool, StackError> {
        self.call(StackCommand::HasChanges).await
    }

    /// Sends a message on an open data channel.
    pub async fn send(&self, label: &str, data: Vec<u8>) -> Result<(), StackError> {
        self.call(|tx| StackCommand::Send(label.to_owned(), data, tx))
            .await
    }
}
