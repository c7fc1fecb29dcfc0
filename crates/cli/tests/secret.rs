//! `roster secret set|list|rm`, as a user runs them: the value goes in on
//! standard input, is stored only encrypted, and is never shown again.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn roster(config: &Path) -> Command {
    let mut c = Command::cargo_bin("roster").expect("roster binary");
    c.env_remove("ROSTER_CATALOG_DIR")
        .env_remove("ROSTER_CONFIG")
        .env_remove("ROSTER_MASTER_KEY")
        .arg("secret");
    c.env("ROSTER_CONFIG", config);
    c
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A config with only a data directory: secret commands need nothing else.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("roster.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[connections.expensify]\napp = \"expensify\"\nsecret = { stored = \"expensify-partner-secret\" }\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    (dir, config, data)
}

/// Every byte roster left in its data directory (database, WAL, key).
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.extend(std::fs::read(&p).unwrap());
        }
    }
    out
}

#[test]
fn set_stores_only_ciphertext_and_never_prints_the_value() {
    let (_dir, config, data) = setup();
    let out = roster(&config)
        .args(["set", "expensify-partner-secret"])
        .write_stdin("hunter2-partner-secret\n")
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Stored secret expensify-partner-secret"),
        "{stdout}"
    );
    assert!(
        stdout.contains("secret = { stored = \"expensify-partner-secret\" }"),
        "{stdout}"
    );
    assert!(stderr.contains("Created the master key"), "{stderr}");
    for shown in [&stdout, &stderr] {
        assert!(!shown.contains("hunter2"), "value printed: {shown}");
    }

    // The key file is private; the database holds no plaintext.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let bytes = all_bytes(&data);
    assert!(
        !bytes.windows(7).any(|w| w == b"hunter2"),
        "plaintext found in the data directory"
    );

    // The sealed value opens with the key file, under its name only, and
    // the trailing newline from stdin was dropped.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = roster_store::Store::open(data.join("roster.db").to_str().unwrap())
            .await
            .unwrap();
        let sealed = store
            .secret("expensify-partner-secret")
            .await
            .unwrap()
            .unwrap();
        let ring = roster_secrets::Keyring::load_from(None, &data, false).unwrap();
        let opened = ring.open(&sealed, "expensify-partner-secret").unwrap();
        assert_eq!(opened.as_slice(), b"hunter2-partner-secret");
        assert!(ring.open(&sealed, "bill-api-token").is_err());

        let audit = store.audit_since(0).await.unwrap();
        let set = audit.iter().find(|e| e.kind == "secret.set").unwrap();
        assert_eq!(set.subject, "expensify-partner-secret");
        assert!(
            !serde_json::to_string(&set.data)
                .unwrap()
                .contains("hunter2")
        );
        store.close().await;
    });

    // Replacing keeps one entry and says so.
    let out = roster(&config)
        .args(["set", "expensify-partner-secret"])
        .write_stdin("second")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Replaced secret"));
    assert!(!text(&out.stderr).contains("Created the master key"));
}

#[test]
fn list_shows_names_only_and_rm_deletes() {
    let (_dir, config, _data) = setup();
    let out = roster(&config).arg("list").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("No stored secrets."));

    for (name, value) in [("bill-api-token", "tok-AAA"), ("spendesk-key", "tok-BBB")] {
        let out = roster(&config)
            .args(["set", name])
            .write_stdin(value)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = roster(&config).arg("list").output().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("bill-api-token") && stdout.contains("spendesk-key"),
        "{stdout}"
    );
    assert!(!stdout.contains("tok-"), "value listed: {stdout}");

    let out = roster(&config)
        .args(["rm", "bill-api-token"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&roster(&config).arg("list").output().unwrap().stdout);
    assert!(!stdout.contains("bill-api-token"), "{stdout}");
    assert!(stdout.contains("spendesk-key"), "{stdout}");

    let out = roster(&config)
        .args(["rm", "bill-api-token"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no stored secret named"));
}

#[test]
fn set_refuses_empty_values_bad_names_and_unsafe_key_files() {
    let (_dir, config, data) = setup();
    let out = roster(&config)
        .args(["set", "x"])
        .write_stdin("\n")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("empty"), "{}", text(&out.stderr));

    let out = roster(&config)
        .args(["set", "has space"])
        .write_stdin("v")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("SEC-0009"),
        "{}",
        text(&out.stderr)
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let out = roster(&config)
            .args(["set", "ok"])
            .write_stdin("v")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let key = data.join("master.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = roster(&config)
            .args(["set", "ok"])
            .write_stdin("v2")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("SEC-0003") && stderr.contains("chmod 600"),
            "{stderr}"
        );
    }
}

