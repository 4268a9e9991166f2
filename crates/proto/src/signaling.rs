//! Signaling messages: JSON text frames on the WebSocket at `/ws`.
//!
//! Every message is an object with a `type` field. Unknown fields are ignored (so later minor
//! additions stay compatible); unknown types from the client get a `bad-message` error.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{DisplayName, IdError, OwnerSecret, PeerId, PeerSecret, RoomId, RoomName};
use crate::pow::Proof;

/// A message from a client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMessage {
    /// First message on every socket: the protocol version the client speaks.
    Hello {
        /// Must equal [`crate::limits::PROTOCOL_VERSION`].
        version: u32,
    },
    /// Enter a room (creating it if nobody is in it).
    Join {
        /// The room to enter.
        room: RoomId,
        /// The client's own, persistent id, derived from the `peerSecret` it sends with it.
        /// Rejoining with the same id within the grace period resumes the previous place instead
        /// of announcing a new person.
        peer: PeerId,
        /// The name others see.
        name: DisplayName,
        /// The kind of room to create if nobody is in it; an existing room keeps its kind (which
        /// `welcome` reports). Pair when absent.
        #[serde(default, skip_serializing_if = "RoomKind::is_pair")]
        kind: RoomKind,
        /// The proof of work and the owner secret.
        #[serde(flatten)]
        admission: Admission,
    },
    /// Enter the group room with this name, creating it (and the name) if needed. The server keeps
    /// the name's room id for 30 days after its last use.
    JoinNamed {
        /// The room's name; normalised by the server (see [`RoomName`]).
        #[serde(rename = "roomName")]
        room_name: RoomName,
        /// As in `join`.
        peer: PeerId,
        /// As in `join`.
        name: DisplayName,
        /// As in `join`.
        #[serde(flatten)]
        admission: Admission,
    },
    /// Owner only: remove someone from the room. They may come back.
    Kick {
        /// Who.
        peer: PeerId,
    },
    /// Owner only: remove someone and refuse their peer id, and any peer from their address, for
    /// as long as the room exists.
    Ban {
        /// Who.
        peer: PeerId,
    },
    /// Owner only: lock or unlock the room. A locked room lets nobody new in; the people in it when
    /// it was locked may come back while it stays locked.
    Lock {
        /// True to lock.
        locked: bool,
    },
    /// Owner only, group rooms: the most people the room may hold, at least 2 and at most the
    /// server's group capacity. Nobody is removed when it is below the number present.
    SetCapacity {
        /// The new capacity.
        capacity: u32,
    },
    /// Allow or forbid `@luna` in this room: the owner's choice in group rooms, either person's
    /// in pair rooms. Everyone gets `room-state`.
    LunaAllow {
        /// True to allow.
        allowed: bool,
    },
    /// Ask the assistant: a chat message that mentions `@luna`, with the messages before it that
    /// the asker's browser shows (at most [`crate::limits::LUNA_CONTEXT_MESSAGES`], oldest first).
    /// Everyone in the room gets the reply as `luna` messages.
    LunaAsk {
        /// The chat message's id (as on the `chat` data channel), so replies can refer to it.
        id: String,
        /// The message's text.
        text: String,
        /// The earlier messages the asker sees, oldest first.
        #[serde(default)]
        context: Vec<LunaTurn>,
    },
    /// Owner only: make someone else the owner. They receive a new owner secret; this one stops
    /// working.
    HandOver {
        /// The new owner.
        peer: PeerId,
    },
    /// Change the name others see.
    Rename {
        /// The new name.
        name: DisplayName,
    },
    /// Relay an opaque payload (SDP or ICE candidate) to one other peer in the room.
    Signal {
        /// The recipient.
        to: PeerId,
        /// Relayed as-is; the server never inspects or stores it.
        payload: Value,
    },
    /// Leave the room now; the others are told at once.
    Leave,
    /// Application-level keepalive; the server answers `pong`.
    Ping,
    /// Group rooms: an SDP offer for this browser's one connection to the server's SFU, with the
    /// sources of the tracks it sends. Sent for the first connection and again after every change
    /// (a device on or off, more receive slots); the server answers `sfu-answer`.
    SfuOffer {
        /// The offer's SDP.
        sdp: String,
        /// What this browser publishes, by the `mid` of its transceiver. Only sources that are
        /// on; a source missing here is off and is taken out of everyone's view.
        tracks: Vec<PublishedTrack>,
    },
}

