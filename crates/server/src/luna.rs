//! Luna, the optional assistant: a streaming client for any OpenAI-compatible chat-completions
//! API (Ollama, llama.cpp's server, vLLM, hosted services), the memory a room gives it (at most
//! [`LUNA_CONTEXT_MESSAGES`] messages, in memory, gone with the room) and the per-room reply cap.
//!
//! Prompt hygiene: the system prompt is the operator's; what people wrote goes in `user`
//! messages (prefixed with the author's name), Luna's earlier replies in `assistant` messages.
//! Nothing a person writes can become the system prompt, and browsers render the reply as plain
//! text like any message.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use natter_proto::limits::LUNA_CONTEXT_MESSAGES;
use natter_proto::signaling::LunaFailure;
use serde_json::{Value, json};

/// The API key, kept out of `Debug` output (and so out of logs).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(pub String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(hidden)")
    }
}

/// How to reach the model and how Luna behaves.
#[derive(Debug, Clone)]
pub struct LunaConfig {
    /// The API's base URL, e.g. `http://localhost:11434/v1`; requests go to
    /// `<base>/chat/completions`.
    pub base_url: reqwest::Url,
    /// The model to ask.
    pub model: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<ApiKey>,
    /// The operator's system prompt.
    pub system_prompt: String,
    /// Longest wait for the model's first piece of text, and between pieces.
    pub idle_timeout: Duration,
    /// Longest a whole reply may take.
    pub total_timeout: Duration,
    /// Replies per room per hour.
    pub replies_per_hour: u32,
    /// Longest reply, in characters; the rest is cut.
    pub max_reply_chars: usize,
}

/// Where the pieces of a reply go as they arrive.
pub trait PieceSink {
    /// Takes the next piece; false stops the reply (nobody is listening any more).
    fn piece(&mut self, text: String) -> impl Future<Output = bool> + Send;
}

/// One message of the conversation the model sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// True for Luna's own replies.
    pub assistant: bool,
    /// For people's messages, `Author: text`.
    pub content: String,
}

/// The assistant: configuration and an HTTP client.
#[derive(Debug)]
pub struct Luna {
    config: LunaConfig,
    client: reqwest::Client,
    endpoint: reqwest::Url,
}

