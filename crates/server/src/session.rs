//! One WebSocket signaling session: handshake, limits, keepalive, and the bridge to its room task.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use natter_proto::data::CHAT_TEXT_MAX_CHARS;
use natter_proto::limits::LUNA_CONTEXT_MESSAGES;
use natter_proto::limits::{
    BAD_PROOF_TOLERANCE, FLOOD_TOLERANCE, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, MAX_MESSAGE_BYTES,
    MESSAGE_BURST, MESSAGES_PER_SECOND, NEW_NAME_PROOF_FACTOR, PEER_ID_MAX_LEN, PING_INTERVAL,
    PROTOCOL_VERSION,
};
use natter_proto::pow::Proof;
use natter_proto::signaling::{Admission, LunaTurn, RoomKind};
use natter_proto::{
    ClientMessage, DisplayName, ErrorCode, PeerId, RoomId, RoomName, ServerMessage, close,
};
use natter_room::{AddressTag, Moderation, SessionId};
use natter_sfu::{ClientId, Command as SfuCommand, SfuHandle};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};

use crate::guard::{ConnectionPlace, Guard, MediaShare};
use crate::names::{NameStore, NamesError};
use crate::rate::TokenBucket;
use crate::rooms::{Refused, Registry, RoomCommand, SessionHandle, close_frame, text};
use crate::{secrets, unix_now};

/// Messages queued for one socket before it counts as not keeping up. Signaling is sparse (a few
/// dozen messages per connection set-up), so a full queue means the client stopped reading.
const OUTBOUND_QUEUE: usize = 64;
/// A write that takes longer than this means the client stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one `rate-limited` error per this interval, so a flood is not answered by a flood.
const RATE_ERROR_INTERVAL: Duration = Duration::from_secs(1);
/// After the server's close frame, how long the client has to answer with its own.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a socket whose input can no longer be read stays open after its close frame.
const CLOSE_LINGER: Duration = Duration::from_millis(250);

/// How the session loop ends.
enum End {
    /// The socket is gone (closed by the client, or broken): nothing more can be sent.
    Dropped,
    /// Close the socket with this code, after sending this error if any.
    Close(u16, Option<ErrorCode>),
    /// A close frame was already sent (from the room's queue).
    Closed,
}

enum Stage {
    AwaitingHello,
    /// `hello` done, in no room.
    Ready,
    Joined {
        room: mpsc::Sender<RoomCommand>,
        room_id: RoomId,
        peer: PeerId,
        kind: RoomKind,
    },
}

/// Where a session comes from and what it may use.
pub(crate) struct Client {
    /// The client's address, as a tag.
    pub address: AddressTag,
    /// Its network (/24 or /48), as a tag.
    pub network: AddressTag,
    pub guard: Arc<Guard>,
    pub names: Arc<NameStore>,
    /// The connection's place in its address's count; freed when the session ends.
    pub _place: ConnectionPlace,
}

/// Which room a join is for.
enum JoinTarget {
    Id(RoomId, RoomKind),
    Named(RoomName),
}

struct Session {
    id: SessionId,
    registry: Arc<Registry>,
    sfu: SfuHandle,
    client: Client,
    stage: Stage,
    handle: SessionHandle,
    limiter: TokenBucket,
    dropped_messages: u32,
    last_rate_error: Option<Instant>,
    ever_joined: bool,
    /// Joins with a missing or wrong proof so far.
    bad_proofs: u32,
    /// When the WebSocket opened: join times are measured from here.
    opened: Instant,
    /// The media sections this connection holds in the SFU, counted in its address's budget.
    media: MediaShare,
    /// The latest challenge sent on this socket, until a proof of it is accepted: the only one a
    /// join here may answer.
    challenge: Option<String>,
    /// What the next challenge's difficulty is multiplied by: more after a join that needs a
    /// harder proof (a new room name).
    next_challenge_factor: u64,
}

