//! Anchoring the audit log outside the database.
//!
//! The store's hash chain ([`roster_store::audit`]) shows that no event in
//! the middle was edited, removed or reordered, but whoever can write the
//! database can cut the last events and point the head row at the new last
//! one: the shorter chain is still consistent. To catch that, roster signs
//! **checkpoints** of the chain head and hands them to **witnesses** the
//! database's owner cannot rewrite.
//!
//! # Concepts
//!
//! * **Signing key.** An Ed25519 key (ring) in a file outside the database
//!   (`[audit] signing_key`, default `<data_dir>/audit-signing.key`): 64 hex
//!   digits of seed, mode 0600, created on first use; a key file others can
//!   read is refused. `roster audit key` prints its public key, which is
//!   what a verifier needs.
//! * **Checkpoint.** One JSON line,
//!   `{"v":1,"seq":N,"hash":"...","at_ms":T,"key":"<public hex>","sig":"<hex>"}`;
//!   the signature covers `roster-audit-checkpoint/v1\n{seq}\n{hash}\n{at_ms}\n{key}`.
//! * **Witness.** A file opened with `O_APPEND` (meant for another volume,
//!   another owner, or a WORM mount), or a webhook that receives each
//!   checkpoint as a JSON POST. Files can be read back by `roster audit
//!   verify`; a webhook cannot, so what it received is checked by passing
//!   an export of it (`--checkpoints FILE`).
//!
//! # When checkpoints are made
//!
//! [`AuditAnchor::checkpoint`] signs the head when it moved since the last
//! checkpoint queued for a witness, queues the checkpoint in the store
//! (`audit_checkpoint`), then delivers every pending checkpoint to each
//! witness in order. The CLI calls it once after every command that opened
//! the engine (so after `plan`, `apply`, `approve`, ...), and `roster run` /
//! `serve` call it every `checkpoint_interval_secs`.
//!
//! # When a witness is down
//!
//! The command still succeeds: an unreachable witness must not stop
//! offboarding. The checkpoint stays queued in the store and is retried by
//! the next command or tick; the failure is logged at WARN and returned in
//! [`CheckpointOutcome::warnings`] for the CLI to print. `roster audit
//! verify` reports how many events lie beyond the last witnessed
//! checkpoint and since when the witness is unreachable. Events appended
//! after the last checkpoint a witness holds are not protected against a
//! cut tail; that window is what the report states.
//!
//! # Verification
//!
//! [`verify`] checks the chain, then every checkpoint each readable witness
//! holds: the key must be this installation's (or a listed previous key),
//! the signature must verify, the database must not end before the
//! checkpoint's event, and that event must have the witnessed hash. The
//! first problem is the error.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use roster_secrets::Zeroizing;
use roster_store::{AuditError, AuditReport, Store, StoreError, WitnessState};
use serde::{Deserialize, Serialize};

use crate::config::{AuditConfig, RawWitness};

/// Domain separation for checkpoint signatures.
const CHECKPOINT_DOMAIN: &str = "roster-audit-checkpoint/v1";
/// How long one webhook delivery may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// An anchoring failure. Every message starts with a stable code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// The signing key file cannot be read, created or trusted.
    #[error("AUDIT-0010 cannot use the audit signing key {path}: {reason}")]
    Key { path: PathBuf, reason: String },

    /// The hash chain itself is broken (see the store's `AUDIT-0001`).
    #[error(transparent)]
    Chain(AuditError),

    /// A witness could not be read back.
    #[error("AUDIT-0012 cannot read witness {witness}: {reason}")]
    WitnessRead { witness: String, reason: String },

    /// A checkpoint's signature does not verify.
    #[error(
        "AUDIT-0013 {witness} line {line}: the checkpoint of event {seq} has an invalid \
         signature: it was not written by roster's audit key"
    )]
    BadSignature {
        witness: String,
        line: usize,
        seq: u64,
    },

    /// A checkpoint is signed by a key this installation does not trust.
    #[error(
        "AUDIT-0014 {witness} line {line}: the checkpoint of event {seq} is signed by key \
         {key}, not by this installation's audit key ({ours}); if the signing key was \
         replaced on purpose, list the old public key in [audit] previous_keys"
    )]
    UnknownKey {
        witness: String,
        line: usize,
        seq: u64,
        key: String,
        ours: String,
    },

    /// The database ends before a witnessed checkpoint: events were cut
    /// from the end (and the head row rewritten to hide it).
    #[error(
        "AUDIT-0015 events were cut from the end of the audit log: {witness} holds a \
         checkpoint of event {seq} signed at {at}, but the log now ends at event {head}"
    )]
    CutTail {
        witness: String,
        seq: u64,
        at: String,
        head: u64,
    },

    /// The database's event at a witnessed position has another hash.
    #[error(
        "AUDIT-0016 the audit log was rewritten at or before event {seq}: {witness} holds \
         its hash {witnessed} (signed at {at}), the database has {stored}"
    )]
    Rewritten {
        witness: String,
        seq: u64,
        at: String,
        witnessed: String,
        stored: String,
    },

    /// The store failed.
    #[error("AUDIT-0017 {0}")]
    Store(#[from] StoreError),
}

