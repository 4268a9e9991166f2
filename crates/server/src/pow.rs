//! Proof-of-work challenges: issued signed and time-limited, checked with one HMAC and one hash,
//! accepted once.
//!
//! A token is `<expires>.<difficulty>.<salt>.<mac>`: the Unix second it expires, the difficulty
//! asked (see [`natter_proto::pow`]), 16 random bytes and an HMAC-SHA-256 over the rest under a key
//! drawn at start-up. A token is good only on the connection it was sent on, and only while it is
//! that connection's latest: the session keeps that one token and forgets it once a proof of it
//! is accepted, which is what makes it single-use. So the server keeps no set of used tokens that
//! busy addresses could fill (it once did, and a full set refused everyone), and a solution cannot
//! be handed to another connection.
//!
//! Difficulty follows demand from many addresses: the issuer counts the challenges it handed out
//! in the last window, each address counting for at most one a second, and above
//! `load_threshold` per second it multiplies the base difficulty by the next power of two of the
//! overload, up to [`MAX_LOAD_FACTOR`]. One address asking as fast as it can moves nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::hmac;
use natter_proto::limits::CHALLENGE_MAX_LEN;
use natter_proto::pow::{Proof, meets_difficulty};
use natter_room::AddressTag;

use crate::secrets::{RandomUnavailable, base64url, from_base64url, random_bytes};

/// How long a challenge may be solved and used, in seconds.
pub const CHALLENGE_TTL_SECS: u64 = 60;
/// Difficulty rises at most this many times under load, so a challenge stays solvable in seconds.
pub const MAX_LOAD_FACTOR: u64 = 16;
/// Length of the window over which demand is measured, in seconds.
const LOAD_WINDOW_SECS: u64 = 10;
/// Addresses whose share of the load is remembered in one window; past it (a million addresses
/// in ten seconds) challenges count without a share, which only makes the difficulty rise sooner.
const MAX_LOAD_ADDRESSES: usize = 1_000_000;

/// Why a proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Not a token this server could have issued.
    #[error("the challenge is not one this server issued")]
    Forged,
    /// Issued, but too long ago.
    #[error("the challenge has expired")]
    Expired,
    /// Not this connection's latest challenge: already used, replaced by a newer one, or sent
    /// to another connection.
    #[error("the challenge is not this connection's latest (each is good for one join)")]
    NotLatest,
    /// The number does not solve the challenge at its difficulty.
    #[error("the number does not solve the challenge")]
    Unsolved,
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
    /// Challenges counted this window, each address counting for at most one a second.
    counted_this_window: u64,
    /// Challenges issued to each address this window.
    by_address: HashMap<AddressTag, u64>,
    /// Counted challenges per second in the last full window.
    last_rate: u64,
}

