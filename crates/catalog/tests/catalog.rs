//! Integration tests for the catalog: loading and validation, strategy
//! selection (table-driven) and rendering.

use std::path::Path as FsPath;

use roster_catalog::{
    Catalog, CatalogError, ConnectionSettings, CredentialKind, Path, Tri, render_card, render_list,
    select_path,
};
use roster_core::Operation;

const SPENDESK: &str = include_str!("../../../catalog/spendesk.toml");
const BILL_SE: &str = include_str!("../../../catalog/bill-spend-expense.toml");

fn builtin() -> Catalog {
    Catalog::builtin().unwrap_or_else(|e| panic!("builtin catalog must load:\n{e}"))
}

fn write(dir: &FsPath, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Loads `text` as `<name>` in an override directory and returns the error.
fn override_error(name: &str, text: &str) -> CatalogError {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), name, text);
    match Catalog::load(Some(dir.path())) {
        Ok(_) => panic!("{name} should not load"),
        Err(e) => e,
    }
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once");
    text.replace(from, to)
}

mod loader {
    use super::*;

    #[test]
    fn builtin_has_every_seed_app_and_idp_sorted_by_id() {
        let c = builtin();
        let ids: Vec<&str> = c.apps().map(|a| a.id.as_str()).collect();
        for seed in [
            "bill-com",
            "bill-spend-expense",
            "entra-id",
            "expensify",
            "google-workspace",
            "okta",
            "onelogin",
            "scim-app",
            "spendesk",
        ] {
            assert!(ids.contains(&seed), "{seed} missing from {ids:?}");
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "iterated by id");
        assert_eq!(
            c.idp_ids(),
            ["entra-id", "google-workspace", "okta", "onelogin"]
        );
        assert_eq!(c.get("bill-spend-expense").unwrap().aliases, ["Divvy"]);
        assert_eq!(
            c.get("spendesk").unwrap().origin,
            "catalog/spendesk.toml",
            "origin names the file for messages"
        );
    }

    #[test]
    fn every_fact_has_a_known_source_and_a_date() {
        for app in builtin().apps() {
            let facts = app.provenance();
            // Every record states the required facts (summary, API, SCIM,
            // rate limits, paging, events, SSO, CSV, five checklists); the
            // seed records say far more.
            assert!(facts.len() >= 17, "{}: only {} facts", app.id, facts.len());
            for (field, source, as_of) in facts {
                let src = app
                    .sources
                    .get(&source)
                    .unwrap_or_else(|| panic!("{}: {field}: unknown source {source}", app.id));
                assert!(!src.reference.trim().is_empty(), "{}: {source}", app.id);
                assert!(
                    as_of.len() >= 7 && as_of.starts_with("20"),
                    "{}: {field}: as_of {as_of:?}",
                    app.id
                );
            }
        }
    }

    #[test]
    fn seed_facts_cite_the_seed_files() {
        let c = builtin();
        for (id, seed) in [
            ("bill-spend-expense", "seeds/000_627168c7405a528b.txt"),
            ("bill-com", "seeds/001_267e5eaf55823faa.txt"),
            ("spendesk", "seeds/002_7a3826c08b71aaf3.txt"),
            ("expensify", "seeds/003_6177b90fd96bcdeb.txt"),
        ] {
            let app = c.get(id).unwrap();
            assert!(
                app.sources.values().any(|s| s.reference == seed),
                "{id} should cite {seed}"
            );
        }
        let spendesk = c.get("spendesk").unwrap();
        assert_eq!(spendesk.sources["seed"].as_of, "2026-03-16");
    }

    #[test]
    fn disagreeing_sources_are_both_kept() {
        let c = builtin();
        let bse = c.get("bill-spend-expense").unwrap();
        let has = &bse.api.has_user_api;
        assert!(has.is_disputed());
        let by_source: Vec<(&str, Tri)> = has
            .claims()
            .iter()
            .map(|cl| (cl.source.as_str(), cl.value))
            .collect();
        assert_eq!(by_source, [("seed", Tri::No), ("bill-v3", Tri::Yes)]);
        assert_eq!(*has.value(), Tri::Yes, "the newer v3 claim is preferred");
        let limits = &c.get("expensify").unwrap().rate_limits.limits;
        assert_eq!(limits.as_ref().unwrap().claims().len(), 2);
    }

