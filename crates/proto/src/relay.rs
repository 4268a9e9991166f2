//! Group rooms: the envelope around data-channel messages that the SFU relays between browsers.
//!
//! A browser in a group room has one connection, to the server, with the same `chat` and `files`
//! channels a pair room has. Each message it sends names its recipient (or everyone); the server
//! delivers it on the same channel of the recipients, naming the sender, and keeps nothing.
//!
//! * Text: `{"to":"<peer id>","msg":{…}}` (omit `to` for everyone) arrives as
//!   `{"from":"<peer id>","msg":{…}}`. `msg` is relayed byte for byte.
//! * Binary: one length byte `n`, `n` bytes of the recipient's peer id (`n = 0`: everyone), then
//!   the payload; it arrives with the sender's id in the same place.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ids::PeerId;
use crate::limits::PEER_ID_MAX_LEN;

/// Largest relayed message in either direction, envelope included. A file chunk (16 KiB and a
/// 20-byte header) fits with room to spare; chat messages are far smaller.
pub const MAX_RELAY_MESSAGE_BYTES: usize = 64 * 1024;

/// Why a relayed message was refused. The sender's other messages are unaffected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// Larger than [`MAX_RELAY_MESSAGE_BYTES`].
    #[error("the message is larger than the relay's limit")]
    TooLarge,
    /// Not the envelope described above.
    #[error("the message is not a relay envelope")]
    Malformed,
    /// The recipient is not a valid peer id.
    #[error("the recipient is not a valid peer id")]
    BadRecipient,
}

#[derive(Deserialize)]
struct TextRequest<'a> {
    #[serde(default)]
    to: Option<String>,
    #[serde(borrow)]
    msg: &'a RawValue,
}

/// A relay request: who it is for and what to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayRequest<'a> {
    /// The one recipient, or `None` for everyone else in the room.
    pub to: Option<PeerId>,
    /// What the recipients get, already wrapped with the sender's id when [`deliver`] made it.
    pub payload: &'a [u8],
}

fn check_size(data: &[u8]) -> Result<(), RelayError> {
    if data.len() > MAX_RELAY_MESSAGE_BYTES {
        Err(RelayError::TooLarge)
    } else {
        Ok(())
    }
}

fn recipient(raw: &[u8]) -> Result<PeerId, RelayError> {
    let text = std::str::from_utf8(raw).map_err(|_| RelayError::BadRecipient)?;
    PeerId::try_from(text.to_owned()).map_err(|_| RelayError::BadRecipient)
}

/// Parses a text request; `payload` is the raw JSON of `msg`, which must be an object.
pub fn parse_text(data: &[u8]) -> Result<RelayRequest<'_>, RelayError> {
    check_size(data)?;
    let request: TextRequest<'_> =
        serde_json::from_slice(data).map_err(|_| RelayError::Malformed)?;
    let payload = request.msg.get().as_bytes();
    if payload.first() != Some(&b'{') {
        return Err(RelayError::Malformed);
    }
    let to = match request.to {
        Some(to) => Some(recipient(to.as_bytes())?),
        None => None,
    };
    Ok(RelayRequest { to, payload })
}

/// Parses a binary request.
pub fn parse_binary(data: &[u8]) -> Result<RelayRequest<'_>, RelayError> {
    check_size(data)?;
    let (&length, rest) = data.split_first().ok_or(RelayError::Malformed)?;
    let length = usize::from(length);
    if length > PEER_ID_MAX_LEN || rest.len() < length {
        return Err(RelayError::Malformed);
    }
    let (id, payload) = rest.split_at(length);
    let to = if length == 0 {
        None
    } else {
        Some(recipient(id)?)
    };
    Ok(RelayRequest { to, payload })
}