impl AnchorError {
    /// The stable code at the start of the message.
    pub fn code(&self) -> &'static str {
        match self {
            AnchorError::Key { .. } => "AUDIT-0010",
            AnchorError::Chain(e) => e.code(),
            AnchorError::WitnessRead { .. } => "AUDIT-0012",
            AnchorError::BadSignature { .. } => "AUDIT-0013",
            AnchorError::UnknownKey { .. } => "AUDIT-0014",
            AnchorError::CutTail { .. } => "AUDIT-0015",
            AnchorError::Rewritten { .. } => "AUDIT-0016",
            AnchorError::Store(_) => "AUDIT-0017",
        }
    }
}

/// The Ed25519 key that signs checkpoints. Its seed never leaves this
/// struct (no `Debug` of it, wiped on drop).
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public_hex: String,
    path: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("path", &self.path)
            .field("public", &self.public_hex)
            .finish()
    }
}

impl SigningKey {
    /// Loads the key at `path`, creating it (mode 0600, parent directories
    /// too) if there is none.
    pub fn load_or_create(path: &Path) -> Result<SigningKey, AnchorError> {
        if let Some(key) = Self::load_existing(path)? {
            return Ok(key);
        }
        let err = |reason: String| AnchorError::Key {
            path: path.to_path_buf(),
            reason,
        };
        let mut seed = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(seed.as_mut())
            .map_err(|_| err("the system random number generator failed".into()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        // Written whole to a private temporary file, then linked into
        // place: a concurrent first use sees either no key or a complete
        // one, and the loser of the race uses the winner's key.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let text = Zeroizing::new(format!("{}\n", hex::encode(seed.as_ref())));
        let written = write_private(&tmp, text.as_bytes());
        let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), "created the audit signing key");
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(err(e.to_string())),
        }
        Self::load_existing(path)?.ok_or_else(|| err("the key vanished after creation".into()))
    }

    /// Loads the key at `path`; `None` when there is no file.
    pub fn load_existing(path: &Path) -> Result<Option<SigningKey>, AnchorError> {
        let err = |reason: String| AnchorError::Key {
            path: path.to_path_buf(),
            reason,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e.to_string())),
        };
        check_private(path).map_err(err)?;
        let seed = Zeroizing::new(
            hex::decode(text.trim())
                .map_err(|_| err("the file does not hold 64 hex digits".into()))?,
        );
        if seed.len() != 32 {
            return Err(err("the file does not hold 64 hex digits".into()));
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| err(format!("not an Ed25519 seed: {e}")))?;
        let public_hex = hex::encode(pair.public_key().as_ref());
        Ok(Some(SigningKey {
            pair,
            public_hex,
            path: path.to_path_buf(),
        }))
    }

    /// The public key, hex: what `roster audit key` prints and what a
    /// verifier trusts.
    pub fn public_hex(&self) -> &str {
        &self.public_hex
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Signs a checkpoint of the chain head `(seq, hash)` made at `at_ms`.
    pub fn sign(&self, seq: u64, hash: &str, at_ms: i64) -> Checkpoint {
        let msg = checkpoint_message(seq, hash, at_ms, &self.public_hex);
        Checkpoint {
            v: 1,
            seq,
            hash: hash.to_string(),
            at_ms,
            key: self.public_hex.clone(),
            sig: hex::encode(self.pair.sign(msg.as_bytes()).as_ref()),
        }
    }
}

