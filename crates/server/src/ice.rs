//! The ICE servers handed to browsers in `welcome`: STUN URLs as configured, and TURN with
//! time-limited credentials (coturn's `use-auth-secret`, the "TURN REST API" scheme) or static
//! ones.
//!
//! With a shared secret, each welcome carries a credential of its own: the user name is
//! `<expiry>:<tag>` (expiry in Unix seconds) and the password is the base64 of
//! HMAC-SHA1(secret, user name). coturn recomputes the password from the name and refuses it
//! once the expiry has passed, so the secret never leaves this process and a leaked credential
//! dies by itself.
//!
//! The tag stands for the person: a keyed hash of their peer id, the same for them throughout
//! this server's run (the TURN server's logs and quotas can tell people apart) but not the peer
//! id itself. A peer id lets its holder take over that person's place in a room, and a `turn:`
//! user name travels in clear text and lands in the TURN server's logs.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use natter_proto::PeerId;
use natter_proto::signaling::IceServer;

use crate::secrets::{self, RandomUnavailable};

/// The secret shared with the TURN server (coturn's `static-auth-secret`). Never printed.
#[derive(Clone)]
pub struct TurnSecret(String);

impl TurnSecret {
    /// A secret from its text; surrounding white space is dropped. `None` if nothing is left.
    pub fn new(text: &str) -> Option<Self> {
        let secret = text.trim();
        (!secret.is_empty()).then(|| Self(secret.to_owned()))
    }
}

impl fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TurnSecret(hidden)")
    }
}

/// How browsers authenticate to the TURN server.
#[derive(Debug, Clone)]
pub enum TurnAuth {
    /// Credentials minted per join from a shared secret, valid for `ttl`.
    Secret {
        /// The shared secret.
        secret: TurnSecret,
        /// How long a credential stays valid. It has to outlive the longest call: the TURN
        /// server checks it again on every refresh of an allocation.
        ttl: Duration,
    },
    /// The same user name and password for everyone (for TURN services that offer nothing
    /// better); anyone in any room can read them.
    Static {
        /// The user name.
        username: String,
        /// The password (kept out of `Debug` output like a secret, though browsers get it).
        password: TurnSecret,
    },
}

/// Every ICE server a browser gets.
#[derive(Debug, Clone)]
pub struct IceConfig {
    /// `stun:` URLs, handed out as they are.
    pub stun: Vec<String>,
    /// `turn:` and `turns:` URLs, all behind the one credential.
    pub turn: Vec<String>,
    /// How TURN authenticates; `None` only when there are no TURN URLs.
    pub auth: Option<TurnAuth>,
    /// Turns peer ids into the tags in TURN user names; drawn at start-up.
    tagger: PeerTagger,
}

/// The key of the tags that stand for peer ids in TURN user names.
#[derive(Clone)]
struct PeerTagger(hmac::Key);

impl fmt::Debug for PeerTagger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerTagger(hidden)")
    }
}

