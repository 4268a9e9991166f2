//! Proof-of-work challenges: issued signed and time-limited, checked with one HMAC and one hash,
//! accepted once.
//!
//! A token is `<expires>.<difficulty>.<salt>.<mac>`: the Unix second it expires, the difficulty
//! asked (see [`natter_proto::pow`]), 16 random bytes and an HMAC-SHA-256 over the rest under a key
//! drawn at start-up. Issuing keeps no state; the only state is the set of tokens already used,
//! each kept until it expires, which is what makes a token single-use.
//!
//! Difficulty follows demand: the issuer counts the challenges it handed out in the last window,
//! and above `load_threshold` per second it multiplies the base difficulty by the next power of two
//! of the overload, up to [`MAX_LOAD_FACTOR`].

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::hmac;
use natter_proto::limits::CHALLENGE_MAX_LEN;
use natter_proto::pow::{Proof, meets_difficulty};

use crate::secrets::{RandomUnavailable, base64url, from_base64url, random_bytes};

/// How long a challenge may be solved and used, in seconds.
pub const CHALLENGE_TTL_SECS: u64 = 60;
/// Difficulty rises at most this many times under load, so a challenge stays solvable in seconds.
pub const MAX_LOAD_FACTOR: u64 = 16;
/// Length of the window over which demand is measured, in seconds.
const LOAD_WINDOW_SECS: u64 = 10;
/// Most used tokens remembered at once; beyond it proofs are refused until some expire. At the
/// per-address limits this takes many thousands of addresses; it bounds memory to a few MiB.
const MAX_SPENT: usize = 200_000;

/// Why a proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Not a token this server could have issued.
    #[error("the challenge is not one this server issued")]
    Forged,
    /// Issued, but too long ago.
    #[error("the challenge has expired")]
    Expired,
    /// Issued, and already used by an earlier join.
    #[error("the challenge has already been used")]
    Reused,
    /// The number does not solve the challenge at its difficulty.
    #[error("the number does not solve the challenge")]
    Unsolved,
    /// Too many proofs in flight to remember another one.
    #[error("the server is busy")]
    Busy,
}

/// A challenge to send to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The signed token.
    pub token: String,
    /// Its difficulty.
    pub difficulty: u64,
}

#[derive(Debug, Default)]
struct Load {
    window_start: u64,
    issued_this_window: u64,
    /// Challenges per second in the last full window.
    last_rate: u64,
}

#[derive(Debug, Default)]
struct Spent {
    /// Salt → expiry of every token used and not yet expired.
    salts: HashMap<[u8; 16], u64>,
    last_prune: u64,
}

/// Issues and checks challenges. Shared by every session.
pub struct ChallengeIssuer {
    key: hmac::Key,
    base_difficulty: u64,
    load_threshold: u64,
    load: Mutex<Load>,
    spent: Mutex<Spent>,
}

impl std::fmt::Debug for ChallengeIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChallengeIssuer")
            .field("base_difficulty", &self.base_difficulty)
            .finish_non_exhaustive()
    }
}

fn signed_part(expires: u64, difficulty: u64, salt: &str) -> String {
    format!("{expires}.{difficulty}.{salt}")
}

