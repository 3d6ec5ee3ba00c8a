//! The encryption of a backup file: XChaCha20-Poly1305 in the STREAM
//! construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
//! authenticated-encryption and its nonce-reuse misuse-resistance"), over
//! 64 KiB chunks.
//!
//! Each chunk is sealed on its own, so a backup of any size is written and
//! read in constant memory, and the nonce of chunk *i* is the file's random
//! 19-byte prefix, *i* (32 bits, big-endian) and a last-chunk flag: chunks
//! cannot be reordered, dropped or repeated, and a file cut short (a USB
//! stick pulled out mid-write) is told from a whole one. The header is the
//! associated data of every chunk, so it cannot be edited either.
//!
//! The `aead` crate this node already uses dropped its `stream` module in
//! 0.6 (it moved to a crate of its own); the construction is a dozen lines
//! over the same cipher, so it is written here rather than adding one.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};

/// What every backup file starts with.
pub const MAGIC: &[u8; 15] = b"OUTPOST-BACKUP\n";
const VERSION: u8 = 1;
const PREFIX_BYTES: usize = 19;
const KEY_ID_BYTES: usize = 8;
const HEADER_BYTES: usize = MAGIC.len() + 1 + KEY_ID_BYTES + PREFIX_BYTES;
const CHUNK: usize = 64 << 10;
const TAG: usize = 16;

/// A backup key: 256 random bits.
pub type BackupKey = [u8; 32];

/// Which key a backup was sealed with, without revealing it: the first
/// bytes of a hash of it. Lets restore say "another key" rather than
/// "damaged".
pub fn key_id(key: &BackupKey) -> [u8; KEY_ID_BYTES] {
    let digest = Sha256::new()
        .chain_update(b"outpost backup key id\0")
        .chain_update(key)
        .finalize();
    let mut id = [0u8; KEY_ID_BYTES];
    id.copy_from_slice(&digest[..KEY_ID_BYTES]);
    id
}

fn nonce(prefix: &[u8; PREFIX_BYTES], counter: u32, last: bool) -> XNonce {
    let mut bytes = [0u8; 24];
    bytes[..PREFIX_BYTES].copy_from_slice(prefix);
    bytes[PREFIX_BYTES..PREFIX_BYTES + 4].copy_from_slice(&counter.to_be_bytes());
    bytes[23] = u8::from(last);
    XNonce::from(bytes)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Seals everything written to it; [`SealingWriter::finish`] writes the
/// last chunk, without which the file reads as cut short.
pub struct SealingWriter<W: Write> {
    out: W,
    cipher: XChaCha20Poly1305,
    header: [u8; HEADER_BYTES],
    prefix: [u8; PREFIX_BYTES],
    counter: u32,
    buffer: Vec<u8>,
}

impl<W: Write> SealingWriter<W> {
    pub fn new(mut out: W, key: &BackupKey) -> io::Result<SealingWriter<W>> {
        let mut prefix = [0u8; PREFIX_BYTES];
        getrandom::fill(&mut prefix).map_err(|e| io::Error::other(e.to_string()))?;
        let mut header = [0u8; HEADER_BYTES];
        header[..MAGIC.len()].copy_from_slice(MAGIC);
        header[MAGIC.len()] = VERSION;
        header[MAGIC.len() + 1..MAGIC.len() + 1 + KEY_ID_BYTES].copy_from_slice(&key_id(key));
        header[HEADER_BYTES - PREFIX_BYTES..].copy_from_slice(&prefix);
        out.write_all(&header)?;
        Ok(SealingWriter {
            out,
            cipher: XChaCha20Poly1305::new(key.into()),
            header,
            prefix,
            counter: 0,
            buffer: Vec::with_capacity(CHUNK),
        })
    }

    fn seal_chunk(&mut self, last: bool) -> io::Result<()> {
        let sealed = self
            .cipher
            .encrypt(
                &nonce(&self.prefix, self.counter, last),
                Payload {
                    msg: &self.buffer,
                    aad: &self.header,
                },
            )
            .map_err(|_| io::Error::other("sealing a backup chunk failed"))?;
        self.out.write_all(&sealed)?;
        self.buffer.clear();
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("a backup larger than 256 TiB"))?;
        Ok(())
    }

    /// Seals the last chunk and flushes; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal_chunk(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let taken = room.min(data.len());
        self.buffer.extend_from_slice(&data[..taken]);
        if self.buffer.len() == CHUNK {
            self.seal_chunk(false)?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Opens what [`SealingWriter`] sealed, failing with `InvalidData` on a
/// changed byte, a missing chunk or a file cut short.
pub struct OpeningReader<R: Read> {
    input: R,
    cipher: XChaCha20Poly1305,
    header: [u8; HEADER_BYTES],
    prefix: [u8; PREFIX_BYTES],
    counter: u32,
    /// Opened bytes not yet read, from `at`.
    opened: Vec<u8>,
    at: usize,
    /// The next chunk's sealed bytes, read ahead to tell the last one.
    ahead: Vec<u8>,
    done: bool,
}

/// Why a file is not a backup this key opens, before any chunk is read.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("it is not an Outpost backup (it does not start as one)")]
    NotABackup,
    #[error(
        "it is an Outpost backup of format {0}, which this build cannot read (it reads format \
         1); if a newer outpost made it, restore with that"
    )]
    UnknownFormat(u8),
    #[error(
        "it was sealed with another backup key (key id {found}; the key given has id {given}): \
         use the recovery code shown when the node's first backup was made"
    )]
    OtherKey { found: String, given: String },
    #[error("it cannot be read: {0}")]
    Read(#[from] io::Error),
}