/// Runs the session until the socket closes or the server shuts down.
pub(crate) async fn run(
    mut socket: WebSocket,
    id: SessionId,
    registry: Arc<Registry>,
    sfu: SfuHandle,
    client: Client,
    mut shutdown: watch::Receiver<bool>,
) {
    let (outbound, mut queue) = mpsc::channel(OUTBOUND_QUEUE);
    let too_slow = Arc::new(Notify::new());
    let start = Instant::now();
    let media = client.guard.media.share(client.address);
    let mut session = Session {
        id,
        registry,
        sfu,
        client,
        stage: Stage::AwaitingHello,
        handle: SessionHandle {
            outbound,
            too_slow: Arc::clone(&too_slow),
        },
        limiter: TokenBucket::new(
            start.into_std(),
            f64::from(MESSAGES_PER_SECOND),
            MESSAGE_BURST,
        ),
        dropped_messages: 0,
        last_rate_error: None,
        ever_joined: false,
        bad_proofs: 0,
        opened: start,
        media,
        challenge: None,
        next_challenge_factor: 1,
    };
    let mut ping = tokio::time::interval_at(start + PING_INTERVAL, PING_INTERVAL);
    let mut last_heard = start;
    let handshake_deadline = start + HANDSHAKE_TIMEOUT;

    let end = loop {
        tokio::select! {
            biased;
            _ = async { shutdown.wait_for(|stopping| *stopping).await.map(drop) } => {
                break End::Close(close::GOING_AWAY, None);
            }
            () = too_slow.notified() => break End::Close(close::TOO_SLOW, None),
            () = sleep_until(handshake_deadline), if !session.ever_joined => {
                break End::Close(close::TIMEOUT, None);
            }
            frame = socket.recv() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(frame))) => {
                        if let Some(end) = session.on_text(&mut socket, frame.as_str()).await {
                            break end;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        break End::Close(close::UNSUPPORTED_DATA, Some(ErrorCode::BadMessage));
                    }
                    // Control frames cost as much as messages (a ping is answered with a pong),
                    // so they take from the same budget, silently.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        if let Some(end) = session.count_control_frame() {
                            break end;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => break End::Dropped,
                    Some(Err(error)) => break read_error_end(error),
                }
            }
            Some(message) = queue.recv() => {
                let is_close = matches!(message, Message::Close(_));
                if send(&mut socket, message).await.is_err() {
                    break End::Dropped;
                }
                if is_close {
                    break End::Closed;
                }
            }
            () = sleep_until(last_heard + IDLE_TIMEOUT) => break End::Close(close::TIMEOUT, None),
            _ = ping.tick() => {
                if send(&mut socket, Message::Ping(Default::default())).await.is_err() {
                    break End::Dropped;
                }
            }
        }
    };

    if let Stage::Joined { room, .. } = &session.stage {
        // Awaited rather than tried: a lost disconnect would keep a ghost in the room forever.
        let _ = room.send(RoomCommand::Disconnected { session: id }).await;
        // Pair rooms too: theirs may have fallen back to the relay.
        session.leave_media().await;
    }
    match end {
        End::Close(code, error) => {
            if let Some(error) = error {
                let _ = send(&mut socket, text(&ServerMessage::error(error))).await;
            }
            if send(&mut socket, close_frame(code)).await.is_ok() {
                finish_close(&mut socket).await;
            }
        }
        End::Closed => finish_close(&mut socket).await,
        End::Dropped => {}
    }
}

/// Completes the closing handshake after the server's close frame: reads (and discards) what the
/// client still sends until its own close frame arrives. Dropping a socket with unread input makes
/// the kernel reset the connection, and the reset can destroy the error and close frame before the
/// client has read them: it would see an abnormal closure (1006) instead of the real code.
async fn finish_close(socket: &mut WebSocket) {
    let answered = timeout(CLOSE_TIMEOUT, async {
        loop {
            match socket.recv().await {
                Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return false,
            }
        }
    })
    .await;
    if answered == Ok(false) {
        // The input cannot be read any more (after an oversized frame the stream has ended):
        // give the close frame a moment to reach the client before the reset.
        tokio::time::sleep(CLOSE_LINGER).await;
    }
}

