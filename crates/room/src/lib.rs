//! Sans-IO room membership: who is in a room, who may enter, and who is told what.
//!
//! A [`Room`] never touches a socket or reads a clock. The caller feeds it inputs
//! ([`Room::join`], [`Room::leave`], [`Room::disconnected`], [`Room::rename`], [`Room::signal`],
//! [`Room::handle_timeout`], and the owner's [`Room::kick`], [`Room::ban`], [`Room::lock`],
//! [`Room::set_capacity`] and [`Room::hand_over`]) with the current time as an argument, then drains
//! [`Room::poll_output`] and sleeps until [`Room::poll_timeout`]. This is str0m's style, and it lets
//! the tests run thirty seconds of reconnect grace in no time.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use natter_room::{AddressTag, JoinRequest, Room, RoomPolicy, SessionId, Output};
//!
//! let secret = "s".repeat(43).try_into().unwrap();
//! let mut room = Room::new(RoomPolicy::pair(Duration::from_secs(30)), secret);
//! let now = Instant::now();
//! let request = |session, peer: &str, name: &str| JoinRequest {
//!     session: SessionId(session),
//!     peer: peer.to_owned().try_into().unwrap(),
//!     name: name.to_owned().try_into().unwrap(),
//!     address: AddressTag([session as u8; 16]),
//!     owner_secret: None,
//! };
//! let ann = room.join(now, request(1, "peer-ann-0000000000", "Ann")).unwrap();
//! // The first person in a room owns it, and alone learns its secret.
//! assert!(ann.owner_secret.is_some());
//! room.join(now, request(2, "peer-bob-0000000000", "Bob")).unwrap();
//! // Ann is told that Bob arrived.
//! assert!(matches!(room.poll_output(), Some(Output::Send { to: SessionId(1), .. })));
//! ```
//!
//! # Invariants
//! * A peer id appears at most once in a room; a second join with the same id takes over the place.
//! * A place is kept for [`RoomPolicy::reconnect_grace`] after its socket drops, and it still counts
//!   toward the capacity, so nobody can slip into a pair room while one of the pair reloads.
//! * Messages for a session that is no longer a member are never produced.
//! * A room has one owner from its first join on: the first person, then whoever the owner hands
//!   over to, or whoever presents the current owner secret. Only the owner moderates.
//! * A ban holds for the room's life and covers the banned peer id and the address it joined
//!   from (as an opaque [`AddressTag`]; the room never sees an IP address). The owner-secret
//!   holder is never refused by a ban or a lock, so an owner behind the same address as the person
//!   they banned can still come back.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use natter_proto::signaling::{LeaveReason, PeerInfo, RoomKind};
use natter_proto::{DisplayName, ErrorCode, OwnerSecret, PeerId, ServerMessage, close, limits};
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
    /// True when the server has an assistant the room may allow (`@luna`).
    pub assistant: bool,
}

impl RoomPolicy {
    /// A two-person, peer-to-peer room.
    pub fn pair(reconnect_grace: Duration) -> Self {
        Self {
            kind: RoomKind::Pair,
            capacity: limits::PAIR_ROOM_CAPACITY,
            reconnect_grace,
            assistant: false,
        }
    }

    /// A room of up to `capacity` people whose media goes through the server's SFU.
    pub fn group(capacity: u32, reconnect_grace: Duration) -> Self {
        Self {
            kind: RoomKind::Group,
            capacity,
            reconnect_grace,
            assistant: false,
        }
    }

    /// The same policy, with or without an assistant on offer.
    pub fn with_assistant(self, assistant: bool) -> Self {
        Self { assistant, ..self }
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

/// Where a peer connects from, as the caller chose to identify it: a keyed hash of the address, so
/// bans can match it without the room (or a memory dump of it) holding the address itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressTag(pub [u8; 16]);

/// Someone asking to enter a room.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The session asking.
    pub session: SessionId,
    /// The peer id it wants to hold.
    pub peer: PeerId,
    /// The name others will see.
    pub name: DisplayName,
    /// Where it connects from.
    pub address: AddressTag,
    /// The owner secret it presents, if any.
    pub owner_secret: Option<OwnerSecret>,
}

/// What a room's owner may do to the room (see [`Room::moderate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderation {
    /// [`Room::kick`].
    Kick(PeerId),
    /// [`Room::ban`].
    Ban(PeerId),
    /// [`Room::lock`].
    Lock(bool),
    /// [`Room::set_capacity`].
    SetCapacity(u32),
    /// [`Room::hand_over`], with the new owner's secret.
    HandOver(PeerId, OwnerSecret),
}

