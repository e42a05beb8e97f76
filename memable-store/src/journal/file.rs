//! [`JournalFile`]: the few I/O operations a [`Journal`](super::Journal)
//! needs, so tests can put a simulated disk under it.

#[cfg(not(unix))]
use std::io::Write;
use std::io::{self, Read, Seek, SeekFrom};

/// The I/O a [`Journal`](super::Journal) performs on its file.
///
/// [`std::fs::File`] implements it; a test can implement it over memory to
/// simulate a power loss (keep only what was written before the last
/// [`sync`](Self::sync), or tear the last write at any byte).
///
/// # Examples
///
/// ```
/// use memable_store::journal::JournalFile;
///
/// /// A file in memory that never loses anything.
/// #[derive(Default)]
/// struct Memory(Vec<u8>);
///
/// impl JournalFile for Memory {
///     fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
///         Ok(self.0.clone())
///     }
///     fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
///         let start = usize::try_from(offset).unwrap();
///         if self.0.len() < start + data.len() {
///             self.0.resize(start + data.len(), 0);
///         }
///         self.0[start..start + data.len()].copy_from_slice(data);
///         Ok(())
///     }
///     fn sync(&mut self) -> std::io::Result<()> {
///         Ok(())
///     }
/// }
///
/// let mut file = Memory::default();
/// file.write_at(2, b"ab").unwrap();
/// assert_eq!(file.read_all().unwrap(), vec![0, 0, b'a', b'b']);
/// ```
pub trait JournalFile: Send {
    /// Reads the whole file.
    fn read_all(&mut self) -> io::Result<Vec<u8>>;

    /// Writes all of `data` at `offset`, extending the file if needed.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Makes everything written so far durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
}

/// The real thing: [`write_at`](JournalFile::write_at) is one positioned
/// write (`pwrite`) on Unix, a seek and a write elsewhere;
/// [`sync`](JournalFile::sync) is [`File::sync_data`](std::fs::File::sync_data).
///
/// # Examples
///
/// ```
/// use memable_store::journal::JournalFile;
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut file = std::fs::OpenOptions::new()
///     .read(true)
///     .write(true)
///     .create(true)
///     .truncate(false)
///     .open(dir.path().join("j"))
///     .unwrap();
/// file.write_at(0, b"hello").unwrap();
/// file.sync().unwrap();
/// assert_eq!(file.read_all().unwrap(), b"hello");
/// ```
impl JournalFile for std::fs::File {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.seek(SeekFrom::Start(0))?;
        let mut bytes = Vec::new();
        self.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        #[cfg(unix)]
        {
            // One `pwrite` instead of a seek and a write.
            std::os::unix::fs::FileExt::write_all_at(self, data, offset)
        }
        #[cfg(not(unix))]
        {
            self.seek(SeekFrom::Start(offset))?;
            self.write_all(data)
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// Forwards to the boxed file, so a journal can hold any file type.
impl<T: JournalFile + ?Sized> JournalFile for Box<T> {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        (**self).read_all()
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        (**self).write_at(offset, data)
    }

    fn sync(&mut self) -> io::Result<()> {
        (**self).sync()
    }
}
