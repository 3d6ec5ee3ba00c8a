//! Backups of a node: everything needed to bring it back on a new box, in
//! one encrypted, integrity-checked file, made while the node serves.
//!
//! A backup holds the database as of one commit (plugins and their code,
//! their stored data, the outbox, keys sealed under the node key, update
//! state), the node key, the node's identity, the API token, the scrape
//! token, the console password, `outpost.toml`, and each installed
//! version's assets. Not the compiled code (made again from the components
//! at start), scratch space or printed output.
//!
//! It is sealed (see [`seal`]) under the node's *backup key*,
//! `<data>/backup.key`, made with the first backup and shown once as a
//! recovery code: a backup on a USB stick opens on a new box only with it,
//! and a stolen stick reveals nothing. Inside, the files come one after the
//! other and a manifest closes the archive with each file's size and
//! SHA-256, checked on restore before anything replaces what is there.
//!
//! [`local`] keeps a rolling set of these on the node's own disk (hourly for
//! 72 hours, within a size budget), and points to the newest good one when
//! the database is damaged.

pub mod local;
pub mod seal;

use crate::node::Node;
use crate::store::{DATABASE_FILE_NAME, NodeStore, StoreError};
use seal::{BackupKey, HeaderError, OpeningReader, SealingWriter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

/// The backup key's file in the data directory (never inside a backup).
pub const BACKUP_KEY_FILE: &str = "backup.key";
/// Present while a restore moves files in the data directory: a node does
/// not start on a directory half restored (systemd restarting a node whose
/// database was damaged would otherwise make an empty one mid-restore).
pub const RESTORING_FILE: &str = "restoring";

/// Files of the data directory a backup carries, when present. The token
/// files are added from the configuration (they may be renamed).
const NODE_FILES: &[&str] = &[
    crate::keystore::NODE_KEY_FILE,
    crate::fleet::IDENTITY_KEY_FILE,
    crate::fleet::IDENTITY_PUBLIC_FILE,
    crate::config::CONFIG_FILE_NAME,
];
/// Files that are secrets: restored with mode 0600.
const PLUGIN_FILES_ROOT: &str = crate::node::PLUGINS_DIR;
/// The manifest's name inside the archive; it comes last.
const MANIFEST_ENTRY: &str = "MANIFEST.json";
/// The longest path an archive entry may name, writing and reading alike
/// (a package's assets may nest 16 folders of 255 bytes).
const MAX_PATH_BYTES: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the backup key {path}: {detail}")]
    Key { path: PathBuf, detail: String },
    #[error(
        "no backup key was given: pass --recovery-code with the code shown when the node's first \
         backup was made, or --key-file with its backup.key"
    )]
    NoKey,
    #[error("that is not a recovery code: it is 64 hex digits, in groups of four")]
    BadRecoveryCode,
    #[error("the backup {path}: {source}")]
    Header { path: String, source: HeaderError },
    #[error("reading {what}: {source}")]
    Read { what: String, source: io::Error },
    #[error("writing {what}: {source}")]
    Write { what: String, source: io::Error },
    #[error("the database: {0}")]
    Store(#[from] StoreError),
    #[error("the backup's contents are not as its manifest says: {0}")]
    Manifest(String),
    #[error(
        "{dir} already holds a node; restore into an empty directory (a new box), or pass \
         --replace to put the backup in its place (what is there is moved aside, not deleted)"
    )]
    Occupied { dir: PathBuf },
    #[error(
        "the restore failed part way ({cause}) and could not put everything back: the \
         backup's files are in {staging}, what was there in {aside}. The node will not start \
         until this is finished: run the restore again with --replace, then delete {marker}"
    )]
    HalfRestored {
        cause: String,
        staging: PathBuf,
        aside: String,
        marker: PathBuf,
    },
}

/// One file in a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackedUpFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The manifest that closes a backup: what it holds and whose it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Seconds since the Unix epoch.
    pub made_at: u64,
    pub outpost_version: String,
    /// The node identity's key id, if it had one.
    pub node_identity: Option<String>,
    pub plugins: Vec<String>,
    pub keys: usize,
    pub files: Vec<BackedUpFile>,
}