/// The result of a successful [`Room::join`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// Everyone else in the room, in order of arrival.
    pub peers: Vec<PeerInfo>,
    /// True when the join took over an existing place (reconnect or second tab).
    pub resumed: bool,
    /// The owner secret, only when this join made the peer owner of a new room.
    pub owner_secret: Option<OwnerSecret>,
    /// The room's rules as they are now.
    pub state: RoomState,
}

/// The rules of a room that can change while it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomState {
    /// The owner, once someone has joined.
    pub owner: Option<PeerId>,
    /// True while nobody new may join.
    pub locked: bool,
    /// The most people the room holds now.
    pub capacity: u32,
    /// Whether the room allows the assistant; `None` when the server has none.
    pub luna: Option<bool>,
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
    /// Kept so a ban can cover the address as well as the peer id.
    address: AddressTag,
}

/// One room's membership state machine. See the crate documentation.
#[derive(Debug)]
pub struct Room {
    policy: RoomPolicy,
    /// In order of arrival; small (≤ capacity), so a Vec beats a map.
    members: Vec<Member>,
    outputs: VecDeque<Output>,
    owner: Option<PeerId>,
    /// The secret that makes its holder owner; replaced on every hand-over.
    owner_secret: OwnerSecret,
    locked: bool,
    /// While locked: the peers who were in the room when it was locked (or entered with the
    /// secret since). They may come back (after a reload, say); nobody else may enter.
    locked_in: HashSet<PeerId>,
    /// The owner's choice, at most `policy.capacity`.
    capacity: u32,
    banned_peers: HashSet<PeerId>,
    banned_addresses: HashSet<AddressTag>,
    /// The room allows `@luna` (off until someone allowed to turns it on).
    luna_allowed: bool,
}

impl Room {
    /// An empty room with the given policy. `owner_secret` is handed to the first person to join,
    /// who becomes the owner; the caller draws it from a cryptographic random source.
    pub fn new(policy: RoomPolicy, owner_secret: OwnerSecret) -> Self {
        Self {
            policy,
            members: Vec::new(),
            outputs: VecDeque::new(),
            owner: None,
            owner_secret,
            locked: false,
            locked_in: HashSet::new(),
            capacity: policy.capacity,
            banned_peers: HashSet::new(),
            banned_addresses: HashSet::new(),
            luna_allowed: false,
        }
    }

    /// The room's changeable rules.
    pub fn state(&self) -> RoomState {
        RoomState {
            owner: self.owner.clone(),
            locked: self.locked,
            capacity: self.capacity,
            luna: self.policy.assistant.then_some(self.luna_allowed),
        }
    }

    fn broadcast_state(&mut self) {
        let state = self.state();
        let message = ServerMessage::RoomState {
            owner: state.owner,
            locked: state.locked,
            capacity: state.capacity,
            luna: state.luna,
        };
        self.broadcast(&message);
    }

    /// `session` allows or forbids `@luna`: the owner in a group room, either person in a pair
    /// room (where both are equals). Everyone is told.
    pub fn allow_luna(&mut self, session: SessionId, allowed: bool) -> Result<(), ErrorCode> {
        if !self.policy.assistant {
            return Err(ErrorCode::LunaUnavailable);
        }
        match self.policy.kind {
            RoomKind::Group => {
                self.owner_index(session)?;
            }
            RoomKind::Pair => {
                self.position_of_session(session)
                    .ok_or(ErrorCode::NotJoined)?;
            }
        }
        if self.luna_allowed != allowed {
            self.luna_allowed = allowed;
            self.broadcast_state();
        }
        Ok(())
    }

