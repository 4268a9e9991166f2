//! Sans-IO room membership: who is in a room, who may enter, and who is told what.
//!
//! A [`Room`] never touches a socket or reads a clock. The caller feeds it inputs
//! ([`Room::join`], [`Room::leave`], [`Room::disconnected`], [`Room::rename`], [`Room::signal`],
//! [`Room::handle_timeout`]) with the current time as an argument, then drains
//! [`Room::poll_output`] and sleeps until [`Room::poll_timeout`]. This is str0m's style, and it lets
//! the tests run thirty seconds of reconnect grace in no time.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use natter_room::{Room, RoomPolicy, SessionId, Output};
//!
//! let mut room = Room::new(RoomPolicy::pair(Duration::from_secs(30)));
//! let now = Instant::now();
//! let ann = "peer-ann-0000000000".to_owned().try_into().unwrap();
//! let bob = "peer-bob-0000000000".to_owned().try_into().unwrap();
//! room.join(now, SessionId(1), ann, "Ann".to_owned().try_into().unwrap()).unwrap();
//! room.join(now, SessionId(2), bob, "Bob".to_owned().try_into().unwrap()).unwrap();
//! // Ann is told that Bob arrived.
//! assert!(matches!(room.poll_output(), Some(Output::Send { to: SessionId(1), .. })));
//! ```
//!
//! # Invariants
//! * A peer id appears at most once in a room; a second join with the same id takes over the place.
//! * A place is kept for [`RoomPolicy::reconnect_grace`] after its socket drops, and it still counts
//!   toward the capacity, so nobody can slip into a pair room while one of the pair reloads.
//! * Messages for a session that is no longer a member are never produced.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use natter_proto::signaling::{LeaveReason, PeerInfo, RoomKind};
use natter_proto::{DisplayName, ErrorCode, PeerId, ServerMessage, close, limits};
use serde_json::Value;

/// Identifies one WebSocket session to the room. Chosen by the caller, unique per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// The rules a room enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomPolicy {
    /// What kind of room this is.
    pub kind: RoomKind,
    /// The most people in the room at once, counting those within their reconnect grace.
    pub capacity: u32,
    /// How long a dropped peer keeps its place.
    pub reconnect_grace: Duration,
}

impl RoomPolicy {
    /// A two-person, peer-to-peer room.
    pub fn pair(reconnect_grace: Duration) -> Self {
        Self {
            kind: RoomKind::Pair,
            capacity: limits::PAIR_ROOM_CAPACITY,
            reconnect_grace,
        }
    }

    /// A room of up to `capacity` people whose media goes through the server's SFU.
    pub fn group(capacity: u32, reconnect_grace: Duration) -> Self {
        Self {
            kind: RoomKind::Group,
            capacity,
            reconnect_grace,
        }
    }
}

/// What the caller must do after feeding the room an input.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Deliver this message to that session.
    Send {
        /// The recipient.
        to: SessionId,
        /// The message.
        message: ServerMessage,
    },
    /// Tell that session why, then close its socket with this code. It is no longer a member.
    Close {
        /// The session to close.
        session: SessionId,
        /// The error to send before closing.
        error: ErrorCode,
        /// The WebSocket close code.
        code: u16,
    },
}

/// The result of a successful [`Room::join`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// Everyone else in the room, in order of arrival.
    pub peers: Vec<PeerInfo>,
    /// True when the join took over an existing place (reconnect or second tab).
    pub resumed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Connected(SessionId),
    /// The socket dropped; the place is kept until the deadline.
    Away {
        until: Instant,
    },
}

#[derive(Debug, Clone)]
struct Member {
    peer: PeerId,
    name: DisplayName,
    presence: Presence,
}

/// One room's membership state machine. See the crate documentation.
#[derive(Debug)]
pub struct Room {
    policy: RoomPolicy,
    /// In order of arrival; small (≤ capacity), so a Vec beats a map.
    members: Vec<Member>,
    outputs: VecDeque<Output>,
}

impl Room {
    /// An empty room with the given policy.
    pub fn new(policy: RoomPolicy) -> Self {
        Self {
            policy,
            members: Vec::new(),
            outputs: VecDeque::new(),
        }
    }

    /// The room's policy.
    pub fn policy(&self) -> RoomPolicy {
        self.policy
    }