/// Writes `bytes` to a new file only its owner can read, and syncs it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = private_file(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// A key file group or others can read protects nothing.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "it has mode {mode:04o}, so users other than its owner can read it; run \
             `chmod 600 {}` (and replace the key if anyone else may have read it)",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), String> {
    Ok(())
}

fn checkpoint_message(seq: u64, hash: &str, at_ms: i64, key: &str) -> String {
    format!("{CHECKPOINT_DOMAIN}\n{seq}\n{hash}\n{at_ms}\n{key}")
}

/// A signed statement "the audit chain had `seq` events ending in `hash`
/// at `at_ms`". Serialized as one JSON line, fields in this order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Format version (1).
    pub v: u32,
    pub seq: u64,
    pub hash: String,
    pub at_ms: i64,
    /// The signer's public key, hex.
    pub key: String,
    /// The Ed25519 signature, hex.
    pub sig: String,
}

impl Checkpoint {
    /// Does the signature verify with the key the checkpoint names?
    pub fn signature_ok(&self) -> bool {
        let (Ok(key), Ok(sig)) = (hex::decode(&self.key), hex::decode(&self.sig)) else {
            return false;
        };
        let msg = checkpoint_message(self.seq, &self.hash, self.at_ms, &self.key);
        self.v == 1
            && UnparsedPublicKey::new(&ED25519, key)
                .verify(msg.as_bytes(), &sig)
                .is_ok()
    }

    /// The JSON line a witness stores.
    pub fn to_line(&self) -> String {
        // A struct of strings and integers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Where checkpoints go.
#[derive(Clone, Debug)]
pub enum Witness {
    /// An append-only JSON-lines file.
    File(PathBuf),
    /// An HTTP(S) endpoint receiving each checkpoint as a JSON POST.
    Webhook {
        url: String,
        client: reqwest::Client,
    },
}

impl Witness {
    /// Builds the witness a config entry describes.
    /// `allow_private_network`: a webhook may resolve to a private or
    /// link-local address (never a metadata one).
    pub fn from_config(
        w: &RawWitness,
        allow_private_network: bool,
    ) -> Result<Witness, AnchorError> {
        Ok(match w {
            RawWitness::File { file } => Witness::File(file.clone()),
            RawWitness::Webhook { webhook } => {
                // The URL passed the outbound check at load; the client
                // checks what its host name resolves to and never follows a
                // redirect past it (`roster_connectors::egress`).
                let client = roster_connectors::egress::checked_client(
                    WEBHOOK_TIMEOUT,
                    allow_private_network,
                )
                .map_err(|e| AnchorError::WitnessRead {
                    witness: format!("webhook:{webhook}"),
                    reason: format!("cannot build the HTTP client: {e}"),
                })?;
                Witness::Webhook {
                    url: webhook.clone(),
                    client,
                }
            }
        })
    }

    /// The witness's name in the queue, logs and reports. A webhook's
    /// query string (which may carry a token) is left out.
    pub fn name(&self) -> String {
        match self {
            Witness::File(p) => format!("file:{}", p.display()),
            Witness::Webhook { url, .. } => {
                format!("webhook:{}", url.split('?').next().unwrap_or(url))
            }
        }
    }

    /// Hands one checkpoint line to the witness.
    pub async fn deliver(&self, line: &str) -> Result<(), String> {
        match self {
            Witness::File(path) => {
                let path = path.clone();
                let mut bytes = line.as_bytes().to_vec();
                bytes.push(b'\n');
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    // O_APPEND: each checkpoint is one write at the end, even
                    // with several roster processes; the file is never
                    // truncated or rewritten by roster.
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&path)?;
                    f.write_all(&bytes)?;
                    f.sync_data()
                })
                .await
                .map_err(|e| format!("the writer stopped: {e}"))?
                .map_err(|e| e.to_string())
            }
            Witness::Webhook { url, client } => {
                let resp = client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(line.to_string())
                    .send()
                    .await
                    .map_err(|e| format!("request failed: {e}"))?;
                let status = resp.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {status}"))
                }
            }
        }
    }

    /// The file witness's path; `None` for witnesses that cannot be read
    /// back.
    fn readable_path(&self) -> Option<&Path> {
        match self {
            Witness::File(p) => Some(p),
            Witness::Webhook { .. } => None,
        }
    }
}

