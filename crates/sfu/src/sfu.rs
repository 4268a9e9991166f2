//! The sans-IO SFU: every participant's [`Rtc`], grouped by room, with forwarding between them.
//!
//! The caller feeds it datagrams ([`Sfu::handle_receive`]), time ([`Sfu::handle_timeout`]) and
//! signaling ([`Sfu::offer`], [`Sfu::remove`]), and carries out what [`Sfu::poll_output`] returns.
//! Nothing here reads a clock or touches a socket.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use natter_proto::relay::{self, MAX_RELAY_MESSAGE_BYTES};
use natter_proto::signaling::{ForwardedTrack, MediaSource, PublishedTrack, TrackNeed};
use natter_proto::{ErrorCode, PeerId, RoomId, ServerMessage};
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpOffer;
use str0m::channel::{ChannelData, ChannelId};
use str0m::media::{Direction, KeyframeRequest, KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::{Candidate, Event, IceConnectionState, Input, Output as RtcOutput, Rtc};

use crate::routing::{self, ClientId, KeyframeGate, Slot, Source, SourceKey, SpeakerDetector};

/// Most tracks one browser may publish: microphone, camera, screen.
const MAX_PUBLISHED: usize = 3;
/// Longest accepted `mid` (browsers use a few digits).
const MAX_MID_LEN: usize = 16;
/// Most receive slots of one kind a browser may open: everyone else's tracks in the largest room.
const MAX_SLOTS: usize = 256;
/// Bytes of relayed messages the SFU queues for one recipient beyond what its SCTP association
/// buffers. A file sender keeps at most 8 MiB unacknowledged per recipient (docs/protocol.md),
/// so this holds two senders' full windows; beyond it, messages for that recipient are dropped
/// and the sender is told. It caps what misbehaving senders can make the server hold.
pub const RELAY_QUEUE_LIMIT: usize = 16 * 1024 * 1024;
/// What each association buffers in SCTP (sent but unacknowledged, or waiting to be sent);
/// str0m's default of 128 KiB would throttle relayed files to 128 KiB per round trip.
const SCTP_BUFFER: usize = 2 * 1024 * 1024;
/// How often the active speaker is re-evaluated.
const SPEAKER_TICK: Duration = Duration::from_millis(100);
/// How often incoming bitrates are measured, and with them which videos fit each receiver.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// The data channels the SFU relays; any other label is ignored.
const RELAYED_CHANNELS: [&str; 2] = ["chat", "files"];
/// The estimate a connection starts from before any feedback.
const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(1_500);

/// Where the SFU can be reached: the addresses it advertises as ICE candidates.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The UDP addresses browsers may send to, one host candidate each.
    pub udp: Vec<SocketAddr>,
    /// The ICE-TCP addresses (passive), for networks that block UDP.
    pub tcp: Vec<SocketAddr>,
    /// Estimate each receiver's bandwidth, pace what is sent to it and pause the videos it cannot
    /// carry. Only load tests on one machine turn it off, to measure forwarding alone.
    pub bandwidth_estimation: bool,
}

/// Why [`Sfu::offer`] refused an offer. Its `Display` may hold a parser's internal detail (for the
/// log); what the browser is told is [`OfferError::client_message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// The SDP did not parse or str0m could not answer it.
    #[error("the offer could not be used: {0}")]
    Sdp(String),
    /// The published tracks were malformed (too many, unknown `mid`, a source twice).
    #[error("the published tracks are not valid")]
    Tracks,
}

impl OfferError {
    /// What the browser is told: the kind of problem, never a parser's detail (which can hold
    /// internal state such as addresses in memory).
    pub fn client_message(&self) -> &'static str {
        match self {
            Self::Sdp(_) => "the media relay could not use this offer's SDP",
            Self::Tracks => {
                "the published tracks are not valid: at most 3, one per source, each with the mid of a section of the offer"
            }
        }
    }
}

