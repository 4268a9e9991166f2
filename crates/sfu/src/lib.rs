//! Natter's media plane for group rooms: a selective forwarding unit (SFU) on str0m.
//!
//! Each browser in a group room has one `RTCPeerConnection` to the server. It publishes its
//! microphone, camera and screen when they are on, receives everyone else's, and relays chat and
//! files through two data channels. The SFU forwards and never records or stores anything.
//!
//! * [`sfu`]: the sans-IO core. Every participant's `Rtc`, the rooms, forwarding, the relay.
//!   Time is an argument; it never reads a clock or touches a socket (str0m's
//!   `handle_input`/`poll_output` style, one level up).
//! * [`routing`]: the pure policies: which track goes to which receive slot, which video pauses
//!   when bandwidth is short, keyframe-request coalescing, the active speaker.
//! * [`driver`]: the thin tokio driver. One UDP socket for every peer plus an ICE-TCP listener,
//!   on a thread of its own.
//!
//! # Negotiation
//!
//! The browser is the only offerer, so there is never glare: it offers its sending transceivers
//! and as many `recvonly` ones as it has been told it needs; the SFU answers and then says, in
//! `sfu-tracks`, which track each receive slot carries and how many more slots it needs.
//!
//! # Panic policy
//!
//! No input from a peer may panic the server. str0m's policy is the same (a panic is a bug), and
//! as a second line every call into a connection's `Rtc` is isolated: if one panics, that
//! connection alone is closed and the others carry on.

pub mod driver;
pub mod routing;
pub mod sfu;

pub use driver::{
    Command, Deliver, DriverConfig, SfuHandle, interface_addresses, is_link_local,
    reachable_only_here, start,
};
pub use routing::ClientId;
pub use sfu::{OfferError, Output, Sfu, SfuConfig, SfuStats};
