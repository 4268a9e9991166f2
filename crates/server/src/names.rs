//! Named rooms: the one thing Natter writes to disk, a table from room name to room id.
//!
//! Each entry lives [`NAME_TTL_SECS`] after its last use; using a name renews it, and expired
//! entries are deleted by [`NameStore::sweep`] (the server runs it hourly and at start-up) and
//! ignored by lookups before that. Nothing else about a room, neither messages nor the names of
//! people, is stored.
//!
//! Calls block on SQLite for well under a millisecond; async callers run them on the blocking
//! pool. Time is an argument (Unix seconds), so tests can move the clock.

use std::path::Path;
use std::sync::Mutex;

use natter_proto::{RoomId, RoomName};
use rusqlite::{Connection, OptionalExtension, params};

use crate::secrets::{RandomUnavailable, room_id};

/// How long a name keeps its room without being used: 30 days.
pub const NAME_TTL_SECS: u64 = 30 * 24 * 60 * 60;

/// Why the name store failed.
#[derive(Debug, thiserror::Error)]
pub enum NamesError {
    /// SQLite refused (disk full, the file unreadable, a corrupt database).
    #[error("the room-name database failed: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database's directory could not be created.
    #[error("creating the directory for the room-name database: {0}")]
    Directory(#[from] std::io::Error),
    /// No random room id could be drawn.
    #[error(transparent)]
    Random(#[from] RandomUnavailable),
    /// The stored id is not a room id (the file was edited by hand).
    #[error("the room-name database holds an invalid room id")]
    Corrupt,
}

/// The name → room id table.
#[derive(Debug)]
pub struct NameStore {
    connection: Mutex<Connection>,
}

impl NameStore {
    /// Opens (creating if needed) the database at `path`, and its directory.
    pub fn open(path: &Path) -> Result<Self, NamesError> {
        if let Some(directory) = path.parent()
            && !directory.as_os_str().is_empty()
        {
            std::fs::create_dir_all(directory)?;
        }
        Self::with_connection(Connection::open(path)?)
    }

    /// A store that lives in memory only (tests).
    #[cfg(test)]
    pub fn in_memory() -> Result<Self, NamesError> {
        Self::with_connection(Connection::open_in_memory()?)
    }

    fn with_connection(connection: Connection) -> Result<Self, NamesError> {
        // WAL keeps a reader from blocking the writer and survives a crash mid-write.
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS room_names (
                 name TEXT PRIMARY KEY NOT NULL,
                 room_id TEXT NOT NULL,
                 last_used INTEGER NOT NULL
             ) STRICT;",
        )?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // SQLite keeps its own consistency; a panic while holding the lock leaves nothing half-done.
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The room of `name` at `now`, renewing it; a name not in use (or expired) gets a new random
    /// room. Returns the id and whether it is new.
    pub fn resolve(&self, name: &RoomName, now: u64) -> Result<(RoomId, bool), NamesError> {
        let connection = self.lock();
        let oldest_alive = now.saturating_sub(NAME_TTL_SECS);
        let existing: Option<String> = connection
            .query_row(
                "SELECT room_id FROM room_names WHERE name = ?1 AND last_used >= ?2",
                params![name.as_str(), to_sql(oldest_alive)],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            connection.execute(
                "UPDATE room_names SET last_used = ?2 WHERE name = ?1",
                params![name.as_str(), to_sql(now)],
            )?;
            let id = RoomId::try_from(id).map_err(|_| NamesError::Corrupt)?;
            return Ok((id, false));
        }
        let id = room_id()?;
        connection.execute(
            "INSERT INTO room_names (name, room_id, last_used) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET room_id = ?2, last_used = ?3",
            params![name.as_str(), id.as_str(), to_sql(now)],
        )?;
        Ok((id, true))
    }

    /// Deletes every name unused for [`NAME_TTL_SECS`]; returns how many.
    pub fn sweep(&self, now: u64) -> Result<usize, NamesError> {
        let oldest_alive = now.saturating_sub(NAME_TTL_SECS);
        Ok(self.lock().execute(
            "DELETE FROM room_names WHERE last_used < ?1",
            params![to_sql(oldest_alive)],
        )?)
    }

    /// Number of names stored, expired or not.
    #[cfg(test)]
    pub fn len(&self) -> Result<u64, NamesError> {
        let count: i64 = self
            .lock()
            .query_row("SELECT COUNT(*) FROM room_names", [], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

/// SQLite integers are signed; Unix seconds fit for the next few hundred billion years.
fn to_sql(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 24 * 60 * 60;
    const NOW: u64 = 1_800_000_000;

    fn name(text: &str) -> RoomName {
        RoomName::try_from(text.to_owned()).expect("valid name")
    }

    #[test]
    fn the_same_name_leads_to_the_same_room() {
        let store = NameStore::in_memory().expect("open");
        let (first, new) = store.resolve(&name("Team Standup"), NOW).expect("resolve");
        assert!(new);
        let (again, new) = store
            .resolve(&name("team standup"), NOW + DAY)
            .expect("resolve");
        assert!(!new);
        assert_eq!(first, again);
        let (other, _) = store.resolve(&name("another-room"), NOW).expect("resolve");
        assert_ne!(first, other);
    }

    #[test]
    fn a_name_expires_thirty_days_after_its_last_use() {
        let store = NameStore::in_memory().expect("open");
        let (id, _) = store.resolve(&name("book-club"), NOW).expect("resolve");
        // Used on day 29: renewed.
        let (renewed, _) = store
            .resolve(&name("book-club"), NOW + 29 * DAY)
            .expect("resolve");
        assert_eq!(renewed, id);
        // 30 days after that use, to the second, it still holds.
        let last = NOW + 29 * DAY + NAME_TTL_SECS;
        assert_eq!(store.sweep(last).expect("sweep"), 0);
        assert_eq!(
            store.resolve(&name("book-club"), last).expect("resolve").0,
            id
        );
        // Unused for 30 days and a second: swept, and the name leads to a new room.
        let expired = last + NAME_TTL_SECS + 1;
        assert_eq!(store.sweep(expired).expect("sweep"), 1);
        assert_eq!(store.len().expect("count"), 0);
        let (fresh, new) = store.resolve(&name("book-club"), expired).expect("resolve");
        assert!(new);
        assert_ne!(fresh, id);
    }

    #[test]
    fn an_expired_name_not_yet_swept_is_not_reused() {
        let store = NameStore::in_memory().expect("open");
        let (id, _) = store.resolve(&name("old-room"), NOW).expect("resolve");
        let (fresh, new) = store
            .resolve(&name("old-room"), NOW + NAME_TTL_SECS + 1)
            .expect("resolve");
        assert!(new);
        assert_ne!(fresh, id);
        assert_eq!(store.len().expect("count"), 1, "replaced in place");
    }

    #[test]
    fn names_survive_reopening_the_file() {
        let directory = std::env::temp_dir().join(format!("natter-names-{}", std::process::id()));
        let path = directory.join("nested").join("names.sqlite3");
        let _ = std::fs::remove_dir_all(&directory);
        let (id, _) = NameStore::open(&path)
            .expect("create")
            .resolve(&name("persistent"), NOW)
            .expect("resolve");
        let reopened = NameStore::open(&path).expect("reopen");
        assert_eq!(
            reopened
                .resolve(&name("persistent"), NOW + 1)
                .expect("resolve")
                .0,
            id
        );
        let _ = std::fs::remove_dir_all(&directory);
    }
}