/// What the caller must do.
#[derive(Debug)]
pub enum Output {
    /// Send this datagram (UDP) or frame (TCP).
    Transmit(Transmit),
    /// Deliver this signaling message to the client's WebSocket.
    Signal {
        /// The recipient.
        client: ClientId,
        /// The message.
        message: ServerMessage,
    },
    /// The client's connection ended (ICE timed out, the peer closed it, or it broke); it is no
    /// longer in its room.
    Gone {
        /// The client that is gone.
        client: ClientId,
    },
}

/// Counters for benchmarks and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SfuStats {
    /// Media frames written to receivers.
    pub forwarded: u64,
    /// Relayed data-channel messages delivered.
    pub relayed: u64,
    /// Relayed messages dropped because the recipient was not keeping up.
    pub relay_dropped: u64,
    /// Connections closed because their `Rtc` failed or panicked.
    pub failed: u64,
    /// Browsers connected now (filled in by the driver, like the socket counters below).
    pub clients: u64,
    /// Datagrams and ICE-TCP frames received.
    pub packets_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Datagrams and ICE-TCP frames sent.
    pub packets_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Datagrams and frames that could not be sent (a full socket buffer or queue).
    pub packets_dropped: u64,
}

struct Client {
    room: RoomId,
    peer: PeerId,
    rtc: Rtc,
    /// The browser's ICE user fragment: a new one means a new `RTCPeerConnection`.
    ufrag: Option<String>,
    /// What the browser said it publishes, by the SFU's receiving `mid`.
    published: Vec<(Mid, MediaSource)>,
    /// The `mid`s the SFU receives on, from negotiation.
    incoming: HashSet<Mid>,
    /// The `mid`s the SFU sends on, and what they carry.
    slots: Vec<Slot>,
    channels: Vec<(ChannelId, &'static str)>,
    /// Relayed messages waiting for room in the SCTP buffer, in order: (channel, binary, bytes).
    /// The bytes are shared by every recipient of one message.
    outbox: VecDeque<(ChannelId, bool, Arc<[u8]>)>,
    outbox_bytes: usize,
    estimate: Option<u64>,
    /// The last `sfu-tracks` sent, so unchanged ones are not repeated.
    last_tracks: Option<(Vec<ForwardedTrack>, TrackNeed)>,
    next_timeout: Instant,
}

impl Client {
    fn channel_label(&self, id: ChannelId) -> Option<&'static str> {
        self.channels
            .iter()
            .find(|(channel, _)| *channel == id)
            .map(|(_, label)| *label)
    }

    fn channel_id(&self, label: &str) -> Option<ChannelId> {
        self.channels
            .iter()
            .find(|(_, known)| *known == label)
            .map(|(id, _)| *id)
    }
}

#[derive(Default)]
struct RoomState {
    /// Members in order of arrival.
    members: Vec<ClientId>,
    speaker: SpeakerDetector,
}

/// The SFU for all group rooms of the server.
pub struct Sfu {
    config: SfuConfig,
    clients: HashMap<ClientId, Client>,
    rooms: HashMap<RoomId, RoomState>,
    /// Which client a remote address belongs to, so most packets skip the search.
    routes: HashMap<(SocketAddr, Protocol), ClientId>,
    /// Where each source's media goes: (receiver, receiver's slot `mid`).
    forward: HashMap<SourceKey, Vec<(ClientId, Mid)>>,
    keyframes: KeyframeGate,
    /// Bytes that arrived from each source in the current window, and the last rate measured.
    rates: HashMap<SourceKey, (u64, u64)>,
    next_rate_window: Instant,
    /// Rooms whose routing must be worked out again.
    dirty: HashSet<RoomId>,
    /// Clients with output to poll.
    touched: HashSet<ClientId>,
    outputs: VecDeque<Output>,
    next_speaker_tick: Instant,
    stats: SfuStats,
}

