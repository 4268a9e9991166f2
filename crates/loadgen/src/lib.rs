//! Synthetic participants for Natter's group rooms.
//!
//! A [`Participant`] is a str0m client that behaves like a browser towards the SFU: it offers
//! (the only side that does), publishes a synthetic microphone (Opus-sized packets, 50 a second)
//! and camera (VP8 frames of about ten packets, 30 a second: about 300 packets a second), adds the
//! receive slots the SFU asks for, and opens the `chat` data channel. Every frame carries its send
//! time, so receivers measure the forwarding delay. It is sans-IO like str0m: the SFU's tests
//! drive it in memory, and `natter-load` drives it over real sockets against a running server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use natter_proto::signaling::{MediaSource, PublishedTrack, TrackNeed};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcError};

/// Bytes of one synthetic Opus frame (a 20 ms frame of speech is 60–120 bytes).
pub const AUDIO_FRAME_BYTES: usize = 100;
/// Synthetic audio frames a second.
pub const AUDIO_FRAMES_PER_SECOND: u32 = 50;
/// Bytes of one synthetic VP8 frame: about ten packets at str0m's packet size.
pub const VIDEO_FRAME_BYTES: usize = 11_000;
/// Synthetic video frames a second.
pub const VIDEO_FRAMES_PER_SECOND: u32 = 30;
/// Every this many video frames is a keyframe.
const KEYFRAME_EVERY: u64 = 90;

/// What a participant publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    /// A synthetic microphone.
    pub audio: bool,
    /// A synthetic camera.
    pub video: bool,
}

/// What one participant received.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// Audio frames, by the SFU's sending `mid`.
    pub audio_frames: HashMap<Mid, u64>,
    /// Video frames, by the SFU's sending `mid`.
    pub video_frames: HashMap<Mid, u64>,
    /// Send-to-receive delay of each frame, in microseconds.
    pub delays_us: Vec<u64>,
    /// Chat channel messages, as received (relay envelopes).
    pub chat: Vec<String>,
    /// Binary chat-channel messages: the first four bytes of each payload (after the relay's
    /// sender id), as a big-endian number.
    pub binary: Vec<u32>,
    /// Keyframe requests the SFU sent this participant as a publisher.
    pub keyframe_requests: u64,
}

impl Received {
    /// All frames received.
    pub fn frames(&self) -> u64 {
        self.audio_frames.values().sum::<u64>() + self.video_frames.values().sum::<u64>()
    }
}

/// One synthetic participant.
pub struct Participant {
    /// The str0m connection (to the SFU).
    pub rtc: Rtc,
    /// Its own address (host candidate).
    pub addr: SocketAddr,
    /// What it received so far.
    pub received: Received,
    /// The time all send times are measured from (shared by every participant of a run).
    epoch: Instant,
    pending: Option<SdpPendingOffer>,
    offer: Option<(String, Vec<PublishedTrack>)>,
    published: Vec<(Mid, MediaSource)>,
    chat: Option<ChannelId>,
    next_audio: Option<Instant>,
    next_video: Option<Instant>,
    audio_count: u64,
    video_count: u64,
    keyframe_wanted: bool,
}

impl Participant {
    /// A participant at `addr` with its first offer ready ([`Participant::take_offer`]).
    pub fn new(now: Instant, epoch: Instant, addr: SocketAddr, publish: Publish) -> Self {
        let mut rtc = Rtc::builder().build(now);
        if let Ok(candidate) = Candidate::host(addr, "udp") {
            rtc.add_local_candidate(candidate);
        }
        let mut change = rtc.sdp_api();
        let chat = change.add_channel("chat".to_owned());
        let mut published = Vec::new();
        if publish.audio {
            let mid = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            published.push((mid, MediaSource::Microphone));
        }
        if publish.video {
            let mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
            published.push((mid, MediaSource::Camera));
        }
        let applied = change.apply();
        let mut participant = Self {
            rtc,
            addr,
            received: Received::default(),
            epoch,
            pending: None,
            offer: None,
            published,
            chat: Some(chat),
            next_audio: publish.audio.then_some(now),
            next_video: publish.video.then_some(now),
            audio_count: 0,
            video_count: 0,
            keyframe_wanted: true,
        };
        if let Some((offer, pending)) = applied {
            participant.pending = Some(pending);
            participant.offer = Some((offer.to_sdp_string(), participant.tracks()));
        }
        participant
    }

