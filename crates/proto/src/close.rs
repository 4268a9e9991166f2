//! WebSocket close codes the server uses. Protocol errors end the socket with one of these.

/// The client said `leave`, or the server closed after an error it had already explained.
pub const NORMAL: u16 = 1000;
/// The server is shutting down or restarting; reconnect with back-off.
pub const GOING_AWAY: u16 = 1001;
/// The client sent a binary frame; signaling is JSON text only.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// A text frame was not valid UTF-8.
pub const INVALID_DATA: u16 = 1007;
/// The client kept sending after being rate limited.
pub const POLICY_VIOLATION: u16 = 1008;
/// A frame or message was larger than [`crate::limits::MAX_MESSAGE_BYTES`].
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The server failed internally; reconnecting is safe.
pub const INTERNAL_ERROR: u16 = 1011;
/// Another socket joined with the same peer id and took this one's place. Do not reconnect.
pub const REPLACED: u16 = 4000;
/// No `hello`/`join` within the handshake time, or nothing received within the idle timeout.
pub const TIMEOUT: u16 = 4001;
/// The client's protocol version is not supported. Do not reconnect without upgrading.
pub const UNSUPPORTED_VERSION: u16 = 4002;
/// The client did not read its messages fast enough and its queue overflowed.
pub const TOO_SLOW: u16 = 4003;
/// The room's owner removed this person. Do not reconnect by yourself.
pub const KICKED: u16 = 4004;
/// The room's owner banned this person. Do not reconnect.
pub const BANNED: u16 = 4005;
/// The connection would have taken its address past its share of the server's memory (media
/// sections in the relay). Reconnect only with a smaller offer.
pub const OVER_BUDGET: u16 = 4006;

/// Every close code, in the order `docs/protocol.md` lists them.
pub const ALL: [u16; 14] = [
    NORMAL,
    GOING_AWAY,
    UNSUPPORTED_DATA,
    INVALID_DATA,
    POLICY_VIOLATION,
    MESSAGE_TOO_BIG,
    INTERNAL_ERROR,
    REPLACED,
    TIMEOUT,
    UNSUPPORTED_VERSION,
    TOO_SLOW,
    KICKED,
    BANNED,
    OVER_BUDGET,
];
