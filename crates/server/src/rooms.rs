//! One task per room owns its [`natter_room::Room`]; sessions talk to it over a bounded channel.
//!
//! The [`Registry`] maps room ids to the channels of live room tasks. A room task removes itself
//! from the registry when its room is empty and its inbox drained, under the registry lock, and
//! joins are sent under the same lock, so a join can never land in a task that is exiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use natter_proto::signaling::{LunaFailure, LunaInfo, LunaTurn, RoomKind};
use natter_proto::{DisplayName, ErrorCode, OwnerSecret, PeerId, RoomId, RoomName, ServerMessage};
use natter_room::{AddressTag, JoinRequest, Moderation, Output, Room, RoomPolicy, SessionId};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::guard::Guard;
use crate::ice::IceConfig;
use crate::luna::{Luna, LunaMemory, PieceSink, ReplyCap, Turn, failure_text};
use crate::metrics::Metrics;
use crate::{secrets, unix_now};

/// Commands a room task accepts before pushing back on senders.
const ROOM_INBOX: usize = 256;

/// How a room task reaches one session.
#[derive(Debug, Clone)]
pub(crate) struct SessionHandle {
    /// Messages for the socket, in order. Bounded: a client that does not read is cut off.
    pub outbound: mpsc::Sender<Message>,
    /// Woken when the outbound queue overflowed and the session must close.
    pub too_slow: Arc<Notify>,
}

impl SessionHandle {
    /// Queues `message`; false if the session is gone or not keeping up (and has been told to close).
    pub(crate) fn deliver(&self, message: Message) -> bool {
        match self.outbound.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.too_slow.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// What a session asks of its room.
#[derive(Debug)]
pub(crate) enum RoomCommand {
    Join {
        session: SessionId,
        peer: PeerId,
        name: DisplayName,
        /// The kind to create the room as, if it does not exist.
        kind: RoomKind,
        /// Where the session connects from, for bans.
        address: AddressTag,
        owner_secret: Option<OwnerSecret>,
        /// The name the room was reached by, echoed in `welcome`.
        room_name: Option<RoomName>,
        /// The session already took a room-creation token (for a new name).
        creation_paid: bool,
        handle: SessionHandle,
        /// The room's kind, after `welcome` was queued on the session's outbound channel.
        reply: oneshot::Sender<Result<RoomKind, ErrorCode>>,
    },
    Rename {
        session: SessionId,
        name: DisplayName,
    },
    Signal {
        session: SessionId,
        to: PeerId,
        payload: Value,
    },
    Leave {
        session: SessionId,
    },
    LunaAllow {
        session: SessionId,
        allowed: bool,
    },
    /// A question for the assistant, already checked for size by the session.
    LunaAsk {
        session: SessionId,
        id: String,
        text: String,
        context: Vec<LunaTurn>,
    },
    /// A piece of the assistant's reply, from the task that streams it.
    LunaPiece {
        reply: String,
        question: String,
        text: String,
        done: bool,
        failure: Option<LunaFailure>,
    },
    /// An owner's request (the room checks that it comes from the owner).
    Moderate {
        session: SessionId,
        action: Moderation,
    },
    /// The socket ended without `leave`.
    Disconnected {
        session: SessionId,
    },
}

/// Settings every room task needs.
#[derive(Debug, Clone)]
pub(crate) struct RoomSettings {
    /// Policy of new pair rooms.
    pub pair: RoomPolicy,
    /// Policy of new group rooms.
    pub group: RoomPolicy,
    /// STUN and TURN for `welcome`; TURN credentials are minted per join.
    pub ice: Arc<IceConfig>,
    /// Pair rooms may connect to the media relay when their direct path fails.
    pub pair_server_relay: bool,
    /// The file-size policy announced in `welcome`.
    pub max_file_bytes: u64,
    /// The assistant, if the server has one.
    pub luna: Option<Arc<Luna>>,
    /// Operators' counters: rooms and people by kind, Luna's calls, join times.
    pub metrics: Arc<Metrics>,
}

/// Why a join did not reach a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    pub code: ErrorCode,
    /// For rate limits: when to try again.
    pub retry_after: Option<Duration>,
}

impl From<ErrorCode> for Refused {
    fn from(code: ErrorCode) -> Self {
        Self {
            code,
            retry_after: None,
        }
    }
}

/// The live rooms.
#[derive(Debug)]
pub(crate) struct Registry {
    rooms: Mutex<HashMap<RoomId, mpsc::Sender<RoomCommand>>>,
    settings: RoomSettings,
    /// The per-address limit on new rooms.
    guard: Arc<Guard>,
}

impl Registry {
    /// Operators' counters.
    pub fn metrics(&self) -> &Metrics {
        &self.settings.metrics
    }