/// Luna could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LunaSetupError {
    /// The base URL cannot have `chat/completions` appended.
    #[error("the assistant's URL {0} is not an http(s) URL")]
    BadUrl(String),
    /// The HTTP client could not be built (its TLS roots, say).
    #[error("cannot set up the assistant's HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Luna {
    /// A client for `config`.
    pub fn new(config: LunaConfig) -> Result<Self, LunaSetupError> {
        let url = &config.base_url;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(LunaSetupError::BadUrl(url.to_string()));
        }
        let mut base = url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let endpoint = base
            .join("chat/completions")
            .map_err(|_| LunaSetupError::BadUrl(url.to_string()))?;
        let client = reqwest::Client::builder()
            .connect_timeout(config.idle_timeout)
            // A question is a small request that should leave at once, not wait on Nagle.
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            config,
            client,
            endpoint,
        })
    }

    /// The model's name, as shown to people.
    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// Where the model runs (host and port), as shown to people.
    pub fn host(&self) -> String {
        let url = &self.config.base_url;
        match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => String::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LunaConfig {
        &self.config
    }

    /// Asks the model, streaming: `sink` gets each piece of text as it comes and may stop the
    /// reply. Returns the whole reply (cut at the length limit).
    pub async fn reply(
        &self,
        turns: &[Turn],
        sink: &mut impl PieceSink,
    ) -> Result<String, LunaFailure> {
        let started = Instant::now();
        let deadline = started + self.config.total_timeout;
        let mut messages = vec![json!({"role": "system", "content": self.config.system_prompt})];
        messages.extend(turns.iter().map(|turn| {
            json!({
                "role": if turn.assistant { "assistant" } else { "user" },
                "content": turn.content,
            })
        }));
        let body = json!({
            "model": self.config.model,
            "stream": true,
            "messages": messages,
        });
        let mut request = self.client.post(self.endpoint.clone()).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(&key.0);
        }
        let wait = self.config.idle_timeout.min(self.config.total_timeout);
        let response = match tokio::time::timeout(wait, request.send()).await {
            Err(_) => return Err(LunaFailure::Timeout),
            Ok(Err(error)) if error.is_timeout() => return Err(LunaFailure::Timeout),
            Ok(Err(error)) => {
                // reqwest's error text names the URL, never the key.
                tracing::warn!(error = %error.without_url(), "the assistant's model is unreachable");
                return Err(LunaFailure::Unreachable);
            }
            Ok(Ok(response)) => response,
        };
        if !response.status().is_success() {
            tracing::warn!(status = %response.status(), "the assistant's model answered with an error");
            return Err(LunaFailure::ModelError);
        }
        let mut body = response.bytes_stream();
        let mut lines = SseLines::default();
        let mut reply = String::new();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(LunaFailure::Timeout);
            }
            let wait = self.config.idle_timeout.min(deadline - now);
            let chunk = match tokio::time::timeout(wait, body.next()).await {
                Err(_) => return Err(LunaFailure::Timeout),
                Ok(None) => return Ok(reply),
                Ok(Some(Err(_))) => return Err(LunaFailure::Unreachable),
                Ok(Some(Ok(chunk))) => chunk,
            };
            // The pieces that arrived together go on as one: a fast model's tokens come in
            // bursts, and one message per token would crowd slow readers' queues.
            let mut arrived = String::new();
            let mut finished = None;
            for event in lines.push(&chunk) {
                match event {
                    SseEvent::Piece(piece) => arrived.push_str(&piece),
                    SseEvent::Done => {
                        finished = Some(Ok(()));
                        break;
                    }
                    SseEvent::Error => {
                        finished = Some(Err(LunaFailure::ModelError));
                        break;
                    }
                }
            }
            let room_left = self
                .config
                .max_reply_chars
                .saturating_sub(reply.chars().count());
            let piece: String = arrived.chars().take(room_left).collect();
            let full = piece.chars().count() >= room_left;
            if !piece.is_empty() {
                reply.push_str(&piece);
                if !sink.piece(piece).await {
                    return Ok(reply);
                }
            }
            match finished {
                Some(Err(failure)) => return Err(failure),
                Some(Ok(())) => return Ok(reply),
                None if full => return Ok(reply),
                None => {}
            }
        }
    }
}

/// What one server-sent event of a streamed chat completion says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    /// More text (possibly empty).
    Piece(String),
    /// `data: [DONE]`: the reply is complete.
    Done,
    /// The stream carried an error object instead of a completion.
    Error,
}

/// Splits a streamed response into its `data:` events, whatever the chunk boundaries.
#[derive(Debug, Default)]
pub struct SseLines {
    partial: Vec<u8>,
}

/// Longest line kept while waiting for its end: a line longer than this is not a chat chunk.
const MAX_SSE_LINE: usize = 256 * 1024;

impl SseLines {
    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in bytes {
            if byte != b'\n' {
                if self.partial.len() < MAX_SSE_LINE {
                    self.partial.push(byte);
                }
                continue;
            }
            let line = std::mem::take(&mut self.partial);
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim_end_matches('\r').strip_prefix("data:") else {
                // Comments (":"), `event:`, `id:` and blank separator lines carry nothing here.
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                events.push(SseEvent::Done);
                continue;
            }
            let Ok(value) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if value.get("error").is_some_and(|error| !error.is_null()) {
                events.push(SseEvent::Error);
                continue;
            }
            let choice = &value["choices"][0];
            if let Some(text) = choice["delta"]["content"].as_str() {
                events.push(SseEvent::Piece(text.to_owned()));
            }
            if choice["finish_reason"].as_str().is_some() {
                events.push(SseEvent::Done);
            }
        }
        events
    }
}

/// What Luna remembers of a room: the last [`LUNA_CONTEXT_MESSAGES`] messages it was shown or
/// wrote, each once (by id). Lives in the room's task, so it goes when the room empties.
#[derive(Debug, Default)]
pub struct LunaMemory {
    turns: VecDeque<(String, Turn)>,
}

impl LunaMemory {
    /// Adds a message unless it is already there; the oldest are forgotten past the limit.
    pub fn remember(&mut self, id: &str, turn: Turn) {
        if self.turns.iter().any(|(known, _)| known == id) {
            return;
        }
        self.turns.push_back((id.to_owned(), turn));
        while self.turns.len() > LUNA_CONTEXT_MESSAGES {
            self.turns.pop_front();
        }
    }

