//! API and agent tokens through the application layer: shown once, stored
//! hashed, scoped, expiring, revocable; an agent never carries more than
//! read and propose.

use std::collections::BTreeSet;
use std::time::Duration;

use roster_core::principal::PrincipalKind;
use roster_core::{Policy, Principal, Scope};
use roster_engine::{Engine, EngineError, NewApiToken, Roster};
use roster_store::Store;

fn op() -> Principal {
    Principal::new(PrincipalKind::User, "operator")
}

async fn roster() -> (Roster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let engine = Engine::new(store, Policy::parse("p.toml", "").unwrap());
    (Roster::new(engine), dir)
}

fn req(name: &str, agent: bool, scopes: &[Scope]) -> NewApiToken {
    NewApiToken {
        name: name.into(),
        agent,
        scopes: scopes.iter().copied().collect::<BTreeSet<_>>(),
        ttl: None,
    }
}

#[tokio::test]
async fn a_token_is_shown_once_stored_hashed_and_authenticates_as_its_principal() {
    let (roster, _dir) = roster().await;
    let created = roster
        .create_api_token(&op(), &req("ci", false, &[Scope::Read, Scope::Propose]))
        .await
        .unwrap();
    assert!(created.secret.starts_with("rat_"));
    assert_eq!(created.secret.len(), 47);
    // Nothing stored or listed contains the token.
    let listed = roster.api_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    let text = format!("{listed:?}");
    assert!(!text.contains(&created.secret[12..]), "{text}");
    let record = roster
        .store()
        .api_token(&created.info.prefix)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(record.hash, created.secret);
    assert_eq!(record.hash.len(), 64);

    let who = roster.authenticate(&created.secret).await.unwrap();
    assert_eq!(who.principal, Principal::new(PrincipalKind::ApiToken, "ci"));
    assert!(who.allows(Scope::Read) && who.allows(Scope::Propose));
    assert!(!who.allows(Scope::Approve));
    let refused = who.require(Scope::Apply).unwrap_err();
    assert_eq!(refused.code(), "ENG-0008");
    assert!(refused.to_string().contains("apply"), "{refused}");
    // Last use is recorded.
    let listed = roster.api_tokens().await.unwrap();
    assert!(listed[0].last_used_ms.is_some());

    // A token one character off, or another shape, authenticates nothing.
    let mut wrong = created.secret.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [wrong.as_str(), "", "rat_", "Bearer x", &created.info.prefix] {
        let e = roster.authenticate(bad).await.unwrap_err();
        assert_eq!(e.code(), "ENG-0010", "{bad}: {e}");
    }
}

#[tokio::test]
async fn a_revoked_or_expired_token_authenticates_nothing() {
    let (roster, _dir) = roster().await;
    let t = roster
        .create_api_token(&op(), &req("ci", false, &[Scope::Read]))
        .await
        .unwrap();
    assert!(
        roster
            .revoke_api_token(&op(), &t.info.prefix)
            .await
            .unwrap()
    );
    assert!(
        !roster
            .revoke_api_token(&op(), &t.info.prefix)
            .await
            .unwrap()
    );
    let e = roster.authenticate(&t.secret).await.unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");

    let mut short = req("brief", false, &[Scope::Read]);
    short.ttl = Some(Duration::from_secs(1));
    let t = roster.create_api_token(&op(), &short).await.unwrap();
    assert!(roster.authenticate(&t.secret).await.is_ok());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let e = roster.authenticate(&t.secret).await.unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");

    // Audited, without the token.
    let events = roster.store().audit_since(0).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|r| r.kind.as_str()).collect();
    assert!(kinds.contains(&"api.token.created") && kinds.contains(&"api.token.revoked"));
    assert!(!format!("{events:?}").contains(&t.secret[12..]));
}

#[tokio::test]
async fn an_agent_token_never_carries_approve_apply_offboard_or_admin() {
    let (roster, _dir) = roster().await;
    for s in [Scope::Approve, Scope::Apply, Scope::Offboard, Scope::Admin] {
        let e = roster
            .create_api_token(&op(), &req("claude", true, &[Scope::Read, s]))
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::Refused(_)), "{s}: {e}");
    }
    let t = roster
        .create_api_token(&op(), &req("claude", true, &[Scope::Read, Scope::Propose]))
        .await
        .unwrap();
    let who = roster.authenticate(&t.secret).await.unwrap();
    assert_eq!(who.principal.kind, PrincipalKind::Agent);
    // Even a record edited by hand to say more grants an agent no more.
    roster_store_edit_scopes(&_dir.path().join("r.db"), &t.info.prefix).await;
    let who = roster.authenticate(&t.secret).await.unwrap();
    for s in [Scope::Approve, Scope::Apply, Scope::Offboard, Scope::Admin] {
        assert!(!who.allows(s), "{s}");
        assert!(who.require(s).is_err());
    }
    // An agent cannot make or revoke tokens.
    let agent = Principal::new(PrincipalKind::Agent, "claude");
    assert!(
        roster
            .create_api_token(&agent, &req("x", false, &[Scope::Read]))
            .await
            .is_err()
    );
    assert!(
        roster
            .revoke_api_token(&agent, &t.info.prefix)
            .await
            .is_err()
    );
    // Nor may anyone make a token with no scope or a silly lifetime.
    assert!(
        roster
            .create_api_token(&op(), &req("x", false, &[]))
            .await
            .is_err()
    );
    let mut long = req("x", false, &[Scope::Read]);
    long.ttl = Some(Duration::from_secs(400 * 86_400));
    assert!(roster.create_api_token(&op(), &long).await.is_err());
}

/// Rewrites the token's scopes in the database, as someone with write
/// access to it could.
async fn roster_store_edit_scopes(db: &std::path::Path, prefix: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE api_token SET scopes = 'read propose approve apply offboard admin' WHERE prefix = $1",
    )
    .bind(prefix.to_string())
    .execute(&mut conn)
    .await
    .unwrap();
}
