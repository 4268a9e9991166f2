//! Validated identifiers and display names.
//!
//! Every id that arrives from a peer is parsed into one of these newtypes before any other code sees it,
//! so the rest of the server can assume well-formed values.

use std::fmt;

use serde::{Deserialize, Serialize};

use unicode_normalization::UnicodeNormalization;

use sha2::{Digest, Sha256};

use crate::limits::{
    NAME_MAX_CHARS, OWNER_SECRET_LEN, PEER_ID_MAX_LEN, PEER_ID_MIN_LEN, PEER_SECRET_LEN,
    ROOM_ID_LEN, ROOM_NAME_MAX_CHARS, ROOM_NAME_MIN_CHARS,
};

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
    /// A room name broke one of the rules of [`RoomName`]; the text says which.
    #[error("{0}")]
    RoomName(&'static str),
    /// An owner secret is [`OWNER_SECRET_LEN`] characters of the URL-safe base64 alphabet.
    #[error("an owner secret is {OWNER_SECRET_LEN} characters of A-Z, a-z, 0-9, '-' and '_'")]
    OwnerSecret,
    /// A peer secret is [`PEER_SECRET_LEN`] characters of the URL-safe base64 alphabet.
    #[error("a peer secret is {PEER_SECRET_LEN} characters of A-Z, a-z, 0-9, '-' and '_'")]
    PeerSecret,
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

/// The id a client goes by; stable across reloads of the same browser profile.
///
/// A browser's peer id is [derived from its peer secret](PeerSecret::peer_id): the server lets a
/// socket use a peer id only with the secret it comes from, so knowing someone's id (everyone in a
/// room does) grants nothing.
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

/// The secret a browser keeps with its identity: 32 random bytes in URL-safe base64. Its
/// [peer id](Self::peer_id) is a hash of it, so presenting the secret with a `join` proves the
/// right to that id, and the server keeps nothing to check it against. It goes to the server only
/// (never to other people) and never into a log: its `Debug` output hides the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerSecret(String);

impl TryFrom<String> for PeerSecret {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        if value.len() == PEER_SECRET_LEN && is_url_safe(&value) {
            Ok(Self(value))
        } else {
            Err(IdError::PeerSecret)
        }
    }
}

/// What is hashed in front of a peer secret, so a peer id can be no other hash of it.
const PEER_ID_DOMAIN: &str = "natter peer id v1:";

/// The URL-safe base64 alphabet.
const URL_SAFE_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl PeerSecret {
    /// The peer id this secret proves: the first 22 characters (132 bits) of the unpadded
    /// URL-safe base64 of SHA-256(`"natter peer id v1:"` followed by the secret's text).
    pub fn peer_id(&self) -> PeerId {
        let digest = Sha256::new()
            .chain_update(PEER_ID_DOMAIN)
            .chain_update(&self.0)
            .finalize();
        // 22 characters of 6 bits each come from the first 17 bytes (136 bits).
        let mut bits: u32 = 0;
        let mut held = 0;
        let mut id = String::with_capacity(PEER_ID_DERIVED_LEN);
        for byte in &digest[..17] {
            bits = (bits << 8) | u32::from(*byte);
            held += 8;
            while held >= 6 && id.len() < PEER_ID_DERIVED_LEN {
                held -= 6;
                id.push(char::from(
                    URL_SAFE_ALPHABET[((bits >> held) & 63) as usize],
                ));
            }
        }
        PeerId(id)
    }

    /// True when this secret is the one `peer` was derived from. The comparison takes the same
    /// time wherever the ids differ.
    pub fn proves(&self, peer: &PeerId) -> bool {
        let (derived, claimed) = (self.peer_id(), peer.as_str().as_bytes());
        let derived = derived.as_str().as_bytes();
        derived.len() == claimed.len()
            && derived
                .iter()
                .zip(claimed)
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
    }

    /// The secret as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The length of a peer id derived from a secret.
pub const PEER_ID_DERIVED_LEN: usize = 22;

impl From<PeerSecret> for String {
    fn from(value: PeerSecret) -> Self {
        value.0
    }
}

impl fmt::Debug for PeerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerSecret(hidden)")
    }
}

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

/// The name of a named room (`/n/<name>`), in its one normal form.
///
/// Normalisation: surrounding white space is removed, the text is lower-cased and put in Unicode
/// NFC (so "Café" typed with a combining accent and with a precomposed "é" are the same room), and
/// every run of inner white space becomes one `-`. The result must be
/// [`ROOM_NAME_MIN_CHARS`]..=[`ROOM_NAME_MAX_CHARS`] characters of letters and digits (any script),
/// `-`, `_` and `.`, beginning and ending with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomName(String);

