//! Data-driven checks over the whole built-in catalog: how many records
//! there are and what every one of them must say.
//!
//! The loader already rejects a record that breaks a rule it knows (see
//! `roster_catalog::load`); these tests hold the properties the issue asks
//! of the data itself: enough apps, every category represented, every fact
//! sourced and dated, "not documented" written as a value rather than left
//! out, and a deactivation section on every app.

use std::collections::BTreeSet;

use roster_catalog::{AppKind, Catalog, Category, DeactivationKind, Path, Tri};

fn builtin() -> Catalog {
    Catalog::builtin().unwrap_or_else(|e| panic!("builtin catalog must load:\n{e}"))
}

/// The apps the issue names; each needs a record.
const NAMED: [&str; 21] = [
    "slack",
    "zoom",
    "github",
    "atlassian",
    "notion",
    "figma",
    "salesforce",
    "hubspot",
    "zendesk",
    "dropbox",
    "box",
    "asana",
    "linear",
    "1password",
    "brex",
    "ramp",
    "navan",
    "gusto",
    "rippling",
    "bamboohr",
    "workday",
];

#[test]
fn the_catalog_holds_at_least_69_records_including_every_named_app() {
    let c = builtin();
    assert!(c.len() >= 69, "only {} records", c.len());
    for id in NAMED {
        assert!(c.get(id).is_some(), "no record for {id}");
    }
}

#[test]
fn every_category_the_issue_names_has_apps() {
    let c = builtin();
    let seen: BTreeSet<Category> = c.apps().map(|a| a.category).collect();
    for want in [
        Category::Collaboration,
        Category::DeveloperTools,
        Category::Finance,
        Category::Hr,
        Category::SalesSupport,
        Category::Security,
        Category::Design,
    ] {
        assert!(seen.contains(&want), "no app in {want}");
    }
    for app in c.apps() {
        assert_eq!(
            app.kind == AppKind::Idp,
            app.category == Category::Identity,
            "{}: identity is the category of IdP records and only of them",
            app.id
        );
    }
}

#[test]
fn every_source_is_a_url_or_a_named_non_vendor_origin_with_a_date() {
    for app in builtin().apps() {
        for (key, src) in &app.sources {
            let r = src.reference.trim();
            let is_url = r.starts_with("https://") || r.starts_with("http://");
            // Seeds, `owner/repo path` references to vendor docs kept in a
            // repository, and roster's own notes are the only non-URLs.
            let named =
                r.starts_with("seeds/") || r.starts_with("roster maintainers") || r.contains('/');
            assert!(is_url || named, "{}: source {key} = {r:?}", app.id);
            assert!(
                !src.as_of.is_empty(),
                "{}: source {key} has no as_of date",
                app.id
            );
        }
    }
}

#[test]
fn every_claim_cites_a_source_of_its_record_and_carries_a_date() {
    for app in builtin().apps() {
        for (field, source, as_of) in app.provenance() {
            assert!(
                app.sources.contains_key(&source),
                "{}: {field} cites {source}",
                app.id
            );
            assert!(
                as_of.len() >= 7 && as_of.starts_with("20"),
                "{}: {field}: {as_of:?}",
                app.id
            );
        }
    }
}

#[test]
fn every_app_says_what_deactivation_does_even_if_that_is_not_documented() {
    let c = builtin();
    let mut kinds = BTreeSet::new();
    for app in c.apps().filter(|a| a.kind == AppKind::App) {
        let d = app
            .deactivation
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no [deactivation]", app.id));
        for claim in d.kind.claims() {
            kinds.insert(claim.value.as_str());
        }
        // A claim that the account is gone for good must not also claim it
        // can come back, from the same source.
        for k in d.kind.claims() {
            if k.value == DeactivationKind::HardDelete {
                assert!(
                    !d.reversible.claims().iter().any(|r| r.source == k.source
                        && r.value == Tri::Yes
                        && d.kind.claims().len() == 1),
                    "{}: hard delete marked reversible by {}",
                    app.id,
                    k.source
                );
            }
        }
    }
    for k in ["suspend", "soft-delete", "hard-delete", "not documented"] {
        assert!(kinds.contains(k), "no record says {k}: {kinds:?}");
    }
}

#[test]
fn hard_deleting_apps_are_flagged_and_known_ones_are_among_them() {
    let c = builtin();
    let hard: Vec<&str> = c
        .apps()
        .filter(|a| a.deactivation.as_ref().is_some_and(|d| d.may_hard_delete()))
        .map(|a| a.id.as_str())
        .collect();
    // Box deletes the user (and, forced, their content); Ramp's termination
    // and Zoom's delete action are permanent.
    for id in ["box", "ramp", "zoom"] {
        assert!(hard.contains(&id), "{id} should be flagged: {hard:?}");
    }
    // Slack never deletes users.
    assert!(!hard.contains(&"slack"));
}