/// How one witness fared in a [`AuditAnchor::checkpoint`] pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessOutcome {
    pub witness: String,
    /// Checkpoints delivered in this pass.
    pub delivered: usize,
    /// Checkpoints still queued for it.
    pub pending: usize,
    /// The delivery error, when it failed.
    pub error: Option<String>,
    /// Since when deliveries to it fail.
    pub failing_since_ms: Option<i64>,
}

/// What a checkpoint pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointOutcome {
    /// The chain position signed in this pass, if the head had moved.
    pub signed: Option<u64>,
    pub witnesses: Vec<WitnessOutcome>,
}

impl CheckpointOutcome {
    /// One loud line per witness that could not be reached.
    pub fn warnings(&self) -> Vec<String> {
        self.witnesses
            .iter()
            .filter_map(|w| {
                let e = w.error.as_ref()?;
                Some(format!(
                    "AUDIT WITNESS DOWN: could not deliver the audit checkpoint to {}: {e}; \
                     {} checkpoint(s) queued{} and retried by the next command; until then \
                     the latest audit events are not protected against deletion",
                    w.witness,
                    w.pending,
                    w.failing_since_ms
                        .map(|ms| format!(", failing since {}", rfc3339(ms)))
                        .unwrap_or_default(),
                ))
            })
            .collect()
    }
}

/// Signs checkpoints and hands them to witnesses.
#[derive(Debug)]
pub struct AuditAnchor {
    key: SigningKey,
    witnesses: Vec<Witness>,
    /// How often the long-running service checkpoints.
    pub interval: Duration,
}

impl AuditAnchor {
    pub fn new(key: SigningKey, witnesses: Vec<Witness>, interval: Duration) -> AuditAnchor {
        AuditAnchor {
            key,
            witnesses,
            interval,
        }
    }

    /// The anchor `[audit]` describes, creating the signing key on first
    /// use; `None` when no witness is configured.
    pub fn from_config(cfg: &AuditConfig) -> Result<Option<AuditAnchor>, AnchorError> {
        if cfg.witnesses.is_empty() {
            return Ok(None);
        }
        let key = SigningKey::load_or_create(&cfg.signing_key)?;
        let witnesses = cfg
            .witnesses
            .iter()
            .map(|w| Witness::from_config(w, cfg.allow_private_network))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(AuditAnchor::new(
            key,
            witnesses,
            cfg.checkpoint_interval,
        )))
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    pub fn witnesses(&self) -> &[Witness] {
        &self.witnesses
    }

