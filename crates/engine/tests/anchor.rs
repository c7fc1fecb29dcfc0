//! The audit log anchored outside the database: signed checkpoints to a
//! file witness and a webhook witness, what happens when a witness is down,
//! and what `verify` catches that the hash chain alone cannot.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roster_core::{EmploymentStatus, Policy};
use roster_engine::anchor::{self, AnchorError, AuditAnchor, Checkpoint, SigningKey, Witness};
use roster_engine::config::{AuditConfig, RawWitness};
use roster_engine::erasure::{self, EraseSelector};
use roster_engine::{Engine, Roster};
use roster_store::{AuditEvent, Store};
use serde_json::json;
use sqlx::{AnyConnection, AssertSqlSafe, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Fx {
    _dir: tempfile::TempDir,
    db: PathBuf,
    store: Store,
    cfg: AuditConfig,
}

async fn setup(witnesses: Vec<RawWitness>) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("roster.db");
    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    let cfg = AuditConfig {
        witnesses,
        signing_key: dir.path().join("keys/audit-signing.key"),
        previous_keys: vec![],
        checkpoint_interval: Duration::from_secs(60),
        allow_private_network: false,
    };
    Fx {
        _dir: dir,
        db,
        store,
        cfg,
    }
}

fn file_witness(dir: &Path) -> RawWitness {
    RawWitness::File {
        file: dir.join("witness.jsonl"),
    }
}

async fn append(store: &Store, n: u64, who: &str) {
    for i in 0..n {
        store
            .append_audit(AuditEvent {
                at_ms: 1_000 + i as i64,
                actor: "roster".into(),
                kind: "account.deactivated".into(),
                subject: format!("expensify:{who}"),
                data: json!({"email": who, "i": i}),
            })
            .await
            .unwrap();
    }
}