impl ChallengeIssuer {
    /// An issuer with a fresh key. A `base_difficulty` of 0 turns challenges off; a
    /// `load_threshold` of 0 keeps the difficulty fixed.
    pub fn new(base_difficulty: u64, load_threshold: u64) -> Result<Self, RandomUnavailable> {
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()?),
            base_difficulty,
            load_threshold,
            load: Mutex::new(Load::default()),
            spent: Mutex::new(Spent::default()),
        })
    }

    /// False when the server asks for no proof.
    pub fn enabled(&self) -> bool {
        self.base_difficulty > 0
    }

    /// The difficulty of challenges issued now, given the last window's demand (`/metrics`).
    pub fn current_difficulty(&self) -> u64 {
        let rate = lock(&self.load).last_rate;
        self.base_difficulty * self.load_factor(rate)
    }

    fn load_factor(&self, rate: u64) -> u64 {
        if self.load_threshold == 0 || rate <= self.load_threshold {
            return 1;
        }
        rate.div_ceil(self.load_threshold)
            .next_power_of_two()
            .min(MAX_LOAD_FACTOR)
    }

    /// A new challenge, valid until `now_unix` + [`CHALLENGE_TTL_SECS`].
    pub fn issue(&self, now_unix: u64) -> Result<Challenge, RandomUnavailable> {
        let difficulty = {
            let mut load = lock(&self.load);
            if now_unix >= load.window_start + LOAD_WINDOW_SECS {
                // A window with no challenges at all in between counts as quiet.
                let full_window = now_unix < load.window_start + 2 * LOAD_WINDOW_SECS;
                load.last_rate = if full_window {
                    load.issued_this_window / LOAD_WINDOW_SECS
                } else {
                    0
                };
                load.window_start = now_unix;
                load.issued_this_window = 0;
            }
            load.issued_this_window += 1;
            self.base_difficulty * self.load_factor(load.last_rate)
        };
        let salt = base64url(&random_bytes::<16>()?);
        let expires = now_unix + CHALLENGE_TTL_SECS;
        let signed = signed_part(expires, difficulty, &salt);
        let mac = hmac::sign(&self.key, signed.as_bytes());
        Ok(Challenge {
            token: format!("{signed}.{}", base64url(mac.as_ref())),
            difficulty,
        })
    }

    /// Checks `proof` at `now_unix` and, if it holds, marks its token used.
    pub fn verify(&self, proof: &Proof, now_unix: u64) -> Result<(), ProofError> {
        let token = proof.challenge.as_str();
        if token.len() > CHALLENGE_MAX_LEN {
            return Err(ProofError::Forged);
        }
        let (signed, mac) = token.rsplit_once('.').ok_or(ProofError::Forged)?;
        let mac = from_base64url(mac).ok_or(ProofError::Forged)?;
        hmac::verify(&self.key, signed.as_bytes(), &mac).map_err(|_| ProofError::Forged)?;
        // Signed by us, so well formed; parse defensively all the same.
        let mut parts = signed.splitn(3, '.');
        let expires: u64 = parse(parts.next())?;
        let difficulty: u64 = parse(parts.next())?;
        let salt = parts
            .next()
            .and_then(from_base64url)
            .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
            .ok_or(ProofError::Forged)?;
        if now_unix > expires {
            return Err(ProofError::Expired);
        }
        if !meets_difficulty(token, proof.nonce, difficulty) {
            return Err(ProofError::Unsolved);
        }
        let mut spent = lock(&self.spent);
        if spent.last_prune != now_unix {
            spent.last_prune = now_unix;
            spent.salts.retain(|_, expiry| *expiry >= now_unix);
        }
        if spent.salts.contains_key(&salt) {
            return Err(ProofError::Reused);
        }
        if spent.salts.len() >= MAX_SPENT {
            return Err(ProofError::Busy);
        }
        spent.salts.insert(salt, expires);
        Ok(())
    }
}

