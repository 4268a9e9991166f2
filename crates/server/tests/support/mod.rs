//! Helpers for the signaling tests: an in-process server on an ephemeral port, a WebSocket client
//! that speaks JSON, and a minimal HTTP/1.1 client over a raw TCP stream.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use natter_server::{Config, serve};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a message it expects.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// Room ids: exactly 22 URL-safe characters.
pub const ROOM: &str = "room-AAAAAAAAAAAAAAAAA";
pub const OTHER_ROOM: &str = "room_BBBBBBBBBBBBBBBBB";
/// The test people's peer ids, each derived from its secret in [`PEOPLE`] as a browser's is.
pub const ANN: &str = "KqfNZ2uV5q6i30l9OV65y9";
pub const BOB: &str = "I2QYritOU8vTIRZ7-Rz3AA";
pub const CAT: &str = "kiOCPYdpib_ViPWvbsJdjV";
pub const DAN: &str = "VOs6PpO6d7YFH3iYYbXigQ";

/// Each test person's peer id and the peer secret it is derived from.
pub const PEOPLE: [(&str, &str); 4] = [
    (ANN, "test-peer-secret-ann00000000000000000000000"),
    (BOB, "test-peer-secret-bob00000000000000000000000"),
    (CAT, "test-peer-secret-cat00000000000000000000000"),
    (DAN, "test-peer-secret-dan00000000000000000000000"),
];

/// The peer secret of one of the test people.
pub fn secret_of(peer: &str) -> Option<&'static str> {
    PEOPLE
        .iter()
        .find_map(|(id, secret)| (*id == peer).then_some(*secret))
}

/// A new person: a random peer secret and the peer id derived from it, as a browser makes them.
pub fn new_person() -> (String, String) {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source");
    let secret = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    let id = natter_proto::PeerSecret::try_from(secret.clone())
        .expect("43 URL-safe characters")
        .peer_id();
    (id.to_string(), secret)
}

/// A server running in this test's runtime until [`Server::shutdown`] or until it is dropped.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// A server with the test configuration.
    pub async fn start() -> Self {
        Self::start_with(Config::for_tests()).await
    }

    /// A server with `config` (its `listen` field is ignored: the listener is bound here).
    pub async fn start_with(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, config, async move {
            // Dropping the sender (the test ended) stops the server as well.
            let _ = stop.await;
        }));
        Self {
            addr,
            shutdown: Some(shutdown),
            task,
        }
    }

    /// A new WebSocket client connected to `/ws`.
    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// Resolves the shutdown future and waits (at most `within`) for `serve` to return.
    pub async fn shutdown(mut self, within: Duration) -> std::io::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match timeout(within, &mut self.task).await {
            Ok(joined) => joined.unwrap(),
            Err(_) => panic!("serve did not return within {within:?} of the shutdown signal"),
        }
    }
}

/// What a client observed next.
#[derive(Debug)]
pub enum Event {
    /// A text frame, parsed as JSON.
    Message(Value),
    /// A close frame with this code (`None`: a close frame without a code).
    Closed(Option<u16>),
    /// The stream ended or broke without a close frame.
    Ended(String),
}