impl TryFrom<String> for RoomName {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        let lowered: String = value.trim().to_lowercase().nfc().collect();
        let mut name = String::with_capacity(lowered.len());
        let mut in_space = false;
        for c in lowered.chars() {
            if c.is_whitespace() {
                in_space = true;
                continue;
            }
            if in_space {
                name.push('-');
                in_space = false;
            }
            name.push(c);
        }
        let count = name.chars().count();
        if !(ROOM_NAME_MIN_CHARS..=ROOM_NAME_MAX_CHARS).contains(&count) {
            return Err(IdError::RoomName("a room name is 3 to 40 characters long"));
        }
        if !name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(IdError::RoomName(
                "a room name holds only letters, digits, spaces, '-', '_' and '.'",
            ));
        }
        let edges_ok = name.chars().next().is_some_and(char::is_alphanumeric)
            && name.chars().next_back().is_some_and(char::is_alphanumeric);
        if !edges_ok {
            return Err(IdError::RoomName(
                "a room name begins and ends with a letter or a digit",
            ));
        }
        Ok(Self(name))
    }
}

text_newtype!(RoomName);

/// The secret that makes whoever presents it the owner of a room: 32 random bytes in URL-safe
/// base64, handed to the owner alone and kept in their browser.
///
/// Its `Debug` output hides the value, so a secret cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OwnerSecret(String);

impl TryFrom<String> for OwnerSecret {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        if value.len() == OWNER_SECRET_LEN && is_url_safe(&value) {
            Ok(Self(value))
        } else {
            Err(IdError::OwnerSecret)
        }
    }
}

impl OwnerSecret {
    /// The secret as text, for sending it to its owner.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the two differ, so a guesser learns nothing from
    /// how long a refusal takes.
    pub fn matches(&self, other: &OwnerSecret) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl From<OwnerSecret> for String {
    fn from(value: OwnerSecret) -> Self {
        value.0
    }
}

impl fmt::Debug for OwnerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnerSecret(hidden)")
    }
}

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
    fn a_peer_secret_proves_its_own_id_and_no_other() {
        let secret = PeerSecret::try_from("A".repeat(PEER_SECRET_LEN)).expect("valid");
        let other = PeerSecret::try_from("B".repeat(PEER_SECRET_LEN)).expect("valid");
        let id = secret.peer_id();
        // The value docs/protocol.md and web/js/identity.js are checked against.
        assert_eq!(id.as_str(), "aRgIaJ_hvcAfezbWR3QxTi");
        assert_eq!(id.as_str().len(), PEER_ID_DERIVED_LEN);
        assert!(secret.proves(&id));
        assert!(!other.proves(&id));
        assert!(!secret.proves(&other.peer_id()));
        // A prefix or an extension of the real id proves nothing either.
        let longer = PeerId::try_from(format!("{id}A")).expect("valid");
        let shorter = PeerId::try_from(id.as_str()[..21].to_owned()).expect("valid");
        assert!(!secret.proves(&longer) && !secret.proves(&shorter));
        assert_eq!(format!("{secret:?}"), "PeerSecret(hidden)");
        assert!(PeerSecret::try_from("A".repeat(PEER_SECRET_LEN - 1)).is_err());
        assert!(PeerSecret::try_from(format!("{}=", "A".repeat(PEER_SECRET_LEN - 1))).is_err());
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

    fn room_name(text: &str) -> Result<String, IdError> {
        RoomName::try_from(text.to_owned()).map(String::from)
    }

    #[test]
    fn room_names_are_normalised() {
        assert_eq!(room_name("  Team Standup ").as_deref(), Ok("team-standup"));
        assert_eq!(room_name("a \t  b\nc").as_deref(), Ok("a-b-c"));
        // A combining accent and the precomposed letter are one room.
        assert_eq!(room_name("Cafe\u{301}"), room_name("Café"));
        // Lower-casing knows a word-final sigma, as JavaScript's toLowerCase does.
        assert_eq!(room_name("ΚΑΦΕΣ").as_deref(), Ok("καφες"));
        assert_eq!(room_name("会議室-2").as_deref(), Ok("会議室-2"));
        assert_eq!(room_name("v1.2_beta").as_deref(), Ok("v1.2_beta"));
    }

    #[test]
    fn room_names_are_refused_with_the_rule_they_break() {
        let refused = |text: &str, rule: &str| match room_name(text) {
            Err(IdError::RoomName(message)) => {
                assert!(message.contains(rule), "{text:?}: {message}")
            }
            other => panic!("{text:?} gave {other:?}"),
        };
        refused("ab", "3 to 40");
        refused("   ", "3 to 40");
        refused(&"x".repeat(41), "3 to 40");
        refused("a/b/c", "only letters");
        refused("room?x=1", "only letters");
        refused("evil\u{202E}txt", "only letters");
        refused("😀party", "only letters");
        refused("-room", "begins and ends");
        refused("room.", "begins and ends");
        refused("..", "3 to 40");
        assert!(room_name(&"é".repeat(40)).is_ok(), "counted in characters");
    }

    #[test]
    fn owner_secrets_are_checked_and_never_printed() {
        let secret = OwnerSecret::try_from("s".repeat(OWNER_SECRET_LEN)).expect("valid");
        assert_eq!(format!("{secret:?}"), "OwnerSecret(hidden)");
        let other = OwnerSecret::try_from("t".repeat(OWNER_SECRET_LEN)).expect("valid");
        assert!(secret.matches(&secret.clone()));
        assert!(!secret.matches(&other));
        assert!(OwnerSecret::try_from("short".to_owned()).is_err());
        assert!(OwnerSecret::try_from(format!("{}!", "s".repeat(OWNER_SECRET_LEN - 1))).is_err());
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