/// What a `join` or `join-named` shows to be let in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    /// The secret the `peer` id is derived from: the proof that this browser is that person.
    /// Required; a join without it, or with one that does not give the id, is refused
    /// (`peer-unproven`).
    #[serde(
        default,
        rename = "peerSecret",
        skip_serializing_if = "Option::is_none"
    )]
    pub peer_secret: Option<PeerSecret>,
    /// The solved `challenge`; required unless the server's difficulty is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Proof>,
    /// The room's owner secret, if this browser holds one: presenting it makes this peer the
    /// owner, and lets it in past a lock or a ban.
    #[serde(
        default,
        rename = "ownerSecret",
        skip_serializing_if = "Option::is_none"
    )]
    pub owner_secret: Option<OwnerSecret>,
}

/// One message of the assistant's context, as the asker's browser shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LunaTurn {
    /// The message's id, which lets the server keep each message once.
    pub id: String,
    /// Who wrote it, as shown.
    pub author: DisplayName,
    /// What it says.
    pub text: String,
    /// True for the assistant's own earlier replies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub luna: bool,
}

/// What a room's people need to know of the assistant; present only when the server has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LunaInfo {
    /// The model the server asks.
    pub model: String,
    /// Where the model runs: the host (and port) of the server's model endpoint.
    pub host: String,
    /// True when this room allows `@luna`.
    pub allowed: bool,
}

/// Why a reply from the assistant failed; the reply's text says so in a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LunaFailure {
    /// The model's server could not be reached.
    Unreachable,
    /// The model took too long.
    Timeout,
    /// The room had its replies for this hour.
    RateCapped,
    /// The model's server answered with an error.
    ModelError,
    /// The assistant is still answering an earlier question in this room.
    Busy,
}

/// Where a published track comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MediaSource {
    /// The microphone (audio).
    Microphone,
    /// The camera (video).
    Camera,
    /// A shared screen or window (video).
    Screen,
}

impl MediaSource {
    /// True for the video sources.
    pub fn is_video(self) -> bool {
        !matches!(self, Self::Microphone)
    }
}

/// One track a browser sends to the SFU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedTrack {
    /// The `mid` of the transceiver in the offer that carries it.
    pub mid: String,
    /// What it is.
    pub source: MediaSource,
}

/// One track the SFU forwards to a browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedTrack {
    /// The `mid` of the browser's receiving transceiver.
    pub mid: String,
    /// Whose track it is.
    pub peer: PeerId,
    /// What it is.
    pub source: MediaSource,
    /// True while the server holds this video back because the receiver's estimated bandwidth
    /// cannot carry it; it resumes, with a keyframe, when the estimate recovers.
    pub paused: bool,
}

/// Receive slots a browser must add (as `recvonly` transceivers, then a new `sfu-offer`) before
/// the SFU can forward everything there is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackNeed {
    /// More audio slots needed.
    pub audio: u32,
    /// More video slots needed.
    pub video: u32,
}

/// Why a peer is no longer in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaveReason {
    /// The peer said `leave` or closed its page.
    Left,
    /// The peer's connection dropped and it did not come back within the grace period.
    TimedOut,
    /// The owner removed the peer.
    Kicked,
    /// The owner banned the peer.
    Banned,
}

/// The kind of a room, which decides its transport and capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoomKind {
    /// Two people, browser to browser.
    #[default]
    Pair,
    /// Up to the server's group capacity (32 by default); media and data go through the server's
    /// SFU, which forwards and never stores.
    Group,
}

impl RoomKind {
    /// True for pair rooms (the default kind).
    pub fn is_pair(&self) -> bool {
        matches!(self, Self::Pair)
    }
}

/// Someone in the room, as listed in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Their peer id.
    pub peer: PeerId,
    /// Their display name.
    pub name: DisplayName,
}