/// A frame over the size limit and a text frame that is not UTF-8 are protocol errors with close
/// codes of their own; anything else means the connection broke.
fn read_error_end(error: axum::Error) -> End {
    match error
        .into_inner()
        .downcast::<tungstenite::Error>()
        .map(|error| *error)
    {
        Ok(tungstenite::Error::Capacity(_)) => End::Close(close::MESSAGE_TOO_BIG, None),
        Ok(tungstenite::Error::Utf8(_)) => {
            End::Close(close::INVALID_DATA, Some(ErrorCode::BadMessage))
        }
        _ => End::Dropped,
    }
}

/// The size of the `signal` the recipient would get for `payload`, assuming the longest sender id.
/// Re-serializing can make a payload longer than the client wrote it (`1e9` becomes
/// `1000000000.0`), so the incoming frame's size does not bound the relayed one.
fn relayed_signal_len(payload: &serde_json::Value) -> usize {
    const ENVELOPE: &str = r#"{"type":"signal","from":"","payload":}"#;
    let payload_len = serde_json::to_vec(payload).map_or(usize::MAX, |bytes| bytes.len());
    payload_len.saturating_add(ENVELOPE.len() + PEER_ID_MAX_LEN)
}

/// The number of media sections (`m=` lines) in an SDP.
fn media_sections(sdp: &str) -> usize {
    sdp.lines().filter(|line| line.starts_with("m=")).count()
}

/// A message id as the chat uses them: 8 to 64 URL-safe characters.
fn is_message_id(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a question for the assistant against the chat's own limits; the problem, if any.
fn check_luna_ask(id: &str, text: &str, context: &[LunaTurn]) -> Result<(), &'static str> {
    let text_ok = |text: &str| (1..=CHAT_TEXT_MAX_CHARS).contains(&text.chars().count());
    if !is_message_id(id) || !text_ok(text) {
        return Err(
            "a question is a chat message: an id of 8 to 64 URL-safe characters and 1 to 10,000 characters of text",
        );
    }
    if context.len() > LUNA_CONTEXT_MESSAGES {
        return Err("the context holds at most 20 messages");
    }
    if !context
        .iter()
        .all(|turn| is_message_id(&turn.id) && text_ok(&turn.text))
    {
        return Err(
            "each message of the context is a chat message: an id and 1 to 10,000 characters",
        );
    }
    Ok(())
}

/// The room's form of an owner's request. A hand-over draws the new owner's secret here.
fn moderation(message: ClientMessage) -> Result<Moderation, ErrorCode> {
    Ok(match message {
        ClientMessage::Kick { peer } => Moderation::Kick(peer),
        ClientMessage::Ban { peer } => Moderation::Ban(peer),
        ClientMessage::Lock { locked } => Moderation::Lock(locked),
        ClientMessage::SetCapacity { capacity } => Moderation::SetCapacity(capacity),
        ClientMessage::HandOver { peer } => {
            let secret = secrets::owner_secret().map_err(|_| ErrorCode::Internal)?;
            Moderation::HandOver(peer, secret)
        }
        _ => return Err(ErrorCode::BadMessage),
    })
}

/// Logs a name-store failure (its text names no room: SQLite's messages hold no values) and
/// gives the client the generic error.
fn name_store_failed(error: &NamesError) -> ServerMessage {
    tracing::error!(%error, "cannot look up or add a room name");
    ServerMessage::error(ErrorCode::Internal)
}

/// A `rate-limited` error saying when to try again.
fn rate_limited(wait: Duration) -> ServerMessage {
    ServerMessage::Error {
        code: ErrorCode::RateLimited,
        message: ErrorCode::RateLimited.default_message().to_owned(),
        retry_after_ms: Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)),
    }
}

