//! Peer-to-peer messages: what browsers put in a `signal` payload, and what they send each other
//! on the `chat` data channel. The server never parses these (signal payloads are relayed as
//! opaque JSON); they live here so a non-browser peer can implement them from one place.

use serde::{Deserialize, Serialize};

/// Longest chat text, in Unicode scalar values.
pub const CHAT_TEXT_MAX_CHARS: usize = 10_000;

/// A WebRTC session description, as `RTCSessionDescriptionInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    /// `offer`, `answer`, `pranswer` or `rollback`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The SDP text.
    #[serde(default)]
    pub sdp: String,
}

/// An ICE candidate, as `RTCIceCandidateInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The candidate line; empty for end-of-candidates.
    pub candidate: String,
    /// Media stream identification tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// Index of the m-line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    /// ICE username fragment this candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// The payload of a `signal` between two browsers in a pair room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalPayload {
    /// Random id of the sender's `RTCPeerConnection`. A new value means the sender started over
    /// (for example after a reload): the receiver discards its connection and answers afresh.
    pub conn: String,
    /// An offer or answer (perfect negotiation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<SessionDescription>,
    /// A trickled ICE candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<IceCandidate>,
}

/// A message on the `chat` data channel (negotiated, id 0, reliable and ordered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DataMessage {
    /// A chat message.
    Chat {
        /// Sender-chosen unique id (8–64 URL-safe characters): receivers acknowledge it and drop
        /// a second copy of the same id, so re-sending after a reconnect never duplicates.
        id: String,
        /// The text, 1 to [`CHAT_TEXT_MAX_CHARS`] characters; shown as plain text, never as HTML.
        text: String,
        /// When it was sent, in milliseconds since the Unix epoch, by the sender's clock.
        #[serde(rename = "sentAt")]
        sent_at: u64,
    },
    /// The receiver has the chat message with this id (sent for every copy received).
    Ack {
        /// The acknowledged message's id.
        id: String,
    },
    /// The sender is typing (`true`, repeated at most every few seconds) or stopped (`false`).
    Typing {
        /// Whether the sender is typing now.
        active: bool,
    },
}
