//! Who receives what: slot assignment, bandwidth pausing, keyframe-request coalescing and
//! active-speaker detection. Pure logic: no `Rtc`, no sockets, no clock reads (time is an
//! argument), so every policy here is tested without a network.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use natter_proto::PeerId;
use natter_proto::signaling::{ForwardedTrack, MediaSource, TrackNeed};
use str0m::media::Mid;

/// One participant's connection to the SFU, unique for the process's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// One published track: the publisher's connection and the `mid` it arrives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKey {
    /// Who publishes it.
    pub publisher: ClientId,
    /// The publisher's receiving `mid` (from the SFU's side).
    pub mid: Mid,
}

/// A track available in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Where it comes from.
    pub key: SourceKey,
    /// The publisher's peer id, as receivers know them.
    pub peer: PeerId,
    /// Microphone, camera or screen.
    pub source: MediaSource,
    /// What it arrives at, in bits per second, as last measured (0 until known).
    pub bitrate_bps: u64,
}

/// A receiving transceiver of one browser: a `mid` the SFU sends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The SFU's sending `mid` (the browser's `recvonly` transceiver).
    pub mid: Mid,
    /// Video or audio, fixed at negotiation.
    pub video: bool,
    /// The track it carries now.
    pub source: Option<SourceKey>,
    /// True while bandwidth holds this video back.
    pub paused: bool,
}

/// Bits per second kept for each audio track when working out how much video fits.
pub const AUDIO_BUDGET_BPS: u64 = 64_000;
/// The least a video track is counted at (one not yet measured, or sending little, may soon
/// send more); a receiver whose estimate cannot carry even this gets no video.
pub const VIDEO_MIN_BPS: u64 = 150_000;

/// What changed for one receiver after [`assign`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Every slot that carries a track, for `sfu-tracks`.
    pub tracks: Vec<ForwardedTrack>,
    /// Slots the browser must add.
    pub need: TrackNeed,
    /// Video sources this receiver starts (or resumes) getting: each needs a keyframe.
    pub keyframes: Vec<SourceKey>,
}

/// Priority of a video source when bandwidth is short: screens first, then the active speaker's
/// camera, then everyone else in order of arrival.
fn video_rank(source: &Source, speaker: Option<ClientId>) -> u8 {
    match source.source {
        MediaSource::Screen => 0,
        _ if Some(source.key.publisher) == speaker => 1,
        _ => 2,
    }
}

/// Assigns `sources` (everyone else's tracks, in order of arrival) to the slots of one receiver:
/// slots keep what they carry while it exists, free slots take new tracks, and video beyond what
/// `estimate_bps` carries is paused.
pub fn assign(
    slots: &mut [Slot],
    sources: &[Source],
    estimate_bps: Option<u64>,
    speaker: Option<ClientId>,
) -> Assignment {
    let mut assignment = Assignment::default();
    // Free slots whose source is gone.
    for slot in slots.iter_mut() {
        if let Some(key) = slot.source
            && !sources.iter().any(|source| source.key == key)
        {
            slot.source = None;
            slot.paused = false;
        }
    }
    // Screens first, so a shared screen is never the one left waiting for a slot.
    let mut ordered: Vec<&Source> = sources.iter().collect();
    ordered.sort_by_key(|source| u8::from(source.source != MediaSource::Screen));
    let mut started = Vec::new();
    for source in ordered {
        if slots.iter().any(|slot| slot.source == Some(source.key)) {
            continue;
        }
        let video = source.source.is_video();
        match slots
            .iter_mut()
            .find(|slot| slot.source.is_none() && slot.video == video)
        {
            Some(slot) => {
                slot.source = Some(source.key);
                slot.paused = false;
                if video {
                    started.push(source.key);
                }
            }
            None if video => assignment.need.video += 1,
            None => assignment.need.audio += 1,
        }
    }

    // Bandwidth: which videos fit beside the audio, at the rates they arrive at.
    let audio_count = slots
        .iter()
        .filter(|slot| !slot.video && slot.source.is_some())
        .count() as u64;
    let mut budget = match estimate_bps {
        None => u64::MAX,
        Some(bps) => bps.saturating_sub(AUDIO_BUDGET_BPS * audio_count),
    };
    let source_of = |key: SourceKey| sources.iter().find(|source| source.key == key);
    let mut videos: Vec<(u8, usize, usize)> = slots
        .iter()
        .enumerate()
        .filter(|(_, slot)| slot.video)
        .filter_map(|(index, slot)| {
            let key = slot.source?;
            let position = sources.iter().position(|source| source.key == key)?;
            Some((video_rank(&sources[position], speaker), position, index))
        })
        .collect();
    videos.sort_unstable();
    for &(_, position, index) in &videos {
        let cost = sources[position].bitrate_bps.max(VIDEO_MIN_BPS);
        // In order of priority, each video that still fits goes; a large one that does not fit
        // leaves the budget to smaller ones after it.
        let paused = cost > budget;
        if !paused {
            budget -= cost;
        }
        let slot = &mut slots[index];
        if slot.paused
            && !paused
            && let Some(key) = slot.source
        {
            started.push(key);
        }
        slot.paused = paused;
    }
    assignment.keyframes = started
        .into_iter()
        .filter(|key| {
            slots
                .iter()
                .any(|slot| slot.source == Some(*key) && !slot.paused)
        })
        .collect();

    for slot in slots.iter() {
        let Some(source) = slot.source.and_then(source_of) else {
            continue;
        };
        assignment.tracks.push(ForwardedTrack {
            mid: slot.mid.to_string(),
            peer: source.peer.clone(),
            source: source.source,
            paused: slot.paused,
        });
    }
    assignment
}

