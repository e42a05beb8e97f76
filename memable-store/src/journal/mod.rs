//! A write-ahead commit journal: batches of [`WriteOp`]s made durable by
//! one small append and one `fdatasync`, independent of any database.
//!
//! A store that group-commits can apply each batch to its database without
//! flushing it, append the batch to the journal (which flushes), and only
//! now and then make the database itself durable (a *checkpoint*), after
//! which the journal is [`reset`](Journal::reset) and reused from its start.
//! After a crash the store reopens its database (at its last checkpoint),
//! [opens](Journal::open) the journal and re-applies, in order, every record
//! newer than the checkpoint. Ops are deterministic given the prior state
//! (they carry their own clock readings), so re-applying a batch reproduces
//! exactly what was acknowledged.
//!
//! # File format (version 3)
//!
//! All integers little-endian.
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `MEMABLEJ` |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 8 | owner id: names the database the journal belongs to |
//! | 4 | CRC-32 of the 20 bytes above |
//!
//! then records, back to back:
//!
//! | bytes | content |
//! |---|---|
//! | 8 | `lsn`: the batch's log sequence number |
//! | 4 | `len`: payload length |
//! | 4 | CRC-32 (IEEE) of `lsn`, `len` and the payload |
//! | `len` | the batch's ops, postcard-encoded as a sequence of [`WriteOp`] |
//!
//! # Versions 1 and 2
//!
//! The older versions differ only in the layout of the step records inside
//! the ops: version 1 (memable before values carried a codec id) has no
//! codec id, and its ops come back with records of
//! [`Codec::Postcard`](memable_core::Codec::Postcard); version 2 (before step
//! times) has no times, read as `None`
//! ([`memable_core::RecordLayout::BeforeTimes`]).
//! A journal of an older version is read as such. Appends continue in
//! version 3 only from the file's start (an empty chain, or after a
//! [`reset`](Journal::reset), when every record in the file is stale): the
//! first such append first zeroes the first record's header and syncs (so a
//! stale record of the older version is never read under the new header),
//! then writes a version-3 header and syncs. Appending to an older chain in
//! place is refused ([`StorageErrorKind::Unsupported`]); the file-backed
//! stores never do, as they reset the journal right after replaying it.
//!
//! # The valid chain
//!
//! The file is reused in place after a reset, without truncation, so
//! records of an earlier cycle may sit behind the current ones. Reading
//! therefore stops at the first record that is torn (shorter than its
//! header says), fails its checksum, or whose lsn is not exactly one more
//! than the previous record's: what is read is the *valid chain*. Stale
//! records always carry smaller lsns than the records written over them
//! (lsns only grow, and a store resets only after a checkpoint that covers
//! every record of the chain), so they are never replayed.
//!
//! # Damage is not a torn tail
//!
//! A crash can only tear the *last* record. So after the chain ends, the
//! rest of the file is scanned, at every byte offset, for a record that
//! verifies (its checksum matches) and carries a higher lsn than the last
//! record of the chain (or, for an empty chain, than the database's lsn
//! passed to [`Journal::open_after`]; [`Journal::open`] cannot tell for an empty chain): such a record was appended after the
//! one that broke the chain, so the break is damage in the middle of the
//! journal, and opening fails with [`StorageErrorKind::Corrupt`], naming the
//! file and the byte offset of the break — rather than silently dropping
//! every acknowledged batch behind it. Stale records (lower lsns) and zeros
//! behind a torn tail are the normal case.
//!
//! # Examples
//!
//! ```
//! use memable_store::journal::Journal;
//! use memable_core::transitions::WriteOp;
//! use memable_core::InstanceKey;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("store.journal");
//! let open = || {
//!     std::fs::OpenOptions::new()
//!         .read(true)
//!         .write(true)
//!         .create(true)
//!         .truncate(false)
//!         .open(&path)
//!         .unwrap()
//! };
//! let delete = WriteOp::Delete { key: InstanceKey::new("etl", "1").unwrap() };
//!
//! let (mut journal, records) = Journal::open(open(), "store.journal", 7).unwrap();
//! assert!(records.is_empty());
//! journal.append(1, &[delete.clone()]).unwrap();
//! journal.append(2, &[delete.clone(), delete.clone()]).unwrap();
//! drop(journal);
//!
//! // After a crash: the chain is read back in order.
//! let (mut journal, records) = Journal::open(open(), "store.journal", 7).unwrap();
//! assert_eq!(records.iter().map(|r| r.lsn).collect::<Vec<_>>(), [1, 2]);
//! assert_eq!(records[1].ops.len(), 2);
//!
//! // After a checkpoint: reuse the file from its start.
//! journal.reset();
//! journal.append(3, &[delete]).unwrap();
//! drop(journal);
//! let (_, records) = Journal::open(open(), "store.journal", 7).unwrap();
//! assert_eq!(records.iter().map(|r| r.lsn).collect::<Vec<_>>(), [3]);
//! ```