fn parse(part: Option<&str>) -> Result<u64, ProofError> {
    part.and_then(|text| text.parse().ok())
        .ok_or(ProofError::Forged)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Both maps stay consistent at every step, so a panic elsewhere leaves them usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use natter_proto::pow::solve;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn issuer(difficulty: u64) -> ChallengeIssuer {
        ChallengeIssuer::new(difficulty, 0).expect("random")
    }

    fn solved(challenge: &Challenge) -> Proof {
        Proof {
            challenge: challenge.token.clone(),
            nonce: solve(&challenge.token, challenge.difficulty),
        }
    }

    #[test]
    fn a_solved_challenge_is_accepted_once() {
        let issuer = issuer(500);
        let challenge = issuer.issue(NOW).expect("random");
        assert_eq!(challenge.difficulty, 500);
        let proof = solved(&challenge);
        assert_eq!(issuer.verify(&proof, NOW + 5), Ok(()));
        assert_eq!(issuer.verify(&proof, NOW + 6), Err(ProofError::Reused));
    }

    #[test]
    fn an_expired_challenge_is_refused() {
        let issuer = issuer(100);
        let challenge = issuer.issue(NOW).expect("random");
        let proof = solved(&challenge);
        assert_eq!(
            issuer.verify(&proof, NOW + CHALLENGE_TTL_SECS + 1),
            Err(ProofError::Expired)
        );
        // Still usable at the last second.
        assert_eq!(issuer.verify(&proof, NOW + CHALLENGE_TTL_SECS), Ok(()));
    }

    #[test]
    fn forged_tokens_are_refused() {
        let issuer = issuer(100);
        let challenge = issuer.issue(NOW).expect("random");
        let (signed, mac) = challenge.token.rsplit_once('.').expect("token");
        // Lowering the difficulty, extending the expiry, or signing with another key.
        let cheaper = signed.replacen(".100.", ".1.", 1);
        let later = signed.replacen(&format!("{}", NOW + CHALLENGE_TTL_SECS), "9999999999", 1);
        let other_key = issuer_with_other_key_token();
        for token in [
            format!("{cheaper}.{mac}"),
            format!("{later}.{mac}"),
            other_key,
            "".to_owned(),
            "nonsense".to_owned(),
            "1.2.3.4".to_owned(),
            format!("{signed}.{}", "A".repeat(CHALLENGE_MAX_LEN)),
        ] {
            let proof = Proof {
                nonce: solve(&token, 1),
                challenge: token.clone(),
            };
            assert_eq!(
                issuer.verify(&proof, NOW),
                Err(ProofError::Forged),
                "{token}"
            );
        }
    }

    fn issuer_with_other_key_token() -> String {
        issuer(100).issue(NOW).expect("random").token
    }

    #[test]
    fn an_under_difficulty_number_is_refused_and_does_not_use_up_the_token() {
        let issuer = issuer(1_000_000);
        let challenge = issuer.issue(NOW).expect("random");
        // A number that meets a thousandth of the difficulty is, almost surely, not a solution.
        let weak = (0..)
            .find(|&nonce| {
                meets_difficulty(&challenge.token, nonce, 1_000)
                    && !meets_difficulty(&challenge.token, nonce, 1_000_000)
            })
            .expect("a weak number");
        let weak_proof = Proof {
            challenge: challenge.token.clone(),
            nonce: weak,
        };
        assert_eq!(issuer.verify(&weak_proof, NOW), Err(ProofError::Unsolved));
        assert_eq!(issuer.verify(&solved(&challenge), NOW), Ok(()));
    }

    #[test]
    fn difficulty_rises_with_demand_and_falls_back() {
        let issuer = ChallengeIssuer::new(1_000, 5).expect("random");
        for _ in 0..50 {
            issuer.issue(NOW).expect("random");
        }
        // 50 in a 10 s window is 5/s: at the threshold, no rise yet.
        assert_eq!(issuer.issue(NOW + 10).expect("random").difficulty, 1_000);
        for _ in 0..400 {
            issuer.issue(NOW + 12).expect("random");
        }
        // 401 in the window: 40/s, 8 times the threshold.
        assert_eq!(issuer.issue(NOW + 20).expect("random").difficulty, 8_000);
        assert_eq!(issuer.current_difficulty(), 8_000);
        for _ in 0..10_000 {
            issuer.issue(NOW + 25).expect("random");
        }
        assert_eq!(
            issuer.issue(NOW + 30).expect("random").difficulty,
            1_000 * MAX_LOAD_FACTOR
        );
        // A quiet minute later it is back at the base.
        assert_eq!(issuer.issue(NOW + 90).expect("random").difficulty, 1_000);
    }

    #[test]
    fn verifying_takes_microseconds() {
        let issuer = issuer(1_000);
        let proofs: Vec<Proof> = (0..200)
            .map(|_| solved(&issuer.issue(NOW).expect("random")))
            .collect();
        let start = std::time::Instant::now();
        for proof in &proofs {
            assert_eq!(issuer.verify(proof, NOW), Ok(()));
        }
        let each = start.elapsed() / 200;
        // Generous for an unoptimised build on a busy machine; the benchmark gives the real figure.
        assert!(each < std::time::Duration::from_millis(1), "{each:?}");
    }
}