    /// Whether pair rooms may fall back to the media relay.
    pub fn pair_server_relay(&self) -> bool {
        self.settings.pair_server_relay
    }

    pub fn new(settings: RoomSettings, guard: Arc<Guard>) -> Arc<Self> {
        Arc::new(Self {
            rooms: Mutex::new(HashMap::new()),
            settings,
            guard,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, mpsc::Sender<RoomCommand>>> {
        // The map holds no invariant a panicking holder could break half-way, so a poisoned
        // lock is still usable.
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of live room tasks.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Sends a join to the room's task, starting one if the room has none. Returns the room's
    /// channel for the session's later commands.
    pub fn join(
        self: &Arc<Self>,
        room_id: &RoomId,
        command: RoomCommand,
    ) -> Result<mpsc::Sender<RoomCommand>, Refused> {
        let mut rooms = self.lock();
        let (policy, creator, creation_paid) = match &command {
            RoomCommand::Join {
                kind,
                address,
                creation_paid,
                ..
            } => {
                let policy = match kind {
                    RoomKind::Group => self.settings.group,
                    RoomKind::Pair => self.settings.pair,
                };
                (policy, *address, *creation_paid)
            }
            _ => return Err(ErrorCode::Internal.into()),
        };
        let command = match rooms.get(room_id) {
            Some(sender) => match sender.try_send(command) {
                Ok(()) => return Ok(sender.clone()),
                Err(mpsc::error::TrySendError::Full(_)) => return Err(ErrorCode::ServerBusy.into()),
                // The task ended (it cannot while registered, but a panic would do it): replace it.
                Err(mpsc::error::TrySendError::Closed(command)) => command,
            },
            None => command,
        };
        let limited = if creation_paid {
            Ok(())
        } else {
            self.guard
                .room_creations
                .check(&creator, std::time::Instant::now())
        };
        if let Err(wait) = limited {
            return Err(Refused {
                code: ErrorCode::RateLimited,
                retry_after: Some(wait),
            });
        }
        let secret = secrets::owner_secret().map_err(|_| ErrorCode::Internal)?;
        let (sender, inbox) = mpsc::channel(ROOM_INBOX);
        // A fresh channel has room for one command.
        sender.try_send(command).map_err(|_| ErrorCode::Internal)?;
        rooms.insert(room_id.clone(), sender.clone());
        let room = Room::new(policy, secret);
        tokio::spawn(run_room(
            Arc::clone(self),
            room_id.clone(),
            room,
            inbox,
            sender.clone(),
        ));
        Ok(sender)
    }

    /// Unregisters `room_id` if its task has nothing left to do. Called by the task itself.
    fn retire_if_idle(&self, room_id: &RoomId, inbox: &mpsc::Receiver<RoomCommand>) -> bool {
        let mut rooms = self.lock();
        if inbox.is_empty() {
            rooms.remove(room_id);
            true
        } else {
            false
        }
    }
}

/// Serializes a server message into a text frame.
pub(crate) fn text(message: &ServerMessage) -> Message {
    Message::Text(Utf8Bytes::from(message.to_json()))
}

/// A close frame with `code` and no reason text (the preceding `error` message explains).
pub(crate) fn close_frame(code: u16) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(""),
    }))
}

/// The frames that tell a client why it is being closed, then close it.
fn close_frames(error: ErrorCode, code: u16) -> [Message; 2] {
    [text(&ServerMessage::error(error)), close_frame(code)]
}

/// Carries the pieces of one reply back to its room's task.
struct ToRoom {
    inbox: mpsc::Sender<RoomCommand>,
    reply: String,
    question: String,
}

impl ToRoom {
    fn command(&self, text: String, done: bool, failure: Option<LunaFailure>) -> RoomCommand {
        RoomCommand::LunaPiece {
            reply: self.reply.clone(),
            question: self.question.clone(),
            text,
            done,
            failure,
        }
    }
}

impl PieceSink for ToRoom {
    async fn piece(&mut self, text: String) -> bool {
        // A room that emptied has dropped its inbox: stop reading the model then.
        let command = self.command(text, false, None);
        self.inbox.send(command).await.is_ok()
    }
}

struct RoomTask {
    room: Room,
    sessions: HashMap<SessionId, SessionHandle>,
    settings: RoomSettings,
    room_id: RoomId,
    /// This task's own inbox, for the task that streams the assistant's reply.
    inbox: mpsc::Sender<RoomCommand>,
    /// What the assistant remembers of this room (in memory only; gone with the room).
    memory: LunaMemory,
    replies: ReplyCap,
    /// The reply being streamed: its id and the text so far.
    answering: Option<(String, String)>,
}

impl RoomTask {
    fn handle(&mut self, command: RoomCommand) {
        let now = Instant::now().into_std();
        match command {
            RoomCommand::Join {
                session,
                peer,
                name,
                handle,
                reply,
                address,
                owner_secret,
                room_name,
                kind: _,
                creation_paid: _,
            } => {
                let policy = self.room.policy();
                let request = JoinRequest {
                    session,
                    peer: peer.clone(),
                    name,
                    address,
                    owner_secret,
                };
                let result = self.room.join(now, request);
                if let Ok(joined) = &result {
                    let ice_servers = self.settings.ice.for_peer(&peer, unix_now());
                    let welcome = ServerMessage::Welcome {
                        room: self.room_id.clone(),
                        peer,
                        kind: policy.kind,
                        capacity: joined.state.capacity,
                        peers: joined.peers.clone(),
                        ice_servers,
                        pair_relay: policy.kind != RoomKind::Pair
                            || self.settings.pair_server_relay,
                        resumed: joined.resumed,
                        max_file_bytes: self.settings.max_file_bytes,
                        owner: joined.state.owner.clone(),
                        locked: joined.state.locked,
                        owner_secret: joined.owner_secret.clone(),
                        room_name,
                        luna: self.settings.luna.as_ref().map(|luna| {
                            Box::new(LunaInfo {
                                model: luna.model().to_owned(),
                                host: luna.host(),
                                allowed: joined.state.luna == Some(true),
                            })
                        }),
                    };
                    handle.deliver(text(&welcome));
                    self.sessions.insert(session, handle);
                }
                // The session may have gone away meanwhile; its disconnect follows.
                let _ = reply.send(result.map(|_| policy.kind));
            }
            RoomCommand::Rename { session, name } => {
                if let Err(code) = self.room.rename(session, name) {
                    self.send_error(session, code);
                }
            }
            RoomCommand::Signal {
                session,
                to,
                payload,
            } => {
                if let Err(code) = self.room.signal(session, &to, payload) {
                    self.send_error(session, code);
                }
            }
            RoomCommand::LunaAllow { session, allowed } => {
                if let Err(code) = self.room.allow_luna(session, allowed) {
                    self.send_error(session, code);
                }
            }
            RoomCommand::LunaAsk {
                session,
                id,
                text,
                context,
            } => self.ask_luna(session, id, text, context),
            RoomCommand::LunaPiece {
                reply,
                question,
                text,
                done,
                failure,
            } => {
                if let Some((current, so_far)) = &mut self.answering
                    && *current == reply
                {
                    so_far.push_str(&text);
                    if done {
                        if failure.is_none() {
                            let turn = Turn {
                                assistant: true,
                                content: std::mem::take(so_far),
                            };
                            self.memory.remember(&reply, turn);
                        }
                        self.answering = None;
                    }
                }
                self.broadcast_luna(reply, question, text, done, failure);
            }
            RoomCommand::Moderate { session, action } => {
                if let Err(code) = self.room.moderate(session, action) {
                    self.send_error(session, code);
                }
            }
            RoomCommand::Leave { session } => {
                self.room.leave(session);
                self.sessions.remove(&session);
            }
            RoomCommand::Disconnected { session } => {
                self.room.disconnected(now, session);
                self.sessions.remove(&session);
            }
        }
    }

