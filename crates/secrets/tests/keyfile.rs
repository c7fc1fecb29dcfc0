//! The master key file: created on first use with mode 0600, reused after,
//! refused when others can read it; the environment variable wins.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use roster_secrets::{Keyring, MASTER_KEY_ENV, MASTER_KEY_FILE, key_fingerprint};

#[test]
fn the_key_file_is_created_once_with_mode_0600_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let first = Keyring::load_from(None, &data_dir, true).unwrap();
    let path = data_dir.join(MASTER_KEY_FILE);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    assert_eq!(first.origin(), path.display().to_string());

    let sealed = first.seal(b"token", "bill-api-token").unwrap();
    let again = Keyring::load_from(None, &data_dir, true).unwrap();
    assert_eq!(again.current_id(), first.current_id());
    assert_eq!(
        again.open(&sealed, "bill-api-token").unwrap().as_slice(),
        b"token"
    );
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [MASTER_KEY_FILE]);
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Keyring::load_from(None, dir.path(), true).unwrap();
    let path = dir.path().join(MASTER_KEY_FILE);
    for mode in [0o644, 0o640, 0o602] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = Keyring::load_from(None, dir.path(), true).unwrap_err();
        assert_eq!(err.code(), "SEC-0003", "{mode:o}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
        assert!(msg.contains("chmod 600"), "{msg}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(Keyring::load_from(None, dir.path(), true).is_ok());
}

#[test]
fn load_existing_never_creates_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let err = Keyring::load_from(None, dir.path(), false).unwrap_err();
    assert_eq!(err.code(), "SEC-0011");
    assert!(err.to_string().contains(MASTER_KEY_ENV), "{err}");
    assert!(!dir.path().join(MASTER_KEY_FILE).exists());
}

#[test]
fn the_environment_wins_over_the_file_and_can_hold_old_keys() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = Keyring::load_from(None, dir.path(), true).unwrap();
    let sealed = from_file.seal(b"v", "n").unwrap();
    let file_key = std::fs::read_to_string(dir.path().join(MASTER_KEY_FILE)).unwrap();

    let new_key = [5u8; 32];
    let env = format!("new:{},{}", STANDARD.encode(new_key), file_key.trim());
    let ring = Keyring::load_from(Some(&env), dir.path(), true).unwrap();
    assert_eq!(ring.origin(), MASTER_KEY_ENV);
    assert_eq!(ring.current_id(), "new");
    assert_eq!(ring.open(&sealed, "n").unwrap().as_slice(), b"v");

    // An empty variable counts as unset.
    let ring = Keyring::load_from(Some("  "), dir.path(), true).unwrap();
    assert_eq!(ring.current_id(), from_file.current_id());
    // A bare key's id is its fingerprint, the same from either place.
    let bare = Keyring::load_from(Some(&STANDARD.encode(new_key)), dir.path(), true).unwrap();
    assert_eq!(bare.current_id(), key_fingerprint(&new_key));
}
