//! The SCIM part of the store (`scim.rs`), on both backends.
//!
//! Same pattern as `store.rs`: every case in `cases` runs as
//! `sqlite::<case>` and `postgres::<case>` (a fresh schema in the database
//! named by `ROSTER_TEST_POSTGRES_URL`). PostgreSQL cases fail when it is
//! unreachable, unless `ROSTER_REQUIRE_POSTGRES=0` waives them.

mod common;
use common::harness;

mod cases {
    use roster_store::{
        GatewayIntent, GatewayStatus, GatewayUser, ScimIndex, ScimKind, ScimMember,
        ScimResourceWrite, ScimStoreError, ScimTokenRecord, StoreError,
    };
    use serde_json::json;

    use crate::harness::Fx;

    const C: &str = "okta";

    fn user(id: &str, user_name: &str) -> ScimResourceWrite {
        ScimResourceWrite {
            id: id.into(),
            user_name: Some(user_name.into()),
            display_name: Some(format!("Display {id}")),
            external_id: Some(format!("Ext-{id}")),
            active: Some(true),
            emails: vec![user_name.to_string(), format!("{id}@Home.example")],
            members: None,
            data: json!({"userName": user_name, "title": "t"}),
            intent: None,
        }
    }

    fn group(id: &str, name: &str, members: &[&str]) -> ScimResourceWrite {
        ScimResourceWrite {
            id: id.into(),
            user_name: None,
            display_name: Some(name.into()),
            external_id: None,
            active: None,
            emails: vec![],
            members: Some(
                members
                    .iter()
                    .map(|m| ScimMember {
                        value: m.to_string(),
                        member_type: Some("User".into()),
                        display: None,
                    })
                    .collect(),
            ),
            data: json!({"displayName": name}),
            intent: None,
        }
    }

    fn ids(rs: &[roster_store::ScimResource]) -> Vec<&str> {
        rs.iter().map(|r| r.id.as_str()).collect()
    }

    pub async fn resources_round_trip_and_indexes(fx: Fx) {
        let s = &fx.store;
        let u = s
            .scim_create(
                C,
                ScimKind::User,
                user("u1", "Ünïcode.User@Example.com"),
                10,
            )
            .await
            .unwrap();
        assert_eq!((u.version, u.created_ms, u.modified_ms), (1, 10, 10));
        s.scim_create(C, ScimKind::User, user("u2", "bob@example.com"), 11)
            .await
            .unwrap();
        // Same userName in another connection is fine.
        s.scim_create("entra", ScimKind::User, user("u1", "bob@example.com"), 12)
            .await
            .unwrap();
        let got = s.scim_get(C, ScimKind::User, "u1").await.unwrap().unwrap();
        assert_eq!(
            got.data,
            json!({"userName": "Ünïcode.User@Example.com", "title": "t"})
        );
        assert_eq!(got.active, Some(true));
        assert_eq!(got.user_name.as_deref(), Some("Ünïcode.User@Example.com"));
        assert!(
            s.scim_get(C, ScimKind::Group, "u1")
                .await
                .unwrap()
                .is_none()
        );

        // Each index, with Unicode case folding where caseExact=false.
        let find =
            |i, v: &'static str| async move { s.scim_find(C, ScimKind::User, i, v).await.unwrap() };
        assert_eq!(
            ids(&find(ScimIndex::UserName, "ünïcode.user@EXAMPLE.com").await),
            ["u1"]
        );
        assert_eq!(
            ids(&find(ScimIndex::Email, "U1@home.EXAMPLE").await),
            ["u1"]
        );
        assert_eq!(
            ids(&find(ScimIndex::Email, "bob@example.com").await),
            ["u2"]
        );
        assert_eq!(ids(&find(ScimIndex::ExternalId, "Ext-u2").await), ["u2"]);
        assert!(
            find(ScimIndex::ExternalId, "ext-u2").await.is_empty(),
            "externalId is exact"
        );
        assert_eq!(
            ids(&find(ScimIndex::DisplayName, "display U1").await),
            ["u1"]
        );
        assert_eq!(ids(&find(ScimIndex::Id, "u2").await), ["u2"]);
        assert_eq!(s.scim_count(C, ScimKind::User).await.unwrap(), 2);
        assert_eq!(s.scim_count("entra", ScimKind::User).await.unwrap(), 1);
        let many = s
            .scim_get_many(
                C,
                ScimKind::User,
                &["u2".into(), "nope".into(), "u1".into()],
            )
            .await
            .unwrap();
        assert_eq!(ids(&many), ["u1", "u2"], "creation order");
    }