    /// Signs the chain head if it moved since the last checkpoint queued
    /// for some witness, queues it, and delivers every pending checkpoint
    /// to each witness, oldest first (stopping at a witness's first
    /// failure, so it never receives them out of order). Delivery failures
    /// are results (see [`CheckpointOutcome::warnings`]), not errors: the
    /// checkpoint stays queued.
    pub async fn checkpoint(
        &self,
        store: &Store,
        now_ms: i64,
    ) -> Result<CheckpointOutcome, AnchorError> {
        let mut outcome = CheckpointOutcome::default();
        let (seq, hash) = store.audit_head().await?;
        if seq > 0 {
            let mut behind = Vec::new();
            for w in &self.witnesses {
                let name = w.name();
                if store
                    .last_queued_checkpoint(&name)
                    .await?
                    .is_none_or(|s| s < seq)
                {
                    behind.push(name);
                }
            }
            if !behind.is_empty() {
                let cp = self.key.sign(seq, &hash, now_ms);
                store
                    .queue_checkpoint(&behind, seq, &hash, now_ms, &cp.to_line())
                    .await?;
                outcome.signed = Some(seq);
            }
        }
        for w in &self.witnesses {
            let name = w.name();
            let pending = store.pending_checkpoints(&name).await?;
            let mut result = WitnessOutcome {
                witness: name.clone(),
                delivered: 0,
                pending: pending.len(),
                error: None,
                failing_since_ms: None,
            };
            for row in &pending {
                match w.deliver(&row.body).await {
                    Ok(()) => {
                        store.checkpoint_delivered(row.id, now_ms).await?;
                        result.delivered += 1;
                        result.pending -= 1;
                    }
                    Err(e) => {
                        store.checkpoint_failed(row.id, &e, now_ms).await?;
                        tracing::warn!(
                            witness = %name,
                            error = %e,
                            queued = result.pending,
                            "audit checkpoint not delivered; it stays queued"
                        );
                        result.failing_since_ms =
                            store.witness_state(&name).await?.failing_since_ms;
                        result.error = Some(e);
                        break;
                    }
                }
            }
            outcome.witnesses.push(result);
        }
        Ok(outcome)
    }
}

/// The newest checkpoint a witness holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witnessed {
    pub seq: u64,
    pub at_ms: i64,
    /// Which witness (or `--checkpoints` file) holds it.
    pub source: String,
}

/// What verification found about one configured witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessReport {
    pub witness: String,
    /// Checkpoints read back from it and checked (`None`: it cannot be
    /// read back, e.g. a webhook).
    pub checked: Option<usize>,
    /// Delivery state from the store's queue.
    pub state: WitnessState,
}

/// A successful anchored verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnchoredReport {
    /// The chain check.
    pub chain: AuditReport,
    /// The newest checkpoint read back from a witness (or given file).
    pub witnessed: Option<Witnessed>,
    /// Checkpoints checked in all.
    pub checked: usize,
    /// Configured witnesses.
    pub witnesses: Vec<WitnessReport>,
    /// Things a person should know that are not failures.
    pub notes: Vec<String>,
}

impl AnchoredReport {
    /// Events after the newest witnessed checkpoint: not yet protected
    /// against a cut tail.
    pub fn unwitnessed_events(&self) -> u64 {
        self.chain
            .events
            .saturating_sub(self.witnessed.as_ref().map_or(0, |w| w.seq))
    }

    /// The report as text for a person.
    pub fn render(&self) -> String {
        let mut out = format!(
            "audit log OK: {} events, head {}\n",
            self.chain.events, self.chain.head
        );
        if self.chain.erased > 0 {
            out.push_str(&format!(
                "  {} event payload(s) erased (each recorded by an audit.erased event)\n",
                self.chain.erased
            ));
        }
        if self.chain.legacy > 0 {
            out.push_str(&format!(
                "  {} event(s) use hash version 1 (written before payload hashing; their \
                 payloads cannot be erased)\n",
                self.chain.legacy
            ));
        }
        match &self.witnessed {
            Some(w) => out.push_str(&format!(
                "  witnessed: {} checkpoint(s) verified; the newest covers event {} (signed {}, \
                 held by {})\n",
                self.checked,
                w.seq,
                rfc3339(w.at_ms),
                w.source
            )),
            None if self.witnesses.is_empty() => {}
            None => out.push_str("  witnessed: no checkpoint read back from any witness yet\n"),
        }
        let since = self.unwitnessed_events();
        let down: Vec<&WitnessReport> = self
            .witnesses
            .iter()
            .filter(|w| w.state.failing_since_ms.is_some())
            .collect();
        if !self.witnesses.is_empty() && since > 0 {
            let why = if down.is_empty() {
                String::new()
            } else {
                format!(
                    " (witness unreachable since {})",
                    down.iter()
                        .filter_map(|w| w.state.failing_since_ms)
                        .min()
                        .map(rfc3339)
                        .unwrap_or_default()
                )
            };
            out.push_str(&format!(
                "  WARNING: {since} event(s) since the last witnessed checkpoint{why}\n"
            ));
        }
        for w in &self.witnesses {
            let checked = match w.checked {
                Some(n) => format!("{n} checkpoint(s) read back and checked"),
                None => "cannot be read back; pass an export of what it received with \
                         --checkpoints FILE to check it"
                    .to_string(),
            };
            out.push_str(&format!("  witness {}: {checked}", w.witness));
            if let Some((seq, at)) = w.state.last_delivered {
                out.push_str(&format!("; last delivered: event {seq} at {}", rfc3339(at)));
            }
            if w.state.pending > 0 {
                out.push_str(&format!("; {} queued", w.state.pending));
            }
            if let Some(since) = w.state.failing_since_ms {
                out.push_str(&format!(
                    "; UNREACHABLE since {}: {}",
                    rfc3339(since),
                    w.state.last_error.as_deref().unwrap_or("?")
                ));
            }
            out.push('\n');
        }
        for n in &self.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        out
    }
}

