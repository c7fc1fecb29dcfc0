//! Checking a policy against the deployment it governs.
//!
//! A policy that parses can still name things that do not exist: a `when`
//! key spelled `staus`, a `{placeholder}` or `lookup` attribute no source
//! provides, a rule for `expensfy` when `roster.toml` configures
//! `expensify`. Each of those silently matches nobody, and a rule that
//! matches nobody takes its app away from everyone it used to grant it to.
//!
//! [`Vocabulary`] is what the deployment provides: the connections
//! configured, and the attributes people carry (the built-in fields of
//! [`Person`], `group`/`groups`, the HR file's extra columns, and
//! `gateway.<connection>` for each connection). [`Policy::check_against`]
//! reports every name outside it — all of them, not just the first — with
//! file:line:column and the closest known name. The check is pure: the
//! engine and CLI build the vocabulary from the config and the HR file's
//! header.

use std::collections::BTreeSet;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::ids::ConnectionId;
use crate::model::Person;
use crate::policy::{AttributeValue, Policy, PolicyError, line_col, placeholders};
use crate::text::closest;

/// The names a deployment provides for a policy to use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vocabulary {
    /// Attributes people carry (selectable, fillable and look-up-able).
    pub attributes: BTreeSet<String>,
    /// The connections `roster.toml` configures.
    pub connections: BTreeSet<ConnectionId>,
}

/// Selector keys that match on the person's group list rather than on one
/// attribute (see [`crate::policy`]): valid in `when`/`unless` only.
const GROUP_KEYS: [&str; 2] = ["group", "groups"];

impl Vocabulary {
    /// The vocabulary of a deployment with these connections and these
    /// extra source columns (the HR file's columns beyond the required
    /// ones, as [`crate::hr_csv::extra_columns`] finds them).
    pub fn new(
        connections: impl IntoIterator<Item = ConnectionId>,
        extra_columns: impl IntoIterator<Item = String>,
    ) -> Self {
        let connections: BTreeSet<ConnectionId> = connections.into_iter().collect();
        let mut attributes: BTreeSet<String> = Person::BUILTIN_ATTRIBUTES
            .iter()
            .map(|a| a.to_string())
            .collect();
        attributes.extend(extra_columns);
        // What an IdP pushes to the SCIM gateway for connection C
        // (see the engine's gateway module).
        attributes.extend(connections.iter().map(|c| format!("gateway.{c}")));
        Vocabulary {
            attributes,
            connections,
        }
    }
}

/// Every problem [`Policy::check_against`] found, as one error (what
/// `roster policy check` and a refused plan print).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the policy names {} thing(s) roster.toml and the sources do not provide:\n{}",
    .0.len(),
    .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
)]
pub struct PolicyProblems(pub Vec<PolicyError>);

impl PolicyProblems {
    /// The stable code: names the deployment does not provide.
    pub fn code(&self) -> &'static str {
        "POLICY-0002"
    }
}

/// Where the things a rule names sit in the text.
#[derive(Default)]
struct RulePlaces<'t> {
    connection: Option<usize>,
    selectors: Vec<(&'static str, &'t str, usize)>,
    /// Attribute → offset of its value (a template string, or the
    /// `lookup` value of a lookup).
    set: Vec<(&'t str, usize)>,
}

