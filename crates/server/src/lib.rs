//! The Natter server: HTTP, WebSocket signaling and the embedded web client, in one binary.
//!
//! [`serve`] runs the whole server on a listener until a shutdown future resolves; the `natter`
//! binary wraps it with configuration, logging and signal handling. Integration tests call
//! [`serve`] directly on an ephemeral port.
//!
//! Runtime shape: one task per WebSocket session ([`session`]), one task per room owning its
//! sans-IO [`natter_room::Room`] ([`rooms`]); they talk over bounded channels and share no locks
//! except the room registry's map.

pub mod config;
mod guard;
mod http;
pub mod ice;
pub mod limits;
pub mod luna;
pub mod metrics;
mod names;
pub mod pow;
mod rate;
mod rooms;
mod secrets;
mod session;
pub mod tls;
mod web;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use natter_proto::limits::GROUP_RECONNECT_GRACE;
use natter_proto::limits::MAX_SDP_MESSAGE_BYTES;
use natter_proto::{RoomId, RoomName};
use natter_room::{RoomPolicy, SessionId};
use natter_sfu::{DriverConfig, SfuHandle};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_http::compression::CompressionLayer;

pub use config::Config;

use guard::{ClientAddress, Guard};
use names::NameStore;
use rooms::{Registry, RoomSettings};

/// How long shutdown waits for sessions to send their close frames.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
/// How often expired room names are deleted.
const NAME_SWEEP_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// WebSocket read buffer. tungstenite allocates it eagerly (128 KiB by default), which would
/// dominate the memory of an idle connection; signaling messages are small, larger ones just take
/// more reads.
const WS_READ_BUFFER: usize = 4 * 1024;

struct AppState {
    registry: Arc<Registry>,
    guard: Arc<Guard>,
    names: Arc<NameStore>,
    sfu: SfuHandle,
    /// Flips to true once on shutdown; every session watches it.
    stopping: watch::Sender<bool>,
    /// One permit per open WebSocket.
    connections: Arc<Semaphore>,
    max_connections: u32,
    next_session: AtomicU64,
    metrics: Arc<metrics::Metrics>,
    /// Opens `/metrics` on the public listener; without it that path is not found there.
    metrics_token: Option<config::MetricsToken>,
}

/// Serves HTTP and WebSocket signaling on `listener` until `shutdown` resolves, then tells every
/// connected peer (close 1001) and returns once their sockets are closed or after a few seconds.
/// HTTPS as the configuration says ([`Config::tls`]); see [`serve_with`] to set it up first.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = start_tls(&config)?;
    serve_with(listener, tls, config, shutdown).await
}

/// Sets up HTTPS as the configuration says, or `None` for plain HTTP. The binary calls it before
/// printing its URL, to print the self-signed certificate's fingerprint beside it.
pub fn start_tls(config: &Config) -> std::io::Result<Option<tls::Tls>> {
    let Some(source) = config.tls().map_err(std::io::Error::other)? else {
        return Ok(None);
    };
    tls::Tls::start(&source)
        .map(Some)
        .map_err(std::io::Error::other)
}

