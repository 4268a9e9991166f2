//! The SFU core with synthetic str0m participants on an in-memory network and a simulated clock:
//! forwarding, the relay, departures, bad offers and malformed packets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use natter_loadgen::{Participant, Publish};
use natter_proto::signaling::{MediaSource, PublishedTrack};
use natter_proto::{ErrorCode, PeerId, RoomId, ServerMessage};
use natter_sfu::{ClientId, OfferError, Output, Sfu, SfuConfig};
use str0m::net::Protocol;

const SFU: &str = "10.0.0.1:5000";

struct Person {
    participant: Participant,
    client: ClientId,
    peer: PeerId,
    timeout: Instant,
    /// Every `sfu-tracks` and error the server sent, newest last.
    signals: Vec<ServerMessage>,
}

struct Net {
    sfu: Sfu,
    people: Vec<Person>,
    room: RoomId,
    now: Instant,
    epoch: Instant,
}

fn peer(index: usize) -> PeerId {
    PeerId::try_from(format!("participant-{index:05}")).unwrap()
}

impl Net {
    /// Forwarding alone: no bandwidth estimation, so nothing is paced or paused.
    fn new() -> Self {
        Self::with_estimation(false)
    }

    fn with_estimation(bandwidth_estimation: bool) -> Self {
        let now = Instant::now();
        Self {
            sfu: Sfu::new(
                SfuConfig {
                    udp: vec![SFU.parse().unwrap()],
                    tcp: Vec::new(),
                    bandwidth_estimation,
                },
                now,
            ),
            people: Vec::new(),
            room: RoomId::try_from("RoomRoomRoomRoomRoom01".to_owned()).unwrap(),
            now,
            epoch: now,
        }
    }

    fn join(&mut self, publish: Publish) -> usize {
        let index = self.people.len();
        let addr: SocketAddr = format!("10.0.1.{}:6000", index + 1).parse().unwrap();
        let participant = Participant::new(self.now, self.epoch, addr, publish);
        self.people.push(Person {
            participant,
            client: ClientId(index as u64 + 1),
            peer: peer(index),
            timeout: self.now,
            signals: Vec::new(),
        });
        self.offer(index);
        index
    }

    fn offer(&mut self, index: usize) {
        let person = &mut self.people[index];
        if let Some((sdp, tracks)) = person.participant.take_offer() {
            self.sfu
                .offer(
                    self.now,
                    person.client,
                    &self.room,
                    &person.peer,
                    &sdp,
                    &tracks,
                )
                .expect("the SFU takes a str0m offer");
        }
    }