/// A credential whose app's catalog record gives a lifetime (Spendesk API
/// keys last at most a year) is flagged before and after it runs out,
/// counted from when its value was stored; one without is not.
#[tokio::test(flavor = "multi_thread")]
async fn list_warns_before_a_stored_credential_reaches_its_apps_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("roster.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n\
         [connections.spendesk]\napp = \"spendesk\"\nsecret = { stored = \"spendesk-key\" }\n\
         [connections.expensify]\napp = \"expensify\"\nsecret = { stored = \"expensify-partner-secret\" }\n",
    )
    .unwrap();
    for name in ["spendesk-key", "expensify-partner-secret"] {
        let out = roster(&config)
            .args(["set", name])
            .write_stdin("some-credential\n")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // Fresh: listed with its expiry a year out, no warning.
    let out = roster(&config).arg("list").output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("365 days") && stdout.contains("left"),
        "{stdout}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");

    // Stored 340 days ago: 25 days left, a warning naming the fix.
    let db = dir.path().join("data/roster.db").display().to_string();
    let store = roster_store::Store::open(&db).await.unwrap();
    let sealed = store.secret("spendesk-key").await.unwrap().unwrap();
    assert!(store.delete_secret("spendesk-key").await.unwrap());
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    store
        .put_secret("spendesk-key", &sealed, now - 340 * 86_400_000)
        .await
        .unwrap();
    store.close().await;
    let out = roster(&config).arg("list").output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("ROTATE"), "{stdout}");
    assert!(
        stderr.contains("warning: secret \"spendesk-key\" (connection spendesk)")
            && stderr.contains("roster secret set spendesk-key")
            && stderr.contains("at most one year"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("expensify-partner-secret"),
        "no lifetime, no warning: {stderr}"
    );

    let out = roster(&config).args(["list", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sp = v
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "spendesk-key")
        .unwrap();
    assert_eq!(sp["connections"][0]["state"], "soon");
    assert_eq!(sp["connections"][0]["max_days"], 365);
}

/// Opens the store in `data` and returns every secret's name and sealed
/// value, and the audit events' kinds.
fn stored(data: &Path) -> (Vec<(String, String)>, Vec<roster_store::AuditRecord>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = roster_store::Store::open(data.join("roster.db").to_str().unwrap())
            .await
            .unwrap();
        let s = store.sealed_secrets().await.unwrap();
        let a = store.audit_since(0).await.unwrap();
        store.close().await;
        (s, a)
    })
}

