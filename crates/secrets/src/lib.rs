//! Secrets encrypted at rest.
//!
//! roster keeps vendor credentials (API tokens, partner secrets, a SCIM
//! token a vendor shows once) in its database, but never in the clear: each
//! value is *sealed* with a master key that lives outside the database, so a
//! database dump or backup alone reveals nothing.
//!
//! # Concepts
//!
//! * **Keyring.** A [`Keyring`] holds one or more 32-byte master keys, each
//!   with a short id. The first is *current*: [`Keyring::seal`] always uses
//!   it. [`Keyring::open`] uses whichever key the sealed value names, so a
//!   rotation is "add a new current key, keep the old one until every value
//!   has been re-sealed".
//! * **Sealed value.** `v1:<key-id>:<base64url(nonce || ciphertext)>`, one
//!   line of ASCII that any database column holds. The cipher is
//!   XChaCha20-Poly1305 with a fresh random 24-byte nonce per value (large
//!   enough that random nonces never collide in practice).
//! * **Binding to a name.** The caller passes the secret's name as `aad`
//!   (additional authenticated data). It is not stored in the sealed value
//!   but is authenticated with it, so a sealed value copied under another
//!   name, or one whose key id was edited, fails to open instead of handing
//!   one connection's credential to another.
//! * **Where the master key comes from.** [`Keyring::load`]: the environment
//!   variable `ROSTER_MASTER_KEY` if set (needed when several servers share
//!   a PostgreSQL database), else `<data_dir>/master.key`, created on first
//!   use with mode 0600. A key file that group or others can read is
//!   refused: a key anyone on the machine can read protects nothing.
//!
//! # Key specification
//!
//! Both the variable and the file hold a comma- (or newline-) separated list
//! of keys, current first. Each entry is `id:base64` or a bare `base64`
//! (standard or URL-safe alphabet, padding optional) of exactly 32 bytes. A
//! bare key's id is its fingerprint ([`key_fingerprint`]), so a key written
//! once without an id keeps the same id when it later becomes an old key:
//!
//! ```text
//! ROSTER_MASTER_KEY="2027:Xy...new...=,Ab...old...="
//! ```
//!
//! # Invariants
//!
//! * No error message, `Debug` output or log line contains key bytes or
//!   plaintext. Keys and opened values live in [`zeroize::Zeroizing`]
//!   buffers that are wiped on drop.
//! * Opening never falls back to another key: a value names its key, and a
//!   value whose key is missing fails with [`SecretsError::UnknownKey`].

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

pub use secrecy::{ExposeSecret, SecretString};
pub use zeroize::Zeroizing;

/// The environment variable that holds the master key(s).
pub const MASTER_KEY_ENV: &str = "ROSTER_MASTER_KEY";
/// The key file's name inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";
/// The prefix of every sealed value this version writes.
pub const SEALED_PREFIX: &str = "v1";

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Longest key id accepted; ids appear in every sealed value.
const MAX_KEY_ID: usize = 32;
/// Longest secret name accepted by [`check_name`].
const MAX_NAME: usize = 128;
/// Domain separation: the AAD is `roster-secret/v1/<key-id>/<name>`, so a
/// value sealed here can never be mistaken for another protocol's.
const AAD_DOMAIN: &str = "roster-secret";