/// The backup key as the operator writes it down: 64 hex digits in groups
/// of four.
pub fn recovery_code(key: &BackupKey) -> String {
    hex::encode(key)
        .as_bytes()
        .chunks(4)
        .map(|group| String::from_utf8_lossy(group).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// Reads a recovery code back, whatever separators it was written with.
pub fn parse_recovery_code(text: &str) -> Result<BackupKey, BackupError> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\n' | '\t'))
        .collect();
    let bytes = hex::decode(&digits).map_err(|_| BackupError::BadRecoveryCode)?;
    bytes.try_into().map_err(|_| BackupError::BadRecoveryCode)
}

/// The node's backup key, and whether it was made just now (then the
/// caller shows its recovery code, once).
pub fn backup_key(data_dir: &Path) -> Result<(BackupKey, bool), BackupError> {
    let path = data_dir.join(BACKUP_KEY_FILE);
    let key_error = |detail: String| BackupError::Key {
        path: path.clone(),
        detail,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((
            parse_recovery_code(text.trim()).map_err(|_| {
                key_error(
                    "is not 64 hex digits; put back the one from the recovery code, or delete \
                     it to start a new key (older backups then need their own code)"
                        .into(),
                )
            })?,
            false,
        )),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| key_error(e.to_string()))?;
            crate::secret_file::create(&path, &format!("{}\n", hex::encode(key)))
                .map_err(|e| key_error(format!("cannot be created: {e}")))?;
            Ok((key, true))
        }
        Err(error) => Err(key_error(format!("cannot be read: {error}"))),
    }
}

/// Entry framing inside the sealed stream: the path's length (u16), the
/// path, the length (u64), the bytes.
fn write_entry(
    out: &mut impl Write,
    path: &str,
    bytes: u64,
    body: &mut impl Read,
) -> io::Result<BackedUpFile> {
    let name = path.as_bytes();
    let name_length = u16::try_from(name.len())
        .ok()
        .filter(|length| usize::from(*length) <= MAX_PATH_BYTES)
        .ok_or_else(|| io::Error::other(format!("{path} is longer than {MAX_PATH_BYTES} bytes")))?;
    out.write_all(&name_length.to_be_bytes())?;
    out.write_all(name)?;
    out.write_all(&bytes.to_be_bytes())?;
    let mut hashing = HashingReader::new(body.take(bytes));
    let copied = io::copy(&mut hashing, out)?;
    if copied != bytes {
        return Err(io::Error::other(format!(
            "{path} changed size while it was backed up"
        )));
    }
    Ok(BackedUpFile {
        path: path.to_string(),
        bytes,
        sha256: hex::encode(hashing.hasher.finalize()),
    })
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(into)?;
        self.hasher.update(&into[..read]);
        Ok(read)
    }
}

/// What a backup made: its manifest, and the recovery code when its key
/// was made for it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupMade {
    pub manifest: Manifest,
    pub bytes: u64,
    /// Shown once: the key is new, and the operator must write it down.
    pub new_recovery_code: Option<String>,
}