/// The text a recipient gets for a text request's `payload` (the raw JSON of its `msg`).
pub fn deliver_text(from: &PeerId, payload: &[u8]) -> Vec<u8> {
    // Peer ids are URL-safe characters, so they need no JSON escaping.
    let mut out = Vec::with_capacity(payload.len() + from.as_str().len() + 20);
    out.extend_from_slice(b"{\"from\":\"");
    out.extend_from_slice(from.as_str().as_bytes());
    out.extend_from_slice(b"\",\"msg\":");
    out.extend_from_slice(payload);
    out.push(b'}');
    out
}

/// The bytes a recipient gets for a binary request's `payload`.
pub fn deliver_binary(from: &PeerId, payload: &[u8]) -> Vec<u8> {
    let id = from.as_str().as_bytes();
    let mut out = Vec::with_capacity(1 + id.len() + payload.len());
    // Peer ids are at most 64 bytes, so the length fits in one byte.
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str) -> PeerId {
        PeerId::try_from(id.to_owned()).expect("valid peer id")
    }

    #[test]
    fn text_to_everyone_arrives_with_the_sender() {
        let request = parse_text(br#"{"msg":{"type":"chat","text":"hi \"there\""}}"#).expect("ok");
        assert_eq!(request.to, None);
        let delivered = deliver_text(&peer("ann-aaaaaaaaaaaaaa"), request.payload);
        let value: serde_json::Value = serde_json::from_slice(&delivered).expect("valid JSON");
        assert_eq!(value["from"], "ann-aaaaaaaaaaaaaa");
        assert_eq!(value["msg"]["text"], "hi \"there\"");
    }

    #[test]
    fn text_to_one_person() {
        let request = parse_text(br#"{"to":"bob-bbbbbbbbbbbbbb","msg":{"type":"ack","id":"x"}}"#)
            .expect("ok");
        assert_eq!(request.to, Some(peer("bob-bbbbbbbbbbbbbb")));
    }

    #[test]
    fn bad_text_is_refused() {
        for bad in [
            &b"not json"[..],
            br#"{"to":"bob-bbbbbbbbbbbbbb"}"#,
            br#"{"msg":"a string"}"#,
            br#"{"msg":[1]}"#,
            br#"[1,2]"#,
        ] {
            assert_eq!(parse_text(bad), Err(RelayError::Malformed), "{bad:?}");
        }
        assert_eq!(
            parse_text(br#"{"to":"x","msg":{}}"#),
            Err(RelayError::BadRecipient)
        );
        let huge = format!(
            r#"{{"msg":{{"t":"{}"}}}}"#,
            "a".repeat(MAX_RELAY_MESSAGE_BYTES)
        );
        assert_eq!(parse_text(huge.as_bytes()), Err(RelayError::TooLarge));
    }

    #[test]
    fn binary_round_trip() {
        let bob = peer("bob-bbbbbbbbbbbbbb");
        let mut request = vec![bob.as_str().len() as u8];
        request.extend_from_slice(bob.as_str().as_bytes());
        request.extend_from_slice(&[1, 2, 3]);
        let parsed = parse_binary(&request).expect("ok");
        assert_eq!(parsed.to, Some(bob));
        assert_eq!(parsed.payload, &[1, 2, 3]);
        let ann = peer("ann-aaaaaaaaaaaaaa");
        let delivered = deliver_binary(&ann, parsed.payload);
        let again = parse_binary(&delivered).expect("same layout");
        assert_eq!(again.to, Some(ann));
        assert_eq!(again.payload, &[1, 2, 3]);
        assert_eq!(parse_binary(&[0, 9]).expect("ok").to, None);
    }

    #[test]
    fn bad_binary_is_refused() {
        assert_eq!(parse_binary(&[]), Err(RelayError::Malformed));
        assert_eq!(parse_binary(&[5, b'a']), Err(RelayError::Malformed));
        assert_eq!(parse_binary(&[200; 300]), Err(RelayError::Malformed));
        assert_eq!(
            parse_binary(&[3, b'a', b'b', b'c']),
            Err(RelayError::BadRecipient)
        );
        assert_eq!(
            parse_binary(&vec![0; MAX_RELAY_MESSAGE_BYTES + 1]),
            Err(RelayError::TooLarge)
        );
    }
}