async fn send(socket: &mut WebSocket, message: Message) -> Result<(), ()> {
    match timeout(SEND_TIMEOUT, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

impl Session {
    async fn reply(&self, socket: &mut WebSocket, message: &ServerMessage) -> Option<End> {
        send(socket, text(message))
            .await
            .err()
            .map(|()| End::Dropped)
    }

    async fn reply_error(&self, socket: &mut WebSocket, code: ErrorCode) -> Option<End> {
        self.reply(socket, &ServerMessage::error(code)).await
    }

    /// A WebSocket ping or pong from the client: it takes a token like a message; a socket that
    /// keeps sending them past the limit is closed as a flood. `Some` ends the session.
    fn count_control_frame(&mut self) -> Option<End> {
        if self.limiter.try_take(Instant::now().into_std()) {
            return None;
        }
        self.dropped_messages += 1;
        (self.dropped_messages > FLOOD_TOLERANCE).then(|| {
            tracing::info!(session = self.id.0, "closing a socket flooding with pings");
            End::Close(close::POLICY_VIOLATION, Some(ErrorCode::RateLimited))
        })
    }

    /// Handles one text frame. `Some` ends the session.
    async fn on_text(&mut self, socket: &mut WebSocket, frame: &str) -> Option<End> {
        let now = Instant::now();
        if !self.limiter.try_take(now.into_std()) {
            self.dropped_messages += 1;
            if self.dropped_messages > FLOOD_TOLERANCE {
                tracing::info!(session = self.id.0, "closing a flooding socket");
                return Some(End::Close(
                    close::POLICY_VIOLATION,
                    Some(ErrorCode::RateLimited),
                ));
            }
            let quiet = self
                .last_rate_error
                .is_some_and(|last| now.duration_since(last) < RATE_ERROR_INTERVAL);
            if quiet {
                return None;
            }
            self.last_rate_error = Some(now);
            let reply = rate_limited(self.limiter.retry_after());
            return self.reply(socket, &reply).await;
        }
        let message = match ClientMessage::decode(frame) {
            Ok(message)
                if frame.len() > MAX_MESSAGE_BYTES
                    && !matches!(message, ClientMessage::SfuOffer { .. }) =>
            {
                return Some(End::Close(close::MESSAGE_TOO_BIG, None));
            }
            Ok(message) => message,
            Err(_) if frame.len() > MAX_MESSAGE_BYTES => {
                return Some(End::Close(close::MESSAGE_TOO_BIG, None));
            }
            Err(error) => {
                let reply = ServerMessage::error_with(error.code, error.detail);
                return self.reply(socket, &reply).await;
            }
        };
        match (message, &self.stage) {
            (ClientMessage::Hello { version }, _) if version != PROTOCOL_VERSION => {
                Some(End::Close(
                    close::UNSUPPORTED_VERSION,
                    Some(ErrorCode::UnsupportedVersion),
                ))
            }
            (ClientMessage::Hello { .. }, Stage::Ready | Stage::Joined { .. }) => {
                // A hello is answered with a challenge: repeated, it would let one socket raise
                // everyone's difficulty.
                let reply = ServerMessage::error_with(
                    ErrorCode::BadMessage,
                    "hello comes once, first, on each connection",
                );
                self.reply(socket, &reply).await
            }
            (ClientMessage::Hello { .. }, Stage::AwaitingHello) => {
                self.stage = Stage::Ready;
                let hello = ServerMessage::Hello {
                    version: PROTOCOL_VERSION,
                    server: concat!("natter/", env!("CARGO_PKG_VERSION")).to_owned(),
                };
                if let Some(end) = self.reply(socket, &hello).await {
                    return Some(end);
                }
                self.send_challenge(socket).await
            }
            (ClientMessage::Ping, _) => self.reply(socket, &ServerMessage::Pong).await,
            (_, Stage::AwaitingHello) => self.reply_error(socket, ErrorCode::HelloRequired).await,
            (
                ClientMessage::Join {
                    room,
                    peer,
                    name,
                    kind,
                    admission,
                },
                Stage::Ready,
            ) => {
                let target = JoinTarget::Id(room, kind);
                self.join(socket, target, peer, name, admission).await
            }
            (
                ClientMessage::JoinNamed {
                    room_name,
                    peer,
                    name,
                    admission,
                },
                Stage::Ready,
            ) => {
                let target = JoinTarget::Named(room_name);
                self.join(socket, target, peer, name, admission).await
            }
            (ClientMessage::JoinNamed { .. }, Stage::Joined { .. }) => {
                self.reply_error(socket, ErrorCode::AlreadyJoined).await
            }
            (ClientMessage::Join { .. }, Stage::Joined { .. }) => {
                self.reply_error(socket, ErrorCode::AlreadyJoined).await
            }
            (_, Stage::Ready) => self.reply_error(socket, ErrorCode::NotJoined).await,
            (ClientMessage::Leave, Stage::Joined { room, .. }) => {
                // Awaited: a lost leave would keep the place taken.
                let _ = room.send(RoomCommand::Leave { session: self.id }).await;
                self.leave_media().await;
                self.stage = Stage::Ready;
                // The socket may join again, with a new proof.
                self.send_challenge(socket).await
            }
            (
                ClientMessage::SfuOffer { sdp, tracks },
                Stage::Joined {
                    room_id,
                    peer,
                    kind,
                    ..
                },
            ) => {
                // A pair room reaches the relay only as a fallback, which the operator may forbid.
                if *kind != RoomKind::Group && !self.registry.pair_server_relay() {
                    return self.reply_error(socket, ErrorCode::NotGroupRoom).await;
                }
                // Each media section is state the SFU keeps: bounded per offer, and per address
                // across its connections, before the SFU parses anything.
                let sections = media_sections(&sdp);
                let per_offer = self.client.guard.media.per_offer;
                if sections > per_offer {
                    let reply = ServerMessage::error_with(
                        ErrorCode::BadOffer,
                        format!("an offer carries at most {per_offer} media sections"),
                    );
                    return self.reply(socket, &reply).await;
                }
                if !self.media.resize(sections) {
                    tracing::info!(
                        session = self.id.0,
                        "closing a connection over its address's media budget"
                    );
                    return Some(End::Close(close::OVER_BUDGET, Some(ErrorCode::OverBudget)));
                }
                let handle = self.handle.clone();
                let command = SfuCommand::Offer {
                    client: ClientId(self.id.0),
                    room: room_id.clone(),
                    peer: peer.clone(),
                    sdp,
                    tracks,
                    deliver: Box::new(move |message| handle.deliver(text(&message))),
                };
                if self.sfu.try_send(command) {
                    None
                } else {
                    self.reply_error(socket, ErrorCode::ServerBusy).await
                }
            }
            (ClientMessage::Rename { name }, Stage::Joined { room, .. }) => {
                let command = RoomCommand::Rename {
                    session: self.id,
                    name,
                };
                self.forward(socket, room.clone(), command).await
            }
            (
                message @ (ClientMessage::Kick { .. }
                | ClientMessage::Ban { .. }
                | ClientMessage::Lock { .. }
                | ClientMessage::SetCapacity { .. }
                | ClientMessage::HandOver { .. }),
                Stage::Joined { room, .. },
            ) => {
                let room = room.clone();
                match moderation(message) {
                    Ok(action) => {
                        let session = self.id;
                        let command = RoomCommand::Moderate { session, action };
                        self.forward(socket, room, command).await
                    }
                    Err(code) => self.reply_error(socket, code).await,
                }
            }
            (ClientMessage::LunaAllow { allowed }, Stage::Joined { room, .. }) => {
                let command = RoomCommand::LunaAllow {
                    session: self.id,
                    allowed,
                };
                self.forward(socket, room.clone(), command).await
            }
            (ClientMessage::LunaAsk { id, text, context }, Stage::Joined { room, .. }) => {
                if let Err(problem) = check_luna_ask(&id, &text, &context) {
                    let reply = ServerMessage::error_with(ErrorCode::BadMessage, problem);
                    return self.reply(socket, &reply).await;
                }
                let command = RoomCommand::LunaAsk {
                    session: self.id,
                    id,
                    text,
                    context,
                };
                self.forward(socket, room.clone(), command).await
            }
            (ClientMessage::Signal { to, payload }, Stage::Joined { room, .. }) => {
                if relayed_signal_len(&payload) > MAX_MESSAGE_BYTES {
                    let reply = ServerMessage::error_with(
                        ErrorCode::BadMessage,
                        "the payload is too large to relay",
                    );
                    return self.reply(socket, &reply).await;
                }
                let command = RoomCommand::Signal {
                    session: self.id,
                    to,
                    payload,
                };
                self.forward(socket, room.clone(), command).await
            }
        }
    }

    /// Sends a fresh challenge. With proofs turned off its difficulty is 0: clients follow one
    /// path either way, and the server takes any answer.
    async fn send_challenge(&mut self, socket: &mut WebSocket) -> Option<End> {
        let issuer = &self.client.guard.challenges;
        let factor = std::mem::replace(&mut self.next_challenge_factor, 1);
        match issuer.issue(unix_now(), self.client.address, factor) {
            Ok(challenge) => {
                self.challenge = Some(challenge.token.clone());
                let message = ServerMessage::Challenge {
                    token: challenge.token,
                    difficulty: challenge.difficulty,
                };
                self.reply(socket, &message).await
            }
            Err(error) => {
                tracing::error!(%error, "cannot issue a challenge");
                self.reply_error(socket, ErrorCode::Internal).await
            }
        }
    }

    /// Checks the proof a join carries: the difficulty it was solved at (`u64::MAX` when the
    /// server asks for no proof), or the refusal to send. An accepted proof's challenge is
    /// forgotten, so it cannot be used again.
    fn check_proof(&mut self, proof: Option<&Proof>) -> Result<u64, Box<ServerMessage>> {
        let challenges = &self.client.guard.challenges;
        if !challenges.enabled() {
            return Ok(u64::MAX);
        }
        let Some(proof) = proof else {
            return Err(Box::new(ServerMessage::error(ErrorCode::ProofRequired)));
        };
        match challenges.verify(proof, unix_now(), self.challenge.as_deref()) {
            Ok(difficulty) => {
                self.challenge = None;
                Ok(difficulty)
            }
            Err(refused) => Err(Box::new(ServerMessage::error_with(
                ErrorCode::BadProof,
                format!("{refused}; solve the new challenge"),
            ))),
        }
    }

    /// A join or join-named: proof first, then the name, then the room.
    async fn join(
        &mut self,
        socket: &mut WebSocket,
        target: JoinTarget,
        peer: PeerId,
        name: DisplayName,
        admission: Admission,
    ) -> Option<End> {
        let Admission {
            peer_secret,
            proof,
            owner_secret,
        } = admission;
        // The id is checked first: a join with someone else's id must not even spend a proof.
        // The victim hears nothing of it.
        let proven = peer_secret.is_some_and(|secret| secret.proves(&peer));
        let checked = if proven {
            self.check_proof(proof.as_ref())
        } else {
            Err(Box::new(ServerMessage::error(ErrorCode::PeerUnproven)))
        };
        let solved_at = match checked {
            Ok(difficulty) => difficulty,
            Err(refusal) => {
                self.bad_proofs += 1;
                if self.bad_proofs > BAD_PROOF_TOLERANCE {
                    tracing::info!(
                        session = self.id.0,
                        "closing a socket that sends no valid proofs"
                    );
                    let code = if proven {
                        ErrorCode::BadProof
                    } else {
                        ErrorCode::PeerUnproven
                    };
                    return Some(End::Close(close::POLICY_VIOLATION, Some(code)));
                }
                return self.refuse_join(socket, *refusal).await;
            }
        };
        let mut creation_paid = false;
        let (room_id, kind, room_name) = match target {
            JoinTarget::Id(room_id, kind) => (room_id, kind, None),
            JoinTarget::Named(room_name) => match self.resolve(&room_name, solved_at).await {
                Ok((room_id, created)) => {
                    creation_paid = created;
                    (room_id, RoomKind::Group, Some(room_name))
                }
                Err(refusal) => return self.refuse_join(socket, refusal).await,
            },
        };
        let (reply, result) = oneshot::channel();
        let command = RoomCommand::Join {
            session: self.id,
            peer: peer.clone(),
            name,
            kind,
            address: self.client.address,
            owner_secret,
            room_name,
            creation_paid,
            handle: self.handle.clone(),
            reply,
        };
        let joined = match self.registry.join(&room_id, command) {
            Ok(sender) => match result.await {
                Ok(Ok(kind)) => {
                    self.registry.metrics().joined(self.opened.elapsed());
                    Ok((sender, kind))
                }
                Ok(Err(code)) => Err(Refused::from(code)),
                Err(_) => Err(Refused::from(ErrorCode::Internal)),
            },
            Err(refused) => Err(refused),
        };
        match joined {
            Ok((sender, kind)) => {
                self.stage = Stage::Joined {
                    room: sender,
                    room_id,
                    peer,
                    kind,
                };
                self.ever_joined = true;
                None
            }
            Err(Refused {
                code: ErrorCode::RateLimited,
                retry_after: Some(wait),
            }) => self.refuse_join(socket, rate_limited(wait)).await,
            Err(refused) => {
                self.refuse_join(socket, ServerMessage::error(refused.code))
                    .await
            }
        }
    }

    /// Sends the reason a join failed, then a new challenge for the next try.
    async fn refuse_join(&mut self, socket: &mut WebSocket, refusal: ServerMessage) -> Option<End> {
        if let Some(end) = self.reply(socket, &refusal).await {
            return Some(end);
        }
        self.send_challenge(socket).await
    }

    /// The room id of a name, from the name store (on the blocking pool: SQLite blocks). A new
    /// name is a new room, so it takes a token of the address's room-creation limit first (and
    /// the join then does not take another); that limit is what bounds the names one address adds.
    ///
    /// A new name also costs more work than a join: a proof solved at less than
    /// [`NEW_NAME_PROOF_FACTOR`] times the base difficulty is refused (`harder-proof-required`) and
    /// the next challenge asks for that much. And it counts against budgets per address and per
    /// network (/24 or /48), since a name is kept on disk for 30 days.
    async fn resolve(
        &mut self,
        room_name: &RoomName,
        solved_at: u64,
    ) -> Result<(RoomId, bool), ServerMessage> {
        let names = Arc::clone(&self.client.names);
        let name = room_name.clone();
        let found = tokio::task::spawn_blocking(move || names.lookup(&name, unix_now())).await;
        match found {
            Ok(Ok(Some(room_id))) => return Ok((room_id, false)),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => return Err(name_store_failed(&error)),
            Err(_) => return Err(ServerMessage::error(ErrorCode::Internal)),
        }
        let guard = &self.client.guard;
        let needed = guard
            .challenges
            .base_difficulty()
            .saturating_mul(NEW_NAME_PROOF_FACTOR);
        if solved_at < needed {
            self.next_challenge_factor = NEW_NAME_PROOF_FACTOR;
            return Err(ServerMessage::error(ErrorCode::HarderProofRequired));
        }
        let now = std::time::Instant::now();
        let limits = [
            (&guard.room_creations, &self.client.address),
            (&guard.name_creations, &self.client.address),
            (&guard.network_name_creations, &self.client.network),
        ];
        for (limiter, key) in limits {
            if let Err(wait) = limiter.check(key, now) {
                return Err(rate_limited(wait));
            }
        }
        let names = Arc::clone(&self.client.names);
        let name = room_name.clone();
        match tokio::task::spawn_blocking(move || names.create(&name, unix_now())).await {
            Ok(Ok(room_id)) => Ok((room_id, true)),
            Ok(Err(NamesError::Full)) => Err(ServerMessage::error(ErrorCode::ServerBusy)),
            Ok(Err(error)) => Err(name_store_failed(&error)),
            Err(_) => Err(ServerMessage::error(ErrorCode::Internal)),
        }
    }

    /// Ends this session's media connection. Awaited: a lost removal would leave a frozen tile.
    async fn leave_media(&mut self) {
        let client = ClientId(self.id.0);
        self.sfu.send(SfuCommand::Remove { client }).await;
        self.media.resize(0);
    }

    async fn forward(
        &self,
        socket: &mut WebSocket,
        room: mpsc::Sender<RoomCommand>,
        command: RoomCommand,
    ) -> Option<End> {
        match room.try_send(command) {
            Ok(()) => None,
            Err(_) => self.reply_error(socket, ErrorCode::ServerBusy).await,
        }
    }
}
