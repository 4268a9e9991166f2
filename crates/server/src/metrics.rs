//! Operators' figures in the Prometheus text format: connections, rooms and people by kind, the
//! media relay's packets and bytes, join times, the proof-of-work difficulty and Luna's calls.
//!
//! Served at `/metrics` on a listener of its own (`--metrics-listen`, for a private address), or
//! on the public listener only with `Authorization: Bearer <--metrics-token>`. Nothing here names
//! a room, a person or an address: only counts.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use natter_proto::signaling::RoomKind;
use natter_sfu::SfuStats;

/// Upper bounds of the join-time histogram's buckets, in seconds: joining includes the
/// browser's proof of work (a tenth of a second by default, more under load).
pub const JOIN_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

/// The server's counters and gauges, shared by every task.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Live rooms: pair, group.
    rooms: [AtomicI64; 2],
    /// People in rooms (within their reconnect grace included): pair, group.
    people: [AtomicI64; 2],
    /// Joins by bucket (cumulative counts are formed when rendering).
    join_buckets: [AtomicU64; JOIN_BUCKETS.len()],
    join_count: AtomicU64,
    join_micros: AtomicU64,
    /// Questions sent to Luna's model, and those that failed (unreachable, timed out, refused).
    luna_calls: AtomicU64,
    luna_failures: AtomicU64,
}

fn index(kind: RoomKind) -> usize {
    match kind {
        RoomKind::Pair => 0,
        RoomKind::Group => 1,
    }
}

/// What `/metrics` reads from elsewhere at the moment it is asked.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// Open WebSocket connections.
    pub connections: u64,
    /// The proof-of-work difficulty now asked of a browser.
    pub pow_difficulty: u64,
    /// The media relay's counters, if it answered.
    pub relay: Option<SfuStats>,
}

impl Metrics {
    /// A room task started (+1) or ended (-1).
    pub fn room(&self, kind: RoomKind, change: i64) {
        self.rooms[index(kind)].fetch_add(change, Ordering::Relaxed);
    }

    /// The number of people in a room of this kind changed by `change`.
    pub fn people(&self, kind: RoomKind, change: i64) {
        if change != 0 {
            self.people[index(kind)].fetch_add(change, Ordering::Relaxed);
        }
    }