impl Sfu {
    /// An SFU with no clients.
    pub fn new(config: SfuConfig, now: Instant) -> Self {
        Self {
            config,
            clients: HashMap::new(),
            rooms: HashMap::new(),
            routes: HashMap::new(),
            forward: HashMap::new(),
            keyframes: KeyframeGate::default(),
            rates: HashMap::new(),
            next_rate_window: now + RATE_WINDOW,
            dirty: HashSet::new(),
            touched: HashSet::new(),
            outputs: VecDeque::new(),
            next_speaker_tick: now + SPEAKER_TICK,
            stats: SfuStats::default(),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> SfuStats {
        self.stats
    }

    /// Number of connected clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    fn new_rtc(&self, now: Instant) -> Rtc {
        let estimate = self.config.bandwidth_estimation.then_some(INITIAL_ESTIMATE);
        let mut rtc = Rtc::builder()
            // The server has a known address: browsers check it, it never checks them.
            .set_ice_lite(true)
            .set_sctp_max_buffered_amount(SCTP_BUFFER)
            .enable_bwe(estimate)
            .build(now);
        for udp in &self.config.udp {
            if let Ok(candidate) = Candidate::host(*udp, "udp") {
                rtc.add_local_candidate(candidate);
            }
        }
        for tcp in &self.config.tcp {
            if let Ok(candidate) = Candidate::builder()
                .tcp()
                .host(*tcp)
                .tcptype(TcpType::Passive)
                .build()
            {
                rtc.add_local_candidate(candidate);
            }
        }
        rtc
    }

    /// Takes a browser's offer (its first or a renegotiation): the answer and then the slots'
    /// tracks come out of [`Sfu::poll_output`].
    pub fn offer(
        &mut self,
        now: Instant,
        client: ClientId,
        room: &RoomId,
        peer: &PeerId,
        sdp: &str,
        tracks: &[PublishedTrack],
    ) -> Result<(), OfferError> {
        if tracks.len() > MAX_PUBLISHED
            || tracks
                .iter()
                .any(|track| track.mid.is_empty() || track.mid.len() > MAX_MID_LEN)
            || (1..tracks.len()).any(|i| {
                tracks[..i]
                    .iter()
                    .any(|t| t.mid == tracks[i].mid || t.source == tracks[i].source)
            })
        {
            return Err(OfferError::Tracks);
        }
        // Parsing is peer input too: a parser bug must not take the SFU down with it.
        let offer = catch_unwind(|| SdpOffer::from_sdp_string(sdp))
            .map_err(|_| OfferError::Sdp("unparseable".to_owned()))?
            .map_err(|e| OfferError::Sdp(e.to_string()))?;
        let ufrag = ice_ufrag(sdp);
        if let Some(existing) = self.clients.get(&client)
            && existing.ufrag != ufrag
        {
            // The browser replaced its connection (the old one failed): start afresh, since a
            // new DTLS identity cannot be renegotiated into the old one.
            self.drop_client(client);
        }
        if !self.clients.contains_key(&client) {
            let rtc = self.new_rtc(now);
            self.clients.insert(
                client,
                Client {
                    room: room.clone(),
                    peer: peer.clone(),
                    rtc,
                    ufrag,
                    published: Vec::new(),
                    incoming: HashSet::new(),
                    slots: Vec::new(),
                    channels: Vec::new(),
                    outbox: VecDeque::new(),
                    outbox_bytes: 0,
                    estimate: None,
                    last_tracks: None,
                    next_timeout: now,
                },
            );
            self.rooms
                .entry(room.clone())
                .or_default()
                .members
                .push(client);
        }
        let Some(state) = self.clients.get_mut(&client) else {
            return Err(OfferError::Tracks);
        };
        if &state.room != room {
            // One connection belongs to one room for its whole life.
            return Err(OfferError::Tracks);
        }
        let answer = catch_unwind(AssertUnwindSafe(|| state.rtc.sdp_api().accept_offer(offer)));
        let answer = match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => return Err(OfferError::Sdp(error.to_string())),
            Err(_) => {
                self.fail(client);
                return Err(OfferError::Sdp("internal error".to_owned()));
            }
        };
        state.published = tracks
            .iter()
            .map(|track| (Mid::from(track.mid.as_str()), track.source))
            .collect();
        self.outputs.push_back(Output::Signal {
            client,
            message: ServerMessage::SfuAnswer {
                sdp: answer.to_sdp_string(),
            },
        });
        self.dirty.insert(room.clone());
        self.touched.insert(client);
        self.drive(now);
        Ok(())
    }