    pub async fn user_name_is_unique_case_insensitively(fx: Fx) {
        let s = &fx.store;
        s.scim_create(C, ScimKind::User, user("u1", "Alice@X.com"), 1)
            .await
            .unwrap();
        let err = s
            .scim_create(C, ScimKind::User, user("u2", "alice@x.COM"), 2)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ScimStoreError::Conflict { existing_id, .. } if existing_id == "u1"),
            "{err}"
        );
        let err = s
            .scim_create(C, ScimKind::User, user("u1", "other@x.com"), 2)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ScimStoreError::Conflict { .. } | ScimStoreError::DuplicateId { .. }
            ),
            "{err}"
        );
        // Renaming onto a taken name conflicts; onto its own name does not.
        s.scim_create(C, ScimKind::User, user("u3", "carol@x.com"), 3)
            .await
            .unwrap();
        let err = s
            .scim_replace(C, ScimKind::User, user("u3", "ALICE@x.com"), 1, 4)
            .await
            .unwrap_err();
        assert!(matches!(err, ScimStoreError::Conflict { .. }), "{err}");
        s.scim_replace(C, ScimKind::User, user("u3", "CAROL@x.com"), 1, 4)
            .await
            .unwrap();
        // Nothing half-written by the failed attempts.
        assert_eq!(s.scim_count(C, ScimKind::User).await.unwrap(), 2);
        assert!(
            s.scim_find(C, ScimKind::User, ScimIndex::Email, "u2@home.example")
                .await
                .unwrap()
                .is_empty()
        );

        // Concurrent creates of one name: exactly one wins.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let st = s.clone();
            tasks.push(tokio::spawn(async move {
                st.scim_create(C, ScimKind::User, user(&format!("r{i}"), "race@x.com"), 9)
                    .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(ScimStoreError::Conflict { .. }) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(ok, 1);
    }

    pub async fn replace_checks_versions(fx: Fx) {
        let s = &fx.store;
        s.scim_create(C, ScimKind::User, user("u1", "a@x.com"), 1)
            .await
            .unwrap();
        let mut w = user("u1", "a@x.com");
        w.active = Some(false);
        w.emails = vec!["new@x.com".into()];
        w.data = json!({"userName": "a@x.com", "active": false});
        let out = s
            .scim_replace(C, ScimKind::User, w.clone(), 1, 5)
            .await
            .unwrap();
        assert_eq!(
            (
                out.resource.version,
                out.resource.created_ms,
                out.resource.modified_ms
            ),
            (2, 1, 5)
        );
        assert_eq!(out.resource.active, Some(false));
        assert_eq!(
            out.resource.data,
            json!({"userName": "a@x.com", "active": false})
        );
        // Emails were replaced.
        assert!(
            s.scim_find(C, ScimKind::User, ScimIndex::Email, "a@x.com")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.scim_find(C, ScimKind::User, ScimIndex::Email, "NEW@x.com")
                .await
                .unwrap()
                .len(),
            1
        );
        // A stale version is refused and changes nothing.
        let err = s
            .scim_replace(C, ScimKind::User, user("u1", "b@x.com"), 1, 6)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ScimStoreError::VersionMismatch {
                    expected: 1,
                    current: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            s.scim_get(C, ScimKind::User, "u1")
                .await
                .unwrap()
                .unwrap()
                .user_name
                .as_deref(),
            Some("a@x.com")
        );
        let err = s
            .scim_replace(C, ScimKind::User, user("zz", "z@x.com"), 1, 6)
            .await
            .unwrap_err();
        assert!(matches!(err, ScimStoreError::NotFound { .. }), "{err}");
        let err = s
            .scim_delete(C, ScimKind::User, "u1", Some(1), 7)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ScimStoreError::VersionMismatch { .. }),
            "{err}"
        );
        s.scim_delete(C, ScimKind::User, "u1", Some(2), 7)
            .await
            .unwrap();
        let err = s
            .scim_delete(C, ScimKind::User, "u1", None, 8)
            .await
            .unwrap_err();
        assert!(matches!(err, ScimStoreError::NotFound { .. }), "{err}");
        assert!(
            s.scim_find(C, ScimKind::User, ScimIndex::Email, "new@x.com")
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// A member naming nothing yet is pending, never a `scim_member` row;
    /// the user whose externalId it is takes its place (with its intent's
    /// group names) in the transaction that writes the user, whichever
    /// came first; a batch holding both links too.
    pub async fn pending_members_link_when_the_user_arrives(fx: Fx) {
        use roster_store::{ScimWriteJob, ScimWriteOp};
        let s = &fx.store;
        // Group first: u1 is named by its externalId ("Ext-u1"), "ghost"
        // by nothing that will come.
        s.scim_create(
            C,
            ScimKind::Group,
            group("g1", "Finance", &["Ext-u1", "ghost"]),
            1,
        )
        .await
        .unwrap();
        assert!(s.scim_members(C, &["g1".into()]).await.unwrap().is_empty());
        assert_eq!(s.scim_pending_count(C).await.unwrap(), 2);
        let pending = s.scim_pending_members(C, "g1").await.unwrap();
        let vals: Vec<&str> = pending.iter().map(|m| m.value.as_str()).collect();
        assert_eq!(vals, ["Ext-u1", "ghost"]);
        assert!(pending.iter().all(|m| m.member_type.is_none()));
        let gv = s
            .scim_get(C, ScimKind::Group, "g1")
            .await
            .unwrap()
            .unwrap()
            .version;

        s.scim_create(
            C,
            ScimKind::User,
            with_intent(
                user("u1", "a@x.example"),
                intent("a@x.example", GatewayStatus::Active, "E1"),
            ),
            2,
        )
        .await
        .unwrap();
        let m = s.scim_members(C, &["g1".into()]).await.unwrap();
        assert_eq!(m["g1"].len(), 1);
        assert_eq!(m["g1"][0].value, "u1");
        assert_eq!(m["g1"][0].member_type.as_deref(), Some("User"));
        assert_eq!(
            s.scim_get(C, ScimKind::Group, "g1")
                .await
                .unwrap()
                .unwrap()
                .version,
            gv + 1
        );
        assert_eq!(intent_of(s, "u1").await.unwrap().groups, ["Finance"]);
        assert_eq!(s.scim_pending_count(C).await.unwrap(), 1, "ghost stays");

        // User first: a group naming its externalId resolves at once.
        s.scim_create(C, ScimKind::User, user("u2", "b@x.example"), 3)
            .await
            .unwrap();
        s.scim_create(C, ScimKind::Group, group("g2", "Ops", &["Ext-u2"]), 4)
            .await
            .unwrap();
        let m = s.scim_members(C, &["g2".into()]).await.unwrap();
        assert_eq!(m["g2"][0].value, "u2");

        // Replacing the list keeps only what it names; deleting the group
        // drops its pending members.
        s.scim_replace(
            C,
            ScimKind::Group,
            group("g1", "Finance", &["u1"]),
            gv + 1,
            5,
        )
        .await
        .unwrap();
        assert_eq!(s.scim_pending_count(C).await.unwrap(), 0);
        s.scim_create(C, ScimKind::Group, group("g3", "Legal", &["Ext-u9"]), 6)
            .await
            .unwrap();
        assert_eq!(s.scim_pending_count(C).await.unwrap(), 1);
        s.scim_delete(C, ScimKind::Group, "g3", None, 7)
            .await
            .unwrap();
        assert_eq!(s.scim_pending_count(C).await.unwrap(), 0);

        // One batch: the group and the user it names by externalId.
        let out = s
            .scim_write_batch(
                vec![
                    ScimWriteJob {
                        connection: C.into(),
                        op: ScimWriteOp::Create {
                            kind: ScimKind::Group,
                            write: group("g4", "Batch", &["Ext-u4"]),
                        },
                        actor: Some("test".into()),
                    },
                    ScimWriteJob {
                        connection: C.into(),
                        op: ScimWriteOp::Create {
                            kind: ScimKind::User,
                            write: with_intent(
                                user("u4", "d@x.example"),
                                intent("d@x.example", GatewayStatus::Active, "E4"),
                            ),
                        },
                        actor: Some("test".into()),
                    },
                ],
                8,
            )
            .await
            .unwrap();
        assert!(out.iter().all(Result::is_ok));
        let m = s.scim_members(C, &["g4".into()]).await.unwrap();
        assert_eq!(m["g4"][0].value, "u4");
        assert_eq!(intent_of(s, "u4").await.unwrap().groups, ["Batch"]);
        assert_eq!(s.scim_pending_count(C).await.unwrap(), 0);
    }

    pub async fn membership_diffs_and_cascades(fx: Fx) {
        let s = &fx.store;
        for (id, n) in [("u1", "a@x"), ("u2", "b@x"), ("u3", "c@x")] {
            s.scim_create(C, ScimKind::User, user(id, n), 1)
                .await
                .unwrap();
        }
        let g = s
            .scim_create(
                C,
                ScimKind::Group,
                group("g1", "Eng", &["u1", "u2", "u1"]),
                2,
            )
            .await
            .unwrap();
        assert_eq!(g.version, 1);
        let m = s.scim_members(C, &["g1".into()]).await.unwrap();
        let vals: Vec<&str> = m["g1"].iter().map(|m| m.value.as_str()).collect();
        assert_eq!(vals, ["u1", "u2"], "deduplicated, in order");
        // Members' versions moved: User.groups changed.
        assert_eq!(
            s.scim_get(C, ScimKind::User, "u1")
                .await
                .unwrap()
                .unwrap()
                .version,
            2
        );
        assert_eq!(
            s.scim_get(C, ScimKind::User, "u3")
                .await
                .unwrap()
                .unwrap()
                .version,
            1
        );

        let out = s
            .scim_replace(C, ScimKind::Group, group("g1", "Eng", &["u2", "u3"]), 1, 3)
            .await
            .unwrap();
        assert_eq!(out.members_added, ["u3"]);
        assert_eq!(out.members_removed, ["u1"]);
        let m = s.scim_members(C, &["g1".into()]).await.unwrap();
        let vals: Vec<&str> = m["g1"].iter().map(|m| m.value.as_str()).collect();
        assert_eq!(vals, ["u2", "u3"], "kept members keep their place");
        // members: None leaves membership alone.
        let mut rename = group("g1", "Engineering", &[]);
        rename.members = None;
        let out = s
            .scim_replace(C, ScimKind::Group, rename, 2, 4)
            .await
            .unwrap();
        assert!(out.members_added.is_empty() && out.members_removed.is_empty());
        let gs = s
            .scim_groups_of(C, &["u2".into(), "u1".into()])
            .await
            .unwrap();
        assert_eq!(gs["u2"][0].group_id, "g1");
        assert_eq!(gs["u2"][0].display_name.as_deref(), Some("Engineering"));
        assert!(!gs.contains_key("u1"));
        assert_eq!(
            s.scim_find(C, ScimKind::Group, ScimIndex::Member, "u3")
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            s.scim_kinds_of(C, &["u1".into(), "g1".into(), "x".into()])
                .await
                .unwrap()
                .len(),
            2
        );

        // Deleting a member removes it from the group and bumps the group.
        let gv = s
            .scim_get(C, ScimKind::Group, "g1")
            .await
            .unwrap()
            .unwrap()
            .version;
        let d = s
            .scim_delete(C, ScimKind::User, "u3", None, 5)
            .await
            .unwrap();
        assert_eq!(d.former_groups, ["g1"]);
        assert_eq!(
            s.scim_get(C, ScimKind::Group, "g1")
                .await
                .unwrap()
                .unwrap()
                .version,
            gv + 1
        );
        let m = s.scim_members(C, &["g1".into()]).await.unwrap();
        assert_eq!(m["g1"].len(), 1);
        // Deleting the group reports its former members.
        let d = s
            .scim_delete(C, ScimKind::Group, "g1", None, 6)
            .await
            .unwrap();
        assert_eq!(d.former_members, ["u2"]);
        assert!(
            s.scim_groups_of(C, &["u2".into()])
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn scan_and_page_in_creation_order(fx: Fx) {
        let s = &fx.store;
        let writes: Vec<ScimResourceWrite> = (0..2_500)
            .map(|i| user(&format!("id-{:05}", 2_500 - i), &format!("user{i}@x.com")))
            .collect();
        s.scim_import(C, ScimKind::User, writes, 1).await.unwrap();
        assert_eq!(s.scim_count(C, ScimKind::User).await.unwrap(), 2_500);
        let page = s.scim_page(C, ScimKind::User, 10, 3).await.unwrap();
        let names: Vec<&str> = page.iter().filter_map(|r| r.user_name.as_deref()).collect();
        assert_eq!(names, ["user10@x.com", "user11@x.com", "user12@x.com"]);
        assert!(
            s.scim_page(C, ScimKind::User, 0, 0)
                .await
                .unwrap()
                .is_empty()
        );
        let mut after = 0;
        let mut seen = 0;
        loop {
            let chunk = s.scim_scan(C, ScimKind::User, after, 1_000).await.unwrap();
            let Some(last) = chunk.last() else { break };
            assert!(chunk.windows(2).all(|w| w[0].seq < w[1].seq));
            after = last.seq;
            seen += chunk.len();
        }
        assert_eq!(seen, 2_500);
        let hit = s
            .scim_find(C, ScimKind::User, ScimIndex::UserName, "USER2499@x.com")
            .await
            .unwrap();
        assert_eq!(ids(&hit), ["id-00001"]);
        // Imports refuse duplicates as a whole.
        let err = s
            .scim_import(
                C,
                ScimKind::User,
                vec![user("fresh", "x@x"), user("dup", "user1@x.com")],
                2,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, ScimStoreError::Store(StoreError::Invalid(_))),
            "{err}"
        );
        assert!(
            s.scim_get(C, ScimKind::User, "fresh")
                .await
                .unwrap()
                .is_none()
        );
    }

    pub async fn write_batches_commit_with_their_audit_records(fx: Fx) {
        use roster_store::{ScimWriteJob, ScimWriteOp, ScimWriteResult};
        let s = &fx.store;
        s.append_audit(roster_store::AuditEvent {
            at_ms: 1,
            actor: "someone".into(),
            kind: "other.event".into(),
            subject: "x".into(),
            data: json!({}),
        })
        .await
        .unwrap();
        let job = |op, actor: Option<&str>| ScimWriteJob {
            connection: C.into(),
            op,
            actor: actor.map(str::to_string),
        };
        let create = |id: &str, un: &str| ScimWriteOp::Create {
            kind: ScimKind::User,
            write: user(id, un),
        };
        let results = s
            .scim_write_batch(
                vec![
                    job(create("u1", "a@x"), Some("scim:okta:rst_1")),
                    job(create("u2", "A@X"), Some("scim:okta:rst_1")),
                    job(create("u3", "c@x"), None),
                    job(
                        ScimWriteOp::Replace {
                            kind: ScimKind::User,
                            write: user("u1", "a@x"),
                            expected_version: 1,
                            user_name_changed: false,
                            emails_changed: false,
                            columns_changed: false,
                        },
                        Some("scim:okta:rst_2"),
                    ),
                    job(
                        ScimWriteOp::Replace {
                            kind: ScimKind::User,
                            write: user("u3", "c@x"),
                            expected_version: 7,
                            user_name_changed: false,
                            emails_changed: true,
                            columns_changed: true,
                        },
                        Some("scim:okta:rst_2"),
                    ),
                    job(
                        ScimWriteOp::Delete {
                            kind: ScimKind::User,
                            id: "nope".into(),
                            expected_version: None,
                        },
                        Some("scim:okta:rst_2"),
                    ),
                ],
                50,
            )
            .await
            .unwrap();
        assert!(matches!(results[0], Ok(ScimWriteResult::Created(_))));
        assert!(
            matches!(results[1], Err(ScimStoreError::Conflict { .. })),
            "{:?}",
            results[1]
        );
        assert!(matches!(results[2], Ok(ScimWriteResult::Created(_))));
        match &results[3] {
            Ok(ScimWriteResult::Replaced(o)) => assert_eq!(o.resource.version, 2),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(
                results[4],
                Err(ScimStoreError::VersionMismatch {
                    current: 1,
                    expected: 7,
                    ..
                })
            ),
            "{:?}",
            results[4]
        );
        assert!(matches!(results[5], Err(ScimStoreError::NotFound { .. })));
        // Audited: the two successful jobs with actors, chained after the
        // existing event; refused and actor-less jobs are not.
        let events = s.audit_since(0).await.unwrap();
        let kinds: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.kind.as_str(), e.actor.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("other.event", "someone"),
                ("scim.user.created", "scim:okta:rst_1"),
                ("scim.user.updated", "scim:okta:rst_2")
            ]
        );
        assert_eq!(events[1].subject, "scim:okta:User:u1");
        assert_eq!(events[2].data["version"], 2);
        let report = s.verify_audit().await.unwrap();
        assert_eq!(report.events, 3);
        // A later ordinary append continues the same chain.
        s.append_audit(roster_store::AuditEvent {
            at_ms: 60,
            actor: "someone".into(),
            kind: "other.event".into(),
            subject: "y".into(),
            data: json!({}),
        })
        .await
        .unwrap();
        assert_eq!(s.verify_audit().await.unwrap().events, 4);
    }

    pub async fn replaces_that_keep_the_indexed_columns_write_only_the_rest(fx: Fx) {
        use roster_store::{ScimIndex, ScimWriteJob, ScimWriteOp, ScimWriteResult};
        let s = &fx.store;
        s.scim_create(C, ScimKind::User, user("u1", "a@x"), 1)
            .await
            .unwrap();
        let replace = |write: ScimResourceWrite, expected_version, columns_changed| ScimWriteJob {
            connection: C.into(),
            op: ScimWriteOp::Replace {
                kind: ScimKind::User,
                write,
                expected_version,
                user_name_changed: false,
                emails_changed: false,
                columns_changed,
            },
            actor: None,
        };
        // A deactivation (what Okta's PATCH carries): the indexed columns
        // are left alone, and every lookup still finds the user.
        let mut off = user("u1", "a@x");
        off.active = Some(false);
        off.data = json!({"userName": "a@x", "title": "gone"});
        let r = s
            .scim_write_batch(vec![replace(off, 1, false)], 2)
            .await
            .unwrap();
        assert!(matches!(r[0], Ok(ScimWriteResult::Replaced(_))), "{r:?}");
        let got = s.scim_get(C, ScimKind::User, "u1").await.unwrap().unwrap();
        assert_eq!(
            (got.version, got.active, got.modified_ms, &got.data["title"]),
            (2, Some(false), 2, &json!("gone"))
        );
        for (index, value) in [
            (ScimIndex::UserName, "A@X"),
            (ScimIndex::ExternalId, "Ext-u1"),
            (ScimIndex::DisplayName, "display U1"),
        ] {
            let found = s.scim_find(C, ScimKind::User, index, value).await.unwrap();
            assert_eq!(ids(&found), ["u1"], "{index:?} {value}");
        }
        // A rename goes through the full shape: the index follows.
        let mut renamed = user("u1", "a@x");
        renamed.display_name = Some("Someone Else".into());
        s.scim_write_batch(vec![replace(renamed, 2, true)], 3)
            .await
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
        let by = |name: &'static str| async move {
            s.scim_find(C, ScimKind::User, ScimIndex::DisplayName, name)
                .await
                .unwrap()
        };
        assert_eq!(ids(&by("someone else").await), ["u1"]);
        assert!(by("Display u1").await.is_empty());
    }

    pub async fn tokens_round_trip(fx: Fx) {
        let s = &fx.store;
        let rec = |p: &str, c: &str, at| ScimTokenRecord {
            prefix: p.into(),
            connection: c.into(),
            hash: "ab".repeat(32),
            created_ms: at,
            last_used_ms: None,
            revoked_ms: None,
        };
        s.scim_token_insert(&rec("rst_aaaaaaaa", C, 1))
            .await
            .unwrap();
        s.scim_token_insert(&rec("rst_bbbbbbbb", "entra", 2))
            .await
            .unwrap();
        let dup = s
            .scim_token_insert(&rec("rst_aaaaaaaa", C, 3))
            .await
            .unwrap_err();
        assert!(matches!(dup, StoreError::Invalid(_)), "{dup}");
        assert_eq!(s.scim_tokens(None).await.unwrap().len(), 2);
        assert_eq!(
            s.scim_tokens(Some(C)).await.unwrap(),
            vec![rec("rst_aaaaaaaa", C, 1)]
        );
        s.scim_token_touch("rst_aaaaaaaa", 50).await.unwrap();
        assert!(s.scim_token_revoke("rst_aaaaaaaa", 60).await.unwrap());
        assert!(!s.scim_token_revoke("rst_aaaaaaaa", 70).await.unwrap());
        assert!(!s.scim_token_revoke("rst_nonexist", 70).await.unwrap());
        let t = s.scim_token("rst_aaaaaaaa").await.unwrap().unwrap();
        assert_eq!((t.last_used_ms, t.revoked_ms), (Some(50), Some(60)));
        assert!(s.scim_token("rst_zzzzzzzz").await.unwrap().is_none());
    }
    fn intent(user_name: &str, status: GatewayStatus, employee_number: &str) -> GatewayUser {
        GatewayUser {
            status: Some(status),
            user_name: Some(user_name.into()),
            external_id: Some(format!("ext-{employee_number}")),
            employee_number: Some(employee_number.into()),
            emails: vec![user_name.to_string()],
            given_name: Some("Given".into()),
            family_name: Some("Family".into()),
        }
    }

    fn with_intent(mut w: ScimResourceWrite, i: GatewayUser) -> ScimResourceWrite {
        w.intent = Some(i);
        w
    }

    async fn intent_of(s: &roster_store::Store, id: &str) -> Option<GatewayIntent> {
        s.gateway_intents(C, &[id.to_string()])
            .await
            .unwrap()
            .into_iter()
            .next()
    }

    pub async fn gateway_intent_is_written_with_users_and_follows_groups(fx: Fx) {
        let s = &fx.store;
        let u1 = s
            .scim_create(
                C,
                ScimKind::User,
                with_intent(
                    user("u1", "a@x.example"),
                    intent("a@x.example", GatewayStatus::Active, "E1"),
                ),
                1,
            )
            .await
            .unwrap();
        s.scim_create(
            C,
            ScimKind::User,
            with_intent(
                user("u2", "b@x.example"),
                intent("b@x.example", GatewayStatus::Active, "E2"),
            ),
            1,
        )
        .await
        .unwrap();
        let i = intent_of(s, "u1").await.expect("written with the user");
        assert_eq!(
            (
                i.status,
                i.seq,
                i.employee_number.as_deref(),
                i.given_name.as_deref()
            ),
            (GatewayStatus::Active, u1.seq, Some("E1"), Some("Given"))
        );
        assert_eq!(i.emails, vec!["a@x.example".to_string()]);
        assert!(i.groups.is_empty());

        // Group writes refresh their members' group names.
        s.scim_create(C, ScimKind::Group, group("g1", "Finance", &["u1", "u2"]), 2)
            .await
            .unwrap();
        s.scim_create(C, ScimKind::Group, group("g2", "Ops", &["u1"]), 2)
            .await
            .unwrap();
        assert_eq!(intent_of(s, "u1").await.unwrap().groups, ["Finance", "Ops"]);
        s.scim_replace(C, ScimKind::Group, group("g1", "Finance", &["u2"]), 1, 3)
            .await
            .unwrap();
        assert_eq!(intent_of(s, "u1").await.unwrap().groups, ["Ops"]);
        let mut rename = group("g1", "Treasury", &[]);
        rename.members = None;
        s.scim_replace(C, ScimKind::Group, rename, 2, 4)
            .await
            .unwrap();
        assert_eq!(intent_of(s, "u2").await.unwrap().groups, ["Treasury"]);

        // A user write replaces the attributes and keeps the groups.
        let cur = s.scim_get(C, ScimKind::User, "u2").await.unwrap().unwrap();
        s.scim_replace(
            C,
            ScimKind::User,
            with_intent(
                user("u2", "b@x.example"),
                intent("b@x.example", GatewayStatus::Inactive, "E2b"),
            ),
            cur.version,
            5,
        )
        .await
        .unwrap();
        let i = intent_of(s, "u2").await.unwrap();
        assert_eq!(
            (i.status, i.employee_number.as_deref(), i.groups.clone()),
            (
                GatewayStatus::Inactive,
                Some("E2b"),
                vec!["Treasury".to_string()]
            )
        );

        // A user write without intent never leaves a stale row: it goes,
        // and the user is listed for the backfill.
        let cur = s.scim_get(C, ScimKind::User, "u2").await.unwrap().unwrap();
        s.scim_replace(C, ScimKind::User, user("u2", "b@x.example"), cur.version, 6)
            .await
            .unwrap();
        assert!(intent_of(s, "u2").await.is_none());
        let lacking = s.scim_users_lacking_intent(C, None, 10).await.unwrap();
        assert_eq!(ids(&lacking), ["u2"]);
        let among = s
            .scim_users_lacking_intent(C, Some(&["u1".to_string()]), 10)
            .await
            .unwrap();
        assert!(among.is_empty(), "u1 has its row");
        // The backfill writes only for the version it read.
        let stale = vec![(
            "u2".to_string(),
            cur.version,
            intent("b@x.example", GatewayStatus::Active, "E2"),
        )];
        assert_eq!(s.gateway_intent_backfill(C, &stale, 7).await.unwrap(), 0);
        let fresh = vec![(
            "u2".to_string(),
            lacking[0].version,
            intent("b@x.example", GatewayStatus::Active, "E2"),
        )];
        assert_eq!(s.gateway_intent_backfill(C, &fresh, 7).await.unwrap(), 1);
        assert_eq!(
            s.gateway_intent_backfill(C, &fresh, 8).await.unwrap(),
            0,
            "once"
        );
        let i = intent_of(s, "u2").await.unwrap();
        assert_eq!(
            (i.status, i.groups.clone()),
            (GatewayStatus::Active, vec!["Treasury".to_string()])
        );

        // A user delete keeps the record with status deleted, no groups.
        s.scim_delete(C, ScimKind::User, "u1", None, 9)
            .await
            .unwrap();
        let i = intent_of(s, "u1").await.unwrap();
        assert_eq!((i.status, i.groups.len()), (GatewayStatus::Deleted, 0));
        assert_eq!(
            i.employee_number.as_deref(),
            Some("E1"),
            "the last word kept"
        );
        // A group delete clears its members' names.
        s.scim_delete(C, ScimKind::Group, "g1", None, 10)
            .await
            .unwrap();
        assert!(intent_of(s, "u2").await.unwrap().groups.is_empty());
        // Scans page in creation order, deleted rows included.
        let all = s.gateway_intent_scan(C, 0, 10).await.unwrap();
        let got: Vec<&str> = all.iter().map(|i| i.user_id.as_str()).collect();
        assert_eq!(got, ["u1", "u2"]);
        assert!(
            s.gateway_intent_scan(C, all[0].seq, 10)
                .await
                .unwrap()
                .len()
                == 1
        );
        assert_eq!(
            s.scim_user_ids(C, ScimIndex::Email, "B@X.EXAMPLE")
                .await
                .unwrap(),
            ["u2"]
        );
        assert!(
            s.gateway_intents("entra", &["u2".to_string()])
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn a_failing_write_leaves_neither_resource_nor_intent(fx: Fx) {
        use roster_store::{Backend, ScimWriteJob, ScimWriteOp};
        let s = &fx.store;
        let job = |op| ScimWriteJob {
            connection: C.into(),
            op,
            actor: Some("scim:okta:rst_test".into()),
        };
        s.scim_write(
            job(ScimWriteOp::Create {
                kind: ScimKind::User,
                write: with_intent(
                    user("u1", "a@x.example"),
                    intent("a@x.example", GatewayStatus::Active, "E1"),
                ),
            }),
            1,
        )
        .await
        .unwrap();
        let audited = s.audit_since(0).await.unwrap().len();
        // The intent table refuses every write from now on.
        match fx.backend {
            Backend::Sqlite => {
                fx.raw(
                    "CREATE TRIGGER refuse_intent BEFORE INSERT ON gateway_intent \
                     BEGIN SELECT RAISE(ABORT, 'intent refused'); END",
                )
                .await;
                fx.raw(
                    "CREATE TRIGGER refuse_intent_update BEFORE UPDATE ON gateway_intent \
                     BEGIN SELECT RAISE(ABORT, 'intent refused'); END",
                )
                .await;
            }
            Backend::Postgres => {
                fx.raw(
                    "CREATE FUNCTION refuse_intent() RETURNS trigger AS $$ \
                     BEGIN RAISE EXCEPTION 'intent refused'; END $$ LANGUAGE plpgsql",
                )
                .await;
                fx.raw(
                    "CREATE TRIGGER refuse_intent BEFORE INSERT OR UPDATE ON gateway_intent \
                     FOR EACH ROW EXECUTE FUNCTION refuse_intent()",
                )
                .await;
            }
        }
        // A create whose intent cannot be written leaves no user either.
        let err = s
            .scim_write(
                job(ScimWriteOp::Create {
                    kind: ScimKind::User,
                    write: with_intent(
                        user("u2", "b@x.example"),
                        intent("b@x.example", GatewayStatus::Active, "E2"),
                    ),
                }),
                2,
            )
            .await;
        assert!(err.is_err(), "{err:?}");
        assert!(s.scim_get(C, ScimKind::User, "u2").await.unwrap().is_none());
        assert!(intent_of(s, "u2").await.is_none());
        // A deactivation whose intent cannot be written changes nothing.
        let err = s
            .scim_write(
                job(ScimWriteOp::Replace {
                    kind: ScimKind::User,
                    write: with_intent(
                        user("u1", "a@x.example"),
                        intent("a@x.example", GatewayStatus::Inactive, "E1"),
                    ),
                    expected_version: 1,
                    user_name_changed: false,
                    emails_changed: false,
                    columns_changed: false,
                }),
                3,
            )
            .await;
        assert!(err.is_err(), "{err:?}");
        let u1 = s.scim_get(C, ScimKind::User, "u1").await.unwrap().unwrap();
        assert_eq!(u1.version, 1, "the resource is as it was");
        assert_eq!(
            intent_of(s, "u1").await.unwrap().status,
            GatewayStatus::Active
        );
        // Nor is either audited.
        assert_eq!(s.audit_since(0).await.unwrap().len(), audited);
        s.verify_audit().await.unwrap();

        // And a refused resource write (a taken userName) writes no intent.
        match fx.backend {
            Backend::Sqlite => {
                fx.raw("DROP TRIGGER refuse_intent").await;
                fx.raw("DROP TRIGGER refuse_intent_update").await;
            }
            Backend::Postgres => fx.raw("DROP TRIGGER refuse_intent ON gateway_intent").await,
        }
        let taken = s
            .scim_write(
                job(ScimWriteOp::Create {
                    kind: ScimKind::User,
                    write: with_intent(
                        user("u3", "A@x.example"),
                        intent("A@x.example", GatewayStatus::Active, "E3"),
                    ),
                }),
                4,
            )
            .await;
        assert!(
            matches!(taken, Err(ScimStoreError::Conflict { .. })),
            "{taken:?}"
        );
        assert!(intent_of(s, "u3").await.is_none());
        // With the table writable again, both go in together.
        s.scim_write(
            job(ScimWriteOp::Create {
                kind: ScimKind::User,
                write: with_intent(
                    user("u2", "b@x.example"),
                    intent("b@x.example", GatewayStatus::Active, "E2"),
                ),
            }),
            5,
        )
        .await
        .unwrap();
        assert!(s.scim_get(C, ScimKind::User, "u2").await.unwrap().is_some());
        assert_eq!(
            intent_of(s, "u2").await.unwrap().employee_number.as_deref(),
            Some("E2")
        );
    }
}

both_backends!(
    resources_round_trip_and_indexes,
    user_name_is_unique_case_insensitively,
    replace_checks_versions,
    membership_diffs_and_cascades,
    scan_and_page_in_creation_order,
    tokens_round_trip,
    write_batches_commit_with_their_audit_records,
    replaces_that_keep_the_indexed_columns_write_only_the_rest,
    gateway_intent_is_written_with_users_and_follows_groups,
    a_failing_write_leaves_neither_resource_nor_intent,
    pending_members_link_when_the_user_arrives,
);