/// What went wrong. Every message starts with a stable code and never
/// contains key material or plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// The master key specification (variable or file) is malformed.
    #[error("SEC-0001 bad master key in {origin}: {reason}")]
    BadKey { origin: String, reason: String },

    /// The key file could not be read or written.
    #[error("SEC-0002 cannot use key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The key file is readable or writable by group or others.
    #[error(
        "SEC-0003 key file {path} has mode {mode:04o}, so users other than its owner can use it; \
         run `chmod 600 {path}` (and rotate the key if anyone else may have read it)"
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },

    /// A sealed value is not in the `v1:<key-id>:<base64url>` form.
    #[error("SEC-0004 malformed sealed value: {reason}")]
    Malformed { reason: String },

    /// The value was sealed with a key this keyring does not hold.
    #[error(
        "SEC-0005 the value was sealed with key {id:?}, which is not in the keyring (keys: {known}); \
         add it to {MASTER_KEY_ENV} or restore the key file"
    )]
    UnknownKey { id: String, known: String },

    /// Authentication failed: the value was altered, or is opened under a
    /// different name than it was sealed with.
    #[error(
        "SEC-0006 cannot open the secret {name:?}: it was altered, or sealed under another name"
    )]
    OpenFailed { name: String },

    /// Encryption failed (the value is too large for one message).
    #[error("SEC-0007 cannot seal the secret {name:?}: {reason}")]
    SealFailed { name: String, reason: String },

    /// The system random number generator failed.
    #[error("SEC-0008 the system random number generator failed: {0}")]
    Random(String),

    /// A secret name roster refuses (empty, too long, odd characters).
    #[error(
        "SEC-0009 invalid secret name {name:?}: use 1-{MAX_NAME} letters, digits, '.', '_' or '-'"
    )]
    BadName { name: String },

    /// A secret's value is not UTF-8 text where text was required.
    #[error("SEC-0010 the secret {name:?} is not UTF-8 text")]
    NotText { name: String },

    /// No master key exists yet where one was required.
    #[error(
        "SEC-0011 no master key: {MASTER_KEY_ENV} is not set and {path} does not exist; \
         stored secrets cannot be opened without the key they were sealed with"
    )]
    NoKey { path: PathBuf },
}

impl SecretsError {
    /// The stable code at the start of the message (`SEC-0001`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            SecretsError::BadKey { .. } => "SEC-0001",
            SecretsError::KeyFile { .. } => "SEC-0002",
            SecretsError::KeyFilePermissions { .. } => "SEC-0003",
            SecretsError::Malformed { .. } => "SEC-0004",
            SecretsError::UnknownKey { .. } => "SEC-0005",
            SecretsError::OpenFailed { .. } => "SEC-0006",
            SecretsError::SealFailed { .. } => "SEC-0007",
            SecretsError::Random(_) => "SEC-0008",
            SecretsError::BadName { .. } => "SEC-0009",
            SecretsError::NotText { .. } => "SEC-0010",
            SecretsError::NoKey { .. } => "SEC-0011",
        }
    }
}

/// Checks a secret name: 1-128 ASCII letters, digits, `.`, `_` or `-`.
/// Names appear in config files, CLI arguments and messages, so they are
/// kept boring.
pub fn check_name(name: &str) -> Result<(), SecretsError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(SecretsError::BadName {
            name: name.chars().take(MAX_NAME).collect(),
        })
    }
}

/// The id a key gets when none is written: `k` and the first 8 hex digits
/// of SHA-256 over a domain tag and the key. It identifies the key without
/// revealing anything usable about it.
pub fn key_fingerprint(key: &[u8; KEY_LEN]) -> String {
    let mut h = Sha256::new();
    h.update(b"roster-master-key-id/v1/");
    h.update(key);
    let digest = h.finalize();
    format!("k{}", hex::encode(&digest[..4]))
}

/// One master key. Its bytes are wiped on drop and never printed.
struct MasterKey {
    id: String,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({:?}, [redacted])", self.id)
    }
}

/// A set of master keys; the first is current. See the module docs.
pub struct Keyring {
    keys: Vec<MasterKey>,
    /// Where the keys came from, for messages.
    origin: String,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("origin", &self.origin)
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// A keyring with one key, current, under `id`.
    pub fn new(id: &str, key: [u8; KEY_LEN]) -> Result<Keyring, SecretsError> {
        let key = Zeroizing::new(key);
        let mut ring = Keyring {
            keys: Vec::new(),
            origin: "the program".into(),
        };
        ring.push(id.to_string(), key)?;
        Ok(ring)
    }

    /// A keyring with one fresh random key (its id is its fingerprint).
    pub fn generate() -> Result<Keyring, SecretsError> {
        let key = random_key()?;
        let id = key_fingerprint(&key);
        let mut ring = Keyring {
            keys: Vec::new(),
            origin: "a generated key".into(),
        };
        ring.push(id, key)?;
        Ok(ring)
    }