fn set(config: &Path, name: &str, value: &str) {
    let out = roster(config)
        .args(["set", name])
        .write_stdin(value.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn rotate_reseals_everything_under_a_new_key_file_and_retires_the_old_key() {
    let (_dir, config, data) = setup();
    set(&config, "expensify-partner-secret", "value-one");
    set(&config, "bill-api-token", "value-two");
    let old_ring = roster_secrets::Keyring::load_from(None, &data, false).unwrap();
    let old_id = old_ring.current_id().to_string();
    let (before, _) = stored(&data);

    let out = roster(&config).arg("rotate").output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Re-sealed 2 secret(s)"), "{stdout}");
    assert!(
        stdout.contains(&format!("Retired key(s) {old_id}")),
        "{stdout}"
    );
    assert!(!stdout.contains("value-"), "{stdout}");

    // The key file holds the new key alone, still private.
    let ring = roster_secrets::Keyring::load_from(None, &data, false).unwrap();
    let ids: Vec<_> = ring.key_ids().map(str::to_string).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_ne!(ids[0], old_id);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let (after, audit) = stored(&data);
    assert_eq!(after.len(), 2);
    for ((name, new), (_, old)) in after.iter().zip(&before) {
        assert!(new.starts_with(&format!("v1:{}:", ids[0])), "{new}");
        // The old key can no longer open the new values; the new ring
        // opens them under their own names only, with the same values.
        assert!(old_ring.open(new, name).is_err());
        assert!(ring.open(old, name).is_err(), "the retired key is gone");
        let want = if name == "bill-api-token" {
            "value-two"
        } else {
            "value-one"
        };
        assert_eq!(ring.open(new, name).unwrap().as_slice(), want.as_bytes());
        assert!(ring.open(new, "some-other-name").is_err());
    }
    let rotated = audit
        .iter()
        .find(|e| e.kind == "secret.rotated")
        .expect("audited");
    assert_eq!(rotated.data["resealed"], 2);
    assert_eq!(rotated.data["retired"][0], old_id.as_str());
    assert!(
        !serde_json::to_string(&rotated.data)
            .unwrap()
            .contains("value-")
    );

    // A second rotation works the same way from the new key.
    let out = roster(&config).arg("rotate").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = roster_secrets::Keyring::load_from(None, &data, false).unwrap();
    assert_ne!(again.current_id(), ids[0]);
    assert_eq!(again.key_ids().count(), 1);
}

#[test]
fn rotate_refuses_with_nothing_changed_when_a_value_does_not_open() {
    let (_dir, config, data) = setup();
    set(&config, "good", "fine");
    // A value sealed with a key the ring does not hold (a foreign import,
    // a half-restored backup): rotating must not retire anything.
    let foreign = roster_secrets::Keyring::new("elsewhere", [9; 32]).unwrap();
    let sealed = foreign.seal(b"x", "foreign").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = roster_store::Store::open(data.join("roster.db").to_str().unwrap())
            .await
            .unwrap();
        store.put_secret("foreign", &sealed, 1).await.unwrap();
        store.close().await;
    });
    let key_before = std::fs::read(data.join("master.key")).unwrap();
    let (before, _) = stored(&data);
    let out = roster(&config).arg("rotate").output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("\"foreign\"") && stderr.contains("nothing changed"),
        "{stderr}"
    );
    assert!(stderr.contains("SEC-0005"), "{stderr}");
    assert_eq!(std::fs::read(data.join("master.key")).unwrap(), key_before);
    assert_eq!(stored(&data).0, before);
}

#[test]
fn rotate_with_the_variable_needs_a_new_key_first_then_names_the_keys_to_drop() {
    use base64::Engine as _;
    let (_dir, config, data) = setup();
    let b64 = |k: [u8; 32]| base64::engine::general_purpose::STANDARD.encode(k);
    let old = format!("old:{}", b64([1; 32]));
    let with = |spec: &str, args: &[&str]| {
        let mut c = roster(&config);
        c.env("ROSTER_MASTER_KEY", spec).args(args);
        c.write_stdin("env-value").output().unwrap()
    };
    let out = with(&old, &["set", "token"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!data.join("master.key").exists());

    // One key only: nothing to rotate to, and the message says how.
    let out = with(&old, &["rotate"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("put a new key first"), "{stderr}");
    assert!(!stderr.contains(&b64([1; 32])), "key echoed: {stderr}");

    let both = format!("new:{},{old}", b64([2; 32]));
    let out = with(&both, &["rotate"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("remove them from ROSTER_MASTER_KEY"),
        "{stdout}"
    );
    assert!(
        stdout.contains("old") && stdout.contains("keep only new"),
        "{stdout}"
    );
    assert!(!data.join("master.key").exists(), "no key file is written");
    let (after, _) = stored(&data);
    assert!(after[0].1.starts_with("v1:new:"), "{after:?}");
    // The new key alone now opens it.
    let new_only =
        roster_secrets::Keyring::from_spec(&format!("new:{}", b64([2; 32])), "t").unwrap();
    assert_eq!(
        new_only.open(&after[0].1, "token").unwrap().as_slice(),
        b"env-value"
    );
}