/// [`serve`] with HTTPS already set up (`tls`), or plain HTTP.
pub async fn serve_with(
    listener: TcpListener,
    tls: Option<tls::Tls>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let https_port = listener.local_addr()?.port();
    let redirect = if tls.is_some() {
        bind_redirect(&config).await?
    } else {
        None
    };
    let sfu = natter_sfu::start(&DriverConfig {
        listen: config.rtc_listen.clone(),
        udp_port: config.rtc_port,
        tcp_port: Some(config.rtc_tcp_port()),
        public_ips: config.public_ips.clone(),
        bandwidth_estimation: config.bandwidth_estimation,
    })
    .map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!(
                "binding the media relay to UDP and TCP ports {} and {} on {:?} (--rtc-listen, --rtc-port, --rtc-tcp-port): {error}",
                config.rtc_port,
                config.rtc_tcp_port(),
                config.rtc_listen
            ),
        )
    })?;
    // The server's own addresses (never a client's): what browsers are told to reach, so an
    // operator can see at once whether a public address is missing.
    let udp: Vec<String> = sfu.advertised.udp.iter().map(ToString::to_string).collect();
    let tcp: Vec<String> = sfu.advertised.tcp.iter().map(ToString::to_string).collect();
    tracing::info!(
        udp = %udp.join(" "),
        tcp = %tcp.join(" "),
        "media relay for group rooms is listening; browsers reach it at these addresses (set --public-ip if they cannot)"
    );
    let names_path = config.names_db_path();
    let names = Arc::new(
        NameStore::open(&names_path, config.max_room_names).map_err(|error| {
            std::io::Error::other(format!(
                "opening the room-name database {} (--names-db, --data-dir): {error}",
                names_path.display()
            ))
        })?,
    );
    let guard = Arc::new(Guard::new(&config).map_err(std::io::Error::other)?);
    let luna = match config.luna().map_err(std::io::Error::other)? {
        Some(settings) => {
            let luna = luna::Luna::new(settings).map_err(std::io::Error::other)?;
            // The model and host are shown to every person in a room anyway; never the key.
            tracing::info!(model = luna.model(), host = %luna.host(), "the assistant Luna is available");
            Some(Arc::new(luna))
        }
        None => None,
    };
    let assistant = luna.is_some();
    let metrics_token = config.metrics_token().map_err(std::io::Error::other)?;
    let metrics = Arc::new(metrics::Metrics::default());
    let ice = config.ice().map_err(std::io::Error::other)?;
    if ice.has_turn() {
        // Only how many: the URLs are the operator's business, the secret nobody's.
        tracing::info!(urls = ice.turn.len(), "browsers get TURN credentials");
    }
    let registry = Registry::new(
        RoomSettings {
            pair: RoomPolicy::pair(config.reconnect_grace()).with_assistant(assistant),
            group: RoomPolicy::group(
                config.group_capacity,
                GROUP_RECONNECT_GRACE.min(config.reconnect_grace()),
            )
            .with_assistant(assistant),
            ice: Arc::new(ice),
            pair_server_relay: config.pair_server_relay,
            max_file_bytes: config.max_file_size,
            luna,
            metrics: Arc::clone(&metrics),
        },
        Arc::clone(&guard),
    );
    tokio::spawn(sweep_names(Arc::clone(&names)));
    let state = Arc::new(AppState {
        registry,
        guard: Arc::clone(&guard),
        names,
        sfu,
        stopping: watch::channel(false).0,
        connections: Arc::new(Semaphore::new(config.max_connections as usize)),
        max_connections: config.max_connections,
        next_session: AtomicU64::new(1),
        metrics,
        metrics_token,
    });
    let app = Router::new()
        .route("/", get(index))
        .route("/r/{room}", get(room_page))
        .route("/g/{room}", get(group_page))
        .route("/n/{name}", get(named_page))
        .route("/check", get(check_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(public_metrics))
        .route("/ws", get(websocket))
        .fallback(get(static_file))
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn_with_state(guard, guard::admit_http))
        .layer(middleware::map_response(web::security_headers))
        .with_state(Arc::clone(&state));
    let stopping = {
        let state = Arc::clone(&state);
        async move {
            shutdown.await;
            tracing::info!("shutting down: closing every connection");
            state.stopping.send_replace(true);
        }
    };
    if let Some(address) = config.metrics_listen {
        let listener = TcpListener::bind(address).await.map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!("binding --metrics-listen {address}: {error}"),
            )
        })?;
        let metrics_app = Router::new()
            .route("/metrics", get(private_metrics))
            .with_state(Arc::clone(&state));
        serve_beside(listener, metrics_app, &state.stopping);
    }
    if let Some(redirect) = redirect {
        let app = Router::new().fallback(move |headers: HeaderMap, uri: Uri| async move {
            redirect_to_https(&headers, &uri, https_port)
        });
        serve_beside(redirect, app, &state.stopping);
    }
    let tagger = Arc::clone(&state.guard);
    let listener = tls::Listener::new(listener, tls, Arc::new(move |ip| tagger.tag(ip)))?;
    let limits = http::HttpLimits {
        header_read_timeout: HEADER_READ_TIMEOUT,
        // Behind a proxy every connection comes from the proxy.
        per_address: config.client_ip_header.is_none().then(|| {
            config
                .max_connections_per_ip
                .saturating_add(TCP_BEYOND_WEBSOCKETS)
        }),
        http_stage: config.max_http_connections.unwrap_or_else(http_stage_limit),
    };
    tracing::info!(
        connections = limits.http_stage,
        "most connections served at once before they become WebSockets"
    );
    let stopped = state.stopping.subscribe();
    tokio::spawn(stopping);
    http::serve(listener, app, Arc::clone(&state.guard), limits, stopped).await;
    // Upgraded sockets outlive the HTTP server; wait for them to say goodbye.
    let all = state.max_connections;
    let _ = tokio::time::timeout(SHUTDOWN_DRAIN, state.connections.acquire_many(all)).await;
    Ok(())
}