impl IceConfig {
    /// The servers as configured, with a fresh key for the peer tags.
    pub fn new(
        stun: Vec<String>,
        turn: Vec<String>,
        auth: Option<TurnAuth>,
    ) -> Result<Self, RandomUnavailable> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &secrets::random_bytes::<32>()?);
        Ok(Self {
            stun,
            turn,
            auth,
            tagger: PeerTagger(key),
        })
    }

    /// The tag that stands for `peer` in its TURN user names: 16 URL-safe characters.
    pub fn peer_tag(&self, peer: &PeerId) -> String {
        let digest = hmac::sign(&self.tagger.0, peer.as_str().as_bytes());
        secrets::base64url(&digest.as_ref()[..12])
    }

    /// True when browsers get a TURN server.
    pub fn has_turn(&self) -> bool {
        !self.turn.is_empty() && self.auth.is_some()
    }

    /// The servers for `peer`, with a TURN credential minted at `now` (Unix seconds).
    pub fn for_peer(&self, peer: &PeerId, now: u64) -> Vec<IceServer> {
        let mut servers: Vec<IceServer> = self
            .stun
            .iter()
            .map(|url| IceServer {
                urls: vec![url.clone()],
                username: None,
                credential: None,
            })
            .collect();
        if let (false, Some(auth)) = (self.turn.is_empty(), &self.auth) {
            let (username, credential) = match auth {
                TurnAuth::Secret { secret, ttl } => {
                    let expiry = now.saturating_add(ttl.as_secs());
                    let username = format!("{expiry}:{}", self.peer_tag(peer));
                    let credential = turn_password(secret, &username);
                    (username, credential)
                }
                TurnAuth::Static { username, password } => (username.clone(), password.0.clone()),
            };
            servers.push(IceServer {
                urls: self.turn.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        servers
    }
}

/// The password coturn expects for `username` under `use-auth-secret`: base64 of
/// HMAC-SHA1(secret, username). SHA-1 is the scheme's, not our choice; as an HMAC it is sound.
pub fn turn_password(secret: &TurnSecret, username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.0.as_bytes());
    STANDARD.encode(hmac::sign(&key, username.as_bytes()).as_ref())
}

/// Why a URL cannot be used as the kind of ICE server it was given as.
pub fn check_url(url: &str, turn: bool) -> Result<(), String> {
    let schemes: &[&str] = if turn {
        &["turn:", "turns:"]
    } else {
        &["stun:", "stuns:"]
    };
    let Some(rest) = schemes.iter().find_map(|scheme| url.strip_prefix(scheme)) else {
        let other = if turn {
            "STUN URLs go in --ice-server"
        } else {
            "TURN URLs go in --turn-url, with --turn-secret or --turn-username/--turn-password"
        };
        return Err(format!(
            "{url:?} does not start with {}; {other}",
            schemes.join(" or ")
        ));
    };
    let host = rest.split(['?', ':']).next().unwrap_or_default();
    let clean = |c: char| c.is_ascii_alphanumeric() || "-.[]".contains(c);
    if host.is_empty() || !host.chars().all(clean) || url.chars().any(char::is_whitespace) {
        return Err(format!("{url:?} has no valid host name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(text: &str) -> PeerId {
        PeerId::try_from(text.to_owned()).expect("a valid peer id")
    }

    #[test]
    fn the_password_is_what_coturn_computes() {
        // Computed independently, with Python's hmac and hashlib; the browser tests check the
        // same scheme against a real coturn.
        let secret = TurnSecret::new("north").expect("a secret");
        assert_eq!(
            turn_password(&secret, "1433895918506:my_username"),
            "Gx/rOncp1ZXBdeBo0S3RrYQnHDA="
        );
    }

    #[test]
    fn a_secret_mints_an_expiring_credential_per_peer() {
        let config = IceConfig::new(
            vec!["stun:turn.example.org:3478".to_owned()],
            vec![
                "turn:turn.example.org:3478".to_owned(),
                "turns:turn.example.org:5349?transport=tcp".to_owned(),
            ],
            Some(TurnAuth::Secret {
                secret: TurnSecret::new("s3cret").expect("a secret"),
                ttl: Duration::from_secs(600),
            }),
        )
        .expect("randomness");
        let ann = peer("peer-ann-0000000001");
        let servers = config.for_peer(&ann, 1_000);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, ["stun:turn.example.org:3478"]);
        assert!(servers[0].username.is_none());
        let turn = &servers[1];
        assert_eq!(turn.urls.len(), 2);
        // "<expiry>:<tag>": the tag is the person's, the same on every join, not the peer id.
        let username = turn.username.as_deref().expect("a user name");
        let tag = config.peer_tag(&ann);
        assert_eq!(username, format!("1600:{tag}"));
        assert_eq!(tag.len(), 16);
        assert!(!username.contains(ann.as_str()));
        assert_eq!(
            config.for_peer(&ann, 2_000)[1].username,
            Some(format!("2600:{tag}"))
        );
        let secret = TurnSecret::new("s3cret").expect("a secret");
        assert_eq!(
            turn.credential.as_deref(),
            Some(turn_password(&secret, username).as_str())
        );
        // Another peer, another credential; the secret itself is nowhere.
        let other = config.for_peer(&peer("peer-bob-0000000002"), 1_000);
        assert_ne!(other[1].username, turn.username);
        assert_ne!(other[1].credential, turn.credential);
        // Another server run, another key: tags cannot be matched across runs.
        let restarted = IceConfig::new(Vec::new(), config.turn.clone(), config.auth.clone())
            .expect("randomness");
        assert_ne!(restarted.peer_tag(&ann), tag);
        let json = serde_json::to_string(&servers).expect("serialises");
        assert!(!json.contains("s3cret"), "{json}");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn static_credentials_and_stun_only() {
        let stun_only = IceConfig::new(vec!["stun:stun.example.org".to_owned()], Vec::new(), None)
            .expect("randomness");
        assert!(!stun_only.has_turn());
        assert_eq!(stun_only.for_peer(&peer("peer-ann-0000000001"), 5).len(), 1);
        let fixed = IceConfig::new(
            Vec::new(),
            vec!["turn:relay.example.org".to_owned()],
            Some(TurnAuth::Static {
                username: "natter".to_owned(),
                password: TurnSecret::new("pw").expect("a password"),
            }),
        )
        .expect("randomness");
        let servers = fixed.for_peer(&peer("peer-ann-0000000001"), 5);
        assert_eq!(servers[0].username.as_deref(), Some("natter"));
        assert_eq!(servers[0].credential.as_deref(), Some("pw"));
        assert!(!format!("{fixed:?}").contains("pw\""), "{fixed:?}");
    }

    #[test]
    fn urls_are_checked_by_kind() {
        assert!(check_url("stun:stun.example.org:3478", false).is_ok());
        assert!(check_url("turn:198.51.100.7:3478?transport=tcp", true).is_ok());
        assert!(check_url("turns:[2001:db8::1]:5349", true).is_ok());
        let wrong_kind = check_url("turn:relay.example.org", false).expect_err("a TURN URL");
        assert!(wrong_kind.contains("--turn-url"), "{wrong_kind}");
        assert!(check_url("stun:relay.example.org", true).is_err());
        assert!(check_url("turn:", true).is_err());
        assert!(check_url("turn:bad host", true).is_err());
        assert!(check_url("https://example.org", true).is_err());
    }
}