/// The default of a permission that is sent only when withheld.
fn allowed() -> bool {
    true
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_allowed(value: &bool) -> bool {
    *value
}

/// An ICE server entry in the shape of WebRTC's `RTCIceServer`, handed to the browser as-is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` or `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN user name, if the server needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential, if the server needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A message from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    /// Answer to the client's `hello`.
    Hello {
        /// The protocol version the server speaks.
        version: u32,
        /// Server software and version, for diagnostics.
        server: String,
    },
    /// The client is in the room.
    Welcome {
        /// The room entered.
        room: RoomId,
        /// The client's own peer id, echoed.
        peer: PeerId,
        /// The room's kind.
        kind: RoomKind,
        /// How many people the room holds.
        capacity: u32,
        /// Everyone else present, in order of arrival.
        peers: Vec<PeerInfo>,
        /// ICE servers for `RTCPeerConnection`.
        #[serde(rename = "iceServers")]
        ice_servers: Vec<IceServer>,
        /// True when this join took over a place kept during the reconnect grace period.
        resumed: bool,
        /// Largest file, in bytes, that people in this room may send each other (the server's
        /// policy; browsers refuse to offer or accept larger files).
        #[serde(rename = "maxFileBytes")]
        max_file_bytes: u64,
        /// The room's owner, if one has been set (`null` otherwise); they may not be present.
        owner: Option<PeerId>,
        /// True while the room lets nobody new in.
        locked: bool,
        /// Only to the peer this join made the owner of a new room: the secret that makes it owner
        /// again when it rejoins. Keep it; it is never sent again.
        #[serde(
            default,
            rename = "ownerSecret",
            skip_serializing_if = "Option::is_none"
        )]
        owner_secret: Option<OwnerSecret>,
        /// The name, for a room entered by `join-named`.
        #[serde(default, rename = "roomName", skip_serializing_if = "Option::is_none")]
        room_name: Option<RoomName>,
        /// The assistant, if this server has one. (Boxed: it would make every message larger.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        luna: Option<Box<LunaInfo>>,
        /// False (and only then present) in a pair room on a server that does not relay pair
        /// rooms whose direct and TURN paths fail (`--pair-server-relay false`).
        #[serde(
            default = "allowed",
            rename = "pairRelay",
            skip_serializing_if = "is_allowed"
        )]
        pair_relay: bool,
    },
    /// A proof-of-work challenge to solve before `join` or `join-named`. Sent after `hello` and
    /// after every refused join; each token works once and expires after a minute.
    Challenge {
        /// Opaque; send it back unchanged in `proof.challenge`.
        token: String,
        /// Average number of hashes a solution takes (see [`crate::pow`]).
        difficulty: u64,
    },
    /// The room's rules changed: sent to everyone after a lock, a capacity change or a new owner.
    RoomState {
        /// The owner.
        owner: Option<PeerId>,
        /// True while the room lets nobody new in.
        locked: bool,
        /// The most people the room holds.
        capacity: u32,
        /// Whether the room allows `@luna`; absent when the server has no assistant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        luna: Option<bool>,
    },
    /// A piece of the assistant's reply, sent to everyone in the room as the model writes it.
    /// The pieces of one reply share `reply`; the last has `done: true`.
    Luna {
        /// The reply's id.
        reply: String,
        /// The id of the message it answers.
        question: String,
        /// The next piece of text (may be empty in the last message).
        text: String,
        /// True for the last piece.
        done: bool,
        /// Set when the reply failed; `text` then says why, in a sentence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<LunaFailure>,
    },
    /// To a peer just made owner by `hand-over`: its owner secret, to keep.
    OwnerSecret {
        /// The secret.
        secret: OwnerSecret,
    },
    /// Someone new entered the room.
    PeerJoined {
        /// Their peer id.
        peer: PeerId,
        /// Their display name.
        name: DisplayName,
    },
    /// Someone is no longer in the room.
    PeerLeft {
        /// Their peer id.
        peer: PeerId,
        /// Why.
        reason: LeaveReason,
    },
    /// Someone changed their name.
    PeerRenamed {
        /// Their peer id.
        peer: PeerId,
        /// The new name.
        name: DisplayName,
    },
    /// A payload relayed from another peer.
    Signal {
        /// The sender.
        from: PeerId,
        /// Exactly what the sender put in its `signal`.
        payload: Value,
    },
    /// Answer to `ping`.
    Pong,
    /// Group rooms: the SFU's answer to `sfu-offer`.
    SfuAnswer {
        /// The answer's SDP.
        sdp: String,
    },
    /// Group rooms: what each of this browser's receive slots carries now, and how many more slots
    /// it needs. Sent after every answer and whenever someone's tracks change.
    SfuTracks {
        /// Every slot that carries a track; slots not listed are idle.
        tracks: Vec<ForwardedTrack>,
        /// Slots to add before everything can be forwarded.
        need: TrackNeed,
    },
    /// Group rooms: who is speaking loudest now (`null`: nobody), from the audio levels the
    /// browsers put in their packets.
    SfuSpeaker {
        /// The active speaker.
        peer: Option<PeerId>,
    },
    /// A request could not be carried out; the socket stays open unless a close follows.
    Error {
        /// Stable, machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation (English); clients show their own text for known codes.
        message: String,
        /// For `rate-limited`: milliseconds to wait before trying again.
        #[serde(
            default,
            rename = "retryAfterMs",
            skip_serializing_if = "Option::is_none"
        )]
        retry_after_ms: Option<u64>,
    },
}