impl Policy {
    /// Every name in this policy that `vocabulary` does not provide, in
    /// file order; empty when the policy is sound. Places come from the
    /// text the policy was parsed from (a policy built in code has none,
    /// and its errors point at 1:1).
    pub fn check_against(&self, vocabulary: &Vocabulary) -> Vec<PolicyError> {
        let (file, text) = match &self.source {
            Some(s) => (s.file.as_str(), s.text.as_str()),
            None => ("policy", ""),
        };
        let parsed = DeTable::parse(text).ok();
        let root = parsed.as_ref().map(|t| t.get_ref());
        let mut errors: Vec<(usize, String)> = Vec::new();
        let attribute_names: Vec<&str> = vocabulary.attributes.iter().map(String::as_str).collect();
        let selector_names: Vec<&str> = attribute_names.iter().copied().chain(GROUP_KEYS).collect();
        let connection_names: Vec<&str> = vocabulary
            .connections
            .iter()
            .map(ConnectionId::as_str)
            .collect();
        let unknown_connection = |id: &str| -> String {
            let mut msg = if connection_names.is_empty() {
                format!("connection {id:?} is not configured: roster.toml has no connections")
            } else {
                format!(
                    "connection {id:?} is not configured in roster.toml (configured: {})",
                    connection_names.join(", ")
                )
            };
            if let Some(c) = closest(id, connection_names.iter().copied()) {
                msg.push_str(&format!("; did you mean {c:?}?"));
            }
            msg
        };
        let unknown_attribute = |what: String, name: &str, known: &[&str]| -> String {
            let mut msg = format!("{what} names no attribute the sources provide");
            match closest(name, known.iter().copied()) {
                Some(c) => msg.push_str(&format!("; did you mean {c:?}?")),
                None => msg.push_str(&format!(
                    " (known: {}, or add a column to the HR file)",
                    known.join(", ")
                )),
            }
            msg
        };

        // `[connections.X]` sections.
        let sections = root.and_then(|r| table(r, "connections"));
        for id in self.connections.keys() {
            if vocabulary.connections.contains(id) {
                continue;
            }
            let at = sections
                .and_then(|t| key_offset(t, id.as_str()))
                .unwrap_or(0);
            errors.push((
                at,
                format!("[connections.{id}]: {}", unknown_connection(id.as_str())),
            ));
        }

        let rule_tables: Vec<&DeTable<'_>> = root
            .and_then(|r| r.get("rules"))
            .and_then(|v| v.get_ref().as_array())
            .map(|a| a.iter().filter_map(|v| v.get_ref().as_table()).collect())
            .unwrap_or_default();
        for (i, rule) in self.rules.iter().enumerate() {
            let places = rule_tables
                .get(i)
                .map(|t| rule_places(t))
                .unwrap_or_default();
            let fallback = places.connection.unwrap_or(0);
            let name = &rule.name;
            if !vocabulary.connections.contains(&rule.connection) {
                errors.push((
                    fallback,
                    format!(
                        "rule {name:?}: {}",
                        unknown_connection(rule.connection.as_str())
                    ),
                ));
            }
            for (part, keys) in [("when", &rule.when), ("unless", &rule.unless)] {
                for key in keys.keys() {
                    if GROUP_KEYS.contains(&key.as_str()) || vocabulary.attributes.contains(key) {
                        continue;
                    }
                    let at = places
                        .selectors
                        .iter()
                        .find(|(p, k, _)| *p == part && *k == key)
                        .map(|(_, _, at)| *at)
                        .unwrap_or(fallback);
                    errors.push((
                        at,
                        unknown_attribute(
                            format!("rule {name:?}: {part} key {key:?}"),
                            key,
                            &selector_names,
                        ),
                    ));
                }
            }
            for (attr, value) in &rule.set {
                let value_at = places
                    .set
                    .iter()
                    .find(|(a, _)| a == attr)
                    .map(|(_, at)| *at);
                match value {
                    AttributeValue::Lookup { lookup, .. } => {
                        if !vocabulary.attributes.contains(lookup) {
                            errors.push((
                                value_at.unwrap_or(fallback),
                                unknown_attribute(
                                    format!("rule {name:?}: attribute {attr:?} looks up {lookup:?}, which"),
                                    lookup,
                                    &attribute_names,
                                ),
                            ));
                        }
                    }
                    AttributeValue::Template(t) => {
                        for placeholder in placeholders(t).unwrap_or_default() {
                            if vocabulary.attributes.contains(&placeholder) {
                                continue;
                            }
                            // Point at the placeholder itself when the
                            // literal spells it plainly.
                            let at = value_at
                                .map(|at| {
                                    text.get(at..)
                                        .and_then(|rest| {
                                            let end = rest.find('\n').unwrap_or(rest.len());
                                            rest[..end].find(&format!("{{{placeholder}}}"))
                                        })
                                        .map_or(at, |o| at + o)
                                })
                                .unwrap_or(fallback);
                            errors.push((
                                at,
                                unknown_attribute(
                                    format!("rule {name:?}: attribute {attr:?}: placeholder {{{placeholder}}}"),
                                    &placeholder,
                                    &attribute_names,
                                ),
                            ));
                        }
                    }
                }
            }
        }
        // File order; the sort is stable, so one place's errors keep the
        // order they were found in.
        errors.sort_by_key(|(at, _)| *at);
        errors
            .into_iter()
            .map(|(at, message)| {
                let (line, column) = line_col(text, at);
                PolicyError {
                    file: file.to_string(),
                    line,
                    column,
                    message,
                }
            })
            .collect()
    }
}

fn table<'a, 't>(t: &'a DeTable<'t>, key: &str) -> Option<&'a DeTable<'t>> {
    t.get(key).and_then(|v| v.get_ref().as_table())
}

fn key_offset(t: &DeTable<'_>, key: &str) -> Option<usize> {
    t.iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(k, _)| k.span().start)
}

