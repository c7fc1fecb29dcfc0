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