/// Checks the chain, then the chain against every checkpoint the
/// configured file witnesses and the `extra` files (exports of what a
/// webhook received, say) hold. See the module docs.
pub async fn verify(
    store: &Store,
    cfg: &AuditConfig,
    extra: &[PathBuf],
) -> Result<AnchoredReport, AnchorError> {
    let chain = store.verify_audit().await.map_err(AnchorError::Chain)?;
    let head = chain.events;
    let mut notes = Vec::new();

    let ours = SigningKey::load_existing(&cfg.signing_key)?.map(|k| k.public_hex().to_string());
    let mut trusted: BTreeSet<String> = cfg.previous_keys.iter().cloned().collect();
    if let Some(k) = &ours {
        trusted.insert(k.clone());
    } else if !cfg.witnesses.is_empty() {
        notes.push(format!(
            "no signing key at {}: only checkpoints signed by [audit] previous_keys are trusted",
            cfg.signing_key.display()
        ));
    }

    // Every source of checkpoints: configured file witnesses, then extras.
    let witnesses = cfg
        .witnesses
        .iter()
        .map(|w| Witness::from_config(w, cfg.allow_private_network))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sources: Vec<(String, PathBuf, bool)> = witnesses
        .iter()
        .filter_map(|w| Some((w.name(), w.readable_path()?.to_path_buf(), true)))
        .collect();
    sources.extend(
        extra
            .iter()
            .map(|p| (format!("file:{}", p.display()), p.clone(), false)),
    );

    let mut found: Vec<(String, usize, Checkpoint)> = Vec::new();
    let mut per_source: BTreeMap<String, usize> = BTreeMap::new();
    for (name, path, configured) in &sources {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && *configured => {
                let state = store.witness_state(name).await?;
                if let Some((seq, _)) = state.last_delivered {
                    return Err(AnchorError::WitnessRead {
                        witness: name.clone(),
                        reason: format!(
                            "the file is gone, but checkpoints up to event {seq} were \
                             delivered to it"
                        ),
                    });
                }
                notes.push(format!("{name} holds no checkpoint yet"));
                per_source.insert(name.clone(), 0);
                continue;
            }
            Err(e) => {
                return Err(AnchorError::WitnessRead {
                    witness: name.clone(),
                    reason: e.to_string(),
                });
            }
        };
        let mut count = 0;
        let mut unreadable = 0;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Checkpoint>(line) {
                Ok(cp) => {
                    found.push((name.clone(), i + 1, cp));
                    count += 1;
                }
                Err(_) => unreadable += 1,
            }
        }
        if unreadable > 0 {
            // Only the witness's owner can write it; a torn line is a
            // crash artifact, not an attack on the database, so it is
            // reported rather than fatal.
            notes.push(format!(
                "{name}: {unreadable} line(s) are not checkpoints and were skipped"
            ));
        }
        per_source.insert(name.clone(), count);
    }

    for (name, line, cp) in &found {
        if !trusted.contains(&cp.key.to_lowercase()) {
            return Err(AnchorError::UnknownKey {
                witness: name.clone(),
                line: *line,
                seq: cp.seq,
                key: cp.key.clone(),
                ours: ours.clone().unwrap_or_else(|| "none".into()),
            });
        }
        if !cp.signature_ok() {
            return Err(AnchorError::BadSignature {
                witness: name.clone(),
                line: *line,
                seq: cp.seq,
            });
        }
    }
    // A cut tail first: it is the attack the chain alone cannot see.
    if let Some((name, _, cp)) = found
        .iter()
        .filter(|(_, _, cp)| cp.seq > head)
        .max_by_key(|(_, _, cp)| cp.seq)
    {
        return Err(AnchorError::CutTail {
            witness: name.clone(),
            seq: cp.seq,
            at: rfc3339(cp.at_ms),
            head,
        });
    }
    let seqs: Vec<u64> = found
        .iter()
        .map(|(_, _, cp)| cp.seq)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let stored = store.audit_hashes_at(&seqs).await?;
    let mut by_seq: Vec<&(String, usize, Checkpoint)> = found.iter().collect();
    by_seq.sort_by_key(|(_, line, cp)| (cp.seq, *line));
    for (name, _, cp) in by_seq {
        let have = stored.get(&cp.seq).cloned().unwrap_or_default();
        if have != cp.hash {
            return Err(AnchorError::Rewritten {
                witness: name.clone(),
                seq: cp.seq,
                at: rfc3339(cp.at_ms),
                witnessed: cp.hash.clone(),
                stored: if have.is_empty() {
                    "no such event".into()
                } else {
                    have
                },
            });
        }
    }

    let witnessed = found
        .iter()
        .max_by_key(|(_, _, cp)| (cp.seq, cp.at_ms))
        .map(|(name, _, cp)| Witnessed {
            seq: cp.seq,
            at_ms: cp.at_ms,
            source: name.clone(),
        });
    let mut reports = Vec::new();
    for w in &witnesses {
        let name = w.name();
        reports.push(WitnessReport {
            checked: w
                .readable_path()
                .map(|_| per_source.get(&name).copied().unwrap_or(0)),
            state: store.witness_state(&name).await?,
            witness: name,
        });
    }
    if cfg.witnesses.is_empty() && extra.is_empty() {
        notes.push(
            "no [audit] witness is configured: a cut tail with a rewritten head cannot be \
             detected (see README \"Audit log\")"
                .into(),
        );
    }
    Ok(AnchoredReport {
        chain,
        witnessed,
        checked: found.len(),
        witnesses: reports,
        notes,
    })
}