/// Stable error codes carried by [`ServerMessage::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The client's `hello` named a version the server does not speak. The socket closes (4002).
    UnsupportedVersion,
    /// A message other than `hello` arrived before `hello`.
    HelloRequired,
    /// Not JSON, not an object, an unknown `type`, or a missing or mistyped field.
    BadMessage,
    /// The room id is not 22 URL-safe characters.
    InvalidRoomId,
    /// The peer id is not 16–64 URL-safe characters.
    InvalidPeerId,
    /// The name is empty, too long, or holds control or text-direction characters.
    InvalidName,
    /// The room already holds as many people as its capacity.
    RoomFull,
    /// `join` on a socket that is already in a room.
    AlreadyJoined,
    /// `rename`, `signal` or `leave` on a socket that is in no room.
    NotJoined,
    /// `signal` addressed to someone who is not in the room.
    UnknownPeer,
    /// The socket sent more messages than allowed; the message was dropped.
    RateLimited,
    /// Another socket joined with this peer id; this one is closed (4000).
    Replaced,
    /// The server is overloaded; try again shortly.
    ServerBusy,
    /// `sfu-offer` in a pair room on a server that keeps pair rooms browser to browser only
    /// (`--pair-server-relay false`).
    NotGroupRoom,
    /// The SFU could not use the offer (malformed SDP, an unknown `mid`, too many tracks).
    BadOffer,
    /// `join` without the `peerSecret` its peer id is derived from, or with another one.
    PeerUnproven,
    /// The connection would take its address past its share of the server's memory; the socket
    /// closes (4006).
    OverBudget,
    /// The room name breaks a rule; the message says which.
    InvalidRoomName,
    /// `join` without a `proof` of the server's challenge.
    ProofRequired,
    /// The proof's challenge is forged, expired or already used, or the number does not solve it.
    BadProof,
    /// `join-named` for a name nobody has yet, with a proof easier than a new name needs; the
    /// challenge that follows asks for enough.
    HarderProofRequired,
    /// The room is locked: nobody new may join.
    RoomLocked,
    /// The owner banned this peer or its address from the room. The socket closes (4005).
    Banned,
    /// The owner removed this peer from the room. The socket closes (4004).
    Kicked,
    /// Only the room's owner may do that.
    NotOwner,
    /// A capacity below 2, above the server's group capacity, or for a pair room.
    InvalidCapacity,
    /// `luna-allow` or `luna-ask` on a server that has no assistant.
    LunaUnavailable,
    /// `luna-ask` in a room that has not allowed `@luna`.
    LunaDisabled,
    /// Something went wrong on the server; the details are in its log.
    Internal,
}

impl ErrorCode {
    /// Every code, in the order `docs/protocol.md` lists them.
    pub const ALL: [ErrorCode; 29] = [
        Self::UnsupportedVersion,
        Self::HelloRequired,
        Self::BadMessage,
        Self::InvalidRoomId,
        Self::InvalidPeerId,
        Self::InvalidName,
        Self::RoomFull,
        Self::AlreadyJoined,
        Self::NotJoined,
        Self::UnknownPeer,
        Self::RateLimited,
        Self::Replaced,
        Self::ServerBusy,
        Self::NotGroupRoom,
        Self::BadOffer,
        Self::PeerUnproven,
        Self::OverBudget,
        Self::InvalidRoomName,
        Self::ProofRequired,
        Self::BadProof,
        Self::HarderProofRequired,
        Self::RoomLocked,
        Self::Banned,
        Self::Kicked,
        Self::NotOwner,
        Self::InvalidCapacity,
        Self::LunaUnavailable,
        Self::LunaDisabled,
        Self::Internal,
    ];