    /// Removes a client (it left, or its signaling ended).
    pub fn remove(&mut self, now: Instant, client: ClientId) {
        self.drop_client(client);
        self.drive(now);
    }

    /// Drops a client's connection and everything kept about it; false if there was none.
    fn drop_client(&mut self, client: ClientId) -> bool {
        let Some(state) = self.clients.remove(&client) else {
            return false;
        };
        let room = &state.room;
        self.routes.retain(|_, owner| *owner != client);
        self.keyframes.forget(client);
        self.forward.retain(|key, _| key.publisher != client);
        self.rates.retain(|key, _| key.publisher != client);
        if let Some(state) = self.rooms.get_mut(room) {
            state.members.retain(|member| *member != client);
            state.speaker.forget(client);
            if state.members.is_empty() {
                self.rooms.remove(room);
            } else {
                self.dirty.insert(room.clone());
            }
        }
        self.touched.remove(&client);
        true
    }

    /// A client whose `Rtc` failed or panicked: drop it alone.
    fn fail(&mut self, client: ClientId) {
        self.stats.failed += 1;
        if self.drop_client(client) {
            self.outputs.push_back(Output::Gone { client });
        }
    }

    /// Takes one datagram (UDP) or one de-framed packet (ICE-TCP). Returns false if no client
    /// claims it (stray or stale traffic, dropped).
    pub fn handle_receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Ok(Ok(contents)) = catch_unwind(|| data.try_into()) else {
            return false;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        let cached = self
            .routes
            .get(&(source, proto))
            .copied()
            .filter(|id| self.clients.get(id).is_some_and(|c| c.rtc.accepts(&input)));
        let owner = cached.or_else(|| {
            self.clients
                .iter()
                .find(|(_, client)| client.rtc.accepts(&input))
                .map(|(id, _)| *id)
        });
        let Some(id) = owner else {
            return false;
        };
        self.routes.insert((source, proto), id);
        self.input(id, input);
        self.drive(now);
        true
    }

