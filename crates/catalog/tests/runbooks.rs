//! Browser runbooks as data: the built-in one loads and says what it
//! does; the loader refuses runbooks that would be unsafe or brittle.

use roster_catalog::runbook::Action;
use roster_catalog::{Catalog, CatalogError};
use roster_core::Operation;

const GOOD: &str = r#"
app = "spendesk"
operation = "deactivate"
title = "t"
source = "roster"
[signin]
detect = { role = "heading", name = "Sign in" }
[[signin.local]]
fill = { label = "Password" }
value = "{password}"
[[steps]]
navigate = "{console}/members"
[[steps]]
click = { role = "button", name = "Deactivate" }
confirm = true
"#;

fn load(text: &str, file: &str) -> Result<Catalog, CatalogError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("runbooks")).unwrap();
    std::fs::write(dir.path().join("runbooks").join(file), text).unwrap();
    Catalog::load(Some(dir.path()))
}

fn codes(e: CatalogError) -> Vec<String> {
    e.problems()
        .iter()
        .map(|p| format!("{} {}", p.code.unwrap_or("-"), p.reason))
        .collect()
}

#[test]
fn the_builtin_spendesk_runbook_loads_unverified_with_its_money_steps() {
    let c = Catalog::builtin().unwrap();
    let rb = c.runbook("spendesk", Operation::Deactivate).unwrap();
    assert!(!rb.is_verified());
    assert!(rb.has_financial_steps());
    let confirm = rb.confirm_index().unwrap();
    assert!(matches!(rb.steps[confirm].action, Action::Click { .. }));
    // Every step names its element semantically.
    for s in &rb.steps {
        if let Some(t) = s.action.target() {
            assert!(
                t.role.is_some() || t.label.is_some() || t.id.is_some() || t.text.is_some(),
                "{t:?}"
            );
        }
    }
    assert!(!rb.signin.local.is_empty() && !rb.signin.sso.is_empty());
    assert!(c.runbook("spendesk", Operation::Create).is_none());
    let card = roster_catalog::runbook::render_runbooks(&c.runbooks_of("spendesk"), false);
    assert!(
        card.contains("unverified: runs up to the final confirmation"),
        "{card}"
    );
    assert!(card.contains("financial_steps"), "{card}");
}

#[test]
fn a_well_formed_override_loads() {
    let c = load(GOOD, "spendesk-deactivate.toml").unwrap();
    assert_eq!(
        c.runbook("spendesk", Operation::Deactivate).unwrap().title,
        "t"
    );
}

#[test]
fn a_css_only_selector_is_refused() {
    let bad = GOOD.replace(
        r#"click = { role = "button", name = "Deactivate" }"#,
        r#"click = { css = ".btn-danger" }"#,
    );
    let e = codes(load(&bad, "spendesk-deactivate.toml").unwrap_err());
    assert!(e.iter().any(|p| p.starts_with("CAT-0012")), "{e:?}");
}

#[test]
fn a_secret_outside_sign_in_is_refused() {
    let bad = GOOD.replace(
        r#"navigate = "{console}/members""#,
        "fill = { label = \"Search\" }\nvalue = \"{totp}\"",
    );
    let e = codes(load(&bad, "spendesk-deactivate.toml").unwrap_err());
    assert!(e.iter().any(|p| p.starts_with("CAT-0014")), "{e:?}");
    // Not even in a URL.
    let bad = GOOD.replace("{console}/members", "{console}/members?p={password}");
    let e = codes(load(&bad, "spendesk-deactivate.toml").unwrap_err());
    assert!(e.iter().any(|p| p.starts_with("CAT-0014")), "{e:?}");
}

#[test]
fn a_runbook_needs_exactly_one_confirmation() {
    let bad = GOOD.replace("confirm = true", "");
    let e = codes(load(&bad, "spendesk-deactivate.toml").unwrap_err());
    assert!(e.iter().any(|p| p.contains("exactly one step")), "{e:?}");
}

#[test]
fn a_runbook_for_a_path_the_app_does_not_offer_is_refused() {
    let bad = GOOD.replace("app = \"spendesk\"", "app = \"slack\"");
    let e = codes(load(&bad, "slack-deactivate.toml").unwrap_err());
    assert!(e.iter().any(|p| p.starts_with("CAT-0013")), "{e:?}");
    let e = codes(load(GOOD, "wrong-name.toml").unwrap_err());
    assert!(e.iter().any(|p| p.contains("must be named")), "{e:?}");
}

#[test]
fn a_condition_must_read_an_extracted_value() {
    let bad = GOOD.replace("confirm = true", "confirm = true\nwhen = \"cards > 0\"");
    let e = codes(load(&bad, "spendesk-deactivate.toml").unwrap_err());
    assert!(e.iter().any(|p| p.contains("not extracted")), "{e:?}");
}