    /// Whether `session` may ask the assistant now: the server has one, the room allows it and
    /// the session is in the room. On success, the asker's name.
    pub fn may_ask_luna(&self, session: SessionId) -> Result<DisplayName, ErrorCode> {
        if !self.policy.assistant {
            return Err(ErrorCode::LunaUnavailable);
        }
        let index = self
            .position_of_session(session)
            .ok_or(ErrorCode::NotJoined)?;
        if !self.luna_allowed {
            return Err(ErrorCode::LunaDisabled);
        }
        Ok(self.members[index].name.clone())
    }

    /// Sends `message` to everyone connected (the caller's own news for the room, such as the
    /// assistant's reply).
    pub fn broadcast(&mut self, message: &ServerMessage) {
        // `usize::MAX` is no member's index: it excludes nobody.
        self.broadcast_except(usize::MAX, message);
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

    /// `request.session` asks to enter as `request.peer`.
    ///
    /// A banned peer id or address is refused ([`ErrorCode::Banned`]), and so is a new peer when
    /// the room is locked ([`ErrorCode::RoomLocked`]) or full ([`ErrorCode::RoomFull`]); whoever
    /// presents the owner secret passes bans and the lock, and becomes the owner. A peer id already
    /// present takes over its place (the old session, if still connected, is closed with
    /// [`ErrorCode::Replaced`]); the others are not told of a new arrival, only of a changed name.
    /// A new peer id enters if there is room, and the others get `peer-joined`.
    pub fn join(&mut self, now: Instant, request: JoinRequest) -> Result<Joined, ErrorCode> {
        let JoinRequest {
            session,
            peer,
            name,
            address,
            owner_secret,
        } = request;
        // A session already holding a place must leave first; the caller enforces one room per socket.
        if self.position_of_session(session).is_some() {
            return Err(ErrorCode::AlreadyJoined);
        }
        self.expire(now);
        // The secret counts only once it has been handed out, i.e. once the room has an owner.
        let holds_secret = self.owner.is_some()
            && owner_secret.is_some_and(|secret| secret.matches(&self.owner_secret));
        let banned = self.banned_peers.contains(&peer) || self.banned_addresses.contains(&address);
        if banned && !holds_secret {
            return Err(ErrorCode::Banned);
        }
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
            member.address = address;
            if member.name != name {
                member.name = name.clone();
                self.broadcast_except(
                    index,
                    &ServerMessage::PeerRenamed {
                        peer: peer.clone(),
                        name,
                    },
                );
            }
            if holds_secret && self.owner.as_ref() != Some(&peer) {
                self.owner = Some(peer);
                self.broadcast_state();
            }
            return Ok(Joined {
                peers: self.peers_except(index),
                resumed: true,
                owner_secret: None,
                state: self.state(),
            });
        }
        if self.locked && !holds_secret && !self.locked_in.contains(&peer) {
            return Err(ErrorCode::RoomLocked);
        }
        if self.locked {
            self.locked_in.insert(peer.clone());
        }
        if self.members.len() >= self.capacity as usize {
            return Err(ErrorCode::RoomFull);
        }
        self.members.push(Member {
            peer: peer.clone(),
            name: name.clone(),
            presence: Presence::Connected(session),
            address,
        });
        let index = self.members.len() - 1;
        self.broadcast_except(
            index,
            &ServerMessage::PeerJoined {
                peer: peer.clone(),
                name,
            },
        );
        let mut handed_secret = None;
        if self.owner.is_none() {
            self.owner = Some(peer);
            handed_secret = Some(self.owner_secret.clone());
        } else if holds_secret {
            self.owner = Some(peer);
            self.broadcast_state();
        }
        Ok(Joined {
            peers: self.peers_except(index),
            resumed: false,
            owner_secret: handed_secret,
            state: self.state(),
        })
    }

    /// The index of `session`'s place, if it is the owner's.
    fn owner_index(&self, session: SessionId) -> Result<usize, ErrorCode> {
        let index = self
            .position_of_session(session)
            .ok_or(ErrorCode::NotJoined)?;
        if self.owner.as_ref() == Some(&self.members[index].peer) {
            Ok(index)
        } else {
            Err(ErrorCode::NotOwner)
        }
    }