    /// Takes a question for the assistant: remembers it with its context and, unless the room is
    /// over its cap or an answer is under way, starts streaming the reply to everyone.
    fn ask_luna(&mut self, session: SessionId, id: String, text: String, context: Vec<LunaTurn>) {
        let asker = match self.room.may_ask_luna(session) {
            Ok(name) => name,
            Err(code) => return self.send_error(session, code),
        };
        let Some(luna) = self.settings.luna.clone() else {
            return self.send_error(session, ErrorCode::LunaUnavailable);
        };
        let Ok(reply) = secrets::random_bytes::<12>().map(|bytes| secrets::base64url(&bytes))
        else {
            return self.send_error(session, ErrorCode::Internal);
        };
        let per_hour = luna.config().replies_per_hour;
        let refuse = |failure| (failure, failure_text(failure, per_hour));
        let refusal = if self.answering.is_some() {
            Some(refuse(LunaFailure::Busy))
        } else if !self.replies.try_take(Instant::now().into_std()) {
            Some(refuse(LunaFailure::RateCapped))
        } else {
            None
        };
        if let Some((failure, sentence)) = refusal {
            return self.broadcast_luna(reply, id, sentence, true, Some(failure));
        }
        for turn in context {
            let content = if turn.luna {
                turn.text
            } else {
                format!("{}: {}", turn.author, turn.text)
            };
            self.memory.remember(
                &turn.id,
                Turn {
                    assistant: turn.luna,
                    content,
                },
            );
        }
        let question = Turn {
            assistant: false,
            content: format!("{asker}: {text}"),
        };
        self.memory.remember(&id, question);
        let turns = self.memory.turns();
        self.answering = Some((reply.clone(), String::new()));
        let mut sink = ToRoom {
            inbox: self.inbox.clone(),
            reply,
            question: id,
        };
        let metrics = Arc::clone(&self.settings.metrics);
        tokio::spawn(async move {
            let answer = luna.reply(&turns, &mut sink).await;
            metrics.luna_call(answer.is_err());
            let last = match answer {
                Ok(_) => sink.command(String::new(), true, None),
                Err(failure) => sink.command(failure_text(failure, per_hour), true, Some(failure)),
            };
            let _ = sink.inbox.send(last).await;
        });
    }