/// `ms` as RFC 3339 (UTC), for messages.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_and_any_edit_breaks_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(&dir.path().join("k")).unwrap();
        let cp = key.sign(7, &"ab".repeat(32), 1_000);
        assert!(cp.signature_ok());
        let line = cp.to_line();
        let back: Checkpoint = serde_json::from_str(&line).unwrap();
        assert_eq!(back, cp);
        for forged in [
            Checkpoint {
                seq: 8,
                ..cp.clone()
            },
            Checkpoint {
                hash: "cd".repeat(32),
                ..cp.clone()
            },
            Checkpoint {
                at_ms: 2_000,
                ..cp.clone()
            },
            Checkpoint {
                sig: "00".repeat(64),
                ..cp.clone()
            },
        ] {
            assert!(!forged.signature_ok(), "{forged:?}");
        }
        // Another key's signature over the same head does not pass as ours.
        let other = SigningKey::load_or_create(&dir.path().join("k2")).unwrap();
        let theirs = other.sign(7, &cp.hash, 1_000);
        assert!(
            !Checkpoint {
                key: cp.key.clone(),
                ..theirs
            }
            .signature_ok()
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_key_is_created_private_reused_and_refused_when_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit-signing.key");
        let a = SigningKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(a.public_hex(), b.public_hex(), "created once, then reused");
        assert_eq!(a.public_hex().len(), 64);
        assert!(!format!("{a:?}").contains(&std::fs::read_to_string(&path).unwrap()[..64]));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SigningKey::load_existing(&path).unwrap_err().to_string();
        assert!(err.starts_with("AUDIT-0010"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert!(
            SigningKey::load_existing(&dir.path().join("none"))
                .unwrap()
                .is_none()
        );
    }
}