    /// The index of the member `target`, who must not be the owner at `owner_index`.
    fn target_index(&self, owner_index: usize, target: &PeerId) -> Result<usize, ErrorCode> {
        match self.members.iter().position(|m| &m.peer == target) {
            Some(index) if index != owner_index => Ok(index),
            // Moderating yourself is meaningless; `leave` is the way out.
            Some(_) => Err(ErrorCode::BadMessage),
            None => Err(ErrorCode::UnknownPeer),
        }
    }

    /// Removes the member at `index`, closing its socket with `error`.
    fn expel(&mut self, index: usize, reason: LeaveReason, error: ErrorCode, code: u16) {
        self.locked_in.remove(&self.members[index].peer);
        if let Presence::Connected(session) = self.members[index].presence {
            self.outputs.push_back(Output::Close {
                session,
                error,
                code,
            });
        }
        self.remove(index, reason);
    }

    /// The owner at `session` does `action`.
    pub fn moderate(&mut self, session: SessionId, action: Moderation) -> Result<(), ErrorCode> {
        match action {
            Moderation::Kick(target) => self.kick(session, &target),
            Moderation::Ban(target) => self.ban(session, &target),
            Moderation::Lock(locked) => self.lock(session, locked),
            Moderation::SetCapacity(capacity) => self.set_capacity(session, capacity),
            Moderation::HandOver(target, secret) => self.hand_over(session, &target, secret),
        }
    }

    /// The owner at `session` removes `target`, who is told why and may come back.
    pub fn kick(&mut self, session: SessionId, target: &PeerId) -> Result<(), ErrorCode> {
        let owner = self.owner_index(session)?;
        let index = self.target_index(owner, target)?;
        self.expel(index, LeaveReason::Kicked, ErrorCode::Kicked, close::KICKED);
        Ok(())
    }

    /// The owner at `session` bans `target`: removed, and its peer id and address refused for the
    /// room's life.
    pub fn ban(&mut self, session: SessionId, target: &PeerId) -> Result<(), ErrorCode> {
        let owner = self.owner_index(session)?;
        let index = self.target_index(owner, target)?;
        self.banned_peers.insert(target.clone());
        self.banned_addresses.insert(self.members[index].address);
        self.expel(index, LeaveReason::Banned, ErrorCode::Banned, close::BANNED);
        Ok(())
    }

    /// The owner at `session` locks or unlocks the room; everyone is told. Those in the room
    /// when it is locked may come back while it stays locked; nobody else may enter.
    pub fn lock(&mut self, session: SessionId, locked: bool) -> Result<(), ErrorCode> {
        self.owner_index(session)?;
        if self.locked != locked {
            self.locked = locked;
            self.locked_in = if locked {
                self.members.iter().map(|m| m.peer.clone()).collect()
            } else {
                HashSet::new()
            };
            self.broadcast_state();
        }
        Ok(())
    }

    /// The owner at `session` sets a group room's capacity (2 up to the policy's); everyone is
    /// told. Nobody present is removed.
    pub fn set_capacity(&mut self, session: SessionId, capacity: u32) -> Result<(), ErrorCode> {
        self.owner_index(session)?;
        if self.policy.kind != RoomKind::Group || !(2..=self.policy.capacity).contains(&capacity) {
            return Err(ErrorCode::InvalidCapacity);
        }
        if self.capacity != capacity {
            self.capacity = capacity;
            self.broadcast_state();
        }
        Ok(())
    }

    /// The owner at `session` makes the connected member `target` owner. `new_secret` replaces
    /// the owner secret (the old one stops working) and goes to the new owner alone.
    pub fn hand_over(
        &mut self,
        session: SessionId,
        target: &PeerId,
        new_secret: OwnerSecret,
    ) -> Result<(), ErrorCode> {
        let owner = self.owner_index(session)?;
        let index = self.target_index(owner, target)?;
        let Presence::Connected(to) = self.members[index].presence else {
            // Someone within their reconnect grace could not receive the secret.
            return Err(ErrorCode::UnknownPeer);
        };
        self.owner = Some(target.clone());
        self.owner_secret = new_secret.clone();
        self.outputs.push_back(Output::Send {
            to,
            message: ServerMessage::OwnerSecret { secret: new_secret },
        });
        self.broadcast_state();
        Ok(())
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
        // The leaver is already gone from the list.
        self.broadcast(&message);
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