    /// Moves every pending datagram and signal until nothing is left to do at this instant.
    fn settle(&mut self) {
        for _ in 0..50 {
            let mut moved = false;
            for index in 0..self.people.len() {
                let person = &mut self.people[index];
                if person.timeout <= self.now {
                    person.participant.handle_timeout(self.now).unwrap();
                }
                let mut out = Vec::new();
                let rtc_timeout = person.participant.poll(self.now, &mut out).unwrap();
                person.timeout = person.participant.next_timeout(rtc_timeout);
                moved |= !out.is_empty();
                to_sfu(&mut self.sfu, self.now, out);
            }
            if self.sfu.poll_timeout() <= self.now {
                self.sfu.handle_timeout(self.now);
            }
            while let Some(output) = self.sfu.poll_output() {
                moved = true;
                match output {
                    Output::Transmit(transmit) => {
                        if let Some(person) = self
                            .people
                            .iter_mut()
                            .find(|p| p.participant.addr == transmit.destination)
                        {
                            person
                                .participant
                                .handle_receive(self.now, transmit.source, &transmit.contents)
                                .unwrap();
                            // As a real client polls after each datagram: str0m's DTLS queue
                            // is bounded.
                            let mut out = Vec::new();
                            person.participant.poll(self.now, &mut out).unwrap();
                            to_sfu(&mut self.sfu, self.now, out);
                        }
                    }
                    Output::Signal { client, message } => {
                        let index = self.people.iter().position(|p| p.client == client).unwrap();
                        match &message {
                            ServerMessage::SfuAnswer { sdp } => {
                                self.people[index].participant.handle_answer(sdp).unwrap();
                            }
                            ServerMessage::SfuTracks { need, .. } => {
                                self.people[index].participant.handle_need(*need);
                                self.offer(index);
                            }
                            _ => {}
                        }
                        self.people[index].signals.push(message);
                    }
                    Output::Gone { .. } => {}
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.settle();
            self.now += Duration::from_millis(5);
        }
        self.settle();
    }

    fn frames(&self, index: usize) -> (usize, usize) {
        let received = &self.people[index].participant.received;
        let audio = received.audio_frames.values().filter(|n| **n > 10).count();
        let video = received.video_frames.values().filter(|n| **n > 10).count();
        (audio, video)
    }

    fn last_tracks(&self, index: usize) -> Vec<(PeerId, MediaSource)> {
        self.people[index]
            .signals
            .iter()
            .rev()
            .find_map(|message| match message {
                ServerMessage::SfuTracks { tracks, .. } => Some(
                    tracks
                        .iter()
                        .map(|track| (track.peer.clone(), track.source))
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default()
    }
}

/// Hands a participant's datagrams to the SFU.
fn to_sfu(sfu: &mut Sfu, now: Instant, datagrams: Vec<str0m::net::Transmit>) {
    for datagram in datagrams {
        sfu.handle_receive(
            now,
            Protocol::Udp,
            datagram.source,
            datagram.destination,
            &datagram.contents,
        );
    }
}

/// Publishes nothing: only the data channel.
const SILENT: Publish = Publish {
    audio: false,
    video: false,
};

const BOTH: Publish = Publish {
    audio: true,
    video: true,
};

#[test]
fn three_participants_receive_each_others_audio_and_video() {
    let mut net = Net::new();
    for _ in 0..3 {
        net.join(BOTH);
    }
    net.run(Duration::from_secs(3));
    for index in 0..3 {
        assert_eq!(net.frames(index), (2, 2), "participant {index}");
        let delays = &net.people[index].participant.received.delays_us;
        assert!(!delays.is_empty());
    }
    assert!(net.sfu.stats().forwarded > 1000, "{:?}", net.sfu.stats());
    assert_eq!(net.last_tracks(0).len(), 4, "two people, two tracks each");
}

#[test]
fn chat_reaches_everyone_else_with_the_senders_id() {
    let mut net = Net::new();
    for _ in 0..3 {
        net.join(SILENT);
    }
    net.run(Duration::from_secs(2));
    assert!(net.people[0].participant.send_chat("hello everyone"));
    net.run(Duration::from_millis(200));
    for index in 1..3 {
        let chat = &net.people[index].participant.received.chat;
        assert_eq!(chat.len(), 1, "participant {index}: {chat:?}");
        let value: serde_json::Value = serde_json::from_str(&chat[0]).unwrap();
        assert_eq!(value["from"], peer(0).as_str());
        assert_eq!(value["msg"]["text"], "hello everyone");
    }
    assert!(
        net.people[0].participant.received.chat.is_empty(),
        "not echoed"
    );
}

#[test]
fn a_participant_who_leaves_frees_their_slots_and_the_rest_carry_on() {
    let mut net = Net::new();
    for _ in 0..3 {
        net.join(BOTH);
    }
    net.run(Duration::from_secs(2));
    let leaving = net.people[2].client;
    net.sfu.remove(net.now, leaving);
    net.people.remove(2);
    let before = net.people[0].participant.received.frames();
    net.run(Duration::from_secs(1));
    assert!(net.people[0].participant.received.frames() > before + 50);
    let tracks = net.last_tracks(0);
    assert!(
        tracks.iter().all(|(peer_id, _)| peer_id == &peer(1)),
        "{tracks:?}"
    );
    assert_eq!(net.sfu.client_count(), 2);
}

#[test]
fn a_late_joiner_gets_a_keyframe_request_sent_for_them() {
    let mut net = Net::new();
    net.join(BOTH);
    net.join(BOTH);
    net.run(Duration::from_secs(2));
    let requests_before = net.people[0].participant.received.keyframe_requests;
    net.join(BOTH);
    // Long enough for the newcomer's bandwidth estimate to grow to both synthetic videos
    // (2.6 Mbit/s each); until then its pacer holds some frames back.
    net.run(Duration::from_secs(3));
    assert!(
        net.people[0].participant.received.keyframe_requests > requests_before,
        "the publisher was asked for a keyframe for the newcomer"
    );
    assert_eq!(
        net.frames(2),
        (2, 2),
        "{:?} requests {} {}",
        net.people[2].participant.received.video_frames,
        net.people[0].participant.received.keyframe_requests,
        net.people[1].participant.received.keyframe_requests,
    );
}

#[test]
fn bad_offers_are_refused_without_harm() {
    let mut net = Net::new();
    net.join(BOTH);
    net.run(Duration::from_millis(500));
    let room = net.room.clone();
    let stranger = peer(99);
    let client = ClientId(99);
    let garbage = net
        .sfu
        .offer(net.now, client, &room, &stranger, "not sdp", &[]);
    assert!(matches!(garbage, Err(OfferError::Sdp(_))), "{garbage:?}");
    let track = |mid: &str, source| PublishedTrack {
        mid: mid.to_owned(),
        source,
    };
    let cases = [
        vec![
            track("0", MediaSource::Microphone),
            track("1", MediaSource::Microphone),
        ],
        vec![track(&"9".repeat(40), MediaSource::Camera)],
        vec![
            track("0", MediaSource::Microphone),
            track("1", MediaSource::Camera),
            track("2", MediaSource::Screen),
            track("3", MediaSource::Screen),
        ],
    ];
    for tracks in cases {
        let result = net
            .sfu
            .offer(net.now, client, &room, &stranger, "v=0", &tracks);
        assert_eq!(result, Err(OfferError::Tracks));
    }
    assert_eq!(net.sfu.client_count(), 1, "no half-made clients");
}

/// A small deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn malformed_packets_never_panic_and_forwarding_goes_on() {
    let mut net = Net::new();
    net.join(BOTH);
    net.join(BOTH);
    net.run(Duration::from_secs(2));
    let sfu: SocketAddr = SFU.parse().unwrap();
    let known = net.people[0].participant.addr;
    let stranger: SocketAddr = "10.9.9.9:4444".parse().unwrap();
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let length = (random.next() % 1400) as usize;
        let mut packet: Vec<u8> = (0..length).map(|_| random.next() as u8).collect();
        // Aim at each demultiplexed protocol: STUN (0–3), DTLS (20–63), RTP and RTCP (128–191).
        if let Some(first) = packet.first_mut() {
            *first = match round % 4 {
                0 => *first % 4,
                1 => 20 + *first % 44,
                2 => 128 + *first % 64,
                _ => *first,
            };
        }
        let source = if round % 2 == 0 { known } else { stranger };
        net.sfu
            .handle_receive(net.now, Protocol::Udp, source, sfu, &packet);
    }
    let before = net.people[1].participant.received.frames();
    net.run(Duration::from_secs(2));
    // The targeted connection may have been closed by its own Rtc; the SFU and the other
    // participant are unharmed.
    assert!(net.sfu.client_count() >= 1);
    let after = net.people[1].participant.received.frames();
    assert!(after >= before, "nothing panicked");
    let errors = net.people[1]
        .signals
        .iter()
        .filter(|m| {
            matches!(
                m,
                ServerMessage::Error {
                    code: ErrorCode::Internal,
                    ..
                }
            )
        })
        .count();
    assert_eq!(errors, 0);
}

#[test]
fn a_browser_that_replaces_its_connection_starts_afresh() {
    let mut net = Net::new();
    net.join(BOTH);
    net.join(BOTH);
    net.run(Duration::from_secs(2));
    // The same session makes a new RTCPeerConnection (its old one failed): a new ICE user
    // fragment and a new DTLS identity.
    let addr: SocketAddr = "10.0.2.1:7000".parse().unwrap();
    net.people[1].participant = Participant::new(net.now, net.epoch, addr, BOTH);
    net.offer(1);
    net.run(Duration::from_secs(2));
    assert_eq!(net.frames(1), (1, 1), "the new connection receives");
    let before = net.people[0].participant.received.frames();
    net.run(Duration::from_secs(1));
    assert!(
        net.people[0].participant.received.frames() > before + 50,
        "and publishes"
    );
    assert_eq!(net.sfu.client_count(), 2);
}

#[test]
fn a_burst_of_relayed_file_chunks_arrives_complete_and_in_order() {
    let mut net = Net::new();
    for _ in 0..3 {
        net.join(SILENT);
    }
    net.run(Duration::from_secs(2));
    // 8 MiB in 16 KiB messages: far more than one SCTP buffer, as a file sender's window is.
    let total = 512u32;
    let mut next = 0u32;
    let end = net.now + Duration::from_secs(30);
    while net.now < end {
        while next < total {
            let mut chunk = vec![0u8; 16 * 1024];
            chunk[..4].copy_from_slice(&next.to_be_bytes());
            if !net.people[0].participant.send_binary(&chunk) {
                break;
            }
            next += 1;
        }
        net.settle();
        net.now += Duration::from_millis(2);
        if (1..3).all(|i| net.people[i].participant.received.binary.len() == total as usize) {
            break;
        }
    }
    for index in 1..3 {
        let received = &net.people[index].participant.received.binary;
        assert_eq!(received.len(), total as usize, "participant {index}");
        assert!(
            received.windows(2).all(|pair| pair[1] == pair[0] + 1),
            "in order"
        );
    }
    assert_eq!(net.sfu.stats().relay_dropped, 0);
}

#[test]
fn video_the_estimate_cannot_carry_is_paused_while_audio_goes_on() {
    // Synthetic cameras send 2.6 Mbit/s; a new connection's estimate starts at 1.5 Mbit/s.
    let mut net = Net::with_estimation(true);
    net.join(BOTH);
    net.join(BOTH);
    net.run(Duration::from_secs(3));
    let paused_once = net.people[1].signals.iter().any(|message| {
        matches!(message, ServerMessage::SfuTracks { tracks, .. }
            if tracks.iter().any(|t| t.source == MediaSource::Camera && t.paused))
    });
    assert!(paused_once, "the camera was paused for the receiver");
    let audio: u64 = net.people[1]
        .participant
        .received
        .audio_frames
        .values()
        .sum();
    assert!(audio > 100, "audio went on: {audio} frames");
}