/// What the reported attack did: direct SQL on the SQLite file.
async fn raw(db: &Path, sql: &str) {
    let mut conn = AnyConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query(AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// Deletes the events after `keep` and points the head at event `keep`.
async fn cut_tail(fx: &Fx, keep: u64) {
    let hash = fx.store.audit_hashes_at(&[keep]).await.unwrap()[&keep].clone();
    raw(
        &fx.db,
        &format!("DELETE FROM audit_event WHERE seq > {keep}"),
    )
    .await;
    raw(
        &fx.db,
        &format!("UPDATE audit_head SET seq = {keep}, hash = '{hash}' WHERE id = 1"),
    )
    .await;
}

#[tokio::test]
async fn the_engine_checkpoints_to_a_file_witness_and_verify_catches_a_cut_tail() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let fx = setup(vec![file_witness(dir.path())]).await;
    let mut engine = Engine::new(fx.store.clone(), Policy::parse("p", "").unwrap());
    let anchor = Arc::new(AuditAnchor::from_config(&fx.cfg).unwrap().unwrap());
    engine.anchor = Some(anchor.clone());
    let roster = Roster::new(engine);

    // Real engine events: an import is audited.
    roster
        .import_people(
            &roster_core::Principal::service(),
            &[common::person(
                "E1",
                "ann@example.com",
                "Ann",
                EmploymentStatus::Active,
            )],
            "hr.csv",
        )
        .await
        .unwrap();
    append(&fx.store, 4, "ann@example.com").await;
    let out = roster.checkpoint_audit().await.unwrap().unwrap();
    let head = fx.store.audit_head().await.unwrap().0;
    assert_eq!(out.signed, Some(head));
    assert_eq!(out.witnesses[0].delivered, 1);
    assert!(out.warnings().is_empty());

    // Nothing new: nothing signed, nothing delivered.
    let again = roster.checkpoint_audit().await.unwrap().unwrap();
    assert_eq!((again.signed, again.witnesses[0].delivered), (None, 0));

    let text = std::fs::read_to_string(dir.path().join("witness.jsonl")).unwrap();
    let cp: Checkpoint = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(cp.seq, head);
    assert_eq!(cp.key, anchor.key().public_hex());
    assert!(cp.signature_ok());

    let ok = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap();
    assert_eq!(ok.witnessed.as_ref().map(|w| w.seq), Some(head));
    assert_eq!(ok.unwitnessed_events(), 0);
    assert!(
        ok.render().contains("1 checkpoint(s) verified"),
        "{}",
        ok.render()
    );

    // Erasing a person's payloads keeps every hash, so the witnessed
    // checkpoint still matches.
    let erased = erasure::erase(
        &fx.store,
        &EraseSelector {
            person: Some("E1".into()),
            before_ms: None,
        },
        "erasure request 7",
        "dpo",
        5_000,
    )
    .await
    .unwrap();
    assert_eq!(
        erased.erased, 4,
        "found by the person's email via the store"
    );
    let ok = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap();
    assert_eq!(ok.chain.erased, 4);
    assert_eq!(ok.unwitnessed_events(), 1, "the erasure event itself");
    assert!(ok.render().contains("4 event payload(s) erased"));
    roster.checkpoint_audit().await.unwrap();
    let erasure_seq = erased.record_seq.unwrap();
    append(&fx.store, 3, "bob@example.com").await;
    roster.checkpoint_audit().await.unwrap();

    // The attack: delete the last events and rewrite the head row. The
    // chain alone still verifies...
    cut_tail(&fx, erasure_seq).await;
    fx.store.verify_audit().await.unwrap();
    // ...the witness does not.
    let err = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap_err();
    assert!(matches!(err, AnchorError::CutTail { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("AUDIT-0015"), "{msg}");
    assert!(
        msg.contains(&format!("checkpoint of event {}", erasure_seq + 3)),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("ends at event {erasure_seq}")),
        "{msg}"
    );

    // Cutting the erasure record too leaves tombstones nobody declared:
    // the chain check itself names them.
    cut_tail(&fx, erasure_seq - 1).await;
    let err = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap_err();
    assert!(err.to_string().contains("audit.erased"), "{err}");
}

#[tokio::test]
async fn a_rewritten_history_of_the_same_length_is_caught() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let fx = setup(vec![file_witness(dir.path())]).await;
    let anchor = AuditAnchor::from_config(&fx.cfg).unwrap().unwrap();
    append(&fx.store, 3, "ann@example.com").await;
    anchor.checkpoint(&fx.store, 10).await.unwrap();
    // Cut to one event, then append forged events through roster itself:
    // the chain is consistent and longer than the checkpoint, but event 3
    // is not the event the witness saw.
    cut_tail(&fx, 1).await;
    append(&fx.store, 3, "mallory@example.com").await;
    fx.store.verify_audit().await.unwrap();
    let err = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap_err();
    assert!(
        matches!(err, AnchorError::Rewritten { seq: 3, .. }),
        "{err}"
    );

    // Editing an event in the middle still fails as before (the chain).
    raw(&fx.db, "UPDATE audit_event SET actor = 'x' WHERE seq = 2").await;
    let err = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap_err();
    assert!(err.to_string().starts_with("AUDIT-0001"), "{err}");
}

#[tokio::test]
async fn checkpoints_from_another_key_or_with_a_bad_signature_fail_verification() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let mut fx = setup(vec![file_witness(dir.path())]).await;
    let anchor = AuditAnchor::from_config(&fx.cfg).unwrap().unwrap();
    append(&fx.store, 2, "ann@example.com").await;
    anchor.checkpoint(&fx.store, 10).await.unwrap();
    let witness = dir.path().join("witness.jsonl");
    let head = fx.store.audit_head().await.unwrap();

    // Someone replaced the signing key (say, deleted it so a new one was
    // created): the witness's checkpoints are no longer ours.
    let other = SigningKey::load_or_create(&dir.path().join("other.key")).unwrap();
    let old = anchor.key().public_hex().to_string();
    std::fs::remove_file(&fx.cfg.signing_key).unwrap();
    let replaced = SigningKey::load_or_create(&fx.cfg.signing_key).unwrap();
    assert_ne!(replaced.public_hex(), old);
    let err = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap_err();
    assert!(
        matches!(err, AnchorError::UnknownKey { line: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("previous_keys"), "{err}");
    // Declared on purpose: trusted.
    fx.cfg.previous_keys = vec![old];
    anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap();

    // A checkpoint with a forged field does not verify.
    let mut forged = other.sign(head.0, &head.1, 20);
    forged.key = replaced.public_hex().to_string();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&witness)
        .unwrap();
    use std::io::Write as _;
    writeln!(f, "{}", forged.to_line()).unwrap();
    let err = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap_err();
    assert!(
        matches!(err, AnchorError::BadSignature { line: 2, .. }),
        "{err}"
    );
}

/// A loopback HTTP endpoint answering every request with the current
/// status and recording the bodies it was sent.
struct Hook {
    url: String,
    status: Arc<Mutex<u16>>,
    bodies: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

async fn hook(status: u16) -> Hook {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/checkpoints", listener.local_addr().unwrap());
    let status = Arc::new(Mutex::new(status));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let (s, b) = (status.clone(), bodies.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (s, b) = (s.clone(), b.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then Content-Length bytes of body.
                let body = loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break String::from_utf8_lossy(&buf[end + 4..end + 4 + len])
                                .to_string();
                        }
                    }
                };
                let code = *s.lock().unwrap();
                if code == 200 {
                    b.lock().unwrap().push(body);
                }
                let resp =
                    format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Hook {
        url,
        status,
        bodies,
        task,
    }
}

#[tokio::test]
async fn a_webhook_that_returns_500_queues_checkpoints_until_it_answers() {
    sqlx::any::install_default_drivers();
    let h = hook(500).await;
    let fx = setup(vec![RawWitness::Webhook {
        webhook: h.url.clone(),
    }])
    .await;
    let anchor = AuditAnchor::from_config(&fx.cfg).unwrap().unwrap();
    append(&fx.store, 2, "ann@example.com").await;

    let out = anchor.checkpoint(&fx.store, 10_000).await.unwrap();
    assert_eq!(out.signed, Some(2));
    let w = &out.witnesses[0];
    assert_eq!((w.delivered, w.pending), (0, 1));
    assert!(w.error.as_deref().unwrap().contains("500"), "{w:?}");
    assert_eq!(w.failing_since_ms, Some(10_000));
    let warn = out.warnings().join("\n");
    assert!(warn.contains("AUDIT WITNESS DOWN"), "{warn}");
    assert!(warn.contains("1 checkpoint(s) queued"), "{warn}");

    // More events, still down: a second checkpoint queues behind the first.
    append(&fx.store, 3, "bob@example.com").await;
    let out = anchor.checkpoint(&fx.store, 20_000).await.unwrap();
    assert_eq!(out.witnesses[0].pending, 2);
    assert_eq!(
        out.witnesses[0].failing_since_ms,
        Some(10_000),
        "since the first failure"
    );

    // Verify states the exposure.
    let report = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap();
    let text = report.render();
    assert!(
        text.contains("5 event(s) since the last witnessed checkpoint (witness unreachable since 1970-01-01T00:00:10Z)"),
        "{text}"
    );
    assert!(text.contains("cannot be read back"), "{text}");
    assert!(text.contains("2 queued"), "{text}");

    // It answers again: both are delivered, oldest first.
    *h.status.lock().unwrap() = 200;
    let out = anchor.checkpoint(&fx.store, 30_000).await.unwrap();
    assert_eq!((out.signed, out.witnesses[0].delivered), (None, 2));
    assert!(out.warnings().is_empty());
    let bodies = h.bodies.lock().unwrap().clone();
    let seqs: Vec<u64> = bodies
        .iter()
        .map(|b| serde_json::from_str::<Checkpoint>(b).unwrap())
        .inspect(|cp| assert!(cp.signature_ok()))
        .map(|cp| cp.seq)
        .collect();
    assert_eq!(seqs, [2, 5]);
    let report = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap();
    assert!(
        !report.render().contains("UNREACHABLE"),
        "{}",
        report.render()
    );

    // What the webhook received, exported to a file, checks a cut tail.
    let export = fx._dir.path().join("received.jsonl");
    std::fs::write(&export, bodies.join("\n")).unwrap();
    cut_tail(&fx, 3).await;
    let err = anchor::verify(&fx.store, &fx.cfg, &[export])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AnchorError::CutTail {
                seq: 5,
                head: 3,
                ..
            }
        ),
        "{err}"
    );
    h.task.abort();
}