    fn tracks(&self) -> Vec<PublishedTrack> {
        self.published
            .iter()
            .map(|(mid, source)| PublishedTrack {
                mid: mid.to_string(),
                source: *source,
            })
            .collect()
    }

    /// The offer to send as `sfu-offer`, if one is waiting.
    pub fn take_offer(&mut self) -> Option<(String, Vec<PublishedTrack>)> {
        self.offer.take()
    }

    /// Applies the SFU's answer.
    pub fn handle_answer(&mut self, sdp: &str) -> Result<(), RtcError> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let answer = SdpAnswer::from_sdp_string(sdp)?;
        self.rtc.sdp_api().accept_answer(pending, answer)
    }

    /// Adds the receive slots the SFU asks for (then [`Participant::take_offer`] has an offer).
    pub fn handle_need(&mut self, need: TrackNeed) {
        if self.pending.is_some() || (need.audio == 0 && need.video == 0) {
            // The answer to the offer under way brings a fresh `sfu-tracks`.
            return;
        }
        let mut change = self.rtc.sdp_api();
        for _ in 0..need.audio {
            change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        for _ in 0..need.video {
            change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        }
        if let Some((offer, pending)) = change.apply() {
            self.pending = Some(pending);
            self.offer = Some((offer.to_sdp_string(), self.tracks()));
        }
    }

    /// Takes a datagram from the network.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        data: &[u8],
    ) -> Result<(), RtcError> {
        let Ok(contents) = data.try_into() else {
            return Ok(());
        };
        self.rtc.handle_input(Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.addr,
                contents,
            },
        ))
    }

    /// Advances time: str0m's timers, then the synthetic media that is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), RtcError> {
        self.rtc.handle_input(Input::Timeout(now))?;
        self.send_media(now);
        Ok(())
    }

    /// When [`Participant::handle_timeout`] is next due, given str0m's own next timeout.
    pub fn next_timeout(&self, rtc_timeout: Instant) -> Instant {
        [self.next_audio, self.next_video]
            .into_iter()
            .flatten()
            .fold(rtc_timeout, Instant::min)
    }

    /// Sends a binary relay message to everyone: `payload` behind the relay's empty recipient.
    /// False when the channel is not open or its buffer is full (try again later).
    pub fn send_binary(&mut self, payload: &[u8]) -> bool {
        let Some(mut channel) = self.chat.and_then(|id| self.rtc.channel(id)) else {
            return false;
        };
        let mut message = Vec::with_capacity(payload.len() + 1);
        message.push(0);
        message.extend_from_slice(payload);
        channel.write(true, &message).unwrap_or(false)
    }

    /// Sends a chat message to everyone, in a relay envelope. False until the channel is open.
    pub fn send_chat(&mut self, text: &str) -> bool {
        let Some(mut channel) = self.chat.and_then(|id| self.rtc.channel(id)) else {
            return false;
        };
        let message = serde_json::json!({
            "msg": {"type": "chat", "id": "loadgenmessage01", "text": text, "sentAt": 0}
        });
        channel
            .write(false, message.to_string().as_bytes())
            .unwrap_or(false)
    }

    fn stamp(&self, now: Instant, bytes: &mut [u8]) {
        let micros = now.saturating_duration_since(self.epoch).as_micros() as u64;
        bytes[1..9].copy_from_slice(&micros.to_be_bytes());
    }

    fn send_media(&mut self, now: Instant) {
        if !self.rtc.is_connected() {
            return;
        }
        let audio_mid = self.mid_of(MediaSource::Microphone);
        while let (Some(due), Some(mid)) = (self.next_audio, audio_mid) {
            if due > now {
                break;
            }
            let mut frame = vec![0x55; AUDIO_FRAME_BYTES];
            self.stamp(now, &mut frame);
            let time = MediaTime::new(
                self.audio_count * 960,
                str0m::media::Frequency::FORTY_EIGHT_KHZ,
            );
            self.write(mid, Codec::Opus, now, time, frame, Some(-30));
            self.audio_count += 1;
            self.next_audio = Some(due + Duration::from_secs(1) / AUDIO_FRAMES_PER_SECOND);
        }
        let video_mid = self.mid_of(MediaSource::Camera);
        while let (Some(due), Some(mid)) = (self.next_video, video_mid) {
            if due > now {
                break;
            }
            let key = self.keyframe_wanted || self.video_count.is_multiple_of(KEYFRAME_EVERY);
            self.keyframe_wanted = false;
            let mut frame = vec![0xaa; VIDEO_FRAME_BYTES];
            // VP8's frame tag: the lowest bit of the first byte is 0 for a keyframe.
            frame[0] = if key { 0x10 } else { 0x11 };
            self.stamp(now, &mut frame);
            let time = MediaTime::new(self.video_count * 3000, str0m::media::Frequency::NINETY_KHZ);
            self.write(mid, Codec::Vp8, now, time, frame, None);
            self.video_count += 1;
            self.next_video = Some(due + Duration::from_secs(1) / VIDEO_FRAMES_PER_SECOND);
        }
    }

    fn mid_of(&self, source: MediaSource) -> Option<Mid> {
        self.published
            .iter()
            .find(|(_, s)| *s == source)
            .map(|(mid, _)| *mid)
    }

    fn write(
        &mut self,
        mid: Mid,
        codec: Codec,
        now: Instant,
        time: MediaTime,
        frame: Vec<u8>,
        level: Option<i8>,
    ) {
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|params| params.spec().codec == codec)
            .map(|params| params.pt())
        else {
            return;
        };
        let writer = match level {
            Some(level) => writer.audio_level(level, true),
            None => writer,
        };
        // A full send buffer drops the frame, as a browser's encoder would skip one.
        let _ = writer.write(pt, now, time, frame);
    }

    /// Drains str0m's output: datagrams to send go to `transmit`; returns str0m's next timeout.
    pub fn poll(
        &mut self,
        now: Instant,
        transmit: &mut Vec<Transmit>,
    ) -> Result<Instant, RtcError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(at) => return Ok(at),
                Output::Transmit(datagram) => transmit.push(datagram),
                Output::Event(event) => self.on_event(now, event),
            }
        }
    }

    fn on_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::MediaData(data) => {
                if data.data.len() >= 9 {
                    let mut stamp = [0u8; 8];
                    stamp.copy_from_slice(&data.data[1..9]);
                    let sent = self.epoch + Duration::from_micros(u64::from_be_bytes(stamp));
                    self.received
                        .delays_us
                        .push(now.saturating_duration_since(sent).as_micros() as u64);
                }
                let counts = if data.params.spec().codec == Codec::Opus {
                    &mut self.received.audio_frames
                } else {
                    &mut self.received.video_frames
                };
                *counts.entry(data.mid).or_default() += 1;
            }
            Event::ChannelData(data) if !data.binary => {
                self.received
                    .chat
                    .push(String::from_utf8_lossy(&data.data).into_owned());
            }
            Event::ChannelData(data) => {
                let start = 1 + usize::from(data.data.first().copied().unwrap_or(0));
                if let Some(head) = data.data.get(start..start + 4) {
                    let mut number = [0u8; 4];
                    number.copy_from_slice(head);
                    self.received.binary.push(u32::from_be_bytes(number));
                }
            }
            Event::KeyframeRequest(_) => {
                self.received.keyframe_requests += 1;
                self.keyframe_wanted = true;
            }
            _ => {}
        }
    }
}

/// str0m's default payload types for Opus and VP8, which every participant offers and the SFU
/// therefore sends with.
const MEDIA_PAYLOAD_TYPES: [u8; 2] = [111, 96];

/// True for an RTP packet of original media: not RTCP, STUN or DTLS, not a retransmission (RTX
/// has its own payload type) and not a padding-only bandwidth probe, judged from its header.
pub fn is_rtp(datagram: &[u8]) -> bool {
    matches!(datagram, [first, second, ..]
        if first >> 6 == 2 && first & 0x20 == 0 && MEDIA_PAYLOAD_TYPES.contains(&(second & 0x7f)))
}
