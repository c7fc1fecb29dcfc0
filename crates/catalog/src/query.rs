//! Searching the catalog and comparing it with an override directory:
//! what `roster apps list` filters by and what `roster apps diff` shows.
//!
//! Pure: both work on loaded [`Catalog`]s.

use serde::Serialize;
use serde_json::Value;

use crate::load::Catalog;
use crate::model::{App, Category, Path, Tri};

/// Which apps to list. Every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppFilter {
    /// Some source says the app speaks SCIM.
    pub scim: bool,
    /// Some source says the app has a user API.
    pub api: bool,
    /// Something automated works on this plan: a path offer with no plan
    /// condition or naming this plan, or a SCIM plan requirement that
    /// mentions it (case-insensitive).
    pub plan: Option<String>,
    pub category: Option<Category>,
    /// A case-insensitive substring of the id, name, aliases or summary.
    pub text: Option<String>,
}

impl AppFilter {
    pub fn matches(&self, app: &App) -> bool {
        if self.scim && !app.scim.available.any(|v| *v == Tri::Yes) {
            return false;
        }
        if self.api && !app.api.has_user_api.any(|v| *v == Tri::Yes) {
            return false;
        }
        if let Some(c) = self.category
            && app.category != c
        {
            return false;
        }
        if let Some(plan) = &self.plan {
            let plan = plan.trim().to_lowercase();
            let by_offer = app.paths.iter().any(|o| {
                matches!(o.path, Path::Scim | Path::Api | Path::Idp)
                    && (o.plans.is_empty() || o.plans.iter().any(|p| p.to_lowercase() == plan))
            });
            let by_scim = app.scim.plan_required.as_ref().is_some_and(|f| {
                f.claims()
                    .iter()
                    .any(|c| c.value.to_lowercase().contains(&plan))
            });
            if !by_offer && !by_scim {
                return false;
            }
        }
        if let Some(text) = &self.text {
            let t = text.trim().to_lowercase();
            let hay = [
                app.id.to_lowercase(),
                app.name.to_lowercase(),
                app.aliases.join(" ").to_lowercase(),
                app.summary.value().to_lowercase(),
            ];
            if !hay.iter().any(|h| h.contains(&t)) {
                return false;
            }
        }
        true
    }

    /// The catalog's apps that match, by id.
    pub fn apply<'a>(&self, catalog: &'a Catalog) -> Vec<&'a App> {
        catalog.apps().filter(|a| self.matches(a)).collect()
    }
}

/// How one record differs between the built-in catalog and the catalog
/// with an override directory.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AppDiff {
    pub id: String,
    pub change: DiffKind,
    /// Where the override record came from.
    pub origin: String,
    /// Dotted paths of the values that differ (`scim.available.value`),
    /// empty for an added record.
    pub fields: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// Only in the override directory.
    Added,
    /// In both, and the override says something else.
    Replaced,
    /// In both, and the override says the same (a no-op copy).
    Unchanged,
}

/// What an override directory changes: `builtin` is the built-in catalog,
/// `merged` the same with the directory loaded over it. Records the
/// directory does not touch are left out.
pub fn diff(builtin: &Catalog, merged: &Catalog) -> Vec<AppDiff> {
    let mut out = Vec::new();
    for app in merged.apps() {
        // Built-in records keep their built-in origin; anything else came
        // from the directory.
        if app.origin.starts_with("catalog/") {
            continue;
        }
        let Some(before) = builtin.get(&app.id) else {
            out.push(AppDiff {
                id: app.id.clone(),
                change: DiffKind::Added,
                origin: app.origin.clone(),
                fields: Vec::new(),
            });
            continue;
        };
        let mut fields = Vec::new();
        let (a, b) = (json_of(before), json_of(app));
        walk("", &a, &b, &mut fields);
        out.push(AppDiff {
            id: app.id.clone(),
            change: if fields.is_empty() {
                DiffKind::Unchanged
            } else {
                DiffKind::Replaced
            },
            origin: app.origin.clone(),
            fields,
        });
    }
    out
}

fn json_of(app: &App) -> Value {
    let mut v = serde_json::to_value(app).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("origin");
    }
    v
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                // A fact's `claims` repeat its `value` with provenance; the
                // value is what changes behaviour, the claims say who said it.
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => walk(&join(k), p, q, out),
                    _ => out.push(join(k)),
                }
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Catalog {
        Catalog::builtin().unwrap()
    }

    fn ids(f: &AppFilter) -> Vec<String> {
        f.apply(&builtin()).iter().map(|a| a.id.clone()).collect()
    }

    #[test]
    fn filters_combine() {
        let scim = ids(&AppFilter {
            scim: true,
            ..AppFilter::default()
        });
        assert!(scim.contains(&"slack".to_string()) && !scim.contains(&"box".to_string()));
        let hr = ids(&AppFilter {
            category: Some(Category::Hr),
            ..AppFilter::default()
        });
        assert!(hr.contains(&"gusto".to_string()) && hr.contains(&"workday".to_string()));
        assert!(
            hr.iter()
                .all(|id| builtin().get(id).unwrap().category == Category::Hr)
        );
        let hr_api = ids(&AppFilter {
            category: Some(Category::Hr),
            api: true,
            ..AppFilter::default()
        });
        assert!(
            !hr_api.contains(&"workday".to_string()),
            "workday's API is not documented"
        );
        assert!(hr_api.contains(&"gusto".to_string()));
        let text = ids(&AppFilter {
            text: Some("TRIPACTIONS".into()),
            ..AppFilter::default()
        });
        assert_eq!(text, ["navan"]);
        let ent = ids(&AppFilter {
            plan: Some("Enterprise".into()),
            scim: true,
            ..AppFilter::default()
        });
        assert!(ent.contains(&"notion".to_string()) && ent.contains(&"slack".to_string()));
        assert!(!ent.contains(&"box".to_string()));
        let none = ids(&AppFilter {
            text: Some("no such app anywhere".into()),
            ..AppFilter::default()
        });
        assert!(none.is_empty());
    }

    #[test]
    fn diff_names_added_replaced_and_unchanged_records_and_the_fields() {
        let dir = tempfile::tempdir().unwrap();
        let slack = include_str!("../../../catalog/slack.toml");
        std::fs::write(dir.path().join("slack.toml"), slack).unwrap();
        let box_ = include_str!("../../../catalog/box.toml")
            .replace("name = \"Box\"", "name = \"Box (ours)\"");
        std::fs::write(dir.path().join("box.toml"), box_).unwrap();
        let added = slack.replace("id = \"slack\"", "id = \"acme-chat\"");
        std::fs::write(dir.path().join("acme-chat.toml"), added).unwrap();

        let merged = Catalog::load(Some(dir.path())).unwrap();
        let d = diff(&builtin(), &merged);
        let by_id = |id: &str| d.iter().find(|x| x.id == id).unwrap();
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!(by_id("acme-chat").change, DiffKind::Added);
        assert_eq!(by_id("slack").change, DiffKind::Unchanged);
        let b = by_id("box");
        assert_eq!(b.change, DiffKind::Replaced);
        assert_eq!(b.fields, ["name"]);
        assert!(b.origin.ends_with("box.toml"));
    }
}
