//! Admission control in front of everything: who the client is (its address, from the connection
//! or a trusted proxy header), the per-address limits on HTTP requests, WebSocket connections and
//! new rooms, the cap on open connections per address, the origin allow-list, and the
//! proof-of-work challenges.
//!
//! Addresses are turned into [`AddressTag`]s at once: no map here holds an IP address, and none
//! is logged.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use natter_room::AddressTag;

use crate::config::Config;
use crate::pow::ChallengeIssuer;
use crate::rate::{ConnectionCounter, ConnectionGuard, KeyedLimiter};
use crate::secrets::{AddressHasher, RandomUnavailable};

/// The client's address tag and its network's (/24 or /48), put in each request's extensions by
/// [`admit_http`].
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress {
    /// The address (an IPv6 /64).
    pub address: AddressTag,
    /// Its wider network.
    pub network: AddressTag,
}

/// A network's budget of new room names is this many times an address's.
pub const NETWORK_NAMES_FACTOR: u32 = 5;

/// One open WebSocket's place in its address's count.
pub type ConnectionPlace = ConnectionGuard<AddressTag>;

/// The shared admission state.
#[derive(Debug)]
pub struct Guard {
    hasher: AddressHasher,
    http: KeyedLimiter<AddressTag>,
    websockets: KeyedLimiter<AddressTag>,
    /// New rooms per address; used by the room registry.
    pub room_creations: KeyedLimiter<AddressTag>,
    /// New room names per address, and per network.
    pub name_creations: KeyedLimiter<AddressTag>,
    /// New room names per network (/24 or /48).
    pub network_name_creations: KeyedLimiter<AddressTag>,
    connections: Arc<ConnectionCounter<AddressTag>>,
    /// Proof-of-work challenges.
    pub challenges: ChallengeIssuer,
    allowed_origins: Vec<String>,
    client_ip_header: Option<header::HeaderName>,
    /// Media sections in the SFU, per address.
    pub media: Arc<MediaBudget>,
}

/// The media sections (`m=` lines) each address holds in the SFU across its connections. Each
/// section is state the SFU keeps for as long as the connection lasts, so the sum is what one
/// address costs it; past the budget a connection is closed (4006).
#[derive(Debug)]
pub struct MediaBudget {
    /// Most sections in one offer.
    pub per_offer: usize,
    /// Most sections one address may hold in total.
    pub per_address: usize,
    held: Mutex<HashMap<AddressTag, usize>>,
}

