//! The proof of work a client shows to create or join a room.
//!
//! The server hands out a challenge token (opaque to clients; signed and time-limited by the
//! server) and a difficulty `d`. A solution is a number `nonce` such that the first eight bytes of
//! `SHA-256(token ":" nonce)`, read as a big-endian `u64`, are at most `u64::MAX / d`; `nonce` is
//! written in decimal without leading zeros. Each try succeeds with probability `1/d`, so a
//! solver needs `d` hashes on average, while checking a solution is one hash.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A solved challenge, sent with `join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The token from the server's `challenge`, unchanged.
    pub challenge: String,
    /// The solution.
    pub nonce: u64,
}

/// The largest hash prefix that solves a challenge of `difficulty`.
fn target(difficulty: u64) -> u64 {
    u64::MAX / difficulty.max(1)
}

/// The hash prefix of one try.
fn prefix(token: &str, nonce: u64) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(token.as_bytes());
    hasher.update(b":");
    hasher.update(nonce.to_string().as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// True when `nonce` solves `token` at `difficulty`.
pub fn meets_difficulty(token: &str, nonce: u64, difficulty: u64) -> bool {
    prefix(token, nonce) <= target(difficulty)
}

/// Finds the smallest solution of `token` at `difficulty` (what the browser's worker does; Rust
/// clients and tests use this one).
pub fn solve(token: &str, difficulty: u64) -> u64 {
    let target = target(difficulty);
    (0..u64::MAX)
        .find(|&nonce| prefix(token, nonce) <= target)
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solution_meets_its_difficulty_and_most_numbers_do_not() {
        let nonce = solve("token", 1000);
        assert!(meets_difficulty("token", nonce, 1000));
        assert!(!meets_difficulty("another token", nonce, u64::MAX));
        let lucky = (0..10_000)
            .filter(|&n| meets_difficulty("t", n, 1000))
            .count();
        // Expected 10 in 10,000 tries; allow for chance.
        assert!((1..=40).contains(&lucky), "{lucky}");
    }

    #[test]
    fn the_hash_is_of_the_token_a_colon_and_the_decimal_nonce() {
        // The browser's solver (web/js/pow-worker.js) hashes the same bytes.
        let digest = Sha256::digest(b"abc:0");
        assert_eq!(prefix("abc", 0).to_be_bytes(), digest[..8]);
        assert!(meets_difficulty("abc", 0, 1));
    }
}