#[tokio::test]
async fn an_unwritable_file_witness_warns_and_catches_up_later() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist (yet): the volume is not mounted.
    let mount = dir.path().join("not-mounted");
    let fx = setup(vec![file_witness(&mount)]).await;
    let anchor = AuditAnchor::from_config(&fx.cfg).unwrap().unwrap();
    append(&fx.store, 3, "ann@example.com").await;
    let out = anchor.checkpoint(&fx.store, 1_000).await.unwrap();
    assert_eq!(out.witnesses[0].pending, 1);
    assert!(!out.warnings().is_empty());
    let report = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap();
    assert!(
        report
            .render()
            .contains("3 event(s) since the last witnessed checkpoint")
    );

    std::fs::create_dir_all(&mount).unwrap();
    let out = anchor.checkpoint(&fx.store, 2_000).await.unwrap();
    assert_eq!(out.witnesses[0].delivered, 1);
    let report = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap();
    assert_eq!(report.unwitnessed_events(), 0);
    assert_eq!(report.witnessed.unwrap().seq, 3);

    // A file witness that disappears after holding checkpoints is an error,
    // not an empty witness.
    std::fs::remove_file(mount.join("witness.jsonl")).unwrap();
    let err = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap_err();
    assert!(matches!(err, AnchorError::WitnessRead { .. }), "{err}");
}

#[tokio::test]
async fn without_a_witness_nothing_is_signed_and_verify_says_so() {
    sqlx::any::install_default_drivers();
    let fx = setup(vec![]).await;
    assert!(AuditAnchor::from_config(&fx.cfg).unwrap().is_none());
    assert!(
        !fx.cfg.signing_key.exists(),
        "no key is created for nothing"
    );
    append(&fx.store, 1, "ann@example.com").await;
    let report = anchor::verify(&fx.store, &fx.cfg, &[]).await.unwrap();
    assert!(report.render().contains("no [audit] witness is configured"));
    // The witness type names never leak a webhook's query string.
    let w = Witness::from_config(
        &RawWitness::Webhook {
            webhook: "http://127.0.0.1:1/x?token=s3cret".into(),
        },
        false,
    )
    .unwrap();
    assert_eq!(w.name(), "webhook:http://127.0.0.1:1/x");
}
