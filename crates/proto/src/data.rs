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
    /// `true`: the sender's direct and TURN paths failed and it is moving to the server's
    /// relay; the receiver follows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relay: bool,
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
    /// A pair room that fell back to the server's relay: the sender's relayed channel is open
    /// (`reply: false`, to be answered) or this answers one (`reply: true`). The relay drops
    /// messages for someone not yet connected to it, so each side counts the conversation as
    /// connected only once it has heard from the other.
    RelayHello {
        /// Whether this answers the other side's hello.
        reply: bool,
    },
    /// The sender's side of the call: sent whenever it changes and each time the channel opens.
    #[serde(rename_all = "camelCase")]
    CallState {
        /// Whether the sender is in the call (also while all its devices are off).
        in_call: bool,
        /// The sender's microphone.
        mic: MicState,
        /// Whether the sender's camera is sending.
        camera: bool,
        /// Whether the sender is sharing its screen.
        screen: bool,
        /// The `MediaStream` id (the SDP `msid` stream) that carries the screen share, so the
        /// receiver tells it from the camera. Present only while `screen` is true.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        screen_stream: Option<String>,
    },
}

/// A microphone's state in a call (`call-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MicState {
    /// Sending sound.
    On,
    /// Captured but muted: the track sends silence.
    Muted,
    /// No microphone in use (never turned on, refused, or missing).
    Off,
}

/// Why a file offer was declined (`file-decline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeclineReason {
    /// The person chose not to take it.
    Declined,
    /// Larger than the room's `maxFileBytes`.
    TooLarge,
    /// The receiving browser has no storage space for it.
    NoSpace,
    /// The receiver has too many unfinished offers, or got too many offers at once.
    Busy,
}

/// Why a transfer ended early (`file-cancel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CancelReason {
    /// A person cancelled it.
    Cancelled,
    /// All bytes arrived but their SHA-256 did not match the offer; the receiver deleted them.
    Corrupt,
    /// Storing or reading failed, or the other side broke the protocol.
    Failed,
}

/// A control message on the `files` data channel (negotiated, id 1, reliable and ordered). Chunks
/// travel on the same channel as binary messages; see [`parse_chunk_header`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FileMessage {
    /// The sender offers a file. Sent again, with the same id, whenever the channel reopens
    /// while the transfer is unfinished: the receiver answers where to continue from.
    FileOffer {
        /// Transfer id: 16 URL-safe characters, also the first bytes of every chunk.
        id: String,
        /// Sanitised file name (1–200 characters, no path, control or text-direction characters).
        name: String,
        /// Size in bytes.
        size: u64,
        /// Declared MIME type (`type/subtype`, lowercase), or empty. Receivers never trust it to
        /// decide how to render the file.
        mime: String,
        /// SHA-256 of the whole file, 64 lowercase hex digits.
        sha256: String,
        /// When it was offered, in milliseconds since the Unix epoch, by the sender's clock.
        #[serde(rename = "sentAt")]
        sent_at: u64,
    },
    /// The receiver wants the chunks from index `from` on (0 for a new transfer; the number of
    /// chunks already stored when resuming).
    FileAccept {
        /// Transfer id.
        id: String,
        /// First chunk to send.
        from: u64,
    },
    /// The receiver will not take the file.
    FileDecline {
        /// Transfer id.
        id: String,
        /// Why.
        reason: DeclineReason,
    },
    /// Either side ends the transfer; the receiver deletes what it stored.
    FileCancel {
        /// Transfer id.
        id: String,
        /// Why.
        reason: CancelReason,
    },
    /// The receiver has stored chunks `0..stored`; the sender may run ahead of this by a window.
    FileAck {
        /// Transfer id.
        id: String,
        /// Chunks stored so far.
        stored: u64,
    },
    /// The receiver has every chunk and the SHA-256 matched: the transfer is done.
    FileComplete {
        /// Transfer id.
        id: String,
    },
}

/// Bytes of a transfer id at the start of a chunk.
pub const FILE_ID_LEN: usize = 16;
/// Bytes before a chunk's payload: the transfer id, then the chunk index as a big-endian u32.
pub const FILE_CHUNK_HEADER_BYTES: usize = FILE_ID_LEN + 4;

/// A chunk's header: which transfer and which chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader<'a> {
    /// The transfer id (16 URL-safe ASCII characters).
    pub id: &'a str,
    /// The chunk's index; its payload belongs at byte `seq * FILE_CHUNK_BYTES` of the file.
    pub seq: u32,
    /// The payload.
    pub payload: &'a [u8],
}

/// Reads a binary chunk; `None` if it is shorter than a header plus one byte, carries more than
/// [`crate::limits::FILE_CHUNK_BYTES`] of payload, or its id is not 16 URL-safe characters.
pub fn parse_chunk_header(chunk: &[u8]) -> Option<ChunkHeader<'_>> {
    let payload = chunk.get(FILE_CHUNK_HEADER_BYTES..)?;
    if payload.is_empty() || payload.len() > crate::limits::FILE_CHUNK_BYTES {
        return None;
    }
    let id = std::str::from_utf8(&chunk[..FILE_ID_LEN]).ok()?;
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let seq = u32::from_be_bytes(
        chunk[FILE_ID_LEN..FILE_CHUNK_HEADER_BYTES]
            .try_into()
            .ok()?,
    );
    Some(ChunkHeader { id, seq, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_state_without_a_screen_omits_the_stream_and_bad_states_are_refused() {
        let state = DataMessage::CallState {
            in_call: true,
            mic: MicState::Muted,
            camera: false,
            screen: false,
            screen_stream: None,
        };
        assert_eq!(
            serde_json::to_string(&state).ok().as_deref(),
            Some(
                r#"{"type":"call-state","inCall":true,"mic":"muted","camera":false,"screen":false}"#
            )
        );
        for bad in [
            r#"{"type":"call-state","inCall":true,"mic":"loud","camera":false,"screen":false}"#,
            r#"{"type":"call-state","inCall":"yes","mic":"on","camera":false,"screen":false}"#,
            r#"{"type":"call-state","mic":"on","camera":false,"screen":false}"#,
        ] {
            assert!(serde_json::from_str::<DataMessage>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_chunk_header_is_read_and_bad_chunks_are_refused() {
        let mut chunk = b"AbCdEfGhIjKlMnOp".to_vec();
        chunk.extend_from_slice(&70_000_u32.to_be_bytes());
        chunk.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            parse_chunk_header(&chunk),
            Some(ChunkHeader {
                id: "AbCdEfGhIjKlMnOp",
                seq: 70_000,
                payload: &[1, 2, 3]
            })
        );
        assert_eq!(parse_chunk_header(&chunk[..FILE_CHUNK_HEADER_BYTES]), None);
        let mut bad_id = chunk.clone();
        bad_id[3] = b' ';
        assert_eq!(parse_chunk_header(&bad_id), None);
        let mut too_long = chunk[..FILE_CHUNK_HEADER_BYTES].to_vec();
        too_long.resize(
            FILE_CHUNK_HEADER_BYTES + crate::limits::FILE_CHUNK_BYTES + 1,
            0,
        );
        assert_eq!(parse_chunk_header(&too_long), None);
    }
}
