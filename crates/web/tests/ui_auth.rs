//! Who may use the web UI, enumerated from the one route table the router
//! is built from (`roster_web::routes`): no session, a session whose role
//! lacks the route's scope, a form without the session's CSRF token or
//! from another origin, a decision without a fresh sign-in or on a plan
//! that moved since it was read. Each refusal is checked to have changed
//! nothing in the app.

mod support;

use std::time::Duration;

use roster_core::{Role, Scope};
use roster_engine::{SessionLimits, SignInVia, WebIdentity};
use roster_store::PlanId;
use roster_web::{Access, routes};
use support::*;

fn concrete(path: &str, plan: &str) -> String {
    path.replace("/plans/{id}", &format!("/plans/{plan}"))
        .replace("/people/{id}", "/people/E03")
        .replace("/connections/{id}", "/connections/expensify")
        .replace("/apps/{id}", "/apps/expensify")
        .replace("{id}", "no-such-thing")
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_is_refused_without_a_role_with_a_wrong_password_or_an_unknown_name() {
    let ui = start(&policy("")).await;
    ui.user("alice", Role::Viewer, None).await;

    let (status, body) = ui.sign_in("alice", "not her password").await.unwrap_err();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("not right"), "{body}");
    let (status, unknown) = ui.sign_in("mallory", "anything at all").await.unwrap_err();
    assert_eq!(status, 401);
    // The same words for an unknown name: no user enumeration.
    assert!(unknown.contains("the name or the password is not right"));
    assert!(ui.sign_in("alice", PASSWORD).await.is_ok());

    // An identity an IdP established but whose groups map to no role.
    let refused = ui
        .roster
        .start_web_session(
            &WebIdentity {
                name: "oscar".into(),
                email: Some("p4@acme.example".into()),
                via: SignInVia::Oidc {
                    issuer: "https://idp.example".into(),
                    subject: "00u1".into(),
                },
                roles: Default::default(),
            },
            &SessionLimits::default(),
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("no roster role"), "{refused}");

    // Adding a user refuses a short password and a taken name.
    let short = ui
        .roster
        .add_web_user(
            &operator(),
            &roster_engine::NewWebUser {
                name: "bob".into(),
                role: Role::Admin,
                email: None,
                password: Some("short".into()),
            },
        )
        .await
        .unwrap_err();
    assert!(short.to_string().contains("too short"), "{short}");
    let (_, generated) = ui
        .roster
        .add_web_user(
            &operator(),
            &roster_engine::NewWebUser {
                name: "bob".into(),
                role: Role::Admin,
                email: None,
                password: None,
            },
        )
        .await
        .unwrap();
    let generated = generated.expect("a generated password is returned once");
    assert!(generated.len() >= 24);
    assert!(ui.sign_in("bob", &generated).await.is_ok());
    let users = ui.roster.web_users().await.unwrap();
    assert_eq!(users.len(), 2);
    let listed = serde_json::to_string(&users).unwrap();
    assert!(!listed.contains("argon2") && !listed.contains(&generated));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_but_sign_in_needs_a_live_session() {
    let ui = start(&policy("")).await;
    let table = routes();
    assert!(table.len() >= 25, "{}", table.len());
    let bogus = Browser {
        cookie: "roster_session=not-a-session".into(),
        csrf: String::new(),
    };
    let nobody = Browser {
        cookie: String::new(),
        csrf: String::new(),
    };
    for route in &table {
        if route.access == Access::Public {
            continue;
        }
        let label = route.label();
        let path = concrete(route.path, "p1");
        for who in [&nobody, &bogus] {
            let (status, body) = if route.method == axum::http::Method::GET {
                let resp = ui
                    .http
                    .get(ui.url(&path))
                    .header("cookie", &who.cookie)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let location = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                assert!(
                    location.starts_with("/ui/signin?next="),
                    "{label}: {location}"
                );
                (status, String::new())
            } else {
                ui.post(who, &path, &[("csrf", "x"), ("reason", "r")]).await
            };
            if route.method == axum::http::Method::GET {
                assert_eq!(status, 303, "{label}");
            } else {
                assert_eq!(status, 401, "{label}: {body}");
            }
        }
    }
    // A session that was signed out is no session.
    ui.user("alice", Role::Admin, None).await;
    let b = ui.sign_in("alice", PASSWORD).await.unwrap();
    assert_eq!(ui.get(&b, "/ui/").await.0, 200);
    let (status, _) = ui.post(&b, "/ui/signout", &[("csrf", &b.csrf)]).await;
    assert_eq!(status, 303);
    assert_eq!(ui.get(&b, "/ui/").await.0, 303);
    assert_eq!(ui.app_changes(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_form_refuses_a_role_without_its_scope_and_a_viewer_can_do_no_harm() {
    let ui = start(&sensitive()).await;
    let plan = ui.leavers_planned(&[3]).await;
    let changes = ui.app_changes();
    let mut browsers = Vec::new();
    for role in Role::ALL {
        browsers.push((role, ui.signed_in(role.as_str(), role, None).await));
    }
    for route in routes() {
        let scope = match route.access {
            Access::Public => continue,
            Access::Signed(s) | Access::Fresh(s) => s,
        };
        let label = route.label();
        let path = concrete(route.path, &plan);
        for (role, b) in &browsers {
            let (status, body) = if route.method == axum::http::Method::GET {
                ui.get(b, &path).await
            } else {
                // No CSRF token: a role with the scope gets past the guard
                // and is refused by the form's check, so nothing happens.
                ui.post(b, &path, &[("reason", "harm test")]).await
            };
            if role.scopes().contains(&scope) {
                assert_ne!(status, 401, "{label} as {role}: {body}");
                if status == 403 {
                    assert!(body.contains("security token"), "{label} as {role}: {body}");
                }
            } else {
                assert_eq!(status, 403, "{label} as {role}: {body}");
                assert!(
                    body.contains(&format!("may not {scope}")),
                    "{label} as {role}: {body}"
                );
            }
        }
    }
    // A viewer, with its own valid token, through every form: refused,
    // and nothing changed.
    let viewer = &browsers[0].1;
    for route in routes() {
        if route.method != axum::http::Method::POST || route.access == Access::Public {
            continue;
        }
        if route.path == "/ui/signout" || route.path == "/ui/reauth" {
            continue;
        }
        let path = concrete(route.path, &plan);
        let (status, body) = ui
            .post(
                viewer,
                &path,
                &[("csrf", &viewer.csrf), ("reason", "harm"), ("version", "x")],
            )
            .await;
        assert_eq!(status, 403, "{}: {body}", route.label());
    }
    let status = ui
        .roster
        .approval_status(&PlanId::new(&plan))
        .await
        .unwrap();
    assert_eq!(status.waiting.len(), 1, "{status:?}");
    assert!(status.approved.is_empty() && status.rejected.is_empty());
    assert_eq!(ui.app_changes(), changes);
    assert!(ui.in_app(&email(3)), "the leaver's removal never ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_refuse_a_missing_or_foreign_token_and_a_foreign_origin() {
    let ui = start(&sensitive()).await;
    let plan = ui.leavers_planned(&[3]).await;
    let admin = ui.signed_in("root", Role::Admin, None).await;
    let (_, page) = ui.get(&admin, &format!("/ui/plans/{plan}")).await;
    let version = page
        .split("name=\"version\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let other = ui.signed_in("other", Role::Admin, None).await;
    assert_ne!(other.csrf, admin.csrf, "each session has its own token");
    for route in routes() {
        if route.method != axum::http::Method::POST || route.access == Access::Public {
            continue;
        }
        let label = route.label();
        let path = concrete(route.path, &plan);
        let fields = |csrf: &str| {
            vec![
                ("csrf".to_string(), csrf.to_string()),
                ("reason".to_string(), "csrf test".to_string()),
                ("version".to_string(), version.clone()),
                ("password".to_string(), PASSWORD.to_string()),
                ("connection".to_string(), "expensify".to_string()),
                ("account".to_string(), "x".to_string()),
            ]
        };
        for token in ["", other.csrf.as_str()] {
            let f = fields(token);
            let refs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let (status, body) = ui.post(&admin, &path, &refs).await;
            assert_eq!(status, 403, "{label} with token {token:?}: {body}");
            assert!(body.contains("security token"), "{label}: {body}");
        }
        // The right token, from another site.
        let resp = ui
            .http
            .post(ui.url(&path))
            .header("cookie", &admin.cookie)
            .header("origin", "https://evil.example")
            .header("sec-fetch-site", "cross-site")
            .form(&fields(&admin.csrf))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 403, "{label} cross-site: {body}");
        assert!(body.contains("another site"), "{label}: {body}");
        // An old browser without Sec-Fetch-Site: the Origin alone decides.
        let resp = ui
            .http
            .post(ui.url(&path))
            .header("cookie", &admin.cookie)
            .header("origin", "https://evil.example")
            .form(&fields(&admin.csrf))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{label} foreign origin");
    }
    let status = ui
        .roster
        .approval_status(&PlanId::new(&plan))
        .await
        .unwrap();
    assert_eq!(status.waiting.len(), 1, "{status:?}");
    assert!(ui.in_app(&email(3)));
    // The admin's session is still live: no refused form signed it out.
    assert_eq!(ui.get(&admin, "/ui/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn approving_needs_a_fresh_sign_in_and_is_bound_to_the_plan_version() {
    let limits = SessionLimits {
        fresh: Duration::from_millis(1500),
        ..SessionLimits::default()
    };
    let ui = start_with(&sensitive(), limits).await;
    let plan = ui.leavers_planned(&[3, 7]).await;
    let approver = ui.signed_in("ann", Role::Approver, None).await;
    let (status, page) = ui.get(&approver, &format!("/ui/plans/{plan}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Approve 2 waiting action(s)"), "{page}");
    let version = page
        .split("name=\"version\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(1700)).await;

    // No longer fresh: refused, with the way to confirm.
    let approve = format!("/ui/plans/{plan}/approve");
    let form = [
        ("csrf", approver.csrf.as_str()),
        ("reason", "they left"),
        ("version", version.as_str()),
    ];
    let (status, body) = ui.post(&approver, &approve, &form).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("fresh sign-in") && body.contains("/ui/reauth?next="),
        "{body}"
    );
    let plan_id = PlanId::new(&plan);
    assert_eq!(
        ui.roster
            .approval_status(&plan_id)
            .await
            .unwrap()
            .waiting
            .len(),
        2
    );

    // A wrong password does not make it fresh; the right one does.
    let (status, _) = ui
        .post(
            &approver,
            "/ui/reauth",
            &[
                ("csrf", &approver.csrf),
                ("password", "wrong password!"),
                ("next", "/ui/"),
            ],
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(ui.post(&approver, &approve, &form).await.0, 403);
    let (status, _) = ui
        .post(
            &approver,
            "/ui/reauth",
            &[
                ("csrf", &approver.csrf),
                ("password", PASSWORD),
                ("next", "/ui/"),
            ],
        )
        .await;
    assert_eq!(status, 303);

    // Someone decides on one action meanwhile: the plan moved, and the
    // decision bound to the version read is refused, deciding nothing.
    ui.roster
        .reject(&operator(), &plan_id, Some(0), "keep them for now")
        .await
        .unwrap();
    let (status, body) = ui.post(&approver, &approve, &form).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("changed since you reviewed it"), "{body}");
    let s = ui.roster.approval_status(&plan_id).await.unwrap();
    assert!(s.approved.is_empty(), "{s:?}");

    // Read again, approve what is left.
    let (_, page) = ui.get(&approver, &format!("/ui/plans/{plan}")).await;
    let version = page
        .split("name=\"version\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let (status, body) = ui
        .post(
            &approver,
            &approve,
            &[
                ("csrf", &approver.csrf),
                ("reason", "they left"),
                ("version", &version),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let s = ui.roster.approval_status(&plan_id).await.unwrap();
    assert_eq!(s.approved.len(), 1, "{s:?}");
    // Recorded as the person, `user:ann`.
    let audit = ui.roster.audit_export(0).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.kind == "plan.approved" && r.actor == "user:ann"),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leaver_loses_their_sessions_and_tokens_at_once() {
    let ui = start(&policy("")).await;
    let alice = ui
        .signed_in("alice", Role::Admin, Some("P3@acme.example"))
        .await;
    let bob = ui.signed_in("bob", Role::Viewer, Some(&email(4))).await;
    // A token acting as her, and one she created for CI.
    let hers = ui
        .roster
        .create_api_token(
            &operator(),
            &roster_engine::NewApiToken {
                name: "alice".into(),
                agent: false,
                scopes: [Scope::Read].into(),
                ttl: None,
            },
        )
        .await
        .unwrap()
        .secret;
    let ci = ui
        .roster
        .create_api_token(
            &roster_core::Principal::new(roster_core::PrincipalKind::User, "alice"),
            &roster_engine::NewApiToken {
                name: "ci-deploy".into(),
                agent: false,
                scopes: [Scope::Read].into(),
                ttl: None,
            },
        )
        .await
        .unwrap()
        .secret;
    assert_eq!(ui.get(&alice, "/ui/").await.0, 200);

    // The sources say p3 left.
    let mut hr = people();
    hr[3].status = roster_core::EmploymentStatus::Terminated;
    ui.roster
        .import_people(&operator(), &hr, "hr")
        .await
        .unwrap();

    assert_eq!(ui.get(&alice, "/ui/").await.0, 303, "her session ended");
    assert!(ui.roster.authenticate(&hers).await.is_err());
    assert!(ui.roster.authenticate(&ci).await.is_err());
    let (status, body) = ui.sign_in("alice", PASSWORD).await.unwrap_err();
    assert_eq!(status, 401);
    assert!(body.contains("has left"), "{body}");
    // Bob is still there.
    assert_eq!(ui.get(&bob, "/ui/").await.0, 200);
    let audit = ui.roster.audit_export(0).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.kind == "web.access_ended" && r.subject == "E03")
    );

    // An offboarding ends them too, at once.
    let offboarded = ui
        .roster
        .offboard(
            &operator(),
            &roster_engine::PersonRef::parse(&email(4)),
            "left today",
            &mut |_, _| {},
        )
        .await;
    assert!(offboarded.is_ok(), "{offboarded:?}");
    assert_eq!(ui.get(&bob, "/ui/").await.0, 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_end_when_idle_and_when_the_user_changes() {
    let ui = start_with(
        &policy(""),
        SessionLimits {
            idle: Duration::from_millis(800),
            ..SessionLimits::default()
        },
    )
    .await;
    let a = ui.signed_in("alice", Role::Viewer, None).await;
    assert_eq!(ui.get(&a, "/ui/").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(ui.get(&a, "/ui/").await.0, 303, "idle too long");

    let ui = start(&policy("")).await;
    let a = ui.signed_in("alice", Role::Viewer, None).await;
    ui.roster
        .set_web_user_role(&operator(), "alice", Role::Admin)
        .await
        .unwrap();
    assert_eq!(
        ui.get(&a, "/ui/").await.0,
        303,
        "a new role needs a new sign-in"
    );
    let a = ui.sign_in("alice", PASSWORD).await.unwrap();
    assert_eq!(ui.get(&a, "/ui/").await.0, 200);
    ui.roster
        .remove_web_user(&operator(), "alice")
        .await
        .unwrap();
    assert_eq!(
        ui.get(&a, "/ui/").await.0,
        303,
        "a removed user is signed out"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_session_cookie_is_http_only_same_site_lax_and_never_stored() {
    let ui = start(&policy("")).await;
    ui.user("alice", Role::Viewer, None).await;
    let resp = ui
        .http
        .post(ui.url("/ui/signin"))
        .form(&[("name", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("roster_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let id = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("roster_session=")
        .to_string();
    assert!(id.len() >= 43);
    // The audit log never holds it.
    let audit = serde_json::to_string(&ui.roster.audit_export(0).await.unwrap()).unwrap();
    assert!(!audit.contains(&id));
    // A next that leaves the UI is not followed.
    let resp = ui
        .http
        .post(ui.url("/ui/signin"))
        .form(&[
            ("name", "alice"),
            ("password", PASSWORD),
            ("next", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["location"], "/ui/");

    // Served over https: Secure and the __Host- prefix.
    let secure = roster_web::WebOptions {
        secure_cookies: true,
        ..Default::default()
    };
    let c = roster_web::session::session_cookie(&secure, "abc");
    let c = c.to_str().unwrap();
    assert!(
        c.starts_with("__Host-roster_session=abc") && c.contains("; Secure"),
        "{c}"
    );
    assert!(c.contains("Path=/") && !c.contains("Domain"), "{c}");
}

#[test]
fn the_demos_sign_in_link_works_once_and_only_with_its_token() {
    let once = roster_web::OneTimeSignIn::new("a".repeat(64), "admin".into());
    assert!(!once.redeem(&"b".repeat(64)));
    assert!(!once.redeem("a"));
    assert!(once.redeem(&"a".repeat(64)));
    assert!(!once.redeem(&"a".repeat(64)), "single use");
}