/// A signaling client: one WebSocket, JSON in and out.
///
/// `challenge` messages are taken aside as they arrive (tests about other messages need not
/// skip them); [`Client::proof`] solves the latest.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    challenge: Option<(String, u64)>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::connect_with(addr, &[])
            .await
            .unwrap_or_else(|status| panic!("the upgrade was refused with {status}"))
    }

    /// Connects with extra request headers (an `Origin`, a proxy's address header); returns the
    /// HTTP status when the upgrade is refused.
    pub async fn connect_with(addr: SocketAddr, headers: &[(&str, &str)]) -> Result<Self, u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .unwrap(),
                value.parse().unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Self {
                ws,
                challenge: None,
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(error) => panic!("connecting failed: {error}"),
        }
    }

    /// The latest challenge, waiting for it if none has arrived yet.
    pub async fn take_challenge(&mut self) -> (String, u64) {
        if let Some(challenge) = self.challenge.take() {
            return challenge;
        }
        match self.next_event_or_challenge(RECV_TIMEOUT, true).await {
            Some(other) => panic!("expected a challenge, got {other:?}"),
            None => self
                .challenge
                .take()
                .unwrap_or_else(|| panic!("no challenge within {RECV_TIMEOUT:?}")),
        }
    }

    /// A proof for the latest challenge, as `join` carries it.
    pub async fn proof(&mut self) -> Value {
        let (token, difficulty) = self.take_challenge().await;
        let nonce = natter_proto::pow::solve(&token, difficulty);
        json!({"challenge": token, "nonce": nonce})
    }

    /// A proof if a challenge is here or about to be (one follows `hello` and every refused
    /// join); none on a socket that has already joined, where the server sends none.
    async fn proof_if_challenged(&mut self) -> Option<Value> {
        if self.challenge.is_none()
            && let Some(event) = self
                .next_event_or_challenge(Duration::from_millis(300), true)
                .await
        {
            panic!("expected a challenge or nothing, got {event:?}");
        }
        let (token, difficulty) = self.challenge.take()?;
        let nonce = natter_proto::pow::solve(&token, difficulty);
        Some(json!({"challenge": token, "nonce": nonce}))
    }

    /// Sends `value`. A `join` or `join-named` for one of the test people without a
    /// `peerSecret` gets theirs added, as their browser would send it; to join without one (as
    /// an impostor would) send the text with [`Client::send_text`].
    pub async fn send(&mut self, mut value: Value) {
        let is_join = matches!(value["type"].as_str(), Some("join" | "join-named"));
        if is_join
            && value.get("peerSecret").is_none()
            && let Some(secret) = value["peer"].as_str().and_then(secret_of)
        {
            value["peerSecret"] = json!(secret);
        }
        self.send_text(value.to_string()).await;
    }

    /// Sends `text` as one text frame, as-is.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::text(text.into())).await.unwrap();
    }

    /// Sends a raw frame.
    pub async fn send_frame(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    /// Sends a raw frame, returning false if the socket is already unusable.
    pub async fn try_send_frame(&mut self, message: Message) -> bool {
        self.ws.send(message).await.is_ok()
    }

    /// Sends a frame, returning false if the socket is already unusable (e.g. while flooding).
    pub async fn try_send_text(&mut self, text: &str) -> bool {
        self.ws.send(Message::text(text)).await.is_ok()
    }

    /// The next text message, close or end of stream, skipping WebSocket pings and pongs.
    /// `None` if nothing arrived within `within`.
    pub async fn next_event_within(&mut self, within: Duration) -> Option<Event> {
        self.next_event_or_challenge(within, false).await
    }

    /// As [`Client::next_event_within`]; with `stop_at_challenge`, also returns `None` as soon as
    /// a challenge has been taken aside.
    async fn next_event_or_challenge(
        &mut self,
        within: Duration,
        stop_at_challenge: bool,
    ) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(frame) => frame,
                Err(_) => return None,
            };
            return Some(match frame {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|error| panic!("server sent non-JSON {text:?}: {error}"));
                    if value["type"] == "challenge" {
                        let token = value["token"].as_str().unwrap().to_owned();
                        self.challenge = Some((token, value["difficulty"].as_u64().unwrap()));
                        if stop_at_challenge {
                            return None;
                        }
                        continue;
                    }
                    Event::Message(value)
                }
                Some(Ok(Message::Close(frame))) => Event::Closed(frame.map(|f| u16::from(f.code))),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(data))) => {
                    panic!("server sent a binary frame of {} bytes", data.len())
                }
                Some(Err(error)) => Event::Ended(error.to_string()),
                None => Event::Ended("end of stream".to_owned()),
            });
        }
    }

    /// The next event, failing the test if nothing arrives within [`RECV_TIMEOUT`].
    pub async fn next_event(&mut self) -> Event {
        match self.next_event_within(RECV_TIMEOUT).await {
            Some(event) => event,
            None => panic!("nothing arrived within {RECV_TIMEOUT:?}"),
        }
    }

    /// The next JSON message (skipping pings and pongs), within [`RECV_TIMEOUT`].
    pub async fn recv(&mut self) -> Value {
        match self.next_event().await {
            Event::Message(value) => value,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Asserts that no message (and no close) arrives within `within`.
    pub async fn expect_silence(&mut self, within: Duration) {
        if let Some(event) = self.next_event_within(within).await {
            panic!("expected nothing within {within:?}, got {event:?}");
        }
    }

    /// Receives the next message and asserts it is an `error` with `code`.
    pub async fn expect_error(&mut self, code: &str) {
        let message = self.recv().await;
        assert_error(&message, code);
    }

    /// Asserts that the next thing to arrive is a close frame with `code`, then completes the
    /// closing handshake as a browser would (answers with a close frame and reads to the end).
    pub async fn expect_close(&mut self, code: u16) {
        match self.next_event().await {
            Event::Closed(Some(got)) => assert_eq!(got, code, "close code"),
            other => panic!("expected close {code}, got {other:?}"),
        }
        self.finish_close().await;
    }

    /// After a close frame arrived: sends the answering close frame and waits for the end.
    pub async fn finish_close(&mut self) {
        let _ = timeout(RECV_TIMEOUT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// `ping` is answered by `pong`: the socket is open and served.
    pub async fn expect_alive(&mut self) {
        self.send(json!({"type": "ping"})).await;
        assert_eq!(self.recv().await, json!({"type": "pong"}));
    }

    /// Says `hello` with version 1 and checks the answer.
    pub async fn hello(&mut self) {
        self.send(json!({"type": "hello", "version": 1})).await;
        let reply = self.recv().await;
        assert_eq!(reply["type"], "hello", "{reply}");
        assert_eq!(reply["version"], 1, "{reply}");
        // The challenge follows at once; keep it for the join.
        let challenge = self.take_challenge().await;
        self.challenge = Some(challenge);
    }

    /// Sends `join` with a solved proof and returns the next message (normally `welcome`).
    pub async fn join(&mut self, room: &str, peer: &str, name: &str) -> Value {
        self.join_with(json!({"room": room, "peer": peer, "name": name}))
            .await
    }

    /// Sends a `join` made of `fields` (with `type` and a proof added) and returns the next
    /// message.
    pub async fn join_with(&mut self, mut fields: Value) -> Value {
        if fields.get("type").is_none() {
            fields["type"] = json!("join");
        }
        if let Some(proof) = self.proof_if_challenged().await {
            fields["proof"] = proof;
        }
        self.send(fields).await;
        self.recv().await
    }

    /// Sends a `join-named` made of `fields` as a browser does: when the name is new and the
    /// server asks for a harder proof, solves the next challenge and sends it again. Returns the
    /// last answer.
    pub async fn join_named_with(&mut self, mut fields: Value) -> Value {
        fields["type"] = json!("join-named");
        let answer = self.join_with(fields.clone()).await;
        if answer["code"] == "harder-proof-required" {
            return self.join_with(fields).await;
        }
        answer
    }

    /// `hello`, then `join`, asserting that a `welcome` came back; returns it.
    pub async fn enter(&mut self, room: &str, peer: &str, name: &str) -> Value {
        self.hello().await;
        let welcome = self.join(room, peer, name).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        assert_eq!(welcome["room"], room, "{welcome}");
        assert_eq!(welcome["peer"], peer, "{welcome}");
        welcome
    }

    /// Sends a `signal` to `to`.
    pub async fn signal(&mut self, to: &str, payload: Value) {
        self.send(json!({"type": "signal", "to": to, "payload": payload}))
            .await;
    }
}

/// Asserts that `message` is an `error` with `code` and some explanation.
pub fn assert_error(message: &Value, code: &str) {
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(message["code"], code, "{message}");
    assert!(
        message["message"].as_str().is_some_and(|m| !m.is_empty()),
        "an error carries a message: {message}"
    );
}

/// Two clients in `room`: Ann first, then Bob. Ann's `peer-joined` for Bob has been consumed.
pub async fn pair(server: &Server, room: &str) -> (Client, Client) {
    let mut ann = server.client().await;
    ann.enter(room, ANN, "Ann").await;
    let mut bob = server.client().await;
    bob.enter(room, BOB, "Bob").await;
    assert_eq!(
        ann.recv().await,
        json!({"type": "peer-joined", "peer": BOB, "name": "Bob"})
    );
    (ann, bob)
}

/// Waits until the server has noticed that `peer`'s socket dropped (its place is kept, but it is
/// unreachable): `client`'s signals to it then get `unknown-peer`.
pub async fn wait_until_away(client: &mut Client, peer: &str) {
    for _ in 0..10 {
        client.signal(peer, json!("are you there?")).await;
        match client.next_event_within(Duration::from_millis(200)).await {
            // Still connected as far as the room knows: the signal went to the dead socket.
            None => continue,
            Some(Event::Message(message)) => {
                assert_error(&message, "unknown-peer");
                return;
            }
            Some(other) => panic!("expected unknown-peer, got {other:?}"),
        }
    }
    panic!("the server did not notice that {peer} dropped");
}

/// An HTTP response, as read off the wire.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body with any chunked transfer encoding removed (content encoding left as is).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` with extra request headers, over a fresh connection closed after the response.
pub async fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    timeout(RECV_TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("the HTTP response did not end in time")
        .unwrap();
    parse_response(&raw)
}

/// Parses a whole HTTP/1.1 response as read off the socket.
pub fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let mut response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let body = &raw[split + 4..];
    response.body = if response
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        dechunk(body)
    } else {
        body.to_vec()
    };
    response
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size_text = std::str::from_utf8(&body[..line_end]).unwrap();
        let size_text = size_text.split(';').next().unwrap().trim();
        let size = usize::from_str_radix(size_text, 16).unwrap();
        body = &body[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// How the fake model answers the next requests.
#[derive(Debug, Clone)]
pub enum ModelMode {
    /// Streams these pieces, `delay` apart, then `[DONE]`.
    Reply {
        pieces: Vec<String>,
        delay: Duration,
    },
    /// Answers with this HTTP status and an error body.
    Fail(u16),
    /// Sends the response head, then nothing.
    Stall,
}

/// What the fake model was sent.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    pub authorization: Option<String>,
    pub body: Value,
}

/// A small OpenAI-compatible chat-completions server: streams deterministic replies, or fails,
/// or stalls, and records what it was asked.
pub struct FakeModel {
    /// The base URL to give `--luna-url`.
    pub url: String,
    mode: std::sync::Arc<std::sync::Mutex<ModelMode>>,
    requests: std::sync::Arc<std::sync::Mutex<Vec<ModelRequest>>>,
}

impl FakeModel {
    pub async fn start(mode: ModelMode) -> Self {
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::{IntoResponse, Response};

        type Shared = (
            std::sync::Arc<std::sync::Mutex<ModelMode>>,
            std::sync::Arc<std::sync::Mutex<Vec<ModelRequest>>>,
        );
        async fn completions(
            State((mode, requests)): State<Shared>,
            headers: HeaderMap,
            body: String,
        ) -> Response {
            let authorization = headers
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let body: Value = serde_json::from_str(&body).unwrap();
            requests.lock().unwrap().push(ModelRequest {
                authorization,
                body,
            });
            let mode = mode.lock().unwrap().clone();
            let sse = [("content-type", "text/event-stream")];
            match mode {
                ModelMode::Fail(status) => (
                    StatusCode::from_u16(status).unwrap(),
                    r#"{"error":{"message":"the model is on fire"}}"#,
                )
                    .into_response(),
                ModelMode::Stall => {
                    let stream = futures_util::stream::pending::<Result<String, std::io::Error>>();
                    (sse, axum::body::Body::from_stream(stream)).into_response()
                }
                ModelMode::Reply { pieces, delay } => {
                    let events: Vec<String> = pieces
                        .into_iter()
                        .map(|piece| {
                            let chunk = json!({"choices": [{"delta": {"content": piece}}]});
                            format!("data: {chunk}\n\n")
                        })
                        .chain(std::iter::once("data: [DONE]\n\n".to_owned()))
                        .collect();
                    let stream = futures_util::stream::unfold(
                        (events.into_iter(), true),
                        move |(mut events, first)| async move {
                            if !first {
                                tokio::time::sleep(delay).await;
                            }
                            let event = events.next()?;
                            Some((Ok::<_, std::io::Error>(event), (events, false)))
                        },
                    );
                    (sse, axum::body::Body::from_stream(stream)).into_response()
                }
            }
        }

        let mode = std::sync::Arc::new(std::sync::Mutex::new(mode));
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(completions))
            .with_state((mode.clone(), requests.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/v1"),
            mode,
            requests,
        }
    }

    /// Changes how the next requests are answered.
    pub fn set_mode(&self, mode: ModelMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Everything asked so far.
    pub fn requests(&self) -> Vec<ModelRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// Pieces "Hel", "lo ", "there", sent at once.
pub fn hello_reply() -> ModelMode {
    ModelMode::Reply {
        pieces: vec!["Hel".into(), "lo ".into(), "there".into()],
        delay: Duration::ZERO,
    }
}

/// The test configuration ([`Config::for_tests`]'s settings, the media relay on loopback) with
/// `extra` options after it, read the way the binary reads its command line.
pub fn config_with(extra: &[&str]) -> natter_server::Config {
    let mut args = vec![
        "natter",
        "--listen",
        "127.0.0.1:0",
        "--rtc-listen",
        "127.0.0.1",
        "--rtc-port",
        "0",
        "--names-db",
        ":memory:",
        "--pow-difficulty",
        "1000",
    ];
    args.extend_from_slice(extra);
    natter_server::Config::load(args.into_iter().map(Into::into).collect(), |_| None).unwrap()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens at `at` (listeners a server starts beside its main one).
pub async fn wait_for_listener(at: SocketAddr) {
    for _ in 0..50 {
        if TcpStream::connect(at).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listens on {at}");
}

/// A TLS client that trusts only `roots` (rustls on aws-lc-rs, as the server uses).
pub fn tls_client(roots: rustls::RootCertStore) -> tokio_rustls::TlsConnector {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}