impl<R: Read> OpeningReader<R> {
    pub fn new(mut input: R, key: &BackupKey) -> Result<OpeningReader<R>, HeaderError> {
        let mut header = [0u8; HEADER_BYTES];
        read_full(&mut input, &mut header)?;
        if &header[..MAGIC.len()] != MAGIC {
            return Err(HeaderError::NotABackup);
        }
        let version = header[MAGIC.len()];
        if version != VERSION {
            return Err(HeaderError::UnknownFormat(version));
        }
        let found = &header[MAGIC.len() + 1..MAGIC.len() + 1 + KEY_ID_BYTES];
        if found != key_id(key) {
            return Err(HeaderError::OtherKey {
                found: hex::encode(found),
                given: hex::encode(key_id(key)),
            });
        }
        let mut prefix = [0u8; PREFIX_BYTES];
        prefix.copy_from_slice(&header[HEADER_BYTES - PREFIX_BYTES..]);
        let mut reader = OpeningReader {
            input,
            cipher: XChaCha20Poly1305::new(key.into()),
            header,
            prefix,
            counter: 0,
            opened: Vec::new(),
            at: 0,
            ahead: vec![0; CHUNK + TAG],
            done: false,
        };
        let filled = read_full(&mut reader.input, &mut reader.ahead)?;
        reader.ahead.truncate(filled);
        Ok(reader)
    }

    fn open_next(&mut self) -> io::Result<()> {
        let sealed = std::mem::take(&mut self.ahead);
        // A full chunk is the last only when nothing follows it.
        let mut next = vec![0; CHUNK + TAG];
        let filled = if sealed.len() == CHUNK + TAG {
            read_full(&mut self.input, &mut next)?
        } else {
            0
        };
        next.truncate(filled);
        let last = next.is_empty();
        let opened = self
            .cipher
            .decrypt(
                &nonce(&self.prefix, self.counter, last),
                Payload {
                    msg: &sealed,
                    aad: &self.header,
                },
            )
            .map_err(|_| {
                invalid(if last {
                    format!(
                        "the backup is cut short or damaged at {} KiB (a copy interrupted, or a \
                         changed byte)",
                        u64::from(self.counter) * (CHUNK as u64 >> 10)
                    )
                } else {
                    format!(
                        "the backup is damaged at {} KiB (a changed byte)",
                        u64::from(self.counter) * (CHUNK as u64 >> 10)
                    )
                })
            })?;
        self.counter = self.counter.wrapping_add(1);
        self.opened = opened;
        self.at = 0;
        self.ahead = next;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for OpeningReader<R> {
    fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        while self.at == self.opened.len() {
            if self.done {
                return Ok(0);
            }
            self.open_next()?;
        }
        let taken = into.len().min(self.opened.len() - self.at);
        into[..taken].copy_from_slice(&self.opened[self.at..self.at + taken]);
        self.at += taken;
        Ok(taken)
    }
}

/// Reads until `into` is full or the input ends; returns how much was read.
fn read_full(input: &mut impl Read, into: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < into.len() {
        match input.read(&mut into[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(key: &BackupKey, plain: &[u8]) -> Vec<u8> {
        let mut writer = SealingWriter::new(Vec::new(), key).expect("writer");
        writer.write_all(plain).expect("write");
        writer.finish().expect("finish")
    }

    fn opened(key: &BackupKey, file: &[u8]) -> io::Result<Vec<u8>> {
        let mut reader = OpeningReader::new(file, key).map_err(io::Error::other)?;
        let mut plain = Vec::new();
        reader.read_to_end(&mut plain)?;
        Ok(plain)
    }

    #[test]
    fn what_is_sealed_opens_whole_at_every_size() {
        let key = [7u8; 32];
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            assert_eq!(opened(&key, &sealed(&key, &plain)).expect("opens"), plain);
        }
    }

    #[test]
    fn a_changed_byte_a_cut_or_another_key_is_refused() {
        let key = [7u8; 32];
        let plain = vec![1u8; 2 * CHUNK + 10];
        let file = sealed(&key, &plain);
        let mut changed = file.clone();
        changed[HEADER_BYTES + CHUNK] ^= 1;
        assert!(opened(&key, &changed).is_err());
        // Cut at a chunk boundary: every chunk left is whole, but none is last.
        let cut = &file[..HEADER_BYTES + 2 * (CHUNK + TAG)];
        let error = opened(&key, cut).expect_err("cut short");
        assert!(error.to_string().contains("cut short"), "{error}");
        let error = OpeningReader::new(&file[..], &[8u8; 32])
            .err()
            .expect("another key");
        assert!(matches!(error, HeaderError::OtherKey { .. }), "{error}");
        let mut header = file.clone();
        header[MAGIC.len() + 2] ^= 1;
        assert!(OpeningReader::new(&header[..], &key).is_err());
        assert!(matches!(
            OpeningReader::new(&b"PK\x03\x04 a zip file, not a backup at all"[..], &key),
            Err(HeaderError::NotABackup)
        ));
    }
}