mod file;
mod files;
#[cfg(test)]
mod tests;
mod v1;

pub use file::JournalFile;
pub use files::{
    PREALLOCATE_MAX, PREALLOCATE_SLACK, journal_path, open_journal_file, preallocation,
    records_after, remove_journal_file,
};

use memable_core::transitions::WriteOp;
use memable_core::{EngineError, RecordLayout, StorageError, StorageErrorKind, with_record_layout};

/// The magic bytes at the start of every journal file.
///
/// # Examples
///
/// ```
/// assert_eq!(&memable_store::journal::MAGIC, b"MEMABLEJ");
/// ```
pub const MAGIC: [u8; 8] = *b"MEMABLEJ";

/// The journal format this build writes and reads.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_store::journal::FORMAT_VERSION, 3);
/// ```
pub const FORMAT_VERSION: u32 = 3;

/// The oldest format this build reads (see the module docs, "Versions 1
/// and 2").
const OLDEST_VERSION: u32 = 1;

/// The format before step times.
const BEFORE_TIMES_VERSION: u32 = 2;

/// Length of the file header in bytes (magic, version, owner id, CRC).
///
/// # Examples
///
/// ```
/// assert_eq!(memable_store::journal::HEADER_LEN, 24);
/// ```
pub const HEADER_LEN: u64 = 24;

/// Length of a record's header in bytes (lsn, len, CRC).
///
/// # Examples
///
/// ```
/// assert_eq!(memable_store::journal::RECORD_HEADER_LEN, 16);
/// ```
pub const RECORD_HEADER_LEN: u64 = 16;

// usize forms of the lengths, for slicing.
const HEADER: usize = 24;
const RECORD_HEADER: usize = 16;

/// One record of the valid chain: a batch and its log sequence number.
///
/// # Examples
///
/// ```
/// use memable_store::journal::Record;
///
/// let record = Record { lsn: 1, ops: Vec::new() };
/// assert_eq!(record.lsn, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The batch's log sequence number.
    pub lsn: u64,
    /// The batch's ops, in the order they were applied.
    pub ops: Vec<WriteOp>,
}

/// A journal file open for appending. See the [module docs](self).
///
/// # Examples
///
/// ```
/// use memable_store::journal::{Journal, HEADER_LEN};
///
/// let dir = tempfile::tempdir().unwrap();
/// let file = std::fs::File::options()
///     .read(true)
///     .write(true)
///     .create(true)
///     .truncate(false)
///     .open(dir.path().join("j"))
///     .unwrap();
/// let (mut journal, _) = Journal::open(file, "j", 1).unwrap();
/// journal.append(1, &[]).unwrap();
/// assert_eq!(journal.written_since_reset(), 16 + 1);
/// journal.reset();
/// assert_eq!(journal.written_since_reset(), 0);
/// ```
#[derive(Debug)]
pub struct Journal<F> {
    file: F,
    name: String,
    /// Where the next record goes.
    end: u64,
    /// Bytes appended since the last reset (or open).
    written: u64,
    /// The lsn the next append must carry, if a record precedes it.
    next_lsn: Option<u64>,
    /// A write or sync failed: the file's tail is unknown, refuse appends.
    failed: bool,
    /// The file's length as far as this journal knows.
    file_len: u64,
    /// The format version in the file's header.
    version: u32,
    /// The owner id in the file's header.
    owner: u64,
}