    #[test]
    fn seed_facts_are_recorded_as_the_issue_states_them() {
        let c = builtin();
        let exp = c.get("expensify").unwrap();
        let limits = exp.rate_limits.limits.as_ref().unwrap().claims()[0]
            .value
            .clone();
        assert_eq!(
            limits,
            ["5 requests per 10 seconds", "20 requests per 60 seconds"]
        );
        assert_eq!(*exp.scim.available.value(), Tri::No);
        assert!(
            exp.scim.idp_only().is_empty(),
            "Okta SCIM does not provision Expensify"
        );
        assert!(
            exp.scim
                .notes
                .as_ref()
                .unwrap()
                .value()
                .contains("not closed")
        );

        let bse = c.get("bill-spend-expense").unwrap();
        assert_eq!(bse.scim.idp_only(), ["okta", "entra-id", "onelogin"]);
        assert_eq!(
            bse.scim.plan_required.as_ref().unwrap().value(),
            "Enterprise"
        );
        assert_eq!(*bse.pagination.max_page_size.as_ref().unwrap().value(), 100);
        assert_eq!(bse.csv.supports(Operation::Create), Some(true));
        assert_eq!(bse.csv.supports(Operation::Deactivate), Some(false));

        let bill = c.get("bill-com").unwrap();
        assert_eq!(*bill.scim.available.value(), Tri::Yes);
        assert_eq!(bill.scim.version.as_ref().unwrap().value().as_str(), "2.0");
        assert!(!bill.scim.endpoint_documented.value());

        let sp = c.get("spendesk").unwrap();
        assert!(!sp.writes_users());
        assert!(
            sp.api
                .base_url
                .as_ref()
                .unwrap()
                .value()
                .contains("public-api.spendesk.com/v1")
        );
    }