/// Shortest time between two keyframe requests to the same publisher's track. Receivers that ask
/// within it share one request: a keyframe serves everyone.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);

/// Coalesces keyframe requests (PLI/FIR from receivers, new receivers, resumed video) into at
/// most one per [`KEYFRAME_INTERVAL`] per source, without losing one that arrives in between.
#[derive(Debug, Default)]
pub struct KeyframeGate {
    /// When the last request for a source went out, and whether another one is waiting.
    sources: HashMap<SourceKey, (Instant, bool)>,
}

impl KeyframeGate {
    /// Asks for a keyframe of `key`: true to send the request now; otherwise it is sent by a
    /// later [`KeyframeGate::due`].
    pub fn request(&mut self, key: SourceKey, now: Instant) -> bool {
        match self.sources.get_mut(&key) {
            Some((last, pending)) if now.saturating_duration_since(*last) < KEYFRAME_INTERVAL => {
                *pending = true;
                false
            }
            _ => {
                self.sources.insert(key, (now, false));
                true
            }
        }
    }

    /// The held-back requests whose interval has passed: send them now.
    pub fn due(&mut self, now: Instant) -> Vec<SourceKey> {
        let mut due = Vec::new();
        for (key, (last, pending)) in &mut self.sources {
            if *pending && now.saturating_duration_since(*last) >= KEYFRAME_INTERVAL {
                *pending = false;
                *last = now;
                due.push(*key);
            }
        }
        due
    }

    /// When [`KeyframeGate::due`] next has something.
    pub fn next_due(&self) -> Option<Instant> {
        self.sources
            .values()
            .filter(|(_, pending)| *pending)
            .map(|(last, _)| *last + KEYFRAME_INTERVAL)
            .min()
    }

    /// Forgets the sources of a publisher that left.
    pub fn forget(&mut self, publisher: ClientId) {
        self.sources.retain(|key, _| key.publisher != publisher);
    }
}

/// How fast the envelope falls: about 50 dB a second at 50 packets a second.
const RELEASE_PER_PACKET: f32 = 1.0;
/// Loudness, in dB above -127 dBov, that counts as speaking (quieter than -50 dBov is not).
const SPEAKING_LOUDNESS: f32 = 77.0;
/// A speaker must be this much louder than the current one to take over.
const TAKEOVER_MARGIN: f32 = 6.0;
/// The active speaker changes at most this often, so the highlight does not flicker.
const MIN_SPEAKER_TIME: Duration = Duration::from_millis(500);
/// Audio older than this does not count (the speaker muted, left or lost packets).
const LEVEL_MAX_AGE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
struct Level {
    smoothed: f32,
    heard: Instant,
}

/// Finds the active speaker of a room from the audio levels (RFC 6464) in publishers' packets.
#[derive(Debug, Default)]
pub struct SpeakerDetector {
    levels: HashMap<ClientId, Level>,
    current: Option<ClientId>,
    changed: Option<Instant>,
}

impl SpeakerDetector {
    /// Takes one packet's level: `dbov` from 0 (loudest) down to -127 (silence).
    pub fn level(&mut self, client: ClientId, dbov: i8, now: Instant) {
        let loudness = 127.0 + f32::from(dbov.clamp(-127, 0));
        let level = self.levels.entry(client).or_insert(Level {
            smoothed: loudness,
            heard: now,
        });
        // A peak envelope: it rises at once and falls by RELEASE_PER_PACKET, so the gaps between
        // words (and packets of silence) do not make a speaker flicker off.
        level.smoothed = loudness.max(level.smoothed - RELEASE_PER_PACKET);
        level.heard = now;
    }

    /// Forgets a publisher that left.
    pub fn forget(&mut self, client: ClientId) {
        self.levels.remove(&client);
    }