    /// True when nobody holds a place, not even within a grace period: the room can be dropped.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Number of places taken (connected or within grace).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    fn position_of_session(&self, session: SessionId) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.presence == Presence::Connected(session))
    }

    /// The peer id a connected session holds, if any.
    pub fn peer_of(&self, session: SessionId) -> Option<&PeerId> {
        self.position_of_session(session)
            .map(|index| &self.members[index].peer)
    }

    fn broadcast_except(&mut self, except: usize, message: &ServerMessage) {
        for (index, member) in self.members.iter().enumerate() {
            if index == except {
                continue;
            }
            if let Presence::Connected(to) = member.presence {
                self.outputs.push_back(Output::Send {
                    to,
                    message: message.clone(),
                });
            }
        }
    }

    /// `session` asks to enter as `peer` named `name`.
    ///
    /// A peer id already present takes over its place (the old session, if still connected, is
    /// closed with [`ErrorCode::Replaced`]); the others are not told of a new arrival, only of a
    /// changed name. A new peer id enters if there is room, and the others get `peer-joined`.
    pub fn join(
        &mut self,
        now: Instant,
        session: SessionId,
        peer: PeerId,
        name: DisplayName,
    ) -> Result<Joined, ErrorCode> {
        // A session already holding a place must leave first; the caller enforces one room per socket.
        if self.position_of_session(session).is_some() {
            return Err(ErrorCode::AlreadyJoined);
        }
        self.expire(now);
        if let Some(index) = self.members.iter().position(|m| m.peer == peer) {
            let member = &mut self.members[index];
            if let Presence::Connected(old) = member.presence {
                self.outputs.push_back(Output::Close {
                    session: old,
                    error: ErrorCode::Replaced,
                    code: close::REPLACED,
                });
            }
            member.presence = Presence::Connected(session);
            if member.name != name {
                member.name = name.clone();
                self.broadcast_except(index, &ServerMessage::PeerRenamed { peer, name });
            }
            return Ok(Joined {
                peers: self.peers_except(index),
                resumed: true,
            });
        }
        if self.members.len() >= self.policy.capacity as usize {
            return Err(ErrorCode::RoomFull);
        }
        self.members.push(Member {
            peer: peer.clone(),
            name: name.clone(),
            presence: Presence::Connected(session),
        });
        let index = self.members.len() - 1;
        self.broadcast_except(index, &ServerMessage::PeerJoined { peer, name });
        Ok(Joined {
            peers: self.peers_except(index),
            resumed: false,
        })
    }

    fn peers_except(&self, except: usize) -> Vec<PeerInfo> {
        self.members
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != except)
            .map(|(_, m)| PeerInfo {
                peer: m.peer.clone(),
                name: m.name.clone(),
            })
            .collect()
    }

    fn remove(&mut self, index: usize, reason: LeaveReason) {
        let member = self.members.remove(index);
        let message = ServerMessage::PeerLeft {
            peer: member.peer,
            reason,
        };
        // `usize::MAX` excludes nobody: the leaver is already gone from the list.
        self.broadcast_except(usize::MAX, &message);
    }

    /// `session` leaves on purpose: the others are told at once. Returns false if it held no place.
    pub fn leave(&mut self, session: SessionId) -> bool {
        match self.position_of_session(session) {
            Some(index) => {
                self.remove(index, LeaveReason::Left);
                true
            }
            None => false,
        }
    }

    /// `session`'s socket dropped without `leave`: its place is kept for the grace period.
    pub fn disconnected(&mut self, now: Instant, session: SessionId) {
        if let Some(index) = self.position_of_session(session) {
            self.members[index].presence = Presence::Away {
                until: now + self.policy.reconnect_grace,
            };
        }
    }

    /// `session` changes its name; the others are told.
    pub fn rename(&mut self, session: SessionId, name: DisplayName) -> Result<(), ErrorCode> {
        let index = self
            .position_of_session(session)
            .ok_or(ErrorCode::NotJoined)?;
        let member = &mut self.members[index];
        if member.name == name {
            return Ok(());
        }
        member.name = name.clone();
        let peer = member.peer.clone();
        self.broadcast_except(index, &ServerMessage::PeerRenamed { peer, name });
        Ok(())
    }

    /// `session` sends `payload` to the peer `to`; relayed untouched, never kept.
    ///
    /// A peer within its grace period has no socket to deliver to, so the payload is dropped with
    /// [`ErrorCode::UnknownPeer`]; the sender renegotiates when the peer returns.
    pub fn signal(
        &mut self,
        session: SessionId,
        to: &PeerId,
        payload: Value,
    ) -> Result<(), ErrorCode> {
        let from_index = self
            .position_of_session(session)
            .ok_or(ErrorCode::NotJoined)?;
        let recipient = self
            .members
            .iter()
            .find(|m| &m.peer == to)
            .ok_or(ErrorCode::UnknownPeer)?;
        let Presence::Connected(recipient_session) = recipient.presence else {
            return Err(ErrorCode::UnknownPeer);
        };
        if recipient_session == session {
            return Err(ErrorCode::UnknownPeer);
        }
        self.outputs.push_back(Output::Send {
            to: recipient_session,
            message: ServerMessage::Signal {
                from: self.members[from_index].peer.clone(),
                payload,
            },
        });
        Ok(())
    }

    fn expire(&mut self, now: Instant) {
        while let Some(index) = self
            .members
            .iter()
            .position(|m| matches!(m.presence, Presence::Away { until } if until <= now))
        {
            self.remove(index, LeaveReason::TimedOut);
        }
    }

    /// Time has passed: places whose grace ran out are given up and the others told.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// When [`Room::handle_timeout`] should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.members
            .iter()
            .filter_map(|m| match m.presence {
                Presence::Away { until } => Some(until),
                Presence::Connected(_) => None,
            })
            .min()
    }

    /// The next thing the caller must do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }
}

#[cfg(test)]
mod tests;
