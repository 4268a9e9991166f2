//! Limits that both ends of the wire agree on. `docs/protocol.md` states the same numbers.

use std::time::Duration;

/// The signaling protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Length of a room id in characters (22 characters of base64url carry 132 bits).
pub const ROOM_ID_LEN: usize = 22;
/// Shortest accepted peer id.
pub const PEER_ID_MIN_LEN: usize = 16;
/// Longest accepted peer id.
pub const PEER_ID_MAX_LEN: usize = 64;
/// Shortest room name, in characters after normalisation.
pub const ROOM_NAME_MIN_CHARS: usize = 3;
/// Longest room name, in characters after normalisation.
pub const ROOM_NAME_MAX_CHARS: usize = 40;
/// Length of an owner secret: 32 random bytes in unpadded URL-safe base64.
pub const OWNER_SECRET_LEN: usize = 43;
/// Length of a peer secret: 32 random bytes in unpadded URL-safe base64.
pub const PEER_SECRET_LEN: usize = 43;
/// Longest proof-of-work challenge token.
pub const CHALLENGE_MAX_LEN: usize = 160;
/// Joins with a missing or wrong proof a socket may send before it is closed (1008).
pub const BAD_PROOF_TOLERANCE: u32 = 5;
/// A `join-named` that creates a new room name needs a proof at this many times the base
/// difficulty: a name is kept on disk for 30 days, a join costs nothing after its room ends.
pub const NEW_NAME_PROOF_FACTOR: u64 = 4;
/// Longest accepted display name, in Unicode scalar values after trimming.
pub const NAME_MAX_CHARS: usize = 48;

/// Largest signaling message, in bytes, in either direction. Larger frames close the socket (1009).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest `sfu-offer` (and `sfu-answer`): a group room's SDP has a media section per track, a few
/// KiB each, so 32 people's need far more than other messages.
pub const MAX_SDP_MESSAGE_BYTES: usize = 512 * 1024;
/// Sustained number of messages a socket may send per second.
pub const MESSAGES_PER_SECOND: u32 = 20;
/// Messages a socket may send in a burst above the sustained rate (ICE candidates come in bursts).
pub const MESSAGE_BURST: u32 = 60;
/// Messages over the limit that a socket may send before it is disconnected (close 1008).
pub const FLOOD_TOLERANCE: u32 = 100;

/// People in a pair room.
pub const PAIR_ROOM_CAPACITY: u32 = 2;
/// People in a group room unless the self-hoster sets another capacity.
pub const DEFAULT_GROUP_ROOM_CAPACITY: u32 = 32;
/// How long a peer of a group room whose socket dropped keeps its place: short, because a
/// vanished participant's empty tile is worse than a quick rejoin.
pub const GROUP_RECONNECT_GRACE: Duration = Duration::from_secs(5);

/// How long a peer whose socket dropped keeps its place before the others are told it left.
pub const DEFAULT_RECONNECT_GRACE: Duration = Duration::from_secs(30);
/// Time a new socket has to send `hello` and `join`: long enough to solve the challenge on a slow
/// phone at the highest difficulty the server asks under load.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// The server pings every socket this often; browsers answer pings on their own.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A socket that sent nothing (not even a pong) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Messages of context, at most, that the assistant sees: what a `luna-ask` may carry and what
/// the server keeps per room.
pub const LUNA_CONTEXT_MESSAGES: usize = 20;

/// Largest file people may send each other unless the self-hoster sets another limit.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 200 * 1024 * 1024;
/// Payload bytes of one file chunk on the `files` data channel (the last chunk may be shorter).
pub const FILE_CHUNK_BYTES: usize = 16 * 1024;