#[test]
fn not_documented_is_a_value_the_records_use() {
    let c = builtin();
    let workday = c.get("workday").unwrap();
    assert_eq!(*workday.api.has_user_api.value(), Tri::Unknown);
    assert_eq!(*workday.scim.available.value(), Tri::Unknown);
    assert_eq!(
        workday.deactivation.as_ref().unwrap().kind.value(),
        &DeactivationKind::NotDocumented
    );
    let unknown_scim = c
        .apps()
        .filter(|a| *a.scim.available.value() == Tri::Unknown)
        .count();
    assert!(
        unknown_scim > 5,
        "only {unknown_scim} records leave SCIM open"
    );
}

#[test]
fn disagreeing_sources_keep_every_claim_in_the_new_records() {
    let c = builtin();
    let ramp = c.get("ramp").unwrap().deactivation.as_ref().unwrap();
    assert!(ramp.kind.is_disputed(), "deactivate vs terminate");
    assert_eq!(ramp.kind.claims().len(), 2);
    let figma = c.get("figma").unwrap();
    assert_eq!(figma.scim.plan_required.as_ref().unwrap().claims().len(), 2);
}

#[test]
fn credential_lifetimes_are_recorded_where_the_sources_give_them() {
    let c = builtin();
    let days = |id: &str| {
        c.get(id)
            .and_then(|a| a.credentials.as_ref())
            .and_then(|cr| cr.shortest_max_days())
    };
    assert_eq!(
        days("spendesk"),
        Some(365),
        "Spendesk API keys last at most a year"
    );
    assert_eq!(days("line-works"), Some(90));
    assert_eq!(days("snowflake"), Some(182));
    for app in c.apps() {
        if let Some(cr) = &app.credentials
            && cr.max_days.is_some()
        {
            assert!(
                cr.expires.any(|v| *v == Tri::Yes),
                "{}: a lifetime without a claim that credentials expire",
                app.id
            );
        }
    }
}

#[test]
fn every_scim_path_is_backed_by_a_scim_claim_and_a_credential() {
    for app in builtin().apps() {
        for offer in app.paths.iter().filter(|o| o.path == Path::Scim) {
            assert!(app.scim.available.any(|v| *v == Tri::Yes), "{}", app.id);
            assert!(!offer.credentials.is_empty(), "{}", app.id);
        }
    }
}

#[test]
fn an_app_record_without_deactivation_is_rejected_with_the_fix() {
    let text = include_str!("../../../catalog/slack.toml");
    let cut = text
        .find("\n[deactivation]")
        .expect("slack has [deactivation]");
    let rest = &text[cut + 1..];
    let end = rest[1..].find("\n[").map_or(rest.len(), |i| i + 1);
    let without = format!("{}{}", &text[..cut + 1], &rest[end..]);
    assert!(!without.contains("[deactivation]"));
    let e = Catalog::parse_app("slack.toml", &without).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("CAT-0007"), "{msg}");
    assert!(
        msg.contains("soft-delete"),
        "the message names the values: {msg}"
    );
}

#[test]
fn a_record_without_category_reads_as_other() {
    let text = include_str!("../../../catalog/slack.toml");
    let without = text.replace("category = \"collaboration\"\n", "");
    let app = Catalog::parse_app("slack.toml", &without).unwrap();
    assert_eq!(app.category, Category::Other);
}

#[test]
fn scim_client_settings_are_checked() {
    let text = include_str!("../../../catalog/slack.toml");
    assert!(text.contains("deprovision = \"delete\""));
    let app = Catalog::parse_app("slack.toml", text).unwrap();
    let client = app.scim.client.as_ref().unwrap();
    assert_eq!(client.deprovision.as_deref(), Some("delete"));
    let bad = text.replace("deprovision = \"delete\"", "deprovision = \"purge\"");
    let msg = Catalog::parse_app("slack.toml", &bad)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("CAT-0009")
            && msg.contains("scim.client.deprovision")
            && msg.contains("active, delete"),
        "{msg}"
    );
    let bad = text.replace(
        "source = \"scim-ref\"\n\n[rate_limits]",
        "source = \"nope\"\n\n[rate_limits]",
    );
    let msg = Catalog::parse_app("slack.toml", &bad)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("scim.client.source"), "{msg}");
}