fn rule_places<'t>(rule: &'t DeTable<'t>) -> RulePlaces<'t> {
    let mut places = RulePlaces {
        connection: rule.get("connection").map(|v| v.span().start),
        ..RulePlaces::default()
    };
    for part in ["when", "unless"] {
        if let Some(t) = table(rule, part) {
            for (k, _) in t.iter() {
                places.selectors.push((part, k.get_ref(), k.span().start));
            }
        }
    }
    if let Some(set) = table(rule, "set") {
        for (k, v) in set.iter() {
            let at = match v.get_ref() {
                DeValue::Table(lookup) => lookup
                    .get("lookup")
                    .map(Spanned::span)
                    .map_or(v.span().start, |s| s.start),
                _ => v.span().start,
            };
            places.set.push((k.get_ref(), at));
        }
    }
    places
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary() -> Vocabulary {
        Vocabulary::new(
            [
                ConnectionId::new("expensify"),
                ConnectionId::new("spendesk"),
            ],
            ["location".to_string()],
        )
    }

    fn check(text: &str) -> Vec<PolicyError> {
        Policy::parse("p.toml", text)
            .unwrap_or_else(|e| panic!("{e}"))
            .check_against(&vocabulary())
    }

    #[test]
    fn a_sound_policy_passes() {
        let text = r#"
[connections.expensify]
orphans = "report"

[tables.ws]
"CC-1" = "W1"

[[rules]]
name = "all"
connection = "expensify"
when = { status = ["active"], location = ["Paris"], group = ["Finance"] }
unless = { "gateway.spendesk" = ["inactive"] }
set = { m = "{manager_email} / {location}", p = { lookup = "cost_center", table = "ws" } }
"#;
        assert_eq!(check(text), Vec::new());
    }

    #[test]
    fn a_misspelled_when_key_is_named_with_its_place_and_a_suggestion() {
        let text = "[[rules]]\nname = \"a\"\nconnection = \"expensify\"\nwhen = { staus = [\"active\"] }\n";
        let errors = check(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!((e.line, e.column), (4, 10), "{e}");
        assert!(e.message.contains("when key \"staus\""), "{e}");
        assert!(e.message.contains("did you mean \"status\"?"), "{e}");
        assert!(e.to_string().starts_with("p.toml:4:10: "), "{e}");
    }

    #[test]
    fn an_unknown_unless_key_without_a_near_name_lists_the_known_ones() {
        let text = "[[rules]]\nname = \"a\"\nconnection = \"expensify\"\nunless = { xyzzy_plugh = [\"1\"] }\n";
        let errors = check(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("unless key"), "{}", errors[0]);
        assert!(!errors[0].message.contains("did you mean"), "{}", errors[0]);
        assert!(errors[0].message.contains("known: "), "{}", errors[0]);
    }

    #[test]
    fn a_rule_for_an_unconfigured_connection_is_an_error() {
        let text = "[[rules]]\nname = \"a\"\nconnection = \"expensfy\"\n";
        let errors = check(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!((e.line, e.column), (3, 14), "{e}");
        assert!(e.message.contains("\"expensfy\" is not configured"), "{e}");
        assert!(e.message.contains("did you mean \"expensify\"?"), "{e}");
    }

    #[test]
    fn a_connection_section_for_an_unconfigured_connection_is_an_error() {
        let text = "[connections.spendsk]\norphans = \"report\"\n";
        let errors = check(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 1, "{}", errors[0]);
        assert!(
            errors[0].message.contains("[connections.spendsk]"),
            "{}",
            errors[0]
        );
        assert!(
            errors[0].message.contains("did you mean \"spendesk\"?"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn an_unknown_template_placeholder_points_at_the_placeholder() {
        let text = "[[rules]]\nname = \"a\"\nconnection = \"expensify\"\nset = { m = \"x {manager_emial}\" }\n";
        let errors = check(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!((e.line, e.column), (4, 16), "{e}");
        assert!(e.message.contains("placeholder {manager_emial}"), "{e}");
        assert!(e.message.contains("did you mean \"manager_email\"?"), "{e}");
    }

    #[test]
    fn an_unknown_lookup_attribute_is_an_error() {
        let text = "[tables.ws]\n\"CC-1\" = \"W1\"\n[[rules]]\nname = \"a\"\nconnection = \"expensify\"\nset = { p = { lookup = \"cost_centre\", table = \"ws\" } }\n";
        let errors = check(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("looks up \"cost_centre\""), "{e}");
        assert!(e.message.contains("did you mean \"cost_center\"?"), "{e}");
    }

    #[test]
    fn group_keys_select_but_are_not_attributes() {
        let text =
            "[[rules]]\nname = \"a\"\nconnection = \"expensify\"\nset = { g = \"{groups}\" }\n";
        assert_eq!(check(text).len(), 1);
    }

    #[test]
    fn every_problem_is_reported_in_file_order() {
        let text = r#"[connections.bil]
orphans = "report"

[[rules]]
name = "a"
connection = "expensfy"
when = { staus = ["active"], departmnt = ["Sales"] }

[[rules]]
name = "b"
connection = "spendesk"
set = { team = "{dept}" }
"#;
        let errors = check(text);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 6, 7, 7, 12], "{errors:#?}");
        assert!(
            errors[2].message.contains("did you mean \"department\"?")
                || errors[3].message.contains("did you mean \"department\"?")
        );
    }

    #[test]
    fn the_gateway_keys_follow_the_configured_connections() {
        let text = "[[rules]]\nname = \"a\"\nconnection = \"spendesk\"\nwhen = { \"gateway.spendesk\" = [\"active\"] }\n[[rules]]\nname = \"b\"\nconnection = \"spendesk\"\nwhen = { \"gateway.slack\" = [\"active\"] }\n";
        let errors = check(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 8);
    }
}