fn error(name: &str, kind: StorageErrorKind, message: impl std::fmt::Display) -> EngineError {
    StorageError::new(kind, "journal", format!("{name}: {message}")).into()
}

/// CRC-32 (IEEE 802.3, the zlib/PNG checksum) of `parts`, back to back.
fn crc(parts: &[&[u8]]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

/// The refusal of a database that was not closed cleanly and whose
/// journal `what` ("is missing", "is empty (0 bytes)"):
/// [`StorageErrorKind::Incomplete`], with a message saying what is lost and
/// how to open anyway.
///
/// # Examples
///
/// ```
/// use memable_core::StorageErrorKind;
///
/// let err = memable_store::journal::lost_journal("wf.db.journal", "is missing");
/// assert_eq!(err.storage_kind(), Some(StorageErrorKind::Incomplete));
/// ```
#[must_use]
pub fn lost_journal(name: &str, what: &str) -> EngineError {
    error(
        name,
        StorageErrorKind::Incomplete,
        format!(
            "the journal {what}, but the database was not closed cleanly: the journal holds the work acknowledged since the database's last checkpoint, and without it that work is missing. Put the journal back next to the database (a database and its journal are one unit: copy, move and delete them together); or, to open with what the database holds, accepting that the work acknowledged since its last checkpoint is lost, open with the builder option `accept_lost_journal(true)`"
        ),
    )
}

/// What [`Journal::open_after`] does with a file that holds no complete
/// header (empty, or cut inside its 24 bytes).
///
/// # Examples
///
/// ```
/// use memable_store::journal::{Journal, NewFile};
/// use memable_core::StorageErrorKind;
///
/// let file = tempfile::tempfile().unwrap();
/// let err = Journal::open_after(file, "j", 1, 0, NewFile::Refuse).unwrap_err();
/// assert_eq!(err.storage_kind(), Some(StorageErrorKind::Incomplete));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewFile {
    /// Write a fresh header (and sync): a new journal.
    Initialise,
    /// Refuse with [`StorageErrorKind::Incomplete`]: the database says its
    /// journal holds unpublished work, so an empty journal means it is lost.
    Refuse,
}

fn header(owner: u64) -> [u8; HEADER] {
    header_of(FORMAT_VERSION, owner)
}

fn header_of(version: u32, owner: u64) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..20].copy_from_slice(&owner.to_le_bytes());
    let sum = crc(&[&h[..20]]);
    h[20..].copy_from_slice(&sum.to_le_bytes());
    h
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Checks the file header and returns its format version; `Ok(None)` for a
/// file that holds no header yet (empty, or a header torn while the file was
/// being created).
fn check_header(bytes: &[u8], name: &str, owner: u64) -> Result<Option<u32>, EngineError> {
    if bytes.len() < HEADER {
        let n = bytes.len().min(MAGIC.len());
        if bytes[..n] == MAGIC[..n] {
            return Ok(None);
        }
        return Err(error(
            name,
            StorageErrorKind::NotMemable,
            "not a memable journal (bad magic bytes)",
        ));
    }
    if bytes[..8] != MAGIC {
        return Err(error(
            name,
            StorageErrorKind::NotMemable,
            "not a memable journal (bad magic bytes)",
        ));
    }
    let version = u32_at(bytes, 8);
    if version > FORMAT_VERSION {
        return Err(error(
            name,
            StorageErrorKind::NewerFormat,
            format!(
                "written by a newer memable (journal format version {version}; this build reads version {FORMAT_VERSION}); upgrade memable to open it"
            ),
        ));
    }
    if version < OLDEST_VERSION {
        return Err(error(
            name,
            StorageErrorKind::Corrupt,
            format!(
                "unknown journal format version {version} (this build reads version {FORMAT_VERSION})"
            ),
        ));
    }
    if crc(&[&bytes[..20]]) != u32_at(bytes, 20) {
        return Err(error(
            name,
            StorageErrorKind::Corrupt,
            "the journal header is damaged (checksum mismatch)",
        ));
    }
    let stored = u64_at(bytes, 12);
    if stored != owner {
        return Err(error(
            name,
            StorageErrorKind::Incomplete,
            format!(
                "the journal belongs to another database (journal owner id {stored:016x}, expected {owner:016x}): journal and database do not match"
            ),
        ));
    }
    Ok(Some(version))
}