    /// Sends a piece of the assistant's reply to everyone in the room.
    fn broadcast_luna(
        &mut self,
        reply: String,
        question: String,
        text: String,
        done: bool,
        failure: Option<LunaFailure>,
    ) {
        // Through the room's outputs, so flush() delivers it like every other message.
        self.room.broadcast(&ServerMessage::Luna {
            reply,
            question,
            text,
            done,
            failure,
        });
    }

    fn send_error(&self, session: SessionId, code: ErrorCode) {
        if let Some(handle) = self.sessions.get(&session) {
            handle.deliver(text(&ServerMessage::error(code)));
        }
    }

    /// Carries out the room's outputs; a session that cannot keep up loses its socket, not the
    /// room its messages.
    fn flush(&mut self) {
        while let Some(output) = self.room.poll_output() {
            match output {
                Output::Send { to, message } => {
                    let Some(handle) = self.sessions.get(&to) else {
                        continue;
                    };
                    if !handle.deliver(text(&message)) {
                        self.sessions.remove(&to);
                        self.room.disconnected(Instant::now().into_std(), to);
                    }
                }
                Output::Close {
                    session,
                    error,
                    code,
                } => {
                    if let Some(handle) = self.sessions.remove(&session) {
                        for frame in close_frames(error, code) {
                            handle.deliver(frame);
                        }
                    }
                }
            }
        }
    }
}

async fn run_room(
    registry: Arc<Registry>,
    room_id: RoomId,
    room: Room,
    mut inbox: mpsc::Receiver<RoomCommand>,
    own_inbox: mpsc::Sender<RoomCommand>,
) {
    let settings = registry.settings.clone();
    let per_hour = settings
        .luna
        .as_ref()
        .map_or(0, |luna| luna.config().replies_per_hour);
    let mut task = RoomTask {
        room,
        sessions: HashMap::new(),
        settings,
        room_id,
        inbox: own_inbox,
        memory: LunaMemory::default(),
        replies: ReplyCap::new(per_hour),
        answering: None,
    };
    // Counted here, the one place that sees the room's whole life and every membership change.
    let kind = task.room.policy().kind;
    let metrics = Arc::clone(&task.settings.metrics);
    metrics.room(kind, 1);
    let mut counted = 0;
    loop {
        let deadline = task.room.poll_timeout();
        tokio::select! {
            command = inbox.recv() => match command {
                Some(command) => task.handle(command),
                // The registry holds a sender while this task is registered, so this is unreachable.
                None => break,
            },
            () = sleep_until(deadline) => task.room.handle_timeout(Instant::now().into_std()),
        }
        task.flush();
        let people = i64::try_from(task.room.len()).unwrap_or(i64::MAX);
        metrics.people(kind, people - counted);
        counted = people;
        if task.room.is_empty() && registry.retire_if_idle(&task.room_id, &inbox) {
            break;
        }
    }
    metrics.people(kind, -counted);
    metrics.room(kind, -1);
    tracing::debug!(rooms = registry.len(), "room closed");
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(Instant::from_std(deadline)).await,
        None => std::future::pending().await,
    }
}