    /// Someone was welcomed `elapsed` after their WebSocket opened.
    pub fn joined(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = JOIN_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.join_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.join_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.join_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A question went to Luna's model; `failed` if no reply came of it.
    pub fn luna_call(&self, failed: bool) {
        self.luna_calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.luna_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, now: &Snapshot) -> String {
        let mut out = String::with_capacity(4096);
        let load = |value: &AtomicI64| value.load(Ordering::Relaxed).max(0);
        gauge(
            &mut out,
            "natter_connections",
            "Open WebSocket connections.",
            &[("", now.connections as i64)],
        );
        let kinds = |values: &[AtomicI64; 2]| {
            [
                ("kind=\"pair\"", load(&values[0])),
                ("kind=\"group\"", load(&values[1])),
            ]
        };
        gauge(
            &mut out,
            "natter_rooms",
            "Live rooms, by kind.",
            &kinds(&self.rooms),
        );
        gauge(
            &mut out,
            "natter_people",
            "People in rooms (those within their reconnect grace included), by kind.",
            &kinds(&self.people),
        );
        gauge(
            &mut out,
            "natter_pow_difficulty",
            "Hashes a browser computes, on average, before it may join.",
            &[("", now.pow_difficulty as i64)],
        );
        let _ = writeln!(
            out,
            "# HELP natter_join_seconds Time from a WebSocket opening to its welcome into a room, proof of work included."
        );
        let _ = writeln!(out, "# TYPE natter_join_seconds histogram");
        let mut cumulative = 0;
        for (bound, count) in JOIN_BUCKETS.iter().zip(&self.join_buckets) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "natter_join_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let joins = self.join_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "natter_join_seconds_bucket{{le=\"+Inf\"}} {joins}");
        let sum = self.join_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "natter_join_seconds_sum {sum}");
        let _ = writeln!(out, "natter_join_seconds_count {joins}");
        counter(
            &mut out,
            "natter_luna_calls_total",
            "Questions sent to Luna's model.",
            self.luna_calls.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "natter_luna_failures_total",
            "Questions to Luna's model that got no reply (unreachable, timed out, refused).",
            self.luna_failures.load(Ordering::Relaxed),
        );
        if let Some(relay) = now.relay {
            counter(
                &mut out,
                "natter_relay_packets_received_total",
                "Datagrams and ICE-TCP frames the media relay received.",
                relay.packets_in,
            );
            counter(
                &mut out,
                "natter_relay_bytes_received_total",
                "Bytes the media relay received.",
                relay.bytes_in,
            );
            counter(
                &mut out,
                "natter_relay_packets_sent_total",
                "Datagrams and ICE-TCP frames the media relay sent.",
                relay.packets_out,
            );
            counter(
                &mut out,
                "natter_relay_bytes_sent_total",
                "Bytes the media relay sent.",
                relay.bytes_out,
            );
            counter(
                &mut out,
                "natter_relay_packets_dropped_total",
                "Packets the media relay could not send (socket buffer full).",
                relay.packets_dropped,
            );
            counter(
                &mut out,
                "natter_relay_media_forwarded_total",
                "Media frames the media relay forwarded.",
                relay.forwarded,
            );
            counter(
                &mut out,
                "natter_relay_messages_relayed_total",
                "Chat and file messages the media relay relayed.",
                relay.relayed,
            );
            counter(
                &mut out,
                "natter_relay_messages_dropped_total",
                "Relayed messages dropped for a recipient that was not keeping up.",
                relay.relay_dropped,
            );
            gauge(
                &mut out,
                "natter_relay_connections",
                "Browsers connected to the media relay.",
                &[("", relay.clients as i64)],
            );
        }
        out
    }
}

fn gauge(out: &mut String, name: &str, help: &str, values: &[(&str, i64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in values {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

/// Compares a presented token with the configured one in time that does not depend on where
/// they differ.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    let mut difference = a.len() ^ b.len();
    for (index, byte) in b.iter().enumerate() {
        difference |= usize::from(a.get(index).copied().unwrap_or(0) ^ byte);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_what_happened_and_parses_as_prometheus_text() {
        let metrics = Metrics::default();
        metrics.room(RoomKind::Group, 1);
        metrics.people(RoomKind::Group, 3);
        metrics.room(RoomKind::Pair, 1);
        metrics.people(RoomKind::Pair, 2);
        metrics.people(RoomKind::Pair, -1);
        metrics.joined(Duration::from_millis(80));
        metrics.joined(Duration::from_millis(700));
        metrics.joined(Duration::from_secs(100));
        metrics.luna_call(false);
        metrics.luna_call(true);
        let relay = SfuStats {
            packets_in: 10,
            bytes_in: 1000,
            ..SfuStats::default()
        };
        let text = metrics.render(&Snapshot {
            connections: 5,
            pow_difficulty: 100_000,
            relay: Some(relay),
        });
        for line in [
            "natter_connections 5",
            "natter_rooms{kind=\"group\"} 1",
            "natter_people{kind=\"group\"} 3",
            "natter_people{kind=\"pair\"} 1",
            "natter_pow_difficulty 100000",
            "natter_join_seconds_bucket{le=\"0.05\"} 0",
            "natter_join_seconds_bucket{le=\"0.1\"} 1",
            "natter_join_seconds_bucket{le=\"1\"} 2",
            "natter_join_seconds_bucket{le=\"60\"} 2",
            "natter_join_seconds_bucket{le=\"+Inf\"} 3",
            "natter_join_seconds_count 3",
            "natter_luna_calls_total 2",
            "natter_luna_failures_total 1",
            "natter_relay_packets_received_total 10",
            "natter_relay_bytes_received_total 1000",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample line is `name{labels} value` with a declared TYPE before it.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap_or_default().to_owned());
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').expect("a value");
                assert!(value.parse::<f64>().is_ok(), "{line}");
                let name = series.split('{').next().unwrap_or_default();
                assert!(
                    declared.iter().any(|d| name.starts_with(d.as_str())),
                    "{name} has no TYPE line"
                );
            }
        }
    }

    #[test]
    fn tokens_match_only_exactly() {
        assert!(token_matches("s3cret-token", "s3cret-token"));
        assert!(!token_matches("s3cret-tokem", "s3cret-token"));
        assert!(!token_matches("s3cret-token-and-more", "s3cret-token"));
        assert!(!token_matches("", "s3cret-token"));
        assert!(!token_matches("s3cret", "s3cret-token"));
    }
}