/// The record at `pos` if it is complete and its checksum matches:
/// `(lsn, payload)`.
fn verified(bytes: &[u8], pos: usize) -> Option<(u64, &[u8])> {
    if bytes.len().saturating_sub(pos) < RECORD_HEADER {
        return None;
    }
    let lsn = u64_at(bytes, pos);
    let len = usize::try_from(u32_at(bytes, pos + 8)).ok()?;
    let body = pos + RECORD_HEADER;
    if bytes.len() - body < len {
        return None; // torn, or a damaged length
    }
    let payload = &bytes[body..body + len];
    (crc(&[&bytes[pos..pos + 12], payload]) == u32_at(bytes, pos + 12)).then_some((lsn, payload))
}

/// Reads the valid chain after the header of a file of format `version`;
/// returns it and where it ends.
fn read_chain(bytes: &[u8], name: &str, version: u32) -> Result<(Vec<Record>, usize), EngineError> {
    let mut records: Vec<Record> = Vec::new();
    let mut pos = HEADER;
    while let Some((lsn, payload)) = verified(bytes, pos) {
        if let Some(last) = records.last()
            && last.lsn.checked_add(1) != Some(lsn)
        {
            break; // a stale record of an earlier cycle
        }
        let ops = match version {
            OLDEST_VERSION => v1::decode(payload),
            BEFORE_TIMES_VERSION => with_record_layout(RecordLayout::BeforeTimes, || {
                postcard::from_bytes::<Vec<WriteOp>>(payload)
            }),
            _ => postcard::from_bytes::<Vec<WriteOp>>(payload),
        };
        let ops = ops.map_err(|e| {
            error(
                name,
                StorageErrorKind::Corrupt,
                format!("record {lsn} has a valid checksum but cannot be decoded: {e}"),
            )
        })?;
        pos += RECORD_HEADER + payload.len();
        records.push(Record { lsn, ops });
    }
    Ok((records, pos))
}

/// After the chain broke at `end`: fails with [`StorageErrorKind::Corrupt`]
/// if a record that verifies and carries an lsn above `above` lies anywhere
/// behind the break (see the module docs, "Damage is not a torn tail").
fn refuse_damage(bytes: &[u8], end: usize, above: u64, name: &str) -> Result<(), EngineError> {
    // A record of this cycle has an lsn at most one per record header
    // above the chain: a cheap filter before the checksum.
    let most = above.saturating_add(bytes.len() as u64 / RECORD_HEADER_LEN + 1);
    let last = bytes.len().saturating_sub(RECORD_HEADER);
    for at in end..=last {
        let lsn = u64_at(bytes, at);
        if lsn <= above || lsn > most {
            continue;
        }
        if verified(bytes, at).is_some() {
            tracing::error!(
                journal = name,
                offset = end,
                later = at,
                lsn,
                "damaged journal record"
            );
            return Err(error(
                name,
                StorageErrorKind::Corrupt,
                format!(
                    "the journal is damaged at byte offset {end}: the record there is torn or fails its checksum, yet an intact record with a later lsn ({lsn}) follows at byte offset {at}, so this is not a torn tail; the acknowledged batches behind the damage cannot be replayed. Restore the database and its journal from a backup"
                ),
            ));
        }
    }
    Ok(())
}