/// Time a client has to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open TCP connections an address may have beyond its WebSockets: a page load's parallel
/// requests.
const TCP_BEYOND_WEBSOCKETS: u32 = 32;

/// Connections allowed in the HTTP stage at once: a quarter of the file descriptors the process
/// may open, so that a crowd of slow or idle requests cannot take the ones WebSockets, the media
/// relay and the name store need.
fn http_stage_limit() -> usize {
    let (soft, _) = limits::open_files();
    usize::try_from(soft / 4)
        .unwrap_or(usize::MAX)
        .clamp(64, 16_384)
}

/// Serves a small router on a listener of its own (metrics, the HTTPS redirect) until the server
/// stops.
fn serve_beside(listener: TcpListener, app: Router, stopping: &watch::Sender<bool>) {
    let mut stopped = stopping.subscribe();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stopping| *stopping).await;
            })
            .await;
    });
}

/// Binds the plain-HTTP listener that redirects to HTTPS, if there is to be one.
async fn bind_redirect(config: &Config) -> std::io::Result<Option<TcpListener>> {
    let Some((address, asked)) = config.redirect_address().map_err(std::io::Error::other)? else {
        return Ok(None);
    };
    match TcpListener::bind(address).await {
        Ok(listener) => Ok(Some(listener)),
        Err(error) if !asked => {
            tracing::warn!(%error, port = address.port(), "plain HTTP is not redirected to HTTPS (--redirect-listen)");
            Ok(None)
        }
        Err(error) => Err(std::io::Error::new(
            error.kind(),
            format!("binding --redirect-listen {address}: {error}"),
        )),
    }
}

