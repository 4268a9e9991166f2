//! Natter's wire protocol: the only crate that knows field names.
//!
//! `docs/protocol.md` is the normative description; a test parses every example in it against
//! these types, so the document and the code cannot drift apart.
//!
//! * [`ids`]: validated room ids, peer ids and display names.
//! * [`signaling`]: the JSON messages exchanged over the signaling WebSocket.
//! * [`limits`]: sizes, rates and timeouts both ends agree on.
//! * [`pow`]: the proof of work a client solves to create or join a room.
//! * [`close`]: WebSocket close codes.
//! * [`data`]: what browsers send each other: signal payloads and data-channel messages.
//! * [`relay`]: the envelope around data-channel messages the SFU relays in group rooms.

pub mod close;
pub mod data;
pub mod ids;
pub mod limits;
pub mod pow;
pub mod relay;
pub mod signaling;

pub use ids::{DisplayName, IdError, OwnerSecret, PeerId, PeerSecret, RoomId, RoomName};
pub use signaling::{ClientMessage, DecodeError, ErrorCode, ServerMessage};