    /// A default English explanation for this code.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::UnsupportedVersion => "this server does not speak that protocol version",
            Self::HelloRequired => "send hello first",
            Self::BadMessage => "the message is not valid",
            Self::InvalidRoomId => "a room id is 22 characters of A-Z, a-z, 0-9, '-' and '_'",
            Self::InvalidPeerId => "a peer id is 16 to 64 characters of A-Z, a-z, 0-9, '-' and '_'",
            Self::InvalidName => {
                "a name is 1 to 48 characters, without control or text-direction characters"
            }
            Self::RoomFull => "this room is full",
            Self::AlreadyJoined => "this connection is already in a room",
            Self::NotJoined => "join a room first",
            Self::UnknownPeer => "that person is not in the room",
            Self::RateLimited => "too many messages; slow down",
            Self::Replaced => "you joined from another tab or connection",
            Self::ServerBusy => "the server is busy; try again shortly",
            Self::NotGroupRoom => "this server does not relay pair rooms through its media relay",
            Self::BadOffer => "the media relay could not use this offer",
            Self::OverBudget => "your address holds as much of the media relay as one address may",
            Self::PeerUnproven => {
                "a peer id is usable only with the peer secret it is derived from"
            }
            Self::InvalidRoomName => {
                "a room name is 3 to 40 letters, digits, '-', '_' and '.', beginning and ending with a letter or digit"
            }
            Self::ProofRequired => "solve the challenge and send the proof with join",
            Self::BadProof => "the proof is not valid; solve the new challenge",
            Self::HarderProofRequired => {
                "a new room name needs a harder proof; solve the new challenge, which asks for it"
            }
            Self::RoomLocked => "the room is locked: nobody new may join",
            Self::Banned => "the room's owner banned you from this room",
            Self::Kicked => "the room's owner removed you from this room",
            Self::NotOwner => "only the room's owner may do that",
            Self::InvalidCapacity => {
                "a group room's capacity is at least 2 and at most the server's limit"
            }
            Self::LunaUnavailable => "this server has no assistant",
            Self::LunaDisabled => "this room has not allowed @luna",
            Self::Internal => "internal server error",
        }
    }
}

impl ServerMessage {
    /// An error message with the code's default explanation.
    pub fn error(code: ErrorCode) -> Self {
        Self::Error {
            code,
            message: code.default_message().to_owned(),
            retry_after_ms: None,
        }
    }

    /// An error with its own explanation.
    pub fn error_with(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: all keys are strings and no map has non-string keys.
        serde_json::to_string(self).expect("server messages always serialize")
    }
}

/// Why a client's text frame could not be turned into a [`ClientMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {detail}")]
pub struct DecodeError {
    /// The code to answer with.
    pub code: ErrorCode,
    /// What was wrong, safe to send back to the client (it names no content).
    pub detail: String,
}

/// The fields whose format errors deserve their own code. Used only after a strict parse failed,
/// to tell the client which field was wrong.
#[derive(Deserialize)]
struct LooseMessage {
    #[serde(rename = "type")]
    kind: Option<String>,
    room: Option<Value>,
    peer: Option<Value>,
    to: Option<Value>,
    name: Option<Value>,
    #[serde(rename = "roomName")]
    room_name: Option<Value>,
    #[serde(rename = "ownerSecret")]
    owner_secret: Option<Value>,
    #[serde(rename = "peerSecret")]
    peer_secret: Option<Value>,
}