    #[test]
    fn bad_scim_version_names_file_field_and_reason() {
        let text = replace_once(
            &replace_once(SPENDESK, r#"id = "spendesk""#, r#"id = "foo""#),
            r#"endpoint_documented = { value = false, source = "seed" }"#,
            "endpoint_documented = { value = false, source = \"seed\" }\nversion = { value = \"3\", source = \"seed\" }",
        );
        let e = override_error("foo.toml", &text);
        let msg = e.to_string();
        assert!(
            msg.contains(r#"foo.toml: scim.version: expected "1.1" or "2.0", got "3""#),
            "{msg}"
        );
        assert!(
            msg.contains("(line "),
            "deserialize errors carry a location: {msg}"
        );
        assert_eq!(e.code(), "CAT-0001");
        assert_eq!(e.problems()[0].field.as_deref(), Some("scim.version"));
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = override_error("broken.toml", "id = \"broken\"\nkind = \n");
        let p = &e.problems()[0];
        assert!(p.file.ends_with("broken.toml"));
        let loc = p.location.unwrap();
        assert_eq!(loc.line, 2, "{e}");
        assert!(e.to_string().contains("broken.toml:2:"), "{e}");
        assert!(e.to_string().contains("TOML syntax error"), "{e}");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let text = replace_once(SPENDESK, "[scim]\n", "[scim]\ncolour = \"red\"\n");
        let msg = override_error("spendesk.toml", &text).to_string();
        assert!(
            msg.contains("spendesk.toml: scim.colour: unknown field `colour`"),
            "{msg}"
        );
    }

    #[test]
    fn fact_without_source_is_rejected() {
        let text = replace_once(
            SPENDESK,
            r#"endpoint_documented = { value = false, source = "seed" }"#,
            "endpoint_documented = false",
        );
        let msg = override_error("spendesk.toml", &text).to_string();
        assert!(msg.contains("scim.endpoint_documented"), "{msg}");
        assert!(msg.contains("no source"), "{msg}");

        let text = replace_once(
            SPENDESK,
            r#"endpoint_documented = { value = false, source = "seed" }"#,
            r#"endpoint_documented = { value = false }"#,
        );
        let msg = override_error("spendesk.toml", &text).to_string();
        assert!(msg.contains("missing field `source`"), "{msg}");
    }

    #[test]
    fn unknown_source_key_and_missing_as_of_are_rejected() {
        let text = replace_once(
            SPENDESK,
            r#"endpoint_documented = { value = false, source = "seed" }"#,
            r#"endpoint_documented = { value = false, source = "nope" }"#,
        );
        let msg = override_error("spendesk.toml", &text).to_string();
        assert!(
            msg.contains(
                r#"spendesk.toml: scim.endpoint_documented: source "nope" is not in [sources]"#
            ),
            "{msg}"
        );

        // A source without a date leaves its facts undated: an error per fact.
        let text = replace_once(
            SPENDESK,
            r#"title = "Stitchflow: Spendesk User Management API Guide", as_of = "2026-03-16" }"#,
            r#"title = "Stitchflow: Spendesk User Management API Guide" }"#,
        );
        let e = override_error("spendesk.toml", &text);
        assert!(e.problems().len() > 10);
        assert!(
            e.to_string()
                .contains(r#"summary: no as_of on the fact, and source "seed" has none either"#),
            "{e}"
        );
        // A bad date on a fact is named too.
        let text = replace_once(
            SPENDESK,
            r#"endpoint_documented = { value = false, source = "seed" }"#,
            r#"endpoint_documented = { value = false, source = "seed", as_of = "March" }"#,
        );
        let msg = override_error("spendesk.toml", &text).to_string();
        assert!(
            msg.contains("scim.endpoint_documented.as_of: expected a date"),
            "{msg}"
        );
    }

    #[test]
    fn cross_checks_between_paths_facts_and_idps() {
        let text = replace_once(
            SPENDESK,
            r#"idps = ["okta", "entra-id", "onelogin"]
reason"#,
            r#"idps = ["okat"]
reason"#,
        );
        let msg = override_error("spendesk.toml", &text).to_string();
        assert!(
            msg.contains(r#"paths[1].idps: unknown IdP "okat""#),
            "{msg}"
        );

        let text = replace_once(
            BILL_SE,
            "path = \"csv\"\nops = [\"create\"]",
            "path = \"csv\"\nops = [\"create\", \"deactivate\"]",
        );
        let msg = override_error("bill-spend-expense.toml", &text).to_string();
        assert!(msg.contains("cannot remove people"), "{msg}");

        let text = format!(
            "{SPENDESK}\n[[paths]]\npath = \"scim\"\nops = [\"create\"]\nreason = \"x\"\nsource = \"seed\"\n"
        );
        let msg = override_error("spendesk.toml", &text).to_string();
        assert!(msg.contains("scim.available = true"), "{msg}");

        let text = format!(
            "{SPENDESK}\n[[paths]]\npath = \"manual\"\nops = [\"create\"]\nreason = \"x\"\nsource = \"seed\"\n"
        );
        let msg = override_error("spendesk.toml", &text).to_string();
        assert!(msg.contains("manual is always available"), "{msg}");
    }

    #[test]
    fn connectors_are_named_where_roster_drives_the_path_with_a_credential() {
        // Spendesk's browser offer is the last [[paths]] in its file.
        let text = replace_once(
            SPENDESK,
            "path = \"browser\"\nops = [\"deactivate\"]",
            "path = \"browser\"\nops = [\"deactivate\"]\nconnector = \"spendesk-api\"",
        );
        let e = override_error("spendesk.toml", &text);
        let p = &e.problems()[0];
        assert_eq!(p.code, Some("CAT-0004"));
        assert_eq!(p.field.as_deref(), Some("paths[2].connector"));
        assert!(
            e.to_string().contains(
                "paths[2].connector: CAT-0004: a browser path is carried out by a person"
            ),
            "{e}"
        );

        let text = replace_once(
            SPENDESK,
            "connector = \"spendesk-api\"",
            "connector = \"Spendesk API\"",
        );
        let e = override_error("spendesk.toml", &text);
        assert_eq!(e.problems()[0].code, Some("CAT-0005"), "{e}");
        assert!(e.to_string().contains("\"Spendesk API\""), "{e}");

        // A served api path must say what kind of secret it needs.
        let text = replace_once(
            SPENDESK,
            "connector = \"spendesk-api\"\ncredentials = [\"api-client\"]\n",
            "connector = \"spendesk-api\"\n",
        );
        let e = override_error("spendesk.toml", &text);
        assert_eq!(e.problems()[0].code, Some("CAT-0006"), "{e}");
        assert_eq!(
            e.problems()[0].field.as_deref(),
            Some("paths[0].credentials")
        );
        // Problems without a code of their own print as before: only the
        // error's own code (CAT-0001, invalid record) leads the message.
        let e = override_error("other.toml", SPENDESK);
        assert_eq!(e.problems()[0].code, None, "{e}");
        let msg = e.to_string();
        assert_eq!(msg.matches("CAT-").count(), 1, "{msg}");
        assert!(msg.starts_with("CAT-0001"), "{msg}");
    }

    #[test]
    fn records_say_which_implementation_serves_a_path_and_what_the_secret_is() {
        let c = builtin();
        let served = |id: &str| -> Vec<(Path, Option<&str>)> {
            c.get(id)
                .unwrap()
                .paths
                .iter()
                .map(|o| (o.path, o.connector()))
                .collect()
        };
        assert_eq!(
            served("expensify"),
            [
                (Path::Api, Some("expensify-api")),
                (Path::Api, Some("expensify-api")),
                (Path::Csv, None)
            ]
        );
        assert!(served("bill-spend-expense").contains(&(Path::Idp, Some("idp-group"))));
        // OneLogin's own Bill.com integration is nothing roster runs.
        assert_eq!(
            served("bill-com"),
            [(Path::Scim, Some("scim")), (Path::Idp, None)]
        );
        let app = c.get("bill-spend-expense").unwrap();
        assert_eq!(app.secret_kinds(None), [CredentialKind::ApiToken]);
        assert_eq!(app.secret_kinds(Some(Path::Idp)), []);
        assert_eq!(
            app.offered_paths(),
            [Path::Api, Path::Idp, Path::Csv, Path::Browser]
        );
        // A scim offer that names no connector gets the generic client.
        let mut scim = c.get("scim-app").unwrap().clone();
        scim.paths[0].connector = None;
        assert_eq!(scim.paths[0].connector(), Some("scim"));
        let conn = ConnectionSettings::of_connection(&scim, None, None, None, true);
        assert_eq!(
            select_path(&scim, &conn, Operation::Read)
                .connector
                .as_deref(),
            Some("scim")
        );
        let none = ConnectionSettings::of_connection(&scim, None, None, None, false);
        assert_eq!(select_path(&scim, &none, Operation::Read).connector, None);
    }

    #[test]
    fn id_must_match_file_name() {
        let msg = override_error("other.toml", SPENDESK).to_string();
        assert!(
            msg.contains(r#"other.toml: id: "spendesk" does not match the file name "other".toml"#),
            "{msg}"
        );
    }

    #[test]
    fn override_replaces_by_id_and_adds_new_apps() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "spendesk.toml",
            &replace_once(
                SPENDESK,
                r#"name = "Spendesk""#,
                r#"name = "Spendesk (ours)""#,
            ),
        );
        let added = replace_once(SPENDESK, r#"id = "spendesk""#, r#"id = "acme-spend""#);
        write(dir.path(), "acme-spend.toml", &added);
        write(dir.path(), "README.md", "not a catalog file");

        let c = Catalog::load(Some(dir.path())).unwrap();
        assert_eq!(c.len(), builtin().len() + 1);
        let sp = c.get("spendesk").unwrap();
        assert_eq!(sp.name, "Spendesk (ours)");
        assert!(sp.origin.ends_with("spendesk.toml") && sp.origin != "catalog/spendesk.toml");
        assert!(c.get("acme-spend").is_some());
        assert!(c.get("expensify").is_some(), "built-in records stay");

        // from_dir sees only the directory; its IdP references then dangle.
        let e = Catalog::from_dir(dir.path()).unwrap_err();
        assert!(e.to_string().contains("unknown IdP \"okta\""), "{e}");
    }

    #[test]
    fn missing_override_dir_is_an_io_error() {
        let e = Catalog::load(Some(FsPath::new("/nonexistent/roster-catalog"))).unwrap_err();
        assert_eq!(e.code(), "CAT-0002");
        assert!(e.to_string().contains("/nonexistent/roster-catalog"));
    }

    #[test]
    fn require_suggests_the_closest_id_and_lists_all() {
        let c = builtin();
        assert_eq!(c.require("okta").unwrap().name, "Okta");
        let e = c.require("expensfy").unwrap_err();
        assert_eq!(e.code(), "CAT-0003");
        let msg = e.to_string();
        assert!(msg.contains(r#"did you mean "expensify"?"#), "{msg}");
        assert!(msg.contains("bill-com, bill-spend-expense"), "{msg}");
        let msg = c.require("zzzzzzzzzzzz").unwrap_err().to_string();
        assert!(!msg.contains("did you mean"), "{msg}");
    }

    #[test]
    fn json_carries_values_and_provenance() {
        let c = builtin();
        let v = serde_json::to_value(c.get("bill-spend-expense").unwrap()).unwrap();
        assert_eq!(v["api"]["has_user_api"]["value"], "yes");
        assert_eq!(v["api"]["has_user_api"]["claims"][0]["source"], "seed");
        assert_eq!(v["api"]["has_user_api"]["claims"][0]["as_of"], "2026-03");
        assert_eq!(
            v["sources"]["seed"]["ref"],
            "seeds/000_627168c7405a528b.txt"
        );
        assert_eq!(v["paths"][1]["path"], "idp");
    }
}

mod strategy {
    use super::*;

    use CredentialKind::*;
    use Operation::*;

    fn s() -> ConnectionSettings {
        ConnectionSettings::new()
    }

    struct Row {
        app: &'static str,
        conn: ConnectionSettings,
        op: Operation,
        want: Path,
        reason_has: &'static str,
        /// A passed-over path and a phrase its reason must contain.
        rejected: Option<(Path, &'static str)>,
    }

    fn row(
        app: &'static str,
        conn: ConnectionSettings,
        op: Operation,
        want: Path,
        reason_has: &'static str,
    ) -> Row {
        Row {
            app,
            conn,
            op,
            want,
            reason_has,
            rejected: None,
        }
    }

    fn rej(mut r: Row, path: Path, has: &'static str) -> Row {
        r.rejected = Some((path, has));
        r
    }

    #[test]
    fn path_selection_table() {
        let okta_ent = || s().with_idp("okta").with_plan("enterprise");
        let rows = vec![
            // BILL S&E: IdP connector on Enterprise, v3 API with a token,
            // CSV for adds only, manual for removals without either.
            row(
                "bill-spend-expense",
                okta_ent(),
                Create,
                Path::Idp,
                "BILL S&E provisions through the Okta app's SCIM connector on the Enterprise plan",
            ),
            rej(
                row(
                    "bill-spend-expense",
                    okta_ent(),
                    Deactivate,
                    Path::Idp,
                    "BILL S&E provisions through the Okta app's SCIM connector on the Enterprise plan",
                ),
                Path::Scim,
                "only through IdP connectors (okta, entra-id, onelogin)",
            ),
            rej(
                row("bill-spend-expense", okta_ent(), Create, Path::Idp, "Okta"),
                Path::Api,
                "needs an api-token credential",
            ),
            row(
                "bill-spend-expense",
                okta_ent().with_credential(ApiToken),
                Create,
                Path::Api,
                "/v3/spend/users",
            ),
            row(
                "bill-spend-expense",
                s().with_credential(ApiToken),
                Deactivate,
                Path::Api,
                "apiToken header",
            ),
            row(
                "bill-spend-expense",
                s().with_credential(ApiToken),
                Read,
                Path::Api,
                "v3",
            ),
            rej(
                row(
                    "bill-spend-expense",
                    s().with_plan("team"),
                    Create,
                    Path::Csv,
                    "adds only",
                ),
                Path::Idp,
                "needs the Enterprise plan; configured plan is \"team\"",
            ),
            rej(
                row(
                    "bill-spend-expense",
                    s().with_plan("team"),
                    Deactivate,
                    Path::Manual,
                    "4-step deactivate checklist",
                ),
                Path::Csv,
                "CSV import cannot remove people",
            ),
            rej(
                row(
                    "bill-spend-expense",
                    s().with_idp("google-workspace").with_plan("Enterprise"),
                    Create,
                    Path::Csv,
                    "adds only",
                ),
                Path::Idp,
                "works only through okta, entra-id, onelogin, not google-workspace",
            ),
            rej(
                row(
                    "bill-spend-expense",
                    s().with_idp("okta"),
                    Deactivate,
                    Path::Manual,
                    "checklist",
                ),
                Path::Idp,
                "no plan tier is configured",
            ),
            row(
                "bill-spend-expense",
                s().with_idp("entra-id").with_plan("ENTERPRISE"),
                Update,
                Path::Idp,
                "Microsoft Entra ID app's SCIM connector",
            ),
            rej(
                row(
                    "bill-spend-expense",
                    okta_ent(),
                    Reactivate,
                    Path::Manual,
                    "reactivate checklist",
                ),
                Path::Idp,
                "no IdP connector carries reactivate",
            ),
            // Spendesk: JIT with SAML SSO, manual otherwise; read-only API.
            row(
                "spendesk",
                s().with_idp("okta"),
                Create,
                Path::Jit,
                "first SAML login through Okta",
            ),
            rej(
                rej(
                    row(
                        "spendesk",
                        s(),
                        Create,
                        Path::Manual,
                        "3-step create checklist",
                    ),
                    Path::Jit,
                    "no IdP is configured",
                ),
                Path::Jit,
                "no IdP is configured",
            ),
            rej(
                row("spendesk", s(), Create, Path::Manual, "checklist"),
                Path::Csv,
                "takes xlsx, which roster does not generate",
            ),
            rej(
                row(
                    "spendesk",
                    s().with_idp("okta").with_credential(ApiClient),
                    Deactivate,
                    Path::Manual,
                    "4-step deactivate checklist",
                ),
                Path::Api,
                "Spendesk's user API is read-only",
            ),
            rej(
                row(
                    "spendesk",
                    s().with_idp("okta"),
                    Deactivate,
                    Path::Manual,
                    "checklist",
                ),
                Path::Jit,
                "JIT only creates accounts at first login; it cannot deactivate",
            ),
            rej(
                row("spendesk", s(), Deactivate, Path::Manual, "checklist"),
                Path::Scim,
                "Spendesk offers no SCIM provisioning",
            ),
            row(
                "spendesk",
                s().with_credential(ApiClient),
                Read,
                Path::Api,
                "read-only",
            ),
            rej(
                row("spendesk", s(), Read, Path::Manual, "checklist"),
                Path::Api,
                "needs an api-client credential",
            ),
            row(
                "spendesk",
                s().with_browser(true),
                Deactivate,
                Path::Browser,
                "Settings → Members",
            ),
            rej(
                row(
                    "spendesk",
                    s().with_idp("google-workspace"),
                    Create,
                    Path::Manual,
                    "checklist",
                ),
                Path::Jit,
                "not google-workspace",
            ),
            // Expensify: every operation through the Integration Server.
            row(
                "expensify",
                s().with_credential(PartnerCredentials),
                Create,
                Path::Api,
                "Advanced Employee Updater",
            ),
            row(
                "expensify",
                s().with_credential(PartnerCredentials),
                Update,
                Path::Api,
                "Advanced Employee Updater",
            ),
            row(
                "expensify",
                s().with_credential(PartnerCredentials),
                Deactivate,
                Path::Api,
                "isTerminated",
            ),
            row(
                "expensify",
                s().with_credential(PartnerCredentials),
                Reactivate,
                Path::Api,
                "Advanced Employee Updater",
            ),
            row(
                "expensify",
                s().with_credential(PartnerCredentials),
                Read,
                Path::Api,
                "policy getter",
            ),
            rej(
                row(
                    "expensify",
                    s().with_idp("okta"),
                    Deactivate,
                    Path::Manual,
                    "checklist",
                ),
                Path::Scim,
                "Expensify offers no SCIM provisioning",
            ),
            row("expensify", s(), Create, Path::Csv, "spreadsheet import"),
            // Bill.com: SCIM only with an Enterprise token; OneLogin otherwise.
            row(
                "bill-com",
                s().with_plan("Enterprise").with_credential(ScimToken),
                Deactivate,
                Path::Scim,
                "SCIM 2.0 endpoint on the Enterprise plan",
            ),
            rej(
                row(
                    "bill-com",
                    s().with_plan("pro").with_credential(ScimToken),
                    Deactivate,
                    Path::Manual,
                    "checklist",
                ),
                Path::Scim,
                "needs the Enterprise plan",
            ),
            row(
                "bill-com",
                s().with_idp("onelogin"),
                Create,
                Path::Idp,
                "OneLogin's own Bill.com integration",
            ),
            // Generic SCIM app and IdPs.
            row(
                "scim-app",
                s().with_credential(ScimToken),
                Deactivate,
                Path::Scim,
                "/Users endpoint",
            ),
            row(
                "scim-app",
                s().with_idp("okta"),
                Create,
                Path::Idp,
                "Okta's SCIM client provisions",
            ),
            row(
                "scim-app",
                s().with_idp("entra-id"),
                Reactivate,
                Path::Idp,
                "Microsoft Entra ID's provisioning service",
            ),
            row(
                "okta",
                s().with_credential(ApiToken),
                Read,
                Path::Api,
                "Link-header cursors",
            ),
            row(
                "entra-id",
                s().with_credential(ApiClient),
                Read,
                Path::Api,
                "delta query",
            ),
            row(
                "okta",
                s().with_credential(ApiToken),
                Deactivate,
                Path::Manual,
                "checklist",
            ),
        ];
        assert!(rows.len() >= 15);

        let c = builtin();
        let mut failures = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let app = c.get(r.app).unwrap();
            let got = select_path(app, &r.conn, r.op);
            let label = format!("row {i}: {} {:?} [{}]", r.app, r.op, r.conn.describe());
            if got.path != r.want {
                failures.push(format!(
                    "{label}: want {}, got {} ({})",
                    r.want, got.path, got.reason
                ));
                continue;
            }
            if !got.reason.contains(r.reason_has) {
                failures.push(format!(
                    "{label}: reason {:?} lacks {:?}",
                    got.reason, r.reason_has
                ));
            }
            if let Some((p, has)) = r.rejected {
                match got.rejected.iter().find(|(rp, _)| *rp == p) {
                    Some((_, why)) if why.contains(has) => {}
                    other => failures.push(format!(
                        "{label}: rejected {p}: want {has:?}, got {other:?}"
                    )),
                }
            }
            // Every better-ranked path is explained, and nothing worse is.
            let better: Vec<Path> = Path::PREFERENCE
                .iter()
                .copied()
                .take_while(|p| *p != got.path)
                .collect();
            let explained: Vec<Path> = got.rejected.iter().map(|(p, _)| *p).collect();
            if explained != better {
                failures.push(format!("{label}: rejected {explained:?}, want {better:?}"));
            }
            if got.rejected.iter().any(|(_, why)| why.is_empty()) {
                failures.push(format!("{label}: empty rejection reason"));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn alternatives_list_worse_paths_that_also_hold() {
        let c = builtin();
        let bse = c.get("bill-spend-expense").unwrap();
        let conn = s()
            .with_idp("okta")
            .with_plan("enterprise")
            .with_credential(ApiToken);
        let got = select_path(bse, &conn, Create);
        assert_eq!(got.path, Path::Api);
        let alts: Vec<Path> = got.alternatives.iter().map(|(p, _)| *p).collect();
        assert_eq!(alts, [Path::Idp, Path::Csv, Path::Manual]);
        assert!(
            got.source
                .as_deref()
                .unwrap()
                .contains("developer.bill.com")
        );
        assert!(got.rejected.iter().all(|(p, _)| *p == Path::Scim));

        let manual = select_path(c.get("spendesk").unwrap(), &s(), Deactivate);
        assert!(manual.alternatives.is_empty());
        assert!(
            manual
                .source
                .unwrap()
                .contains("seeds/002_7a3826c08b71aaf3.txt")
        );
    }

    #[test]
    fn every_app_and_operation_gets_a_path_with_a_reason() {
        let c = builtin();
        let settings = [
            s(),
            s().with_idp("okta").with_plan("enterprise"),
            s().with_credential(ApiToken)
                .with_credential(ScimToken)
                .with_browser(true),
        ];
        for app in c.apps() {
            for conn in &settings {
                for op in Operation::ALL {
                    let got = select_path(app, conn, op);
                    assert!(!got.reason.is_empty(), "{} {op:?}", app.id);
                    assert!(
                        !got.reason.contains('{'),
                        "unfilled template: {}",
                        got.reason
                    );
                    assert_eq!(got.op, op);
                }
            }
        }
    }

    #[test]
    fn settings_deserialize_from_config_and_reject_typos() {
        let conn: ConnectionSettings = toml::from_str(
            "plan = \"enterprise\"\nidp = \"okta\"\ncredentials = [\"api-token\", \"scim-token\"]\nbrowser_enabled = true\n",
        )
        .unwrap();
        assert_eq!(conn.plan.as_deref(), Some("enterprise"));
        assert!(conn.credentials.contains(&ApiToken) && conn.credentials.contains(&ScimToken));
        assert!(conn.browser_enabled);
        let empty: ConnectionSettings = toml::from_str("").unwrap();
        assert_eq!(empty, ConnectionSettings::default());
        assert!(toml::from_str::<ConnectionSettings>("credential = []").is_err());
        assert!(toml::from_str::<ConnectionSettings>("credentials = [\"password\"]").is_err());
    }

    #[test]
    fn path_choice_serializes_lowercase() {
        let c = builtin();
        let got = select_path(
            c.get("bill-spend-expense").unwrap(),
            &s().with_idp("okta").with_plan("enterprise"),
            Deactivate,
        );
        let v = serde_json::to_value(&got).unwrap();
        assert_eq!(v["path"], "idp");
        assert_eq!(v["op"], "deactivate");
        assert_eq!(v["rejected"][0][0], "scim");
        assert_eq!(Path::Browser.to_string(), "browser");
        assert_eq!(Path::parse("CSV"), Some(Path::Csv));
        assert_eq!(CredentialKind::parse("api-token"), Some(ApiToken));
        assert_eq!(CredentialKind::parse("password"), None);
    }
}

mod render {
    use super::*;

    #[test]
    fn spendesk_card_tells_the_truth_and_lists_offboarding_steps() {
        let c = builtin();
        let card = render_card(c.get("spendesk").unwrap(), &ConnectionSettings::default());
        let line = |label: &str| {
            card.lines()
                .find(|l| l.trim_start().starts_with(label))
                .unwrap_or_else(|| panic!("no {label:?} line in\n{card}"))
                .to_string()
        };
        let write = line("User-write API");
        assert!(
            write.contains(" no (no public endpoint creates or deactivates members) [help-api]"),
            "{card}"
        );
        assert!(
            line("SCIM available").contains(" no (") && line("SCIM available").contains("[seed]"),
            "{card}"
        );
        assert!(
            line("SAML SSO").contains(" yes (") && line("SAML SSO").contains("[seed]"),
            "{card}"
        );
        assert!(line("JIT provisioning").contains("yes"), "{card}");
        assert!(
            line("JIT provisioning").contains("no role, team or spending limits"),
            "{card}"
        );
        assert!(
            line("Base URL").contains("https://public-api.spendesk.com/v1"),
            "{card}"
        );
        assert!(line("Has user API").contains("sources disagree"), "{card}");
        assert!(line("Format").contains("xlsx"), "{card}");
        for step in [
            "1. Reassign the person's pending approvals and open requests to another approver.",
            "2. Resolve the person's open cards (block or cancel them).",
            "3. Deactivate the member in Settings → Members.",
        ] {
            assert!(card.contains(step), "missing {step:?} in\n{card}");
        }
        assert!(card.contains("Watch out for"), "{card}");
        assert!(
            card.contains("SSO coverage is not lifecycle coverage"),
            "{card}"
        );
        assert!(line("deactivate  manual").contains("checklist"), "{card}");
        assert!(line("create      manual").contains("checklist"), "{card}");
        assert!(
            card.contains("[seed] seeds/002_7a3826c08b71aaf3.txt"),
            "{card}"
        );
        assert!(
            card.contains("not api     needs an api-client credential"),
            "{card}"
        );
        assert!(
            card.contains("not jit     works only through an IdP (okta, entra-id, onelogin)"),
            "{card}"
        );
        assert!(
            !card.contains("not scim"),
            "paths the app never offers are not repeated: {card}"
        );
        assert!(card.contains("(as of 2026-03-16)"), "{card}");
    }

    #[test]
    fn card_uses_the_given_settings() {
        let c = builtin();
        let bse = c.get("bill-spend-expense").unwrap();
        let card = render_card(
            bse,
            &ConnectionSettings::new()
                .with_idp("okta")
                .with_plan("enterprise"),
        );
        assert!(
            card.contains("BILL Spend & Expense (formerly/also Divvy)"),
            "{card}"
        );
        assert!(
            card.contains("settings: plan=enterprise, idp=okta"),
            "{card}"
        );
        assert!(
            card.contains("deactivate  idp      BILL S&E provisions through the Okta app's SCIM connector on the Enterprise plan"),
            "{card}"
        );
        assert!(card.contains("not api"), "rejections are shown: {card}");
        let has = card.lines().find(|l| l.contains("Has user API")).unwrap();
        assert!(
            has.contains("no (")
                && has.contains("[seed] | yes (")
                && has.contains("[bill-v3]  <- sources disagree"),
            "{has}"
        );
        assert!(
            card.contains("not api     needs an api-token credential; none is configured"),
            "{card}"
        );
        let expensify = render_card(c.get("expensify").unwrap(), &ConnectionSettings::default());
        assert!(
            expensify.contains("5 requests per 10 seconds"),
            "{expensify}"
        );
        assert!(
            expensify.contains("50 jobs started per minute"),
            "{expensify}"
        );
        assert!(expensify.contains("responseCode"), "{expensify}");
    }

    #[test]
    fn list_shows_every_app_with_capabilities_and_default_deactivate_path() {
        let out = render_list(&builtin());
        let row = |id: &str| {
            out.lines()
                .find(|l| l.contains(&format!(" {id} ")))
                .unwrap_or_else(|| panic!("no row for {id} in\n{out}"))
                .to_string()
        };
        assert!(out.contains("User API") && out.contains("SCIM"), "{out}");
        let sp = row("spendesk");
        assert!(
            sp.contains("read-only") && sp.contains("manual") && sp.contains(" no "),
            "{sp}"
        );
        let bse = row("bill-spend-expense");
        assert!(bse.contains("disputed (no / yes)"), "{bse}");
        assert!(
            bse.contains("via IdP only (Enterprise, endpoint undocumented)"),
            "{bse}"
        );
        assert!(
            row("bill-com").contains("2.0 (Enterprise, endpoint undocumented)"),
            "{out}"
        );
        assert!(row("scim-app").contains("2.0"), "{out}");
        assert!(row("okta").contains("idp"), "{out}");
        assert_eq!(
            out.lines().filter(|l| l.contains("│")).count(),
            builtin().len() + 1,
            "a header and a row per app:\n{out}"
        );
    }
}