impl MediaBudget {
    /// A budget of `per_offer` sections per connection and `per_address` per address.
    pub fn new(per_offer: usize, per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            per_offer,
            per_address,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A connection's share of its address's budget, holding nothing yet.
    pub fn share(self: &Arc<Self>, address: AddressTag) -> MediaShare {
        MediaShare {
            budget: Arc::clone(self),
            address,
            held: 0,
        }
    }
}

/// What one connection holds of its address's media budget; given back when dropped.
#[derive(Debug)]
pub struct MediaShare {
    budget: Arc<MediaBudget>,
    address: AddressTag,
    held: usize,
}

impl MediaShare {
    /// Makes this connection hold `sections` (its new offer's count) instead of what it held.
    /// False, holding what it held before, when that would take its address past the budget.
    pub fn resize(&mut self, sections: usize) -> bool {
        let mut held = self
            .budget
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let total = held.entry(self.address).or_default();
        let others = total.saturating_sub(self.held);
        if others + sections > self.budget.per_address {
            return false;
        }
        *total = others + sections;
        if *total == 0 {
            held.remove(&self.address);
        }
        self.held = sections;
        true
    }
}

impl Drop for MediaShare {
    fn drop(&mut self) {
        if self.held > 0 {
            let _ = self.resize(0);
        }
    }
}

/// Why a request or connection was refused; each becomes an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Over a rate limit; try again after the duration.
    #[error("too many requests from your address; retry in {0:?}")]
    TooMany(Duration),
    /// Too many open connections from this address.
    #[error("too many open connections from your address")]
    TooManyConnections,
    /// A page from another site tried to connect.
    #[error("this origin may not connect")]
    Origin,
    /// The trusted proxy header is configured but missing or unreadable.
    #[error("the request does not say which client it is for")]
    NoClientAddress,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match self {
            Self::TooMany(_) | Self::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
            Self::Origin => StatusCode::FORBIDDEN,
            Self::NoClientAddress => StatusCode::BAD_REQUEST,
        };
        let mut response = (status, self.to_string()).into_response();
        let retry_secs = match self {
            Self::TooMany(wait) => Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            Self::TooManyConnections => Some(5),
            _ => None,
        };
        if let Some(seconds) = retry_secs
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

fn per_minute(per_minute: u32) -> f64 {
    f64::from(per_minute) / 60.0
}

impl Guard {
    /// Admission state for `config`, with fresh keys.
    pub fn new(config: &Config) -> Result<Self, RandomUnavailable> {
        let network_names_per_hour = config.names_per_hour.saturating_mul(NETWORK_NAMES_FACTOR);
        Ok(Self {
            hasher: AddressHasher::new()?,
            http: KeyedLimiter::new(per_minute(config.http_per_minute), config.http_burst),
            websockets: KeyedLimiter::new(per_minute(config.ws_per_minute), config.ws_burst),
            room_creations: KeyedLimiter::new(
                per_minute(config.rooms_per_minute),
                config.rooms_burst,
            ),
            name_creations: KeyedLimiter::new(
                f64::from(config.names_per_hour) / 3600.0,
                config.names_per_hour.div_ceil(2),
            ),
            network_name_creations: KeyedLimiter::new(
                f64::from(network_names_per_hour) / 3600.0,
                network_names_per_hour.div_ceil(2),
            ),
            connections: ConnectionCounter::new(config.max_connections_per_ip),
            challenges: ChallengeIssuer::new(config.pow_difficulty, config.pow_load_threshold)?,
            allowed_origins: config
                .allowed_origins
                .iter()
                .map(|origin| origin.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|origin| !origin.is_empty())
                .collect(),
            client_ip_header: config
                .client_ip_header
                .as_deref()
                .and_then(|name| header::HeaderName::from_bytes(name.trim().as_bytes()).ok()),
            media: MediaBudget::new(
                config.media_sections_per_offer(),
                config.media_sections_per_address,
            ),
        })
    }

    /// The client's address: from the trusted header when one is configured (its last entry,
    /// the one the proxy appended), otherwise the connection's.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<IpAddr, Refusal> {
        let Some(name) = &self.client_ip_header else {
            return Ok(peer.ip());
        };
        headers
            .get_all(name)
            .iter()
            .next_back()
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| last.trim().parse::<IpAddr>().ok())
            .ok_or(Refusal::NoClientAddress)
    }

    /// The tag of `ip`.
    pub fn tag(&self, ip: IpAddr) -> AddressTag {
        self.hasher.tag(ip)
    }

    /// The tag of `ip`'s network (/24 or /48).
    pub fn network_tag(&self, ip: IpAddr) -> AddressTag {
        self.hasher.network_tag(ip)
    }

    /// Checks a WebSocket upgrade: origin, the per-address rate, and a place among the address's
    /// open connections (held until the returned place is dropped).
    pub fn admit_websocket(
        &self,
        address: AddressTag,
        headers: &HeaderMap,
        now: Instant,
    ) -> Result<ConnectionPlace, Refusal> {
        if !self.origin_allowed(headers) {
            return Err(Refusal::Origin);
        }
        self.websockets
            .check(&address, now)
            .map_err(Refusal::TooMany)?;
        self.connections
            .try_acquire(&address)
            .ok_or(Refusal::TooManyConnections)
    }

    /// Browsers always send `Origin` on WebSocket upgrades; a page may connect if it came from
    /// this server (same host and port) or from an allowed origin. Clients that send no
    /// `Origin` are not browsers, so no other site's page can be acting through them.
    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim().to_ascii_lowercase();
        if self.allowed_origins.contains(&origin) {
            return true;
        }
        let origin_host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .map(str::to_ascii_lowercase);
        matches!((origin_host, host), (Some(origin_host), Some(host)) if origin_host == host)
    }
}