/// A 308 to the same path over HTTPS on `https_port`. The host comes from the request (only a
/// well-formed one: letters, digits, dots, dashes, or a bracketed IPv6 address), so the
/// redirect can lead nowhere but to a host of the client's own choosing.
fn redirect_to_https(headers: &HeaderMap, uri: &Uri, https_port: u16) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(|host| strip_port(host.trim()))
        .filter(|host| {
            !host.is_empty()
                && host.len() <= 255
                && (host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                    || (host.starts_with('[')
                        && host.ends_with(']')
                        && host[1..host.len() - 1]
                            .parse::<std::net::Ipv6Addr>()
                            .is_ok()))
        });
    let Some(host) = host else {
        return (
            StatusCode::BAD_REQUEST,
            "This server speaks HTTPS; the request named no host.",
        )
            .into_response();
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let location = format!("https://{host}{port}{path}");
    let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `example.org:80` → `example.org`, `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

async fn index(headers: HeaderMap) -> Response {
    web::asset("index.html", &headers)
}

async fn check_page(headers: HeaderMap) -> Response {
    web::asset("check.html", &headers)
}

async fn room_page(Path(room): Path<String>, headers: HeaderMap) -> Response {
    // Only well-formed room links get the page; anything else is a plain 404.
    match RoomId::try_from(room) {
        Ok(_) => web::asset("room.html", &headers),
        Err(_) => (StatusCode::NOT_FOUND, "no such room link").into_response(),
    }
}

async fn group_page(Path(room): Path<String>, headers: HeaderMap) -> Response {
    match RoomId::try_from(room) {
        Ok(_) => web::asset("group.html", &headers),
        Err(_) => (StatusCode::NOT_FOUND, "no such room link").into_response(),
    }
}

/// `/n/<name>`: the group page for a well-formed name, a redirect to the normal form of a name
/// written another way, and the broken rule for anything else.
async fn named_page(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match RoomName::try_from(name.clone()) {
        Ok(normal) if normal.as_str() == name => web::asset("group.html", &headers),
        Ok(normal) => {
            let location = format!("/n/{}", percent_encode(normal.as_str()));
            let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Err(error) => (
            StatusCode::NOT_FOUND,
            format!("That is not a room name: {error}."),
        )
            .into_response(),
    }
}

/// Percent-encodes everything but unreserved URL characters.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Seconds since the Unix epoch: the clock of challenges, room names and TURN credentials (all
/// outlive a restart, or are checked by another process, so a monotonic clock would not do).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Deletes expired room names now and every hour.
async fn sweep_names(names: Arc<NameStore>) {
    let mut interval = tokio::time::interval(NAME_SWEEP_INTERVAL);
    loop {
        interval.tick().await;
        let names = Arc::clone(&names);
        match tokio::task::spawn_blocking(move || names.sweep(unix_now())).await {
            Ok(Ok(0)) | Err(_) => {}
            Ok(Ok(removed)) => tracing::info!(removed, "expired room names deleted"),
            Ok(Err(error)) => tracing::warn!(%error, "cannot delete expired room names"),
        }
    }
}

async fn static_file(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.is_empty() || path.ends_with('/') || path.split('/').any(|part| part.starts_with('.')) {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    web::asset(path, &headers)
}

/// `/metrics` on its own listener (`--metrics-listen`): no token, the address is the guard.
async fn private_metrics(State(state): State<Arc<AppState>>) -> Response {
    metrics_response(&state).await
}

/// `/metrics` on the public listener: only with the configured bearer token.
async fn public_metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(expected) = &state.metrics_token else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !metrics::token_matches(presented.trim(), &expected.0) {
        let mut response = (StatusCode::UNAUTHORIZED, "a bearer token is needed").into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    metrics_response(&state).await
}

async fn metrics_response(state: &AppState) -> Response {
    let snapshot = metrics::Snapshot {
        connections: u64::from(state.max_connections)
            .saturating_sub(state.connections.available_permits() as u64),
        pow_difficulty: state.guard.challenges.current_difficulty(),
        // A busy relay answers within a moment; a stuck one must not hold up the scrape.
        relay: tokio::time::timeout(Duration::from_secs(1), state.sfu.stats())
            .await
            .ok()
            .flatten(),
    };
    let mut response = state.metrics.render(&snapshot).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if *state.stopping.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response()
    } else {
        "ok".into_response()
    }
}

async fn websocket(
    State(state): State<Arc<AppState>>,
    Extension(ClientAddress { address, network }): Extension<ClientAddress>,
    http_stage: Option<Extension<http::HttpStage>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if *state.stopping.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response();
    }
    let place = match state
        .guard
        .admit_websocket(address, &headers, std::time::Instant::now())
    {
        Ok(place) => place,
        Err(refusal) => return refusal.into_response(),
    };
    let client = session::Client {
        address,
        network,
        guard: Arc::clone(&state.guard),
        names: Arc::clone(&state.names),
        _place: place,
    };
    let Ok(permit) = Arc::clone(&state.connections).try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    };
    let id = SessionId(state.next_session.fetch_add(1, Ordering::Relaxed));
    let registry = Arc::clone(&state.registry);
    let sfu = state.sfu.clone();
    let stopping = state.stopping.subscribe();
    upgrade
        .read_buffer_size(WS_READ_BUFFER)
        // Write each message straight through; signaling gains nothing from batching.
        .write_buffer_size(0)
        // Room for the largest message (an SFU answer) on top of what is already queued.
        .max_write_buffer_size(MAX_SDP_MESSAGE_BYTES + 256 * 1024)
        // The socket takes the largest message there is (an SFU offer); the session closes it
        // with 1009 for any other message over MAX_MESSAGE_BYTES.
        .max_message_size(MAX_SDP_MESSAGE_BYTES)
        .max_frame_size(MAX_SDP_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            // A WebSocket now, counted by its own limits.
            if let Some(Extension(stage)) = http_stage {
                stage.leave();
            }
            session::run(socket, id, registry, sfu, client, stopping).await;
            drop(permit);
        })
}