    fn input(&mut self, id: ClientId, input: Input) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let result = catch_unwind(AssertUnwindSafe(|| client.rtc.handle_input(input)));
        match result {
            Ok(Ok(())) => {
                self.touched.insert(id);
            }
            Ok(Err(error)) => {
                tracing::debug!(client = id.0, %error, "connection failed");
                self.fail(id);
            }
            Err(_) => {
                tracing::error!(client = id.0, "a connection panicked; it alone was closed");
                self.fail(id);
            }
        }
    }

    /// Advances time: timers of the clients that are due, held-back keyframe requests, the active
    /// speaker.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, client)| client.next_timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.input(id, Input::Timeout(now));
        }
        for key in self.keyframes.due(now) {
            self.send_keyframe_request(key, KeyframeRequestKind::Pli);
        }
        if now >= self.next_rate_window {
            self.next_rate_window = now + RATE_WINDOW;
            for (bytes, bps) in self.rates.values_mut() {
                *bps = *bytes * 8 * 1000 / RATE_WINDOW.as_millis() as u64;
                *bytes = 0;
            }
            // Which videos fit depends on the rates: every room is planned again (a plan that
            // changes nothing sends nothing).
            if self.config.bandwidth_estimation {
                self.dirty.extend(self.rooms.keys().cloned());
            }
        }
        if now >= self.next_speaker_tick {
            self.next_speaker_tick = now + SPEAKER_TICK;
            let mut changes = Vec::new();
            for (room, state) in &mut self.rooms {
                if let Some(speaker) = state.speaker.poll(now) {
                    changes.push((room.clone(), speaker));
                }
            }
            for (room, speaker) in changes {
                self.announce_speaker(&room, speaker);
                // The speaker's camera is kept first when bandwidth is short.
                self.dirty.insert(room);
            }
        }
        self.drive(now);
    }

    /// When [`Sfu::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Instant {
        let clients = self
            .clients
            .values()
            .map(|client| client.next_timeout)
            .min();
        let mut next = self.next_speaker_tick.min(self.next_rate_window);
        for candidate in [clients, self.keyframes.next_due()].into_iter().flatten() {
            next = next.min(candidate);
        }
        next
    }

    /// The next thing to do, or `None` until more input arrives.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Polls touched clients until each is idle, acting on their events (which may touch others),
    /// then re-plans dirty rooms and removes dead clients.
    fn drive(&mut self, now: Instant) {
        loop {
            while let Some(&id) = self.touched.iter().next() {
                self.touched.remove(&id);
                self.poll_client(id, now);
            }
            if self.dirty.is_empty() {
                break;
            }
            let rooms: Vec<RoomId> = self.dirty.drain().collect();
            for room in rooms {
                self.plan(&room, now);
            }
        }
        let dead: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, client)| !client.rtc.is_alive())
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            if self.drop_client(id) {
                self.outputs.push_back(Output::Gone { client: id });
            }
        }
        if !self.dirty.is_empty() || !self.touched.is_empty() {
            self.drive(now);
        }
    }

    fn poll_client(&mut self, id: ClientId, now: Instant) {
        self.flush_outbox(id);
        loop {
            let Some(client) = self.clients.get_mut(&id) else {
                return;
            };
            if !client.rtc.is_alive() {
                return;
            }
            let output = match catch_unwind(AssertUnwindSafe(|| client.rtc.poll_output())) {
                Ok(Ok(output)) => output,
                Ok(Err(error)) => {
                    tracing::debug!(client = id.0, %error, "connection failed");
                    self.fail(id);
                    return;
                }
                Err(_) => {
                    tracing::error!(client = id.0, "a connection panicked; it alone was closed");
                    self.fail(id);
                    return;
                }
            };
            match output {
                RtcOutput::Timeout(at) => {
                    client.next_timeout = at;
                    return;
                }
                RtcOutput::Transmit(transmit) => self.outputs.push_back(Output::Transmit(transmit)),
                RtcOutput::Event(event) => self.on_event(id, event, now),
            }
        }
    }

    fn on_event(&mut self, id: ClientId, event: Event, now: Instant) {
        match event {
            Event::MediaData(data) => self.on_media(id, data, now),
            Event::KeyframeRequest(request) => self.on_keyframe_request(id, request, now),
            Event::MediaAdded(added) => {
                self.on_direction(id, added.mid, added.kind, added.direction)
            }
            Event::MediaChanged(changed) => {
                let kind = self
                    .clients
                    .get_mut(&id)
                    .and_then(|client| client.rtc.media(changed.mid).map(|media| media.kind()));
                if let Some(kind) = kind {
                    self.on_direction(id, changed.mid, kind, changed.direction);
                }
            }
            Event::ChannelOpen(channel, label) => {
                if let Some(client) = self.clients.get_mut(&id)
                    && let Some(&known) = RELAYED_CHANNELS.iter().find(|known| **known == label)
                {
                    client.channels.retain(|(_, l)| *l != known);
                    client.channels.push((channel, known));
                }
            }
            Event::ChannelClose(channel) => {
                if let Some(client) = self.clients.get_mut(&id) {
                    client.channels.retain(|(c, _)| *c != channel);
                }
            }
            Event::ChannelData(data) => self.relay(id, data),
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                if let Some(client) = self.clients.get_mut(&id) {
                    let bps = estimate.as_u64();
                    // Plan again when the estimate moved by more than a tenth.
                    let moved = client
                        .estimate
                        .is_none_or(|old| old.abs_diff(bps) > old / 10);
                    if moved {
                        self.dirty.insert(client.room.clone());
                    }
                    client.estimate = Some(bps);
                }
            }
            Event::Connected => {
                // Keyframes asked for at negotiation went out before this connection could
                // carry them: ask again now, so its videos start at once.
                let sources: Vec<SourceKey> = self
                    .clients
                    .get(&id)
                    .map(|client| {
                        client
                            .slots
                            .iter()
                            .filter(|slot| slot.video && !slot.paused)
                            .filter_map(|slot| slot.source)
                            .collect()
                    })
                    .unwrap_or_default();
                for key in sources {
                    if self.keyframes.request(key, now) {
                        self.send_keyframe_request(key, KeyframeRequestKind::Pli);
                    }
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                // An ICE-lite server cannot restart ICE itself; the browser makes a new
                // connection, so this one is done.
                if let Some(client) = self.clients.get_mut(&id) {
                    client.rtc.disconnect();
                }
            }
            _ => {}
        }
    }

    fn on_direction(&mut self, id: ClientId, mid: Mid, kind: MediaKind, direction: Direction) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        // Directions are the SFU's: "sending" is a browser's receive slot.
        if direction.is_receiving() {
            client.incoming.insert(mid);
        } else {
            client.incoming.remove(&mid);
        }
        let has_slot = client.slots.iter().any(|slot| slot.mid == mid);
        let video = kind == MediaKind::Video;
        if direction.is_sending() && !has_slot {
            if client
                .slots
                .iter()
                .filter(|slot| slot.video == video)
                .count()
                < MAX_SLOTS
            {
                client.slots.push(Slot {
                    mid,
                    video,
                    source: None,
                    paused: false,
                });
            }
        } else if !direction.is_sending() && has_slot {
            client.slots.retain(|slot| slot.mid != mid);
        }
        self.dirty.insert(client.room.clone());
    }

    /// Works out again who gets what in `room`, tells browsers whose slots changed, asks for the
    /// keyframes new receivers need, and rebuilds the room's forwarding table.
    fn plan(&mut self, room: &RoomId, now: Instant) {
        let Some(state) = self.rooms.get(room) else {
            return;
        };
        let members = state.members.clone();
        let speaker = state.speaker.current();
        let rates = &self.rates;
        let sources: Vec<Source> = members
            .iter()
            .filter_map(|id| self.clients.get(id).map(|client| (*id, client)))
            .flat_map(|(id, client)| {
                client
                    .published
                    .iter()
                    .filter(|(mid, _)| client.incoming.contains(mid))
                    .map(move |(mid, source)| Source {
                        key: SourceKey {
                            publisher: id,
                            mid: *mid,
                        },
                        peer: client.peer.clone(),
                        source: *source,
                        bitrate_bps: rates
                            .get(&SourceKey {
                                publisher: id,
                                mid: *mid,
                            })
                            .map_or(0, |(_, bps)| *bps),
                    })
            })
            .collect();
        let mut keyframes = Vec::new();
        for id in &members {
            let Some(client) = self.clients.get_mut(id) else {
                continue;
            };
            let others: Vec<Source> = sources
                .iter()
                .filter(|source| source.key.publisher != *id)
                .cloned()
                .collect();
            let assignment = routing::assign(&mut client.slots, &others, client.estimate, speaker);
            keyframes.extend(assignment.keyframes);
            let summary = (assignment.tracks, assignment.need);
            if client.last_tracks.as_ref() != Some(&summary) {
                self.outputs.push_back(Output::Signal {
                    client: *id,
                    message: ServerMessage::SfuTracks {
                        tracks: summary.0.clone(),
                        need: summary.1,
                    },
                });
                client.last_tracks = Some(summary);
            }
        }
        for source in &sources {
            self.forward.remove(&source.key);
        }
        self.forward
            .retain(|key, _| members.contains(&key.publisher));
        for id in &members {
            let Some(client) = self.clients.get(id) else {
                continue;
            };
            for slot in &client.slots {
                if let Some(key) = slot.source
                    && !slot.paused
                {
                    self.forward.entry(key).or_default().push((*id, slot.mid));
                }
            }
        }
        // Tell each connection's estimator what is worth probing for.
        let estimating = self.config.bandwidth_estimation;
        for id in members.iter().filter(|_| estimating) {
            if let Some(client) = self.clients.get_mut(id) {
                // Everything assigned to it, at the rates it arrives at, with a fifth to spare.
                let wanted: u64 = client
                    .slots
                    .iter()
                    .filter_map(|slot| slot.source.map(|key| (slot.video, key)))
                    .map(|(video, key)| {
                        let rate = self.rates.get(&key).map_or(0, |(_, bps)| *bps);
                        if video {
                            rate.max(routing::VIDEO_MIN_BPS)
                        } else {
                            rate.max(routing::AUDIO_BUDGET_BPS)
                        }
                    })
                    .sum();
                client
                    .rtc
                    .bwe()
                    .set_desired_bitrate(Bitrate::bps(wanted + wanted / 5));
            }
        }
        for key in keyframes {
            if self.keyframes.request(key, now) {
                self.send_keyframe_request(key, KeyframeRequestKind::Pli);
            }
        }
    }

    fn announce_speaker(&mut self, room: &RoomId, speaker: Option<ClientId>) {
        let Some(state) = self.rooms.get(room) else {
            return;
        };
        let peer = speaker
            .and_then(|id| self.clients.get(&id))
            .map(|client| client.peer.clone());
        for id in &state.members {
            self.outputs.push_back(Output::Signal {
                client: *id,
                message: ServerMessage::SfuSpeaker { peer: peer.clone() },
            });
        }
    }

    fn on_media(&mut self, id: ClientId, data: MediaData, now: Instant) {
        let key = SourceKey {
            publisher: id,
            mid: data.mid,
        };
        if let Some(level) = data.ext_vals.audio_level
            && let Some(client) = self.clients.get(&id)
            && let Some(state) = self.rooms.get_mut(&client.room)
        {
            state.speaker.level(id, level, now);
        }
        self.rates.entry(key).or_default().0 += data.data.len() as u64;
        if !data.contiguous && self.keyframes.request(key, now) {
            self.send_keyframe_request(key, KeyframeRequestKind::Fir);
        }
        // Simulcast layers other than the top one are not forwarded (browsers here send one).
        if data.rid.is_some_and(|rid| rid.to_string() != "h") {
            return;
        }
        let Some(targets) = self.forward.get(&key) else {
            return;
        };
        for &(receiver, mid) in targets {
            let Some(client) = self.clients.get_mut(&receiver) else {
                continue;
            };
            let Some(writer) = client.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                continue;
            };
            if writer
                .write(pt, data.network_time, data.time, data.data.clone())
                .is_ok()
            {
                self.stats.forwarded += 1;
                self.touched.insert(receiver);
            }
        }
    }

    fn on_keyframe_request(&mut self, id: ClientId, request: KeyframeRequest, now: Instant) {
        let key = self.clients.get(&id).and_then(|client| {
            client
                .slots
                .iter()
                .find(|slot| slot.mid == request.mid)
                .and_then(|slot| slot.source)
        });
        if let Some(key) = key
            && self.keyframes.request(key, now)
        {
            self.send_keyframe_request(key, request.kind);
        }
    }

    /// Moves queued relay messages into the recipient's SCTP buffer while it has room.
    fn flush_outbox(&mut self, id: ClientId) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        while let Some((channel_id, binary, bytes)) = client.outbox.front() {
            let written = match client.rtc.channel(*channel_id) {
                Some(mut channel) => channel.write(*binary, bytes),
                // The channel closed: what was queued for it is dropped.
                None => Ok(true),
            };
            match written {
                Ok(false) => return,
                Ok(true) => self.stats.relayed += 1,
                Err(_) => self.stats.relay_dropped += 1,
            }
            if let Some((_, _, bytes)) = client.outbox.pop_front() {
                client.outbox_bytes -= bytes.len();
            }
        }
    }

    fn send_keyframe_request(&mut self, key: SourceKey, kind: KeyframeRequestKind) {
        let Some(client) = self.clients.get_mut(&key.publisher) else {
            return;
        };
        if let Some(mut writer) = client.rtc.writer(key.mid) {
            // Fails only when the publisher stopped sending on this mid meanwhile.
            let _ = writer.request_keyframe(None, kind);
            self.touched.insert(key.publisher);
        }
    }

    /// Relays one data-channel message from `id` to its recipients in the same room, on the
    /// channel with the same label.
    fn relay(&mut self, id: ClientId, data: ChannelData) {
        let Some(sender) = self.clients.get(&id) else {
            return;
        };
        let Some(label) = sender.channel_label(data.id) else {
            return;
        };
        let request = if data.binary {
            relay::parse_binary(&data.data)
        } else {
            relay::parse_text(&data.data)
        };
        let request = match request {
            Ok(request) => request,
            Err(error) => {
                self.outputs.push_back(Output::Signal {
                    client: id,
                    message: ServerMessage::error_with(
                        ErrorCode::BadMessage,
                        format!("a relayed message was dropped: {error}"),
                    ),
                });
                return;
            }
        };
        let from = sender.peer.clone();
        let room = sender.room.clone();
        let delivered: Arc<[u8]> = if data.binary {
            relay::deliver_binary(&from, request.payload)
        } else {
            relay::deliver_text(&from, request.payload)
        }
        .into();
        debug_assert!(delivered.len() <= MAX_RELAY_MESSAGE_BYTES + 80);
        let recipients: Vec<ClientId> = self
            .rooms
            .get(&room)
            .map(|state| {
                state
                    .members
                    .iter()
                    .copied()
                    .filter(|member| *member != id)
                    .filter(|member| {
                        request.to.as_ref().is_none_or(|to| {
                            self.clients.get(member).is_some_and(|c| &c.peer == to)
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut dropped = false;
        for recipient in recipients {
            let Some(client) = self.clients.get_mut(&recipient) else {
                continue;
            };
            let Some(channel_id) = client.channel_id(label) else {
                continue;
            };
            if client.outbox_bytes + delivered.len() > RELAY_QUEUE_LIMIT {
                self.stats.relay_dropped += 1;
                dropped = true;
                continue;
            }
            // Behind what is already queued, in order; the queue drains as SCTP frees room.
            client.outbox_bytes += delivered.len();
            client
                .outbox
                .push_back((channel_id, data.binary, Arc::clone(&delivered)));
            self.touched.insert(recipient);
        }
        if dropped {
            self.outputs.push_back(Output::Signal {
                client: id,
                message: ServerMessage::error_with(
                    ErrorCode::ServerBusy,
                    "a relayed message was dropped: the recipient is not keeping up",
                ),
            });
        }
    }
}

/// The first `a=ice-ufrag:` of an SDP.
fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|line| line.trim().strip_prefix("a=ice-ufrag:"))
        .map(|ufrag| ufrag.to_owned())
}

impl std::fmt::Debug for Sfu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sfu")
            .field("config", &self.config)
            .field("clients", &self.clients.len())
            .field("rooms", &self.rooms.len())
            .field("stats", &self.stats)
            .finish()
    }
}