/// Middleware: finds the client's address, applies the per-address HTTP limit (health checks
/// excepted) and records the address for the handlers.
pub async fn admit_http(
    State(guard): State<Arc<Guard>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let ip = match guard.client_ip(peer, request.headers()) {
        Ok(ip) => ip,
        Err(refusal) => return refusal.into_response(),
    };
    let address = guard.tag(ip);
    if request.uri().path() != "/healthz"
        && let Err(wait) = guard.http.check(&address, Instant::now())
    {
        return Refusal::TooMany(wait).into_response();
    }
    let network = guard.network_tag(ip);
    request
        .extensions_mut()
        .insert(ClientAddress { address, network });
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn guard(args: &[&str]) -> Guard {
        let mut all = vec!["natter"];
        all.extend_from_slice(args);
        Guard::new(&Config::parse_from(all)).expect("random")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    const PEER: &str = "192.0.2.1:5000";

    #[test]
    fn the_address_is_the_connections_unless_a_header_is_trusted() {
        let peer: SocketAddr = PEER.parse().expect("addr");
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let plain = guard(&[]);
        assert_eq!(
            plain.client_ip(peer, &spoofed),
            Ok(peer.ip()),
            "not trusted by default"
        );
        let proxied = guard(&["--client-ip-header", "X-Forwarded-For"]);
        // The proxy appends the address it saw; whatever the client wrote comes before it.
        let chain = headers(&[("x-forwarded-for", "10.0.0.1, 203.0.113.9")]);
        assert_eq!(
            proxied.client_ip(peer, &chain),
            Ok("203.0.113.9".parse().expect("ip"))
        );
        let two_headers = headers(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "2001:db8::5"),
        ]);
        assert_eq!(
            proxied.client_ip(peer, &two_headers),
            Ok("2001:db8::5".parse().expect("ip"))
        );
        for bad in [
            headers(&[]),
            headers(&[("x-forwarded-for", "not an address")]),
        ] {
            assert_eq!(proxied.client_ip(peer, &bad), Err(Refusal::NoClientAddress));
        }
    }

    #[test]
    fn only_same_origin_and_allowed_pages_may_connect() {
        let now = Instant::now();
        let guard = guard(&["--allowed-origin", "https://Chat.Example.org/"]);
        let address = guard.tag("192.0.2.1".parse().expect("ip"));
        let check = |pairs: &[(&'static str, &str)]| {
            guard
                .admit_websocket(address, &headers(pairs), now)
                .map(drop)
        };
        assert_eq!(
            check(&[
                ("host", "natter.test:8080"),
                ("origin", "http://natter.test:8080")
            ]),
            Ok(())
        );
        assert_eq!(
            check(&[("host", "natter.test"), ("origin", "https://natter.test")]),
            Ok(())
        );
        assert_eq!(
            check(&[
                ("host", "natter.test"),
                ("origin", "https://chat.example.org")
            ]),
            Ok(())
        );
        assert_eq!(
            check(&[("host", "natter.test")]),
            Ok(()),
            "no Origin: not a browser"
        );
        for evil in [
            "https://evil.example",
            "http://natter.test:9999",
            "null",
            "https://natter.test.evil.example",
        ] {
            assert_eq!(
                check(&[("host", "natter.test"), ("origin", evil)]),
                Err(Refusal::Origin),
                "{evil}"
            );
        }
    }

    #[test]
    fn websocket_upgrades_are_limited_per_address_and_so_are_open_connections() {
        let now = Instant::now();
        let guard = guard(&[
            "--ws-per-minute",
            "60",
            "--ws-burst",
            "3",
            "--max-connections-per-ip",
            "2",
        ]);
        let ann = guard.tag("192.0.2.1".parse().expect("ip"));
        let bob = guard.tag("192.0.2.2".parse().expect("ip"));
        let none = HeaderMap::new();
        let first = guard.admit_websocket(ann, &none, now).expect("first");
        let second = guard.admit_websocket(ann, &none, now).expect("second");
        assert_eq!(
            guard.admit_websocket(ann, &none, now).map(drop),
            Err(Refusal::TooManyConnections)
        );
        drop((first, second));
        // The burst of 3 is spent (the refused one counted too).
        assert!(matches!(
            guard.admit_websocket(ann, &none, now),
            Err(Refusal::TooMany(_))
        ));
        assert!(
            guard.admit_websocket(bob, &none, now).is_ok(),
            "another address is untouched"
        );
        assert!(
            guard
                .admit_websocket(ann, &none, now + Duration::from_secs(1))
                .is_ok()
        );
    }

    #[test]
    fn refusals_carry_their_status_and_retry_time() {
        let response = Refusal::TooMany(Duration::from_millis(1200)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            Refusal::Origin.into_response().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            Refusal::NoClientAddress.into_response().status(),
            StatusCode::BAD_REQUEST
        );
    }
}