    fn loudness(&self, client: ClientId, now: Instant) -> f32 {
        match self.levels.get(&client) {
            Some(level) if now.saturating_duration_since(level.heard) <= LEVEL_MAX_AGE => {
                level.smoothed
            }
            _ => 0.0,
        }
    }

    /// The active speaker now, if it changed since the last call.
    pub fn poll(&mut self, now: Instant) -> Option<Option<ClientId>> {
        if self
            .changed
            .is_some_and(|changed| now.saturating_duration_since(changed) < MIN_SPEAKER_TIME)
        {
            return None;
        }
        let loudest = self
            .levels
            .keys()
            .map(|&client| (client, self.loudness(client, now)))
            .filter(|&(_, loudness)| loudness >= SPEAKING_LOUDNESS)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let current_loudness = self
            .current
            .map_or(0.0, |client| self.loudness(client, now));
        let next = match loudest {
            Some((client, _)) if Some(client) == self.current => self.current,
            Some((client, loudness))
                if current_loudness < SPEAKING_LOUDNESS
                    || loudness >= current_loudness + TAKEOVER_MARGIN =>
            {
                Some(client)
            }
            Some(_) => self.current,
            None => None,
        };
        if next == self.current {
            return None;
        }
        self.current = next;
        self.changed = Some(now);
        Some(next)
    }

    /// The active speaker as last reported.
    pub fn current(&self) -> Option<ClientId> {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str) -> PeerId {
        PeerId::try_from(format!("{name}-aaaaaaaaaaaaaaaa")).expect("valid")
    }

    fn source(publisher: u64, mid: &str, kind: MediaSource) -> Source {
        Source {
            key: SourceKey {
                publisher: ClientId(publisher),
                mid: Mid::from(mid),
            },
            peer: peer(&format!("p{publisher}")),
            source: kind,
            bitrate_bps: 0,
        }
    }

    fn slot(mid: &str, video: bool) -> Slot {
        Slot {
            mid: Mid::from(mid),
            video,
            source: None,
            paused: false,
        }
    }

    #[test]
    fn free_slots_take_tracks_and_the_rest_is_needed() {
        let mut slots = vec![slot("a1", false), slot("v1", true)];
        let sources = [
            source(1, "0", MediaSource::Microphone),
            source(1, "1", MediaSource::Camera),
            source(2, "0", MediaSource::Microphone),
            source(2, "1", MediaSource::Camera),
        ];
        let assignment = assign(&mut slots, &sources, None, None);
        assert_eq!(assignment.tracks.len(), 2);
        assert_eq!(assignment.need, TrackNeed { audio: 1, video: 1 });
        assert_eq!(assignment.keyframes, vec![sources[1].key]);
    }

    #[test]
    fn a_screen_gets_a_slot_before_cameras() {
        let mut slots = vec![slot("v1", true)];
        let sources = [
            source(1, "1", MediaSource::Camera),
            source(2, "2", MediaSource::Screen),
        ];
        let assignment = assign(&mut slots, &sources, None, None);
        assert_eq!(assignment.tracks[0].source, MediaSource::Screen);
        assert_eq!(assignment.need.video, 1);
    }

    #[test]
    fn slots_keep_their_track_and_free_up_when_it_ends() {
        let mut slots = vec![slot("v1", true), slot("v2", true)];
        let mut sources = vec![
            source(1, "1", MediaSource::Camera),
            source(2, "1", MediaSource::Camera),
        ];
        assign(&mut slots, &sources, None, None);
        let before = slots.clone();
        let again = assign(&mut slots, &sources, None, None);
        assert_eq!(slots, before, "nothing moves when nothing changed");
        assert!(again.keyframes.is_empty());
        sources.remove(0);
        sources.push(source(3, "1", MediaSource::Camera));
        let after = assign(&mut slots, &sources, None, None);
        assert_eq!(slots[1], before[1], "the unchanged track keeps its slot");
        assert_eq!(
            slots[0].source,
            Some(sources[1].key),
            "the freed slot is reused"
        );
        assert_eq!(after.keyframes, vec![sources[1].key]);
    }

    #[test]
    fn low_bandwidth_pauses_cameras_but_keeps_the_screen() {
        let mut slots = vec![slot("a", false), slot("v1", true), slot("v2", true)];
        let sources = [
            source(1, "0", MediaSource::Microphone),
            source(1, "1", MediaSource::Camera),
            source(2, "2", MediaSource::Screen),
        ];
        // Audio and one video fit.
        let tight = assign(
            &mut slots,
            &sources,
            Some(AUDIO_BUDGET_BPS + VIDEO_MIN_BPS),
            None,
        );
        let paused: Vec<_> = tight
            .tracks
            .iter()
            .map(|track| (track.source, track.paused))
            .collect();
        assert!(paused.contains(&(MediaSource::Screen, false)));
        assert!(paused.contains(&(MediaSource::Camera, true)));
        assert!(paused.contains(&(MediaSource::Microphone, false)));
        assert!(
            !tight.keyframes.contains(&sources[1].key),
            "no keyframe for paused video"
        );
        // When the estimate recovers, the camera resumes and needs a keyframe.
        let wide = assign(&mut slots, &sources, Some(5_000_000), None);
        assert!(wide.tracks.iter().all(|track| !track.paused));
        assert_eq!(wide.keyframes, vec![sources[1].key]);
        // Nothing fits: every video pauses, audio goes on.
        let none = assign(&mut slots, &sources, Some(10_000), None);
        assert!(
            none.tracks
                .iter()
                .filter(|t| t.source.is_video())
                .all(|t| t.paused)
        );
    }