    /// Makes `key` the current key under `id`; the previous keys stay for
    /// opening values sealed with them.
    pub fn rotate_to(&mut self, id: &str, key: [u8; KEY_LEN]) -> Result<(), SecretsError> {
        self.push(id.to_string(), Zeroizing::new(key))?;
        // `push` appends; the new key becomes current by moving to the front.
        self.keys.rotate_right(1);
        Ok(())
    }

    /// Parses a key specification (see the module docs). `origin` says
    /// where it came from, for messages.
    pub fn from_spec(spec: &str, origin: &str) -> Result<Keyring, SecretsError> {
        let bad = |reason: String| SecretsError::BadKey {
            origin: origin.to_string(),
            reason,
        };
        let mut ring = Keyring {
            keys: Vec::new(),
            origin: origin.to_string(),
        };
        for (n, entry) in spec
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (id, encoded) = match entry.split_once(':') {
                Some((id, encoded)) => (Some(id.trim()), encoded.trim()),
                None => (None, entry),
            };
            let key = decode_key(encoded)
                .map_err(|reason| bad(format!("key {} of the list: {reason}", n + 1)))?;
            let id = match id {
                Some(id) => id.to_string(),
                None => key_fingerprint(&key),
            };
            ring.push(id, key).map_err(|e| match e {
                SecretsError::BadKey { reason, .. } => bad(reason),
                other => other,
            })?;
        }
        if ring.keys.is_empty() {
            return Err(bad("no key given".into()));
        }
        Ok(ring)
    }

    /// The keyring roster uses: `ROSTER_MASTER_KEY` if set, else
    /// `<data_dir>/master.key`, created with a random key on first use.
    pub fn load(data_dir: &Path) -> Result<Keyring, SecretsError> {
        let env = std::env::var(MASTER_KEY_ENV).ok().map(Zeroizing::new);
        Self::load_from(env.as_deref().map(String::as_str), data_dir, true)
    }

    /// Like [`Keyring::load`], but never creates a key: for reading values
    /// that must already have been sealed with an existing key.
    pub fn load_existing(data_dir: &Path) -> Result<Keyring, SecretsError> {
        let env = std::env::var(MASTER_KEY_ENV).ok().map(Zeroizing::new);
        Self::load_from(env.as_deref().map(String::as_str), data_dir, false)
    }

    /// [`Keyring::load`] with the variable's value passed in (tests need not
    /// touch the process environment). An empty value counts as unset.
    pub fn load_from(
        env_value: Option<&str>,
        data_dir: &Path,
        create: bool,
    ) -> Result<Keyring, SecretsError> {
        if let Some(spec) = env_value.filter(|v| !v.trim().is_empty()) {
            return Self::from_spec(spec, MASTER_KEY_ENV);
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        match read_key_file(&path) {
            Ok(spec) => Self::from_spec(&spec, &path.display().to_string()),
            Err(SecretsError::KeyFile { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                if create {
                    create_key_file(&path)
                } else {
                    Err(SecretsError::NoKey { path })
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The id of the key [`Keyring::seal`] uses.
    pub fn current_id(&self) -> &str {
        // `keys` is never empty: every constructor pushes at least one key.
        self.keys.first().map(|k| k.id.as_str()).unwrap_or_default()
    }

    /// Every key id, current first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// Where the keys came from (`ROSTER_MASTER_KEY` or the key file path).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Seals `plaintext` under the name `aad` with the current key.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> Result<String, SecretsError> {
        let key = self.keys.first().ok_or_else(|| SecretsError::SealFailed {
            name: aad.to_string(),
            reason: "the keyring is empty".into(),
        })?;
        let cipher = cipher(key);
        let nonce = XNonce::try_generate().map_err(|e| SecretsError::Random(e.to_string()))?;
        let aad_bytes = bound_aad(&key.id, aad);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: aad_bytes.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::SealFailed {
                name: aad.to_string(),
                reason: "the value is too large".into(),
            })?;
        let mut body = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        body.extend_from_slice(nonce.as_slice());
        body.extend_from_slice(&ciphertext);
        Ok(format!(
            "{SEALED_PREFIX}:{}:{}",
            key.id,
            URL_SAFE_NO_PAD.encode(&body)
        ))
    }

    /// Opens a value sealed under the name `aad`.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let parsed = parse_sealed(sealed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == parsed.key_id)
            .ok_or_else(|| SecretsError::UnknownKey {
                id: parsed.key_id.to_string(),
                known: self.key_ids().collect::<Vec<_>>().join(", "),
            })?;
        let (nonce, ciphertext) = parsed.body.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SecretsError::Malformed {
            reason: "bad nonce length".into(),
        })?;
        let aad_bytes = bound_aad(&key.id, aad);
        cipher(key)
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: aad_bytes.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SecretsError::OpenFailed {
                name: aad.to_string(),
            })
    }

    /// Opens a value and returns it as text, for credentials.
    pub fn open_string(&self, sealed: &str, aad: &str) -> Result<SecretString, SecretsError> {
        let mut bytes = self.open(sealed, aad)?;
        let text = std::str::from_utf8(&bytes)
            .map(|s| SecretString::from(s.to_string()))
            .map_err(|_| SecretsError::NotText {
                name: aad.to_string(),
            });
        bytes.zeroize();
        text
    }

    /// Makes a fresh random key current (its id is its fingerprint) and
    /// returns its id; the previous keys stay for opening old values. The
    /// first step of `roster secret rotate`.
    pub fn rotate_generate(&mut self) -> Result<String, SecretsError> {
        let key = random_key()?;
        let id = key_fingerprint(&key);
        self.push(id.clone(), key)?;
        self.keys.rotate_right(1);
        Ok(id)
    }

    /// Opens `sealed` (with whichever key it names) and seals the same
    /// value, under the same name, with the current key. The plaintext is
    /// wiped before this returns.
    pub fn reseal(&self, sealed: &str, aad: &str) -> Result<String, SecretsError> {
        let plain = self.open(sealed, aad)?;
        self.seal(&plain, aad)
    }

    /// Drops every key but the current one and returns the dropped ids.
    /// Values sealed with them no longer open with this keyring: call it
    /// only once every value has been re-sealed ([`Keyring::reseal`]).
    pub fn retire_old_keys(&mut self) -> Vec<String> {
        self.keys.drain(1..).map(|k| k.id.clone()).collect()
    }

    /// True when `sealed` was sealed with a key other than the current one
    /// (so a rotation should re-seal it).
    pub fn needs_reseal(&self, sealed: &str) -> Result<bool, SecretsError> {
        Ok(sealed_key_id(sealed)? != self.current_id())
    }

    fn push(&mut self, id: String, bytes: Zeroizing<[u8; KEY_LEN]>) -> Result<(), SecretsError> {
        let bad = |reason: String| SecretsError::BadKey {
            origin: self.origin.clone(),
            reason,
        };
        if id.is_empty()
            || id.len() > MAX_KEY_ID
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(bad(format!(
                "key id {id:?} must be 1-{MAX_KEY_ID} letters, digits, '.', '_' or '-'"
            )));
        }
        if self.keys.iter().any(|k| k.id == id) {
            return Err(bad(format!("key id {id:?} appears twice")));
        }
        self.keys.push(MasterKey { id, bytes });
        Ok(())
    }
}

