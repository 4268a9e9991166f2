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
    /// As many names are stored as the server allows (`--max-room-names`).
    #[error("the room-name database is full")]
    Full,
}

/// The name → room id table.
#[derive(Debug)]
pub struct NameStore {
    connection: Mutex<Connection>,
    /// Most names kept at once: the bound on the disk an abuser can fill.
    capacity: u64,
}

impl NameStore {
    /// Opens (creating if needed) the database at `path`, and its directory; at most `capacity`
    /// names are kept.
    pub fn open(path: &Path, capacity: u64) -> Result<Self, NamesError> {
        if let Some(directory) = path.parent()
            && !directory.as_os_str().is_empty()
        {
            std::fs::create_dir_all(directory)?;
        }
        Self::with_connection(Connection::open(path)?, capacity)
    }

    /// A store that lives in memory only (tests).
    #[cfg(test)]
    pub fn in_memory(capacity: u64) -> Result<Self, NamesError> {
        Self::with_connection(Connection::open_in_memory()?, capacity)
    }

    fn with_connection(connection: Connection, capacity: u64) -> Result<Self, NamesError> {
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
            capacity,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // SQLite keeps its own consistency; a panic while holding the lock leaves nothing half-done.
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The room of `name` at `now`, renewing the name, or `None` if the name is not in use (or
    /// expired).
    pub fn lookup(&self, name: &RoomName, now: u64) -> Result<Option<RoomId>, NamesError> {
        let connection = self.lock();
        let oldest_alive = now.saturating_sub(NAME_TTL_SECS);
        let existing: Option<String> = connection
            .query_row(
                "SELECT room_id FROM room_names WHERE name = ?1 AND last_used >= ?2",
                params![name.as_str(), to_sql(oldest_alive)],
                |row| row.get(0),
            )
            .optional()?;
        let Some(id) = existing else {
            return Ok(None);
        };
        connection.execute(
            "UPDATE room_names SET last_used = ?2 WHERE name = ?1",
            params![name.as_str(), to_sql(now)],
        )?;
        RoomId::try_from(id)
            .map(Some)
            .map_err(|_| NamesError::Corrupt)
    }

    /// Gives `name` a new random room at `now` (replacing an expired entry), unless the table is
    /// full. Call after [`NameStore::lookup`] found nothing; a name that is in use keeps its room.
    pub fn create(&self, name: &RoomName, now: u64) -> Result<RoomId, NamesError> {
        let connection = self.lock();
        let count: i64 =
            connection.query_row("SELECT COUNT(*) FROM room_names", [], |row| row.get(0))?;
        if u64::try_from(count).unwrap_or(u64::MAX) >= self.capacity {
            return Err(NamesError::Full);
        }
        let id = room_id()?;
        let oldest_alive = now.saturating_sub(NAME_TTL_SECS);
        // Only an expired entry may be replaced; a name another session just created stays.
        connection.execute(
            "INSERT INTO room_names (name, room_id, last_used) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET room_id = ?2, last_used = ?3
             WHERE room_names.last_used < ?4",
            params![
                name.as_str(),
                id.as_str(),
                to_sql(now),
                to_sql(oldest_alive)
            ],
        )?;
        let stored: String = connection.query_row(
            "SELECT room_id FROM room_names WHERE name = ?1",
            params![name.as_str()],
            |row| row.get(0),
        )?;
        RoomId::try_from(stored).map_err(|_| NamesError::Corrupt)
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

    /// What a join-named does: the name's room, or a new one; and whether it is new.
    fn resolve(store: &NameStore, name: &RoomName, now: u64) -> Result<(RoomId, bool), NamesError> {
        match store.lookup(name, now)? {
            Some(id) => Ok((id, false)),
            None => Ok((store.create(name, now)?, true)),
        }
    }

    #[test]
    fn the_same_name_leads_to_the_same_room() {
        let store = NameStore::in_memory(1000).expect("open");
        let (first, new) = resolve(&store, &name("Team Standup"), NOW).expect("resolve");
        assert!(new);
        let (again, new) = resolve(&store, &name("team standup"), NOW + DAY).expect("resolve");
        assert!(!new);
        assert_eq!(first, again);
        let (other, _) = resolve(&store, &name("another-room"), NOW).expect("resolve");
        assert_ne!(first, other);
    }

    #[test]
    fn a_name_expires_thirty_days_after_its_last_use() {
        let store = NameStore::in_memory(1000).expect("open");
        let (id, _) = resolve(&store, &name("book-club"), NOW).expect("resolve");
        // Used on day 29: renewed.
        let (renewed, _) = resolve(&store, &name("book-club"), NOW + 29 * DAY).expect("resolve");
        assert_eq!(renewed, id);
        // 30 days after that use, to the second, it still holds.
        let last = NOW + 29 * DAY + NAME_TTL_SECS;
        assert_eq!(store.sweep(last).expect("sweep"), 0);
        assert_eq!(
            resolve(&store, &name("book-club"), last)
                .expect("resolve")
                .0,
            id
        );
        // Unused for 30 days and a second: swept, and the name leads to a new room.
        let expired = last + NAME_TTL_SECS + 1;
        assert_eq!(store.sweep(expired).expect("sweep"), 1);
        assert_eq!(store.len().expect("count"), 0);
        let (fresh, new) = resolve(&store, &name("book-club"), expired).expect("resolve");
        assert!(new);
        assert_ne!(fresh, id);
    }

    #[test]
    fn an_expired_name_not_yet_swept_is_not_reused() {
        let store = NameStore::in_memory(1000).expect("open");
        let (id, _) = resolve(&store, &name("old-room"), NOW).expect("resolve");
        let (fresh, new) =
            resolve(&store, &name("old-room"), NOW + NAME_TTL_SECS + 1).expect("resolve");
        assert!(new);
        assert_ne!(fresh, id);
        assert_eq!(store.len().expect("count"), 1, "replaced in place");
    }

    #[test]
    fn names_survive_reopening_the_file() {
        let directory = std::env::temp_dir().join(format!("natter-names-{}", std::process::id()));
        let path = directory.join("nested").join("names.sqlite3");
        let _ = std::fs::remove_dir_all(&directory);
        let created = NameStore::open(&path, 1000).expect("create");
        let (id, _) = resolve(&created, &name("persistent"), NOW).expect("resolve");
        drop(created);
        let reopened = NameStore::open(&path, 1000).expect("reopen");
        let (again, new) = resolve(&reopened, &name("persistent"), NOW + 1).expect("resolve");
        assert_eq!((again, new), (id, false));
        let _ = std::fs::remove_dir_all(&directory);
    }
}

#[cfg(test)]
mod capacity_tests {
    use super::*;

    #[test]
    fn a_full_table_refuses_new_names_but_serves_old_ones() {
        let store = NameStore::in_memory(2).expect("open");
        let name = |text: &str| RoomName::try_from(text.to_owned()).expect("valid");
        let first = store.create(&name("one-room"), 100).expect("room");
        store.create(&name("two-room"), 100).expect("room");
        assert!(matches!(
            store.create(&name("three-room"), 100),
            Err(NamesError::Full)
        ));
        assert_eq!(
            store.lookup(&name("one-room"), 101).expect("lookup"),
            Some(first)
        );
        // A name created twice keeps its first room.
        let again = store.create(&name("one-room"), 102);
        assert!(
            matches!(again, Err(NamesError::Full)),
            "full, so not even replaced"
        );
        let roomy = NameStore::in_memory(10).expect("open");
        let a = roomy.create(&name("same-name"), 100).expect("room");
        let b = roomy.create(&name("same-name"), 100).expect("room");
        assert_eq!(a, b);
    }
}
