//! The web UI's users and sessions (migration 0020) on both backends:
//! stored and read back, a name taken twice refused, sessions ended by
//! user and by address (case-insensitively), only live ones listed.

mod common;
use common::harness;

mod cases {
    use roster_store::{StoreError, WebSessionRecord, WebUserRecord};

    use super::harness::Fx;

    fn user(name: &str, email: Option<&str>) -> WebUserRecord {
        WebUserRecord {
            name: name.into(),
            email: email.map(str::to_string),
            role: "viewer".into(),
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            created_by: "user:op".into(),
            created_ms: 1,
            updated_ms: 1,
        }
    }

    fn session(hash: &str, name: &str, email: Option<&str>) -> WebSessionRecord {
        WebSessionRecord {
            id_hash: hash.into(),
            user_name: name.into(),
            email: email.map(str::to_string),
            via: "local".into(),
            issuer: None,
            subject: None,
            role: "viewer".into(),
            created_ms: 10,
            authenticated_ms: 10,
            last_seen_ms: 10,
            expires_ms: 1_000,
            ended_ms: None,
            ended_reason: None,
        }
    }

    pub async fn users_and_sessions_round_trip_and_end(fx: Fx) {
        let s = &fx.store;
        s.web_user_insert(&user("alice", Some("alice@acme.example")))
            .await
            .unwrap();
        s.web_user_insert(&user("bob", None)).await.unwrap();
        assert!(matches!(
            s.web_user_insert(&user("alice", None)).await,
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(s.web_users().await.unwrap().len(), 2);
        assert!(s.web_user_set_role("bob", "admin", 5).await.unwrap());
        assert_eq!(s.web_user("bob").await.unwrap().unwrap().role, "admin");
        assert!(!s.web_user_set_role("nobody", "admin", 5).await.unwrap());

        s.web_session_insert(&session("h1", "alice", Some("alice@acme.example")))
            .await
            .unwrap();
        s.web_session_insert(&session("h2", "oscar", Some("Oscar@Acme.example")))
            .await
            .unwrap();
        s.web_session_insert(&session("h3", "bob", None))
            .await
            .unwrap();
        assert_eq!(
            s.web_session("h1").await.unwrap().unwrap().user_name,
            "alice"
        );
        s.web_session_touch("h1", 20).await.unwrap();
        assert!(s.web_session_reauthenticated("h1", 30).await.unwrap());
        let h1 = s.web_session("h1").await.unwrap().unwrap();
        assert_eq!((h1.last_seen_ms, h1.authenticated_ms), (30, 30));
        assert_eq!(s.web_sessions_live(100).await.unwrap().len(), 3);
        assert_eq!(
            s.web_sessions_live(1_000).await.unwrap().len(),
            0,
            "expired"
        );

        // By address, whatever its case; by name.
        let n = s
            .web_sessions_end_for(None, Some("oscar@acme.example"), 40, "left")
            .await
            .unwrap();
        assert_eq!(n, 1);
        let n = s
            .web_sessions_end_for(Some("bob"), None, 40, "removed")
            .await
            .unwrap();
        assert_eq!(n, 1);
        let live = s.web_sessions_live(100).await.unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].id_hash, "h1");
        assert!(!s.web_session_reauthenticated("h2", 50).await.unwrap());
        assert!(s.web_session_end("h1", 60, "signed out").await.unwrap());
        assert!(!s.web_session_end("h1", 61, "again").await.unwrap());
        let h1 = s.web_session("h1").await.unwrap().unwrap();
        assert_eq!(h1.ended_reason.as_deref(), Some("signed out"));
        assert!(s.web_user_delete("alice").await.unwrap());
        assert!(!s.web_user_delete("alice").await.unwrap());
    }
}

both_backends!(users_and_sessions_round_trip_and_end);