/// Writes a backup of the running `node` to `out`. The database is copied
/// as of one commit and checked (opened with every page's checksum) before
/// a byte of it is sealed.
pub fn make(node: &Node, out: impl Write) -> Result<BackupMade, BackupError> {
    // No install or update while the database and the assets are read: the
    // two must be of the same moment.
    let _changing = node.lock_changes();
    let data_dir = node.data_dir();
    let (key, new_key) = backup_key(data_dir)?;
    let staged = tempfile::Builder::new()
        .prefix(".backup-")
        .suffix(".redb")
        .tempfile_in(data_dir)
        .map_err(|source| BackupError::Write {
            what: "a copy of the database in the data directory".into(),
            source,
        })?;
    {
        let mut copy = io::BufWriter::new(staged.as_file());
        node.store().copy_committed(&mut copy)?;
        copy.flush().map_err(|source| BackupError::Write {
            what: "the database copy".into(),
            source,
        })?;
    }
    // The copy is a database in its own right: open it as the node would.
    let (plugins, keys) = {
        let copy = NodeStore::open(staged.path())?;
        let plugins = copy
            .plugins()?
            .iter()
            .map(|record| format!("{}@{}", record.id, record.active.version))
            .collect();
        (plugins, copy.keys(None)?.len())
    };

    let mut counting = CountingWriter {
        inner: out,
        bytes: 0,
    };
    let mut sealed =
        SealingWriter::new(&mut counting, &key).map_err(|source| BackupError::Write {
            what: "the backup".into(),
            source,
        })?;
    let mut files = Vec::new();
    let mut add = |sealed: &mut SealingWriter<_>, name: &str, path: &Path| {
        let mut file = std::fs::File::open(path).map_err(|source| BackupError::Read {
            what: path.display().to_string(),
            source,
        })?;
        let bytes = file
            .metadata()
            .map_err(|source| BackupError::Read {
                what: path.display().to_string(),
                source,
            })?
            .len();
        let entry =
            write_entry(sealed, name, bytes, &mut file).map_err(|source| BackupError::Write {
                what: format!("{name} into the backup"),
                source,
            })?;
        files.push(entry);
        Ok::<(), BackupError>(())
    };
    add(&mut sealed, DATABASE_FILE_NAME, staged.path())?;
    for name in node_files(node) {
        let path = data_dir.join(&name);
        if path.is_file() {
            add(&mut sealed, &name, &path)?;
        }
    }
    for (name, path) in plugin_files(data_dir)? {
        add(&mut sealed, &name, &path)?;
    }
    let manifest = Manifest {
        format: 1,
        made_at: crate::clock::now_seconds(),
        outpost_version: env!("CARGO_PKG_VERSION").to_string(),
        node_identity: crate::fleet::existing_identity(data_dir).map(|key| key.key_id_hex()),
        plugins,
        keys,
        files,
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Write {
        what: "the manifest".into(),
        source: io::Error::other(e),
    })?;
    let write_error = |source| BackupError::Write {
        what: "the backup".into(),
        source,
    };
    write_entry(
        &mut sealed,
        MANIFEST_ENTRY,
        text.len() as u64,
        &mut &text[..],
    )
    .map_err(write_error)?;
    sealed.finish().map_err(write_error)?;
    Ok(BackupMade {
        manifest,
        bytes: counting.bytes,
        new_recovery_code: new_key.then(|| recovery_code(&key)),
    })
}

struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(data)?;
        self.bytes += written as u64;
        Ok(written)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The data directory's own files a backup carries, by name.
fn node_files(node: &Node) -> Vec<String> {
    let api = &node.config().api;
    let mut names: Vec<String> = NODE_FILES.iter().map(|name| name.to_string()).collect();
    for secret in [
        &api.token_file,
        &api.metrics_token_file,
        &api.console_password_file,
    ] {
        // A token kept outside the data directory is the operator's to
        // back up; inside it, it travels with the node.
        if let Some(name) = single_name(secret) {
            names.push(name);
        }
    }
    names
}

fn single_name(path: &Path) -> Option<String> {
    let mut components = path.components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(name)), None) => name.to_str().map(str::to_string),
        _ => None,
    }
}