/// Issues and checks challenges. Shared by every session.
pub struct ChallengeIssuer {
    key: hmac::Key,
    base_difficulty: u64,
    load_threshold: u64,
    load: Mutex<Load>,
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
    /// `from` is the asking client's address: it counts toward the load at most once a second.
    /// `factor` multiplies the difficulty (1 for a join; more for what costs the server more).
    pub fn issue(
        &self,
        now_unix: u64,
        from: AddressTag,
        factor: u64,
    ) -> Result<Challenge, RandomUnavailable> {
        let difficulty = {
            let mut load = lock(&self.load);
            if now_unix >= load.window_start + LOAD_WINDOW_SECS {
                // A window with no challenges at all in between counts as quiet.
                let full_window = now_unix < load.window_start + 2 * LOAD_WINDOW_SECS;
                load.last_rate = if full_window {
                    load.counted_this_window / LOAD_WINDOW_SECS
                } else {
                    0
                };
                load.window_start = now_unix;
                load.counted_this_window = 0;
                load.by_address.clear();
                load.by_address.shrink_to(1024);
            }
            let counts = if load.by_address.len() < MAX_LOAD_ADDRESSES
                || load.by_address.contains_key(&from)
            {
                let issued = load.by_address.entry(from).or_default();
                *issued += 1;
                *issued <= LOAD_WINDOW_SECS
            } else {
                true
            };
            if counts {
                load.counted_this_window += 1;
            }
            self.base_difficulty * self.load_factor(load.last_rate) * factor.max(1)
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

    /// The difficulty challenges have without load, before any factor.
    pub fn base_difficulty(&self) -> u64 {
        self.base_difficulty
    }

    /// Checks `proof` at `now_unix` against `latest`, the token last sent on the proof's
    /// connection (none if a proof of it was already accepted); the difficulty it was solved at.
    /// The caller forgets `latest` once this returns `Ok`.
    pub fn verify(
        &self,
        proof: &Proof,
        now_unix: u64,
        latest: Option<&str>,
    ) -> Result<u64, ProofError> {
        let token = proof.challenge.as_str();
        if latest != Some(token) {
            return Err(ProofError::NotLatest);
        }
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
        parts
            .next()
            .and_then(from_base64url)
            .filter(|salt| salt.len() == 16)
            .ok_or(ProofError::Forged)?;
        if now_unix > expires {
            return Err(ProofError::Expired);
        }
        if !meets_difficulty(token, proof.nonce, difficulty) {
            return Err(ProofError::Unsolved);
        }
        Ok(difficulty)
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

    const HERE: AddressTag = AddressTag([1; 16]);

    /// Verifies `proof` as the connection that was sent it.
    fn verify(issuer: &ChallengeIssuer, proof: &Proof, now: u64) -> Result<(), ProofError> {
        issuer.verify(proof, now, Some(&proof.challenge)).map(drop)
    }

    fn solved(challenge: &Challenge) -> Proof {
        Proof {
            challenge: challenge.token.clone(),
            nonce: solve(&challenge.token, challenge.difficulty),
        }
    }

    #[test]
    fn a_solved_challenge_is_good_only_as_its_connections_latest() {
        let issuer = issuer(500);
        let challenge = issuer.issue(NOW, HERE, 1).expect("random");
        assert_eq!(challenge.difficulty, 500);
        let proof = solved(&challenge);
        let other = issuer.issue(NOW, HERE, 1).expect("random");
        // Used (the connection forgot it), replaced by a newer one, or another connection's.
        for latest in [None, Some(other.token.as_str())] {
            assert_eq!(
                issuer.verify(&proof, NOW + 5, latest),
                Err(ProofError::NotLatest)
            );
        }
        assert_eq!(
            issuer.verify(&proof, NOW + 5, Some(&challenge.token)),
            Ok(500)
        );
        // A harder challenge says so, and its proof reports the difficulty it was solved at.
        let harder = issuer.issue(NOW, HERE, 4).expect("random");
        assert_eq!(harder.difficulty, 2_000);
        assert_eq!(
            issuer.verify(&solved(&harder), NOW, Some(&harder.token)),
            Ok(2_000)
        );
    }

    #[test]
    fn an_expired_challenge_is_refused() {
        let issuer = issuer(100);
        let challenge = issuer.issue(NOW, HERE, 1).expect("random");
        let proof = solved(&challenge);
        assert_eq!(
            verify(&issuer, &proof, NOW + CHALLENGE_TTL_SECS + 1),
            Err(ProofError::Expired)
        );
        // Still usable at the last second.
        assert_eq!(verify(&issuer, &proof, NOW + CHALLENGE_TTL_SECS), Ok(()));
    }

    #[test]
    fn forged_tokens_are_refused() {
        let issuer = issuer(100);
        let challenge = issuer.issue(NOW, HERE, 1).expect("random");
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
                verify(&issuer, &proof, NOW),
                Err(ProofError::Forged),
                "{token}"
            );
        }
    }

    fn issuer_with_other_key_token() -> String {
        issuer(100).issue(NOW, HERE, 1).expect("random").token
    }

    #[test]
    fn an_under_difficulty_number_is_refused_and_does_not_use_up_the_token() {
        let issuer = issuer(1_000_000);
        let challenge = issuer.issue(NOW, HERE, 1).expect("random");
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
        assert_eq!(verify(&issuer, &weak_proof, NOW), Err(ProofError::Unsolved));
        assert_eq!(verify(&issuer, &solved(&challenge), NOW), Ok(()));
    }

    /// The tag of the `n`th of many addresses.
    fn address(n: u32) -> AddressTag {
        let mut tag = [0; 16];
        tag[..4].copy_from_slice(&n.to_be_bytes());
        AddressTag(tag)
    }

    /// `count` challenges at `now`, ten from each of `count / 10` addresses: each address asks
    /// at its share of one a second over the 10 s window.
    fn demand(issuer: &ChallengeIssuer, now: u64, count: u32) {
        for n in 0..count {
            issuer.issue(now, address(n / 10), 1).expect("random");
        }
    }

    #[test]
    fn difficulty_rises_with_demand_from_many_addresses_and_falls_back() {
        let issuer = ChallengeIssuer::new(1_000, 5).expect("random");
        demand(&issuer, NOW, 50);
        // 50 in a 10 s window is 5/s: at the threshold, no rise yet.
        assert_eq!(
            issuer.issue(NOW + 10, HERE, 1).expect("random").difficulty,
            1_000
        );
        demand(&issuer, NOW + 12, 400);
        // 401 in the window: 40/s, 8 times the threshold.
        assert_eq!(
            issuer.issue(NOW + 20, HERE, 1).expect("random").difficulty,
            8_000
        );
        assert_eq!(issuer.current_difficulty(), 8_000);
        demand(&issuer, NOW + 25, 10_000);
        assert_eq!(
            issuer.issue(NOW + 30, HERE, 1).expect("random").difficulty,
            1_000 * MAX_LOAD_FACTOR
        );
        // A quiet minute later it is back at the base.
        assert_eq!(
            issuer.issue(NOW + 90, HERE, 1).expect("random").difficulty,
            1_000
        );
    }

    #[test]
    fn one_address_asking_as_fast_as_it_can_moves_nothing() {
        let issuer = ChallengeIssuer::new(1_000, 5).expect("random");
        for _ in 0..100_000 {
            issuer.issue(NOW, HERE, 1).expect("random");
        }
        // It counted for 10 in the window: 1/s, under the threshold of 5/s.
        assert_eq!(
            issuer.issue(NOW + 10, HERE, 1).expect("random").difficulty,
            1_000
        );
        assert_eq!(issuer.current_difficulty(), 1_000);
        // Five addresses doing the same are still only 5/s; six pass the threshold.
        for n in 0..6 {
            for _ in 0..1_000 {
                issuer.issue(NOW + 15, address(n), 1).expect("random");
            }
        }
        assert_eq!(
            issuer.issue(NOW + 20, HERE, 1).expect("random").difficulty,
            2_000
        );
    }

    #[test]
    fn verifying_takes_microseconds() {
        let issuer = issuer(1_000);
        let proofs: Vec<Proof> = (0..200)
            .map(|_| solved(&issuer.issue(NOW, HERE, 1).expect("random")))
            .collect();
        let start = std::time::Instant::now();
        for proof in &proofs {
            assert_eq!(verify(&issuer, proof, NOW), Ok(()));
        }
        let each = start.elapsed() / 200;
        // Generous for an unoptimised build on a busy machine; the benchmark gives the real figure.
        assert!(each < std::time::Duration::from_millis(1), "{each:?}");
    }
}
