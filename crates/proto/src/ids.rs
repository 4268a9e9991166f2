//! Validated identifiers and display names.
//!
//! Every id that arrives from a peer is parsed into one of these newtypes before any other code sees it,
//! so the rest of the server can assume well-formed values.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::{NAME_MAX_CHARS, PEER_ID_MAX_LEN, PEER_ID_MIN_LEN, ROOM_ID_LEN};

/// Why an id or a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A room id is exactly [`ROOM_ID_LEN`] characters of the URL-safe base64 alphabet.
    #[error("a room id is {ROOM_ID_LEN} characters of A-Z, a-z, 0-9, '-' and '_'")]
    RoomId,
    /// A peer id is [`PEER_ID_MIN_LEN`]..=[`PEER_ID_MAX_LEN`] characters of the URL-safe base64 alphabet.
    #[error(
        "a peer id is {PEER_ID_MIN_LEN} to {PEER_ID_MAX_LEN} characters of A-Z, a-z, 0-9, '-' and '_'"
    )]
    PeerId,
    /// A display name is 1..=[`NAME_MAX_CHARS`] characters with no control or bidi-override characters.
    #[error(
        "a name is 1 to {NAME_MAX_CHARS} characters, without control or text-direction characters"
    )]
    Name,
}

/// The parts every validated text newtype shares: read access, conversion back to `String`
/// (which serde uses to serialize), and `Display`. Construction is each type's own `TryFrom`.
macro_rules! text_newtype {
    ($name:ident) => {
        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn is_url_safe(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The id of a room: 22 characters of URL-safe base64, i.e. 132 bits when generated at random.
///
/// Clients generate room ids with a cryptographic random source; the server only checks the format,
/// because a room id is also the capability to enter the room.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomId(String);

impl TryFrom<String> for RoomId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        if value.len() == ROOM_ID_LEN && is_url_safe(&value) {
            Ok(Self(value))
        } else {
            Err(IdError::RoomId)
        }
    }
}

text_newtype!(RoomId);

/// The id a client chose for itself; stable across reloads of the same browser profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerId(String);

impl TryFrom<String> for PeerId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        if (PEER_ID_MIN_LEN..=PEER_ID_MAX_LEN).contains(&value.len()) && is_url_safe(&value) {
            Ok(Self(value))
        } else {
            Err(IdError::PeerId)
        }
    }
}

text_newtype!(PeerId);

/// A person's display name, as others see it.
///
/// Leading and trailing white space is removed. Control characters and the Unicode bidi controls are
/// refused, because they let one name impersonate another or reorder the text around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

fn is_forbidden_in_name(c: char) -> bool {
    c.is_control()
        // bidi embeddings, overrides and isolates
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}')
        // line and paragraph separators break the one-line layout
        || matches!(c, '\u{2028}' | '\u{2029}')
}

impl TryFrom<String> for DisplayName {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        let trimmed = value.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > NAME_MAX_CHARS || trimmed.chars().any(is_forbidden_in_name) {
            return Err(IdError::Name);
        }
        if trimmed.len() == value.len() {
            Ok(Self(value))
        } else {
            Ok(Self(trimmed.to_owned()))
        }
    }
}

text_newtype!(DisplayName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_id_accepts_exactly_22_url_safe_characters() {
        assert!(RoomId::try_from("abcdefghijklmnopqrstu-".to_owned()).is_ok());
        assert!(RoomId::try_from("ABC_efghijklmnop012345".to_owned()).is_ok());
        assert_eq!(RoomId::try_from("short".to_owned()), Err(IdError::RoomId));
        assert_eq!(
            RoomId::try_from("abcdefghijklmnopqrstuvw".to_owned()),
            Err(IdError::RoomId)
        );
        assert_eq!(
            RoomId::try_from("abcdefghijklmnopqrst/+".to_owned()),
            Err(IdError::RoomId)
        );
        assert_eq!(
            RoomId::try_from("abcdefghijklmnopqrstué".to_owned()),
            Err(IdError::RoomId)
        );
    }

    #[test]
    fn peer_id_length_bounds() {
        assert!(PeerId::try_from("a".repeat(PEER_ID_MIN_LEN)).is_ok());
        assert!(PeerId::try_from("a".repeat(PEER_ID_MAX_LEN)).is_ok());
        assert!(PeerId::try_from("a".repeat(PEER_ID_MIN_LEN - 1)).is_err());
        assert!(PeerId::try_from("a".repeat(PEER_ID_MAX_LEN + 1)).is_err());
        assert!(PeerId::try_from("abcdefgh ijklmnop".to_owned()).is_err());
    }

    #[test]
    fn name_is_trimmed_and_counted_in_characters() {
        let name = DisplayName::try_from("  Zoë 🦊  ".to_owned()).expect("valid");
        assert_eq!(name.as_str(), "Zoë 🦊");
        assert!(DisplayName::try_from("é".repeat(NAME_MAX_CHARS)).is_ok());
        assert!(DisplayName::try_from("é".repeat(NAME_MAX_CHARS + 1)).is_err());
    }

    #[test]
    fn name_refuses_empty_control_and_bidi_characters() {
        for bad in [
            "",
            "   ",
            "a\nb",
            "a\u{0}b",
            "evil\u{202E}gpj.exe",
            "a\u{2066}b",
            "a\u{2028}b",
        ] {
            assert_eq!(
                DisplayName::try_from(bad.to_owned()),
                Err(IdError::Name),
                "{bad:?}"
            );
        }
    }
}