impl ClientMessage {
    /// Parses a text frame, mapping every failure to the most specific [`ErrorCode`].
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let strict_error = match serde_json::from_str::<ClientMessage>(text) {
            Ok(message) => return Ok(message),
            Err(error) => error,
        };
        let bad = |detail: String| DecodeError {
            code: ErrorCode::BadMessage,
            detail,
        };
        let Ok(loose) = serde_json::from_str::<LooseMessage>(text) else {
            return Err(bad("not a JSON object".to_owned()));
        };
        let known = [
            "hello",
            "join",
            "rename",
            "signal",
            "leave",
            "ping",
            "sfu-offer",
            "join-named",
            "kick",
            "ban",
            "lock",
            "set-capacity",
            "hand-over",
            "luna-allow",
            "luna-ask",
        ];
        match loose.kind.as_deref() {
            None => return Err(bad("missing \"type\"".to_owned())),
            Some(kind) if !known.contains(&kind) => {
                return Err(bad("unknown message type".to_owned()));
            }
            Some(_) => {}
        }
        let field_error =
            |value: Option<Value>, check: fn(String) -> Result<(), IdError>| match value {
                Some(Value::String(s)) => check(s).err(),
                _ => None,
            };
        let id_error = field_error(loose.room, |s| RoomId::try_from(s).map(drop))
            .or_else(|| field_error(loose.peer, |s| PeerId::try_from(s).map(drop)))
            .or_else(|| field_error(loose.to, |s| PeerId::try_from(s).map(drop)))
            .or_else(|| field_error(loose.name, |s| DisplayName::try_from(s).map(drop)))
            .or_else(|| field_error(loose.room_name, |s| RoomName::try_from(s).map(drop)))
            .or_else(|| field_error(loose.owner_secret, |s| OwnerSecret::try_from(s).map(drop)))
            .or_else(|| field_error(loose.peer_secret, |s| PeerSecret::try_from(s).map(drop)));
        match id_error {
            Some(error) => Err(DecodeError {
                code: match error {
                    IdError::RoomId => ErrorCode::InvalidRoomId,
                    IdError::PeerId => ErrorCode::InvalidPeerId,
                    IdError::Name => ErrorCode::InvalidName,
                    IdError::RoomName(_) => ErrorCode::InvalidRoomName,
                    IdError::OwnerSecret => ErrorCode::BadMessage,
                    IdError::PeerSecret => ErrorCode::PeerUnproven,
                },
                detail: error.to_string(),
            }),
            // serde's own message may quote the offending value, so only the position is reported.
            None => Err(bad(format!(
                "the message does not match the protocol (column {})",
                strict_error.column()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: &str = "AAAAAAAAAAAAAAAAAAAAAA";
    const PEER: &str = "peer-aaaaaaaaaaaa";

    fn code(text: &str) -> ErrorCode {
        ClientMessage::decode(text).expect_err("should fail").code
    }

    #[test]
    fn decodes_a_join() {
        let text = format!(r#"{{"type":"join","room":"{ROOM}","peer":"{PEER}","name":"Ann"}}"#);
        let message = ClientMessage::decode(&text).expect("valid");
        assert!(matches!(message, ClientMessage::Join { name, .. } if name.as_str() == "Ann"));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let message = ClientMessage::decode(r#"{"type":"ping","future":1}"#).expect("valid");
        assert_eq!(message, ClientMessage::Ping);
    }

    #[test]
    fn malformed_input_gets_bad_message() {
        assert_eq!(code("not json"), ErrorCode::BadMessage);
        assert_eq!(code("[1,2]"), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"type":"teleport"}"#), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"kind":"hello"}"#), ErrorCode::BadMessage);
        assert_eq!(
            code(r#"{"type":"hello","version":"one"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"signal","to":"peer-aaaaaaaaaaaa"}"#),
            ErrorCode::BadMessage
        );
    }

    #[test]
    fn each_invalid_field_gets_its_own_code() {
        let join = |room: &str, peer: &str, name: &str| {
            format!(r#"{{"type":"join","room":"{room}","peer":"{peer}","name":"{name}"}}"#)
        };
        assert_eq!(code(&join("nope", PEER, "Ann")), ErrorCode::InvalidRoomId);
        assert_eq!(code(&join(ROOM, "short", "Ann")), ErrorCode::InvalidPeerId);
        assert_eq!(code(&join(ROOM, PEER, "")), ErrorCode::InvalidName);
        assert_eq!(code(&join(ROOM, PEER, "a\\u202eb")), ErrorCode::InvalidName);
        assert_eq!(
            code(r#"{"type":"signal","to":"x","payload":{}}"#),
            ErrorCode::InvalidPeerId
        );
    }

    #[test]
    fn error_detail_never_echoes_the_input() {
        let secret = "my-secret-room-name-that-is-long";
        let error = ClientMessage::decode(&format!(r#"{{"type":"hello","version":"{secret}"}}"#))
            .expect_err("invalid");
        assert!(!error.detail.contains(secret), "{}", error.detail);
    }
}