/// The key id a sealed value names, without opening it.
pub fn sealed_key_id(sealed: &str) -> Result<&str, SecretsError> {
    Ok(parse_sealed(sealed)?.key_id)
}

struct Parsed<'a> {
    key_id: &'a str,
    body: Vec<u8>,
}

fn parse_sealed(sealed: &str) -> Result<Parsed<'_>, SecretsError> {
    let malformed = |reason: &str| SecretsError::Malformed {
        reason: reason.to_string(),
    };
    let mut parts = sealed.trim().splitn(3, ':');
    let (Some(version), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected v1:<key-id>:<data>"));
    };
    if version != SEALED_PREFIX {
        return Err(malformed(
            "unknown format version (sealed by a newer roster?)",
        ));
    }
    if key_id.is_empty() {
        return Err(malformed("empty key id"));
    }
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| malformed("the data is not base64url"))?;
    if body.len() < NONCE_LEN + TAG_LEN {
        return Err(malformed("the data is too short"));
    }
    Ok(Parsed { key_id, body })
}

fn cipher(key: &MasterKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&(*key.bytes).into())
}

fn bound_aad(key_id: &str, name: &str) -> String {
    format!("{AAD_DOMAIN}/{SEALED_PREFIX}/{key_id}/{name}")
}

fn decode_key(encoded: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    let decoded = [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(encoded).ok())
        .map(Zeroizing::new)
        .ok_or_else(|| "not base64".to_string())?;
    if decoded.len() != KEY_LEN {
        return Err(format!(
            "decodes to {} bytes; a master key is exactly {KEY_LEN} bytes (e.g. `openssl rand -base64 32`)",
            decoded.len()
        ));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&decoded);
    Ok(key)
}

fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, SecretsError> {
    let mut generated =
        chacha20poly1305::Key::try_generate().map_err(|e| SecretsError::Random(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(generated.as_slice());
    generated.as_mut_slice().zeroize();
    Ok(key)
}

fn read_key_file(path: &Path) -> Result<Zeroizing<String>, SecretsError> {
    let io = |source| SecretsError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    check_permissions(path, &file)?;
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(io)?;
    Ok(text)
}

#[cfg(unix)]
fn check_permissions(path: &Path, file: &std::fs::File) -> Result<(), SecretsError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .map_err(|source| SecretsError::KeyFile {
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _file: &std::fs::File) -> Result<(), SecretsError> {
    // Windows ACLs are not modes; the data directory's ACL governs access.
    Ok(())
}

/// Replaces the key file at `path` with `ring`'s keys (current first, one
/// `id:base64` a line), atomically: a crash leaves either the old file or
/// the new one, never a torn one, and the file is never readable by
/// others. Used by `roster secret rotate`; the key material goes nowhere
/// but the file.
pub fn write_key_file(path: &Path, ring: &Keyring) -> Result<(), SecretsError> {
    let io = |source| SecretsError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut text = Zeroizing::new(String::new());
    for key in &ring.keys {
        text.push_str(&key.id);
        text.push(':');
        let encoded = Zeroizing::new(STANDARD.encode(&key.bytes[..]));
        text.push_str(&encoded);
        text.push('\n');
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".master.key.")
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(text.as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    // The rename is durable only once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes a fresh key file with mode 0600, atomically and without
/// replacing one another process wrote first (then that one is used).
fn create_key_file(path: &Path) -> Result<Keyring, SecretsError> {
    let io = |source| SecretsError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let key = random_key()?;
    let mut encoded = Zeroizing::new(STANDARD.encode(*key));
    encoded.push('\n');
    // tempfile creates the file with mode 0600 on unix, so the key is never
    // readable by others, not even for an instant.
    let mut tmp = tempfile::Builder::new()
        .prefix(".master.key.")
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(encoded.as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {
            let origin = path.display().to_string();
            let mut ring = Keyring {
                keys: Vec::new(),
                origin,
            };
            let id = key_fingerprint(&key);
            ring.push(id, key)?;
            Ok(ring)
        }
        // Another process created the key first: use theirs.
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            let spec = read_key_file(path)?;
            Keyring::from_spec(&spec, &path.display().to_string())
        }
        Err(e) => Err(io(e.error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(byte: u8) -> Keyring {
        Keyring::new("k1", [byte; KEY_LEN]).unwrap()
    }

    #[test]
    fn seal_then_open_round_trips_and_uses_a_fresh_nonce() {
        let r = ring(7);
        let a = r.seal(b"hunter2", "expensify-partner-secret").unwrap();
        let b = r.seal(b"hunter2", "expensify-partner-secret").unwrap();
        assert!(a.starts_with("v1:k1:"), "{a}");
        assert_ne!(a, b, "two seals of one value must differ (random nonce)");
        assert!(!a.contains("hunter2"));
        let opened = r.open(&a, "expensify-partner-secret").unwrap();
        assert_eq!(opened.as_slice(), b"hunter2");
        assert_eq!(
            r.open_string(&b, "expensify-partner-secret")
                .unwrap()
                .expose_secret(),
            "hunter2"
        );
    }

    #[test]
    fn empty_values_round_trip() {
        let r = ring(1);
        let s = r.seal(b"", "n").unwrap();
        assert!(r.open(&s, "n").unwrap().is_empty());
    }

    #[test]
    fn a_value_copied_to_another_name_does_not_open() {
        let r = ring(7);
        let s = r.seal(b"bill-token", "bill-api-token").unwrap();
        let err = r.open(&s, "spendesk-client-secret").unwrap_err();
        assert_eq!(err.code(), "SEC-0006");
        assert!(err.to_string().contains("spendesk-client-secret"));
        assert!(!err.to_string().contains("bill-token"));
    }

    #[test]
    fn tampering_is_detected() {
        let r = ring(7);
        let s = r.seal(b"a secret value", "n").unwrap();
        let (head, body) = s.rsplit_once(':').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        // Flip one bit in the nonce, the ciphertext and the tag in turn.
        for i in [0, NONCE_LEN + 1, bytes.len() - 1] {
            bytes[i] ^= 0x01;
            let forged = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert_eq!(r.open(&forged, "n").unwrap_err().code(), "SEC-0006", "{i}");
            bytes[i] ^= 0x01;
        }
        // Truncated and garbled values are malformed, not a panic.
        assert_eq!(r.open("v1:k1:AAAA", "n").unwrap_err().code(), "SEC-0004");
        assert_eq!(r.open("v1:k1:***", "n").unwrap_err().code(), "SEC-0004");
        assert_eq!(r.open("plain text", "n").unwrap_err().code(), "SEC-0004");
        assert_eq!(
            r.open(&s.replacen("v1", "v9", 1), "n").unwrap_err().code(),
            "SEC-0004"
        );
    }

    #[test]
    fn relabelling_the_key_id_does_not_open() {
        // Both keys identical, so only the AAD's key id differs.
        let mut r = ring(7);
        r.rotate_to("k2", [7; KEY_LEN]).unwrap();
        let s = r.seal(b"x", "n").unwrap();
        assert!(s.starts_with("v1:k2:"));
        let relabelled = s.replacen("v1:k2:", "v1:k1:", 1);
        assert_eq!(r.open(&relabelled, "n").unwrap_err().code(), "SEC-0006");
    }

    #[test]
    fn rotation_keeps_old_values_open_and_seals_with_the_new_key() {
        let mut r = ring(1);
        let old = r.seal(b"old value", "n").unwrap();
        r.rotate_to("k2", [2; KEY_LEN]).unwrap();
        assert_eq!(r.current_id(), "k2");
        assert_eq!(r.key_ids().collect::<Vec<_>>(), ["k2", "k1"]);
        assert_eq!(r.open(&old, "n").unwrap().as_slice(), b"old value");
        assert!(r.needs_reseal(&old).unwrap());
        let new = r.seal(b"new value", "n").unwrap();
        assert!(new.starts_with("v1:k2:"), "{new}");
        assert!(!r.needs_reseal(&new).unwrap());

        // A keyring without the old key says which key is missing.
        let only_new = Keyring::new("k2", [2; KEY_LEN]).unwrap();
        let err = only_new.open(&old, "n").unwrap_err();
        assert_eq!(err.code(), "SEC-0005");
        assert!(err.to_string().contains("\"k1\""), "{err}");
        // A different key under the same id fails authentication.
        let impostor = Keyring::new("k1", [9; KEY_LEN]).unwrap();
        assert_eq!(impostor.open(&old, "n").unwrap_err().code(), "SEC-0006");
    }

    #[test]
    fn rotate_generate_reseal_and_retire() {
        let mut r = ring(1);
        let old = r.seal(b"value", "n").unwrap();
        let new_id = r.rotate_generate().unwrap();
        assert_eq!(r.current_id(), new_id);
        assert!(new_id.starts_with('k') && new_id != "k1", "{new_id}");
        let resealed = r.reseal(&old, "n").unwrap();
        assert!(resealed.starts_with(&format!("v1:{new_id}:")), "{resealed}");
        // Re-sealing keeps the name binding: it opens only under "n".
        assert_eq!(r.reseal(&old, "m").unwrap_err().code(), "SEC-0006");
        assert_eq!(r.retire_old_keys(), ["k1"]);
        assert_eq!(r.key_ids().collect::<Vec<_>>(), [new_id.as_str()]);
        assert_eq!(r.open(&resealed, "n").unwrap().as_slice(), b"value");
        assert_eq!(r.open(&old, "n").unwrap_err().code(), "SEC-0005");
    }

    #[test]
    fn a_written_key_file_loads_back_private_and_current_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = ring(3);
        r.rotate_to("k2", [4; KEY_LEN]).unwrap();
        let sealed = r.seal(b"x", "n").unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        write_key_file(&path, &r).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let back = Keyring::load_from(None, dir.path(), false).unwrap();
        assert_eq!(back.key_ids().collect::<Vec<_>>(), ["k2", "k1"]);
        assert_eq!(back.open(&sealed, "n").unwrap().as_slice(), b"x");
        // Replacing it with fewer keys drops the others.
        r.retire_old_keys();
        write_key_file(&path, &r).unwrap();
        let back = Keyring::load_from(None, dir.path(), false).unwrap();
        assert_eq!(back.key_ids().collect::<Vec<_>>(), ["k2"]);
    }

    #[test]
    fn specs_name_keys_and_bare_keys_get_their_fingerprint() {
        let old = [1u8; KEY_LEN];
        let new = [2u8; KEY_LEN];
        let bare = Keyring::from_spec(&STANDARD.encode(old), "test").unwrap();
        let sealed = bare.seal(b"v", "n").unwrap();
        assert_eq!(bare.current_id(), key_fingerprint(&old));

        // Rotation by spec: a named new key first, the old one still bare.
        let spec = format!(
            "2027:{}, {}",
            URL_SAFE_NO_PAD.encode(new),
            STANDARD.encode(old)
        );
        let rotated = Keyring::from_spec(&spec, "test").unwrap();
        assert_eq!(rotated.current_id(), "2027");
        assert_eq!(rotated.open(&sealed, "n").unwrap().as_slice(), b"v");

        for (spec, needle) in [
            ("", "no key"),
            ("k1:AAAA", "exactly 32 bytes"),
            ("k1:not base64!", "not base64"),
        ] {
            let err = Keyring::from_spec(spec, "ROSTER_MASTER_KEY").unwrap_err();
            assert_eq!(err.code(), "SEC-0001");
            assert!(err.to_string().contains(needle), "{err}");
            assert!(err.to_string().contains("ROSTER_MASTER_KEY"), "{err}");
        }
        let twice = format!("a:{0},a:{0}", STANDARD.encode(old));
        assert!(
            Keyring::from_spec(&twice, "t")
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let bad_id = format!("a b:{}", STANDARD.encode(old));
        assert_eq!(
            Keyring::from_spec(&bad_id, "t").unwrap_err().code(),
            "SEC-0001"
        );
    }

    #[test]
    fn errors_and_debug_never_show_key_bytes_or_plaintext() {
        let key = [0xAB; KEY_LEN];
        let r = Keyring::new("k1", key).unwrap();
        let dbg = format!("{r:?}");
        assert!(dbg.contains("k1"), "{dbg}");
        for shown in [
            STANDARD.encode(key),
            hex::encode(key),
            "171, 171".to_string(),
            "0xab".to_string(),
        ] {
            assert!(!dbg.to_lowercase().contains(&shown.to_lowercase()), "{dbg}");
        }
        let secret = r.open_string(&r.seal(b"pa55word", "n").unwrap(), "n");
        let dbg = format!("{secret:?}");
        assert!(!dbg.contains("pa55word"), "{dbg}");

        // A malformed key spec does not echo the key text back.
        let spec = "k1:c2VjcmV0LWtleS1tYXRlcmlhbA==";
        let err = Keyring::from_spec(spec, "t").unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
        assert!(!format!("{err:?}").contains("c2VjcmV0"), "{err:?}");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("expensify-partner-secret").is_ok());
        assert!(check_name("bill.api_token-2").is_ok());
        for bad in ["", "has space", "semi;colon", "a/b", &"x".repeat(129)] {
            assert_eq!(check_name(bad).unwrap_err().code(), "SEC-0009", "{bad:?}");
        }
    }
}