impl<F: JournalFile> Journal<F> {
    /// Opens the journal in `file` and reads its valid chain; a file
    /// without a header gets one. Same as
    /// [`open_after`](Self::open_after)`(file, name, owner, 0, NewFile::Initialise)`
    /// except that damage before the first record of the chain cannot be
    /// told from a torn first record (there is no database lsn to compare
    /// with), so it is taken as a torn tail.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_store::journal::Journal;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("not-a-journal");
    /// std::fs::write(&path, b"hello, world: some other file").unwrap();
    /// let file = std::fs::File::options().read(true).write(true).open(&path).unwrap();
    /// let err = Journal::open(file, "not-a-journal", 1).unwrap_err();
    /// assert!(err.to_string().contains("not a memable journal"), "{err}");
    /// assert_eq!(std::fs::read(&path).unwrap(), b"hello, world: some other file");
    /// ```
    pub fn open(file: F, name: &str, owner: u64) -> Result<(Self, Vec<Record>), EngineError> {
        Self::open_inner(file, name, owner, None, NewFile::Initialise)
    }

    /// Opens the journal in `file` and reads its valid chain.
    ///
    /// `name` identifies the file in error messages. `owner` identifies the
    /// database the journal belongs to: an existing journal must carry the
    /// same owner. `db_lsn` is the database's lsn: behind a break of the
    /// chain, a verifying record above both it and the chain's last lsn is
    /// damage (see the module docs). A file without a complete header is
    /// initialised (a header carrying `owner`, synced) or refused, as
    /// `new_file` says.
    ///
    /// The next [`append`](Self::append) goes right after the chain and must
    /// continue its lsns; call [`reset`](Self::reset) first to start over at
    /// the beginning of the file instead.
    ///
    /// Fails, leaving the file untouched, if the file is not a memable
    /// journal ([`StorageErrorKind::NotMemable`]), was written by a newer
    /// format ([`StorageErrorKind::NewerFormat`]), has a damaged header, a
    /// record whose checksum is valid but whose ops cannot be decoded, or
    /// damage in the middle of the chain ([`StorageErrorKind::Corrupt`]),
    /// belongs to another owner, or has no header while `new_file` is
    /// [`NewFile::Refuse`] ([`StorageErrorKind::Incomplete`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_store::journal::{Journal, NewFile};
    ///
    /// let file = tempfile::tempfile().unwrap();
    /// let (mut journal, _) = Journal::open_after(file.try_clone().unwrap(), "j", 7, 0, NewFile::Initialise).unwrap();
    /// journal.append(1, &[]).unwrap();
    /// drop(journal);
    /// let (_, records) = Journal::open_after(file, "j", 7, 0, NewFile::Refuse).unwrap();
    /// assert_eq!(records.len(), 1);
    /// ```
    pub fn open_after(
        file: F,
        name: &str,
        owner: u64,
        db_lsn: u64,
        new_file: NewFile,
    ) -> Result<(Self, Vec<Record>), EngineError> {
        Self::open_inner(file, name, owner, Some(db_lsn), new_file)
    }

    fn open_inner(
        mut file: F,
        name: &str,
        owner: u64,
        db_lsn: Option<u64>,
        new_file: NewFile,
    ) -> Result<(Self, Vec<Record>), EngineError> {
        let bytes = file
            .read_all()
            .map_err(|e| error(name, StorageErrorKind::Io, format!("read: {e}")))?;
        let found = check_header(&bytes, name, owner)?;
        let (records, end) = if let Some(version) = found {
            let (records, end) = read_chain(&bytes, name, version)?;
            // A torn tail can only follow the last record appended, whose
            // lsn is the chain's last (or, for an empty chain, above the
            // database's, which a reset journal restarts from).
            if let Some(above) = records.last().map(|r| r.lsn).or(db_lsn) {
                refuse_damage(&bytes, end, above, name)?;
            }
            (records, end)
        } else {
            if new_file == NewFile::Refuse {
                let what = if bytes.is_empty() {
                    "is empty (0 bytes)".to_owned()
                } else {
                    format!(
                        "is cut inside its {HEADER}-byte header ({} bytes)",
                        bytes.len()
                    )
                };
                return Err(lost_journal(name, &what));
            }
            file.write_at(0, &header(owner))
                .and_then(|()| file.sync())
                .map_err(|e| error(name, StorageErrorKind::Io, format!("write header: {e}")))?;
            (Vec::new(), HEADER)
        };
        let file_len = (bytes.len().max(HEADER)) as u64;
        let next_lsn = records.last().and_then(|r| r.lsn.checked_add(1));
        tracing::debug!(
            journal = name,
            records = records.len(),
            first = records.first().map(|r| r.lsn),
            last = records.last().map(|r| r.lsn),
            "memable journal opened"
        );
        Ok((
            Self {
                file,
                name: name.to_owned(),
                end: end as u64,
                written: 0,
                next_lsn,
                failed: false,
                file_len,
                version: found.unwrap_or(FORMAT_VERSION),
                owner,
            },
            records,
        ))
    }

