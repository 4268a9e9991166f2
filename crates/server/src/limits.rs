//! The process's file-descriptor limit: every connection, WebSocket and relay socket is one.

use rustix::process::{Resource, getrlimit, setrlimit};

/// The soft and hard limits on open files (`u64::MAX` for unlimited).
pub fn open_files() -> (u64, u64) {
    let limit = getrlimit(Resource::Nofile);
    (
        limit.current.unwrap_or(u64::MAX),
        limit.maximum.unwrap_or(u64::MAX),
    )
}

/// Raises the soft limit on open files to the hard limit (the common default soft limit, 1,024,
/// is what a thousand half-open connections exhaust). Returns the limits before and after; the
/// soft limit stays as it was if the system refuses.
pub fn raise_open_files() -> ((u64, u64), (u64, u64)) {
    let before = getrlimit(Resource::Nofile);
    let raised = rustix::process::Rlimit {
        current: before.maximum,
        maximum: before.maximum,
    };
    let _ = setrlimit(Resource::Nofile, raised);
    let after = open_files();
    let before = (
        before.current.unwrap_or(u64::MAX),
        before.maximum.unwrap_or(u64::MAX),
    );
    (before, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_limit() {
        let (before, after) = raise_open_files();
        assert_eq!(after.0, after.1, "soft limit raised to the hard limit");
        assert_eq!(after.1, before.1, "the hard limit is not touched");
        assert!(after.0 >= before.0);
        assert_eq!(open_files(), after);
    }
}