/// Every file under `plugins/` (the installed versions' assets), as
/// (archive name, path), in a stable order.
fn plugin_files(data_dir: &Path) -> Result<Vec<(String, PathBuf)>, BackupError> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::from(PLUGIN_FILES_ROOT)];
    while let Some(relative) = pending.pop() {
        let dir = data_dir.join(&relative);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(BackupError::Read {
                    what: dir.display().to_string(),
                    source,
                });
            }
        };
        for entry in entries {
            let entry = entry.map_err(|source| BackupError::Read {
                what: dir.display().to_string(),
                source,
            })?;
            let kind = entry.file_type().map_err(|source| BackupError::Read {
                what: entry.path().display().to_string(),
                source,
            })?;
            let name = relative.join(entry.file_name());
            if kind.is_dir() {
                pending.push(name);
            } else if kind.is_file() {
                // A name the archive cannot carry fails the backup now,
                // not its restore on the bad day.
                let text = name.to_str().ok_or_else(|| BackupError::Read {
                    what: entry.path().display().to_string(),
                    source: io::Error::other(
                        "its name is not UTF-8, so a backup cannot carry it; rename it, or \
                         reinstall the plugin that brought it",
                    ),
                })?;
                found.push((text.to_string(), entry.path()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Which key opens a backup: the recovery code, or a `backup.key` file.
pub fn key_from(
    recovery_code: Option<&str>,
    key_file: Option<&Path>,
) -> Result<BackupKey, BackupError> {
    match (recovery_code, key_file) {
        (Some(code), _) => parse_recovery_code(code),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|source| BackupError::Read {
                what: path.display().to_string(),
                source,
            })?;
            parse_recovery_code(text.trim())
        }
        (None, None) => Err(BackupError::NoKey),
    }
}

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Put the backup in place of a node that is there (moved aside).
    pub replace: bool,
    /// Leave the backed-up identity behind: the node makes a new one and
    /// enrols again, and the old box keeps its own.
    pub new_identity: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub manifest: Manifest,
    /// Where what was there before went, with --replace.
    pub moved_aside: Option<PathBuf>,
    pub identity_restored: bool,
}

/// Reads a whole backup and checks it against its manifest, writing
/// nothing: what `outpost backup verify` and the damaged-database advice
/// use.
pub fn verify(input: impl Read, key: &BackupKey, what: &str) -> Result<Manifest, BackupError> {
    unpack(input, key, what, |_, body| {
        io::copy(body, &mut io::sink())?;
        Ok(())
    })
}

/// Opens `input` and hands each entry's path and bytes to `take`; returns
/// the manifest once every entry matched it.
fn unpack(
    input: impl Read,
    key: &BackupKey,
    what: &str,
    mut take: impl FnMut(&str, &mut dyn Read) -> io::Result<()>,
) -> Result<Manifest, BackupError> {
    let mut reader = OpeningReader::new(io::BufReader::new(input), key).map_err(|source| {
        BackupError::Header {
            path: what.to_string(),
            source,
        }
    })?;
    let read_error = |source| BackupError::Read {
        what: what.to_string(),
        source,
    };
    let mut seen: Vec<BackedUpFile> = Vec::new();
    loop {
        let mut length = [0u8; 2];
        reader.read_exact(&mut length).map_err(read_error)?;
        let length = usize::from(u16::from_be_bytes(length));
        if length == 0 || length > MAX_PATH_BYTES {
            return Err(BackupError::Manifest(format!(
                "an entry's name is {length} bytes"
            )));
        }
        let mut name = vec![0u8; length];
        reader.read_exact(&mut name).map_err(read_error)?;
        let name = String::from_utf8(name)
            .map_err(|_| BackupError::Manifest("an entry's name is not UTF-8".into()))?;
        let mut size = [0u8; 8];
        reader.read_exact(&mut size).map_err(read_error)?;
        let size = u64::from_be_bytes(size);
        if name == MANIFEST_ENTRY {
            if size > 16 << 20 {
                return Err(BackupError::Manifest("the manifest is over 16 MiB".into()));
            }
            let mut text = Vec::new();
            (&mut reader)
                .take(size)
                .read_to_end(&mut text)
                .map_err(read_error)?;
            let manifest: Manifest = serde_json::from_slice(&text)
                .map_err(|e| BackupError::Manifest(format!("the manifest: {e}")))?;
            // Nothing may follow the manifest.
            let mut rest = [0u8; 1];
            if reader.read(&mut rest).map_err(read_error)? != 0 {
                return Err(BackupError::Manifest("entries after the manifest".into()));
            }
            if manifest.files != seen {
                return Err(BackupError::Manifest(
                    "the files differ from what the manifest lists".into(),
                ));
            }
            return Ok(manifest);
        }
        check_entry_name(&name)?;
        let mut hashing = HashingReader::new((&mut reader).take(size));
        take(&name, &mut hashing).map_err(read_error)?;
        // Whatever `take` left unread still counts.
        io::copy(&mut hashing, &mut io::sink()).map_err(read_error)?;
        let HashingReader { inner, hasher } = hashing;
        if inner.limit() != 0 {
            return Err(BackupError::Manifest(format!("{name} is cut short")));
        }
        seen.push(BackedUpFile {
            path: name,
            bytes: size,
            sha256: hex::encode(hasher.finalize()),
        });
    }
}

/// An entry must be a plain relative path under the data directory: a
/// damaged or forged archive writes nowhere else.
fn check_entry_name(name: &str) -> Result<(), BackupError> {
    let path = Path::new(name);
    let plain = path
        .components()
        .all(|component| matches!(component, Component::Normal(_)));
    let top = path.components().next().and_then(|c| match c {
        Component::Normal(top) => top.to_str(),
        _ => None,
    });
    let known = top.is_some_and(|top| {
        top == DATABASE_FILE_NAME
            || top == PLUGIN_FILES_ROOT
            || NODE_FILES.contains(&top)
            || !name.contains('/')
    });
    if plain && known && name != BACKUP_KEY_FILE {
        Ok(())
    } else {
        Err(BackupError::Manifest(format!(
            "{name:?} is not a file a backup may hold"
        )))
    }
}

/// Restores the backup in `input` into `data_dir`, which must not hold a
/// node unless `options.replace`. Everything is unpacked and checked
/// beside it first; only then does it replace anything.
pub fn restore(
    input: impl Read,
    key: &BackupKey,
    what: &str,
    data_dir: &Path,
    options: &RestoreOptions,
) -> Result<Restored, BackupError> {
    let made_dir = !data_dir.exists();
    std::fs::create_dir_all(data_dir).map_err(|source| BackupError::Write {
        what: data_dir.display().to_string(),
        source,
    })?;
    let marker = data_dir.join(RESTORING_FILE);
    // A marker already there is an interrupted restore's: only a restore
    // that completes lifts it.
    let inherited = marker.exists();
    std::fs::write(&marker, "outpost restore is moving files here\n").map_err(|source| {
        BackupError::Write {
            what: marker.display().to_string(),
            source,
        }
    })?;
    let restored = restore_into(input, key, what, data_dir, options);
    let lift = match &restored {
        Ok(_) => true,
        Err(BackupError::HalfRestored { .. }) => false,
        Err(_) => !inherited,
    };
    if lift {
        let _ = std::fs::remove_file(&marker);
    }
    if restored.is_err() && made_dir && lift {
        // Nothing of a failed restore is left behind on a new box.
        let _ = std::fs::remove_dir(data_dir);
    }
    restored
}

fn restore_into(
    input: impl Read,
    key: &BackupKey,
    what: &str,
    data_dir: &Path,
    options: &RestoreOptions,
) -> Result<Restored, BackupError> {
    let write_error = |what: &Path| {
        let what = what.display().to_string();
        move |source| BackupError::Write {
            what: what.clone(),
            source,
        }
    };
    std::fs::create_dir_all(data_dir).map_err(write_error(data_dir))?;
    let database = data_dir.join(DATABASE_FILE_NAME);
    let occupied = database.exists();
    if occupied && !options.replace {
        return Err(BackupError::Occupied {
            dir: data_dir.to_path_buf(),
        });
    }
    // A node (even one starting) holds its database: never move it from
    // under one. Held here until the moves are done. A damaged one nobody
    // can hold is what --replace is for.
    let _held = if occupied {
        match NodeStore::open(&database) {
            Ok(store) => Some(store),
            Err(error @ StoreError::InUse { .. }) => return Err(error.into()),
            Err(_) => None,
        }
    } else {
        None
    };
    let staging = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(data_dir)
        .map_err(write_error(data_dir))?;
    // Names come from the archive: cap-std holds every write inside the
    // staging directory, whatever a forged name or a planted link says.
    let staged = cap_std::fs::Dir::open_ambient_dir(staging.path(), cap_std::ambient_authority())
        .map_err(write_error(staging.path()))?;
    let manifest = unpack(input, key, what, |name, body| {
        if let Some(parent) = Path::new(name).parent()
            && !parent.as_os_str().is_empty()
        {
            staged.create_dir_all(parent)?;
        }
        let mut options = cap_std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use cap_std::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = staged.open_with(name, &options)?;
        io::copy(body, &mut file)?;
        file.sync_all()
    })?;
    // The database must open, checksums and all, before it replaces any.
    drop(NodeStore::open(&staging.path().join(DATABASE_FILE_NAME))?);

    let is_identity = |name: &str| {
        name == crate::fleet::IDENTITY_KEY_FILE || name == crate::fleet::IDENTITY_PUBLIC_FILE
    };
    let restoring: Vec<String> = top_level_names(&manifest)
        .filter(|name| !(options.new_identity && is_identity(name)))
        .collect();
    // Everything that is in the way is known before anything moves.
    let in_the_way: Vec<String> = restoring
        .iter()
        .cloned()
        .chain([
            crate::node::COMPILED_DIR.to_string(),
            BACKUP_KEY_FILE.to_string(),
        ])
        .chain(
            options
                .new_identity
                .then(|| {
                    [
                        crate::fleet::IDENTITY_KEY_FILE.to_string(),
                        crate::fleet::IDENTITY_PUBLIC_FILE.to_string(),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .filter(|name| data_dir.join(name).exists())
        .collect();
    // With --new-identity the identity there must go too: left in place,
    // the box would keep the old node's.
    let clashing: Vec<&String> = in_the_way
        .iter()
        .filter(|name| restoring.contains(name) || (options.new_identity && is_identity(name)))
        .collect();
    if !options.replace && !clashing.is_empty() {
        return Err(BackupError::Occupied {
            dir: data_dir.to_path_buf(),
        });
    }
    let moved_aside = (!in_the_way.is_empty() && options.replace)
        .then(|| data_dir.join(format!("before-restore-{}", crate::clock::now_seconds())));
    // Each move is recorded, so a failure part way puts everything back.
    let mut moves: Vec<(PathBuf, PathBuf)> = Vec::new();
    let moved = (|| {
        if let Some(aside) = &moved_aside {
            std::fs::create_dir(aside).map_err(write_error(aside))?;
            for name in &in_the_way {
                let (from, to) = (data_dir.join(name), aside.join(name));
                std::fs::rename(&from, &to).map_err(write_error(&from))?;
                moves.push((from, to));
            }
        }
        for name in &restoring {
            let (from, to) = (staging.path().join(name), data_dir.join(name));
            std::fs::rename(&from, &to).map_err(write_error(&to))?;
            moves.push((from, to));
        }
        // Backups made from now on use the same key, so one recovery code
        // keeps opening them.
        let key_path = data_dir.join(BACKUP_KEY_FILE);
        if !key_path.exists() {
            crate::secret_file::create(&key_path, &format!("{}\n", hex::encode(key)))
                .map_err(write_error(&key_path))?;
        }
        Ok(())
    })();
    if let Err(error) = moved {
        let mut put_back = true;
        for (from, to) in moves.iter().rev() {
            put_back &= std::fs::rename(to, from).is_ok();
        }
        if put_back {
            if let Some(aside) = &moved_aside {
                let _ = std::fs::remove_dir(aside);
            }
            return Err(error);
        }
        // Keep every file where the operator can find it.
        return Err(BackupError::HalfRestored {
            cause: error.to_string(),
            staging: staging.keep(),
            aside: moved_aside.as_ref().map_or_else(
                || "nowhere".to_string(),
                |aside| aside.display().to_string(),
            ),
            marker: data_dir.join(RESTORING_FILE),
        });
    }
    if let Ok(dir) = std::fs::File::open(data_dir) {
        let _ = dir.sync_all();
    }
    Ok(Restored {
        identity_restored: restoring
            .iter()
            .any(|name| name == crate::fleet::IDENTITY_KEY_FILE),
        manifest,
        moved_aside,
    })
}

/// The top-level names a manifest's files live under, each once.
fn top_level_names(manifest: &Manifest) -> impl Iterator<Item = String> + '_ {
    let mut names: Vec<String> = manifest
        .files
        .iter()
        .filter_map(|file| file.path.split('/').next().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recovery_code_reads_back_however_it_was_copied() {
        let key: BackupKey = std::array::from_fn(|i| i as u8);
        let code = recovery_code(&key);
        assert_eq!(code.len(), 64 + 15);
        assert_eq!(parse_recovery_code(&code).expect("parses"), key);
        let spaced = code.replace('-', " ").to_uppercase();
        assert_eq!(parse_recovery_code(&spaced).expect("parses"), key);
        assert!(parse_recovery_code("abcd").is_err());
    }

    #[test]
    fn entries_stay_inside_the_data_directory() {
        for good in [
            "outpost.redb",
            "node.key",
            "plugins/acme/x/1.0.0/assets/logo.bin",
        ] {
            check_entry_name(good).expect(good);
        }
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "plugins/../../x",
            "backup.key",
            "compiled/x",
            "",
        ] {
            assert!(check_entry_name(bad).is_err(), "{bad}");
        }
    }
}