    /// Appends one record holding `ops` under `lsn` at the end of the
    /// chain, then syncs the file: when this returns `Ok`, the record
    /// survives a power loss.
    ///
    /// `lsn` must be one more than the previous record's (any value right
    /// after a [`reset`](Self::reset) or when the chain is empty). If a
    /// write or the sync fails, the record may or may not be in the file;
    /// the journal then refuses every later append (reopen it to learn
    /// what the file holds).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_store::journal::Journal;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let file = tempfile::tempfile_in(dir.path()).unwrap();
    /// let (mut journal, _) = Journal::open(file, "j", 1).unwrap();
    /// journal.append(10, &[]).unwrap();
    /// assert!(journal.append(12, &[]).is_err(), "lsns must follow each other");
    /// journal.append(11, &[]).unwrap();
    /// ```
    pub fn append(&mut self, lsn: u64, ops: &[WriteOp]) -> Result<(), EngineError> {
        if self.failed {
            return Err(error(
                &self.name,
                StorageErrorKind::Poisoned,
                "an earlier write or sync failed; reopen the journal",
            ));
        }
        if let Some(expected) = self.next_lsn
            && lsn != expected
        {
            return Err(error(
                &self.name,
                StorageErrorKind::Other,
                format!("append of lsn {lsn} where lsn {expected} was expected"),
            ));
        }
        if self.version != FORMAT_VERSION {
            self.upgrade(lsn)?;
        }
        let payload = postcard::to_allocvec(ops).map_err(|e| {
            error(
                &self.name,
                StorageErrorKind::Other,
                format!("encode lsn {lsn}: {e}"),
            )
        })?;
        let len = u32::try_from(payload.len()).map_err(|_| {
            error(
                &self.name,
                StorageErrorKind::Unsupported,
                format!("batch of {} bytes is too large for a record", payload.len()),
            )
        })?;
        let mut record = Vec::with_capacity(RECORD_HEADER + payload.len());
        record.extend_from_slice(&lsn.to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
        let sum = crc(&[&record, &payload]);
        record.extend_from_slice(&sum.to_le_bytes());
        record.extend_from_slice(&payload);
        let written = self
            .file
            .write_at(self.end, &record)
            .and_then(|()| self.file.sync());
        if let Err(e) = written {
            self.failed = true;
            return Err(error(
                &self.name,
                StorageErrorKind::Io,
                format!("append lsn {lsn}: {e}"),
            ));
        }
        self.end += record.len() as u64;
        self.file_len = self.file_len.max(self.end);
        self.written += record.len() as u64;
        self.next_lsn = lsn.checked_add(1);
        Ok(())
    }

    /// Before the first append to a journal of an older format: makes the
    /// file a journal of the current version (see the module docs,
    /// "Versions 1 and 2").
    fn upgrade(&mut self, lsn: u64) -> Result<(), EngineError> {
        if self.end != HEADER_LEN {
            return Err(error(
                &self.name,
                StorageErrorKind::Unsupported,
                format!(
                    "append of lsn {lsn} to a chain of journal format version {} (this build appends version {FORMAT_VERSION} only from the file's start: reset first)",
                    self.version
                ),
            ));
        }
        let written = self
            .file
            .write_at(HEADER_LEN, &[0u8; RECORD_HEADER])
            .and_then(|()| self.file.sync())
            .and_then(|()| self.file.write_at(0, &header(self.owner)))
            .and_then(|()| self.file.sync());
        if let Err(e) = written {
            self.failed = true;
            return Err(error(
                &self.name,
                StorageErrorKind::Io,
                format!("upgrade to journal format version {FORMAT_VERSION}: {e}"),
            ));
        }
        self.file_len = self.file_len.max(HEADER_LEN + RECORD_HEADER_LEN);
        tracing::info!(
            journal = %self.name,
            from = self.version,
            to = FORMAT_VERSION,
            "memable journal format upgraded"
        );
        self.version = FORMAT_VERSION;
        Ok(())
    }

    /// Starts the next cycle: the next [`append`](Self::append) goes right
    /// after the header, with any lsn. The file is neither truncated nor
    /// written; call this only once every record of the chain is durable
    /// elsewhere (after a checkpoint), and only ever continue with lsns
    /// greater than every lsn in the file.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_store::journal::Journal;
    ///
    /// let (mut journal, _) = Journal::open(tempfile::tempfile().unwrap(), "j", 1).unwrap();
    /// journal.append(1, &[]).unwrap();
    /// journal.reset();
    /// journal.append(5, &[]).unwrap();
    /// ```
    pub fn reset(&mut self) {
        self.end = HEADER_LEN;
        self.written = 0;
        self.next_lsn = None;
    }

    /// Extends the file with zeros to at least `len` bytes, and syncs, so
    /// that later appends overwrite allocated space in place: a sync then
    /// only flushes data, not the file's size and block map (on most file
    /// systems markedly cheaper than syncing an append). Zeros never read
    /// as a record. Does nothing if the file is already that long.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_store::journal::Journal;
    ///
    /// let mut file = tempfile::tempfile().unwrap();
    /// let (mut journal, _) = Journal::open(file.try_clone().unwrap(), "j", 1).unwrap();
    /// journal.preallocate(64 * 1024).unwrap();
    /// assert_eq!(file.metadata().unwrap().len(), 64 * 1024);
    /// journal.append(1, &[]).unwrap();
    /// assert_eq!(file.metadata().unwrap().len(), 64 * 1024);
    /// ```
    pub fn preallocate(&mut self, len: u64) -> Result<(), EngineError> {
        const CHUNK: u64 = 64 * 1024;
        if self.file_len >= len {
            return Ok(());
        }
        let zeros = vec![0u8; 64 * 1024];
        let mut at = self.file_len;
        while at < len {
            let n = (len - at).min(CHUNK);
            let n_usize = usize::try_from(n).unwrap_or(zeros.len());
            self.file.write_at(at, &zeros[..n_usize]).map_err(|e| {
                error(
                    &self.name,
                    StorageErrorKind::Io,
                    format!("preallocate: {e}"),
                )
            })?;
            at += n;
        }
        self.file.sync().map_err(|e| {
            error(
                &self.name,
                StorageErrorKind::Io,
                format!("preallocate: {e}"),
            )
        })?;
        self.file_len = len;
        Ok(())
    }

    /// Bytes appended since the last [`reset`](Self::reset) (or since
    /// opening): how much a store would replay after a crash, and its cue to
    /// checkpoint.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_store::journal::Journal;
    ///
    /// let (mut journal, _) = Journal::open(tempfile::tempfile().unwrap(), "j", 1).unwrap();
    /// assert_eq!(journal.written_since_reset(), 0);
    /// journal.append(1, &[]).unwrap();
    /// assert!(journal.written_since_reset() > 0);
    /// ```
    #[must_use]
    pub fn written_since_reset(&self) -> u64 {
        self.written
    }

    /// `true` once a write or sync of an [`append`](Self::append) failed:
    /// the file's tail is unknown and every later append is refused. (An
    /// append refused before anything was written — an lsn out of sequence,
    /// a batch too large for a record — leaves this `false`.)
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_store::journal::Journal;
    ///
    /// let (mut journal, _) = Journal::open(tempfile::tempfile().unwrap(), "j", 1).unwrap();
    /// journal.append(1, &[]).unwrap();
    /// assert!(journal.append(3, &[]).is_err());
    /// assert!(!journal.is_failed());
    /// ```
    #[must_use]
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The name given at [`open`](Self::open), for messages.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_store::journal::Journal;
    ///
    /// let (journal, _) = Journal::open(tempfile::tempfile().unwrap(), "wf.journal", 1).unwrap();
    /// assert_eq!(journal.name(), "wf.journal");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}