    /// The messages, oldest first.
    pub fn turns(&self) -> Vec<Turn> {
        self.turns.iter().map(|(_, turn)| turn.clone()).collect()
    }
}

/// At most `per_hour` replies in any hour (a sliding window). Time is passed in.
#[derive(Debug)]
pub struct ReplyCap {
    per_hour: u32,
    replies: VecDeque<Instant>,
}

const HOUR: Duration = Duration::from_secs(60 * 60);

impl ReplyCap {
    /// A cap of `per_hour`.
    pub fn new(per_hour: u32) -> Self {
        Self {
            per_hour,
            replies: VecDeque::new(),
        }
    }

    /// Counts a reply at `now` if the last hour has room for it.
    pub fn try_take(&mut self, now: Instant) -> bool {
        while self
            .replies
            .front()
            .is_some_and(|first| now.saturating_duration_since(*first) >= HOUR)
        {
            self.replies.pop_front();
        }
        if self.replies.len() >= self.per_hour as usize {
            return false;
        }
        self.replies.push_back(now);
        true
    }
}

/// What Luna says when a reply fails: short, and the room goes on.
pub fn failure_text(failure: LunaFailure, replies_per_hour: u32) -> String {
    match failure {
        LunaFailure::Unreachable => "I can't reach my model right now. Try again later.".to_owned(),
        LunaFailure::Timeout => "My model took too long to answer. Try again later.".to_owned(),
        LunaFailure::RateCapped => format!(
            "I've answered {replies_per_hour} times in this room in the last hour. Ask again later."
        ),
        LunaFailure::ModelError => "My model answered with an error. Try again later.".to_owned(),
        LunaFailure::Busy => {
            "I'm still answering the last question here. Ask again in a moment.".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(text: &str) -> Turn {
        Turn {
            assistant: false,
            content: text.to_owned(),
        }
    }

    #[test]
    fn server_sent_events_are_read_across_any_chunk_boundary() {
        let stream = concat!(
            ": keep-alive\n\n",
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"lo 👋\"}}]}\n\n",
            "data: not json\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        )
        .as_bytes();
        let expected = vec![
            SseEvent::Piece("Hel".to_owned()),
            SseEvent::Piece("lo 👋".to_owned()),
            SseEvent::Done,
            SseEvent::Done,
        ];
        for size in [1, 2, 3, 7, 64, stream.len()] {
            let mut lines = SseLines::default();
            let events: Vec<SseEvent> = stream
                .chunks(size)
                .flat_map(|chunk| lines.push(chunk))
                .collect();
            assert_eq!(events, expected, "chunks of {size}");
        }
        let mut lines = SseLines::default();
        assert_eq!(
            lines.push(b"data: {\"error\":{\"message\":\"model not found\"}}\n"),
            vec![SseEvent::Error]
        );
    }

    #[test]
    fn memory_keeps_each_message_once_and_only_the_last_twenty() {
        let mut memory = LunaMemory::default();
        for i in 0..30 {
            memory.remember(&format!("m{i}"), turn(&format!("message {i}")));
            memory.remember(&format!("m{i}"), turn("a copy"));
        }
        let turns = memory.turns();
        assert_eq!(turns.len(), LUNA_CONTEXT_MESSAGES);
        assert_eq!(
            turns.first().map(|t| t.content.as_str()),
            Some("message 10")
        );
        assert_eq!(turns.last().map(|t| t.content.as_str()), Some("message 29"));
    }

    #[test]
    fn the_cap_counts_replies_in_the_last_hour() {
        let start = Instant::now();
        let mut cap = ReplyCap::new(3);
        assert!((0..3).all(|i| cap.try_take(start + Duration::from_secs(i))));
        assert!(!cap.try_take(start + Duration::from_secs(60)));
        // An hour after the first, one place is free again.
        assert!(cap.try_take(start + HOUR));
        assert!(!cap.try_take(start + HOUR));
    }

    #[test]
    fn the_api_key_is_not_printed() {
        let key = ApiKey("sk-very-secret".to_owned());
        assert_eq!(format!("{key:?}"), "ApiKey(hidden)");
    }
}