    #[test]
    fn videos_are_counted_at_the_rate_they_arrive() {
        let mut slots = vec![slot("v1", true), slot("v2", true), slot("v3", true)];
        let mut sources = vec![
            source(1, "1", MediaSource::Camera),
            source(2, "1", MediaSource::Camera),
            source(3, "1", MediaSource::Camera),
        ];
        sources[0].bitrate_bps = 1_200_000;
        sources[1].bitrate_bps = 900_000;
        sources[2].bitrate_bps = 200_000;
        // 1.5 Mbit/s carries the first camera and the small third one, not the second.
        let assignment = assign(&mut slots, &sources, Some(1_500_000), None);
        let paused: Vec<bool> = assignment.tracks.iter().map(|t| t.paused).collect();
        assert_eq!(paused, vec![false, true, false]);
        // At 2.5 Mbit/s all three fit.
        let wide = assign(&mut slots, &sources, Some(2_500_000), None);
        assert!(wide.tracks.iter().all(|t| !t.paused));
        assert_eq!(
            wide.keyframes,
            vec![sources[1].key],
            "the resumed one needs a keyframe"
        );
    }

    #[test]
    fn the_active_speakers_camera_is_kept_first() {
        let mut slots = vec![slot("v1", true), slot("v2", true)];
        let sources = [
            source(1, "1", MediaSource::Camera),
            source(2, "1", MediaSource::Camera),
        ];
        let one_video = Some(VIDEO_MIN_BPS);
        let quiet = assign(&mut slots, &sources, one_video, None);
        assert!(!quiet.tracks[0].paused && quiet.tracks[1].paused);
        let speaking = assign(&mut slots, &sources, one_video, Some(ClientId(2)));
        assert!(speaking.tracks[0].paused && !speaking.tracks[1].paused);
    }

    #[test]
    fn keyframe_requests_are_coalesced_and_none_is_lost() {
        let mut gate = KeyframeGate::default();
        let key = SourceKey {
            publisher: ClientId(1),
            mid: Mid::from("1"),
        };
        let start = Instant::now();
        assert!(gate.request(key, start));
        assert!(!gate.request(key, start + Duration::from_millis(10)));
        assert!(!gate.request(key, start + Duration::from_millis(20)));
        assert_eq!(gate.next_due(), Some(start + KEYFRAME_INTERVAL));
        assert!(gate.due(start + Duration::from_millis(100)).is_empty());
        assert_eq!(
            gate.due(start + KEYFRAME_INTERVAL),
            vec![key],
            "one request for both"
        );
        assert!(gate.due(start + KEYFRAME_INTERVAL * 3).is_empty());
        assert!(gate.request(key, start + KEYFRAME_INTERVAL * 3));
        gate.forget(ClientId(1));
        assert_eq!(gate.next_due(), None);
    }

    #[test]
    fn the_loudest_speaker_becomes_active_without_flicker() {
        let mut detector = SpeakerDetector::default();
        let start = Instant::now();
        let mut now = start;
        let step = Duration::from_millis(20);
        // Ann speaks (-20 dBov), Bob is near silent.
        for _ in 0..20 {
            detector.level(ClientId(1), -20, now);
            detector.level(ClientId(2), -90, now);
            now += step;
        }
        assert_eq!(detector.poll(now), Some(Some(ClientId(1))));
        // Bob is a little louder, but not by the margin: Ann stays.
        for _ in 0..20 {
            detector.level(ClientId(1), -20, now);
            detector.level(ClientId(2), -18, now);
            now += step;
        }
        assert_eq!(detector.poll(now), None);
        // Ann stops; Bob takes over, but not before the minimum time.
        for _ in 0..40 {
            detector.level(ClientId(1), -127, now);
            detector.level(ClientId(2), -18, now);
            now += step;
        }
        assert_eq!(detector.poll(now), Some(Some(ClientId(2))));
        // Everyone silent (no packets, as with DTX): nobody is speaking.
        now += Duration::from_secs(1);
        assert_eq!(detector.poll(now), Some(None));
    }
}
