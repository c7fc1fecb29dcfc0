//! Policy as code: who gets which app, with which attributes.
//!
//! A policy is a TOML file. Its shape:
//!
//! ```toml
//! [correlation]
//! order = ["employee_id", "email", "aliases"]   # the default
//! equivalent_domains = [["acme.com", "acme.io"]]
//!
//! [approvals]                 # guards; see crate::guard for the defaults
//! deprovision_admins = true           # the default
//! max_deprovisions_per_plan = 100
//! max_removals = 3                    # removals from people still employed, per connection
//! max_removal_percent = 5             # ... or this share of its active accounts, when larger
//! max_grants = 10                     # new accounts per connection and plan
//! max_grant_percent = 10
//! privileged_roles = ["admin", "owner"]
//! separation_of_duties = "agents"     # the default; or "always", "off"
//!
//! [connections.expensify]
//! orphans = "report"          # or "deactivate"
//! sensitive = false           # true: every action needs approval
//! max_deprovisions = 25       # more than this in one plan: deactivations wait for approval
//! max_deprovision_percent = 10
//! grace_days = 30             # suspend leavers now, delete 30 days after their end date
//! approvers = ["alice", "group:finance"]  # only they approve or reject its actions
//!
//! [tables.workspace_by_cost_center]
//! "CC-100" = "E5A1B2C3D4E5F601"
//!
//! [[rules]]
//! name = "everyone-gets-expensify"
//! connection = "expensify"
//! when = { status = ["active", "leave"] }
//! set = { role = "user", manager_email = "{manager_email}",
//!         policy_id = { lookup = "cost_center", table = "workspace_by_cost_center" } }
//! ```
//!
//! # Precedence
//!
//! * A person is granted a connection when at least one non-deny rule for it
//!   matches them and no `deny = true` rule for it does. Deny always wins,
//!   wherever it sits in the file.
//! * When several granting rules match, their `set` tables are merged in file
//!   order: a later rule overrides an attribute an earlier one set.
//! * A rule whose `when` does not name `status` applies to `active` and
//!   `leave` people only: a rule never grants access to a terminated person
//!   unless it says `status = ["terminated"]` outright.
//! * `when` values match case-insensitively; each key must match (AND), any
//!   value within a key may match (OR). The key `group` matches when any of
//!   the person's IdP groups is listed. `unless` has the same shape and
//!   excludes people who match it.
//! * An attribute whose template names a source attribute the person lacks
//!   (say, `{manager_email}` for the CEO) is left unset, not set to "".
//! * A `lookup` whose table has no value for the person's key, and no
//!   `default`, leaves the entitlement *unresolved*
//!   ([`Entitlement::unresolved`]): the plan creates, updates or reactivates
//!   nothing for that person in that connection and says which table lacks
//!   which key. An account is never created without, say, its workspace.
//!
//! # Checked against reality
//!
//! [`Policy::parse`] checks what the file alone can tell (syntax, unknown
//! fields, tables, statuses, placeholders' shape). What a policy names must
//! also exist: [`Policy::check_against`] (in [`crate::vocabulary`]) takes
//! the [`Vocabulary`](crate::vocabulary::Vocabulary) of the deployment — the
//! connections `roster.toml` configures and the attributes the sources
//! provide (the built-in person fields, `group`/`groups`, the HR file's
//! extra columns, `gateway.<connection>`) — and reports every `when` or
//! `unless` key, `lookup` attribute, `{placeholder}`, rule connection and
//! `[connections.X]` section that names nothing, each with
//! file:line:column and the closest known name ("did you mean"). A typo
//! in a selector would otherwise match nobody, and the next plan would
//! take the app away from everyone the rule granted it to. `roster policy
//! check` and every plan run this check and refuse to go on when it fails.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::ids::ConnectionId;
use crate::model::{EmploymentStatus, Person};

/// A policy error with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl PolicyError {
    /// The stable code of a policy error. The message keeps the compiler's
    /// shape (`file:line:column: message`) so editors can jump to it; the
    /// code is for logs, API answers and scripts.
    pub fn code(&self) -> &'static str {
        "POLICY-0001"
    }
}

/// How an account with no matching person is treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrphanHandling {
    /// Report it; change nothing. The safe default: an orphan may be a
    /// service account or a person HR does not know about.
    #[default]
    Report,
    /// Deactivate it.
    Deactivate,
}

/// One correlation rule, tried in the configured order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrelationRule {
    EmployeeId,
    Email,
    Aliases,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationSettings {
    #[serde(default = "default_order")]
    pub order: Vec<CorrelationRule>,
    /// Groups of domains that name the same mailbox: with
    /// `[["acme.com","acme.io"]]`, `alice@acme.io` is `alice@acme.com`.
    #[serde(default)]
    pub equivalent_domains: Vec<Vec<String>>,
}

fn default_order() -> Vec<CorrelationRule> {
    vec![
        CorrelationRule::EmployeeId,
        CorrelationRule::Email,
        CorrelationRule::Aliases,
    ]
}

impl Default for CorrelationSettings {
    fn default() -> Self {
        CorrelationSettings {
            order: default_order(),
            equivalent_domains: Vec::new(),
        }
    }
}

/// Per-connection policy settings.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPolicy {
    #[serde(default)]
    pub orphans: OrphanHandling,
    /// Attributes roster compares and corrects. Defaults to every attribute
    /// some rule sets; attributes outside this list are never "drift".
    #[serde(default)]
    pub managed_attributes: Option<Vec<String>>,
    /// Every action in a sensitive app needs approval.
    #[serde(default)]
    pub sensitive: bool,
    /// More deactivations than this in one plan, and every deactivation in
    /// this connection waits for approval.
    #[serde(default)]
    pub max_deprovisions: Option<usize>,
    /// The same as a share of the connection's active accounts (0–100).
    #[serde(default)]
    pub max_deprovision_percent: Option<f64>,
    /// Grace period: a leaver's account is deactivated (suspended) at once
    /// and deleted for good this many days after their end date.
    #[serde(default)]
    pub grace_days: Option<u32>,
    /// Overrides `[approvals]`'s limits for this connection (see
    /// [`ApprovalSettings`] and [`crate::guard`]).
    #[serde(default)]
    pub max_removals: Option<usize>,
    #[serde(default)]
    pub max_removal_percent: Option<f64>,
    #[serde(default)]
    pub max_grants: Option<usize>,
    #[serde(default)]
    pub max_grant_percent: Option<f64>,
    /// Who may approve or reject this connection's actions: principal
    /// names, or `group:NAME` (see [`crate::principal`]). Unset: any
    /// operator.
    #[serde(default)]
    pub approvers: Option<Vec<String>>,
}

/// Plan-wide approval rules.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSettings {
    /// Deactivating an account whose `role` is `admin` (or `owner`) needs
    /// approval. On by default: an admin's removal is the one most likely
    /// to break something.
    #[serde(default = "yes")]
    pub deprovision_admins: bool,
    /// A plan that deactivates more than this many accounts in total needs
    /// approval for every deactivation.
    #[serde(default)]
    pub max_deprovisions_per_plan: Option<usize>,
    /// Removals from people still employed (and orphans) one connection
    /// may take in one plan without approval. Unset: the default of
    /// [`crate::guard::DEFAULT_MAX_REMOVALS`], lowered on small apps (see
    /// [`crate::guard`]).
    #[serde(default)]
    pub max_removals: Option<usize>,
    /// The same as a share of the connection's active accounts; the larger
    /// of the two allowances applies. Unset:
    /// [`crate::guard::DEFAULT_MAX_REMOVAL_PERCENT`].
    #[serde(default)]
    pub max_removal_percent: Option<f64>,
    /// New accounts (creates and reactivations) one connection may get in
    /// one plan without approval. Unset:
    /// [`crate::guard::DEFAULT_MAX_GRANTS`].
    #[serde(default)]
    pub max_grants: Option<usize>,
    /// The same as a share of the connection's active accounts; the larger
    /// applies. Unset: [`crate::guard::DEFAULT_MAX_GRANT_PERCENT`].
    #[serde(default)]
    pub max_grant_percent: Option<f64>,
    /// Granting one of these roles (the account attribute `role`) waits for
    /// approval, and so does deactivating an account that holds one (with
    /// `deprovision_admins`). Unset: `admin` and `owner`.
    #[serde(default)]
    pub privileged_roles: Option<Vec<String>>,
    /// Granting a privileged role waits for approval. Unset: yes.
    #[serde(default)]
    pub privileged_grants: Option<bool>,
    /// Every removal in a connection's first plan (no plan for it has been
    /// applied yet) waits for approval. Unset: yes.
    #[serde(default)]
    pub first_plan: Option<bool>,
    /// A source with more than this share fewer people than the last
    /// accepted snapshot, or this share of its people newly terminated,
    /// is an incomplete read: no deactivations until a person confirms.
    /// Unset: [`crate::guard::DEFAULT_SOURCE_CHANGE_PERCENT`].
    #[serde(default)]
    pub max_source_change_percent: Option<f64>,
    /// When the principal who proposed a plan may not approve it (see
    /// [`crate::principal`]). Unset: `agents`.
    #[serde(default)]
    pub separation_of_duties: Option<crate::principal::SeparationOfDuties>,
    /// Deactivating in an app whose deactivation deletes the account for
    /// good (the catalog's `[deactivation] kind = "hard-delete"`) waits
    /// for approval. Unset: yes.
    #[serde(default)]
    pub hard_deletes: Option<bool>,
    /// A deactivation carried out by a browser runbook that moves money or
    /// spending power first (reassigns approvals, blocks cards) waits for
    /// approval. Unset: yes.
    #[serde(default)]
    pub financial_steps: Option<bool>,
}

fn yes() -> bool {
    true
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            deprovision_admins: true,
            max_deprovisions_per_plan: None,
            max_removals: None,
            max_removal_percent: None,
            max_grants: None,
            max_grant_percent: None,
            privileged_roles: None,
            privileged_grants: None,
            first_plan: None,
            max_source_change_percent: None,
            separation_of_duties: None,
            hard_deletes: None,
            financial_steps: None,
        }
    }
}

impl Eq for ApprovalSettings {}

/// A value to set on an account.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AttributeValue {
    /// A literal with `{attribute}` placeholders filled from the person.
    Template(String),
    /// A lookup of a person attribute in a named table.
    Lookup {
        lookup: String,
        table: String,
        #[serde(default)]
        default: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub connection: ConnectionId,
    #[serde(default)]
    pub when: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub unless: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub deny: bool,
    #[serde(default)]
    pub set: BTreeMap<String, AttributeValue>,
}

/// The file a policy was parsed from, and its text: kept so later checks
/// can point at a place in it, and so a plan can record exactly which
/// policy it was computed under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySource {
    pub file: String,
    pub text: String,
}

/// A validated policy.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Set by [`Policy::parse`]; `None` for a policy built in code.
    #[serde(skip)]
    pub source: Option<PolicySource>,
    #[serde(default)]
    pub correlation: CorrelationSettings,
    #[serde(default)]
    pub approvals: ApprovalSettings,
    #[serde(default)]
    pub connections: BTreeMap<ConnectionId, ConnectionPolicy>,
    #[serde(default)]
    pub tables: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// What the policy wants one person to have in one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entitlement<'p> {
    pub connection: ConnectionId,
    /// Attribute name (borrowed from the policy) → desired value.
    pub attributes: BTreeMap<&'p str, String>,
    /// The names of the rules that granted it, for the plan's reasons.
    pub rules: Vec<&'p str>,
    /// Attributes whose lookup found no value (and had no default). While
    /// any remain, the person gets no create, update or reactivation in
    /// this connection: an account must not be made without them.
    pub unresolved: Vec<UnresolvedLookup<'p>>,
}

/// A `lookup` that found nothing for one person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnresolvedLookup<'p> {
    /// The account attribute the rule sets (e.g. `policy_id`).
    pub attribute: &'p str,
    /// The person attribute looked up (e.g. `cost_center`).
    pub lookup: &'p str,
    pub table: &'p str,
    /// The person's value of `lookup`; `None` when they have none.
    pub key: Option<String>,
}

impl std::fmt::Display for UnresolvedLookup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(
                f,
                "{}: table {:?} has no entry for {} = {key:?} and no default",
                self.attribute, self.table, self.lookup
            ),
            None => write!(
                f,
                "{}: the person has no {} to look up in table {:?}, and there is no default",
                self.attribute, self.lookup, self.table
            ),
        }
    }
}

impl Entitlement<'_> {
    /// The attributes with owned names, as an action carries them.
    pub fn owned_attributes(&self) -> BTreeMap<String, String> {
        self.attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
}

impl Policy {
    /// Parses and validates a policy file's text. `file` is only used to
    /// name the place of an error.
    pub fn parse(file: &str, text: &str) -> Result<Policy, PolicyError> {
        let mut policy: Policy = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            PolicyError {
                file: file.to_string(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        policy.validate().map_err(|(needle, message)| {
            let offset = text.find(&needle).unwrap_or(0);
            let (line, column) = line_col(text, offset);
            PolicyError {
                file: file.to_string(),
                line,
                column,
                message,
            }
        })?;
        policy.source = Some(PolicySource {
            file: file.to_string(),
            text: text.to_string(),
        });
        Ok(policy)
    }

    /// The text this policy was parsed from, if it was.
    pub fn text(&self) -> Option<&str> {
        self.source.as_ref().map(|s| s.text.as_str())
    }

    /// SHA-256 (hex) of the policy's text: what a stored plan records to
    /// tell whether the policy changed since.
    pub fn text_hash(&self) -> Option<String> {
        use sha2::{Digest, Sha256};
        self.text()
            .map(|t| hex::encode(Sha256::digest(t.as_bytes())))
    }

    /// Checks references the TOML grammar cannot. On failure returns a
    /// snippet to locate in the source and the message.
    fn validate(&self) -> Result<(), (String, String)> {
        let percent = |field: &str, scope: String, p: Option<f64>| match p {
            Some(p) if !(0.0..=100.0).contains(&p) => Err((
                field.to_string(),
                format!("{scope}.{field} must be between 0 and 100, got {p}"),
            )),
            _ => Ok(()),
        };
        for (id, c) in &self.connections {
            let scope = || format!("connections.{id}");
            percent(
                "max_deprovision_percent",
                scope(),
                c.max_deprovision_percent,
            )?;
            percent("max_removal_percent", scope(), c.max_removal_percent)?;
            percent("max_grant_percent", scope(), c.max_grant_percent)?;
        }
        let a = &self.approvals;
        percent(
            "max_removal_percent",
            "approvals".into(),
            a.max_removal_percent,
        )?;
        percent("max_grant_percent", "approvals".into(), a.max_grant_percent)?;
        percent(
            "max_source_change_percent",
            "approvals".into(),
            a.max_source_change_percent,
        )?;
        let mut names = std::collections::BTreeSet::new();
        for rule in &self.rules {
            if rule.name.trim().is_empty() {
                return Err(("[[rules]]".into(), "a rule needs a non-empty name".into()));
            }
            if !names.insert(rule.name.as_str()) {
                return Err((
                    format!("\"{}\"", rule.name),
                    format!("rule name {:?} is used twice", rule.name),
                ));
            }
            for (key, values) in rule.when.iter().chain(rule.unless.iter()) {
                if key == "status" {
                    for v in values {
                        if EmploymentStatus::parse(v).is_none() {
                            return Err((
                                format!("\"{v}\""),
                                format!(
                                    "rule {:?}: unknown status {v:?} (expected active, leave or terminated)",
                                    rule.name
                                ),
                            ));
                        }
                    }
                }
            }
            for (attr, value) in &rule.set {
                if let AttributeValue::Lookup { table, .. } = value
                    && !self.tables.contains_key(table)
                {
                    return Err((
                        format!("\"{table}\""),
                        format!(
                            "rule {:?}: attribute {attr:?} looks up table {table:?}, which is not defined under [tables]",
                            rule.name
                        ),
                    ));
                }
                if let AttributeValue::Template(t) = value
                    && let Err(msg) = placeholders(t)
                {
                    return Err((
                        t.clone(),
                        format!("rule {:?}: attribute {attr:?}: {msg}", rule.name),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn connection(&self, id: &ConnectionId) -> ConnectionPolicy {
        self.connections.get(id).cloned().unwrap_or_default()
    }

    /// The connections any rule talks about, in sorted order.
    pub fn governed_connections(&self) -> Vec<ConnectionId> {
        let mut set: std::collections::BTreeSet<ConnectionId> =
            self.rules.iter().map(|r| r.connection.clone()).collect();
        set.extend(self.connections.keys().cloned());
        set.into_iter().collect()
    }

    /// What this person should have in this connection, if anything.
    pub fn entitlement(
        &self,
        person: &Person,
        connection: &ConnectionId,
    ) -> Option<Entitlement<'_>> {
        self.entitlement_among(&self.rules_for(connection), person, connection)
    }

    /// The rules about one connection, in file order.
    pub fn rules_for(&self, connection: &ConnectionId) -> Vec<&Rule> {
        self.rules
            .iter()
            .filter(|r| &r.connection == connection)
            .collect()
    }

    /// [`Policy::entitlement`] given the connection's rules (from
    /// [`Policy::rules_for`]), so a run over many people selects them once.
    pub fn entitlement_among<'p>(
        &'p self,
        connection_rules: &[&'p Rule],
        person: &Person,
        connection: &ConnectionId,
    ) -> Option<Entitlement<'p>> {
        let mut granted = false;
        let mut attributes = BTreeMap::new();
        let mut rules = Vec::new();
        let mut unresolved: Vec<UnresolvedLookup<'p>> = Vec::new();
        for rule in connection_rules.iter().copied() {
            if !rule.matches(person) {
                continue;
            }
            if rule.deny {
                return None;
            }
            granted = true;
            rules.push(rule.name.as_str());
            for (attr, value) in &rule.set {
                // A later rule's value replaces an earlier one's, whether
                // that earlier one resolved or not.
                unresolved.retain(|u| u.attribute != attr.as_str());
                match self.evaluate(attr, value, person) {
                    Evaluated::Value(v) => {
                        attributes.insert(attr.as_str(), v);
                    }
                    Evaluated::Unset => {
                        attributes.remove(attr.as_str());
                    }
                    Evaluated::Unresolved(u) => {
                        attributes.remove(attr.as_str());
                        unresolved.push(u);
                    }
                }
            }
        }
        granted.then(|| Entitlement {
            connection: connection.clone(),
            attributes,
            rules,
            unresolved,
        })
    }

    /// The attributes roster manages in a connection.
    pub fn managed_attributes(&self, connection: &ConnectionId) -> Vec<String> {
        if let Some(list) = self
            .connections
            .get(connection)
            .and_then(|c| c.managed_attributes.clone())
        {
            return list;
        }
        let mut set = std::collections::BTreeSet::new();
        for rule in self.rules.iter().filter(|r| &r.connection == connection) {
            set.extend(rule.set.keys().cloned());
        }
        set.into_iter().collect()
    }

    fn evaluate<'p>(
        &'p self,
        attribute: &'p str,
        value: &'p AttributeValue,
        person: &Person,
    ) -> Evaluated<'p> {
        match value {
            AttributeValue::Template(t) => match fill_template(t, person) {
                Some(v) => Evaluated::Value(v),
                None => Evaluated::Unset,
            },
            AttributeValue::Lookup {
                lookup,
                table,
                default,
            } => {
                // An empty value is no key: it says the source has nothing.
                let key = person.attribute_str(lookup).filter(|k| !k.is_empty());
                let found = key
                    .as_ref()
                    .and_then(|k| self.tables.get(table).and_then(|t| t.get(k.as_ref())));
                match (found, default) {
                    (Some(v), _) => Evaluated::Value(v.clone()),
                    (None, Some(d)) => Evaluated::Value(d.clone()),
                    (None, None) => Evaluated::Unresolved(UnresolvedLookup {
                        attribute,
                        lookup,
                        table,
                        key: key.map(|k| k.into_owned()),
                    }),
                }
            }
        }
    }
}

/// One `set` value, evaluated for one person.
enum Evaluated<'p> {
    Value(String),
    /// A template named an attribute the person lacks: leave it unset.
    Unset,
    /// A lookup found nothing and has no default: withhold the account.
    Unresolved(UnresolvedLookup<'p>),
}

impl Rule {
    pub fn matches(&self, person: &Person) -> bool {
        if !self.when.contains_key("status") && person.status == EmploymentStatus::Terminated {
            return false;
        }
        let all_match = self
            .when
            .iter()
            .all(|(k, v)| selector_matches(person, k, v));
        let excluded = !self.unless.is_empty()
            && self
                .unless
                .iter()
                .all(|(k, v)| selector_matches(person, k, v));
        all_match && !excluded
    }
}

fn selector_matches(person: &Person, key: &str, values: &[String]) -> bool {
    if key == "group" || key == "groups" {
        return person
            .groups
            .iter()
            .any(|g| values.iter().any(|v| v.eq_ignore_ascii_case(g)));
    }
    match person.attribute_str(key) {
        Some(actual) => values.iter().any(|v| v.eq_ignore_ascii_case(&actual)),
        None => false,
    }
}

/// The placeholder names in a template, or why it is malformed.
pub(crate) fn placeholders(template: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed '{{' in {template:?}"));
        };
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad placeholder {{{name}}} in {template:?}"));
        }
        names.push(name.to_string());
        rest = &after[end + 1..];
    }
    Ok(names)
}

fn fill_template(template: &str, person: &Person) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('}')?;
        let value = person.attribute_str(&after[..end])?;
        if value.is_empty() {
            return None;
        }
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_names_file_line_and_column() {
        let text = "[[rules]]\nname = \"a\"\nconnection = expensify\n";
        let err = Policy::parse("policy.toml", text).unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("policy.toml", 3), "{err}");
        assert!(err.column > 1, "{err}");
        assert!(err.to_string().starts_with("policy.toml:3:"), "{err}");
    }

    #[test]
    fn unknown_field_is_rejected_with_its_place() {
        let text = "[[rules]]\nname = \"a\"\nconnection = \"x\"\nwhen = { status = [\"active\"] }\ngrant = true\n";
        let err = Policy::parse("p.toml", text).unwrap_err();
        assert!(err.message.contains("grant"), "{err}");
        assert_eq!((err.line, err.column), (5, 1), "{err}");
    }

    #[test]
    fn undefined_lookup_table_is_an_error_at_its_use() {
        let text = "[[rules]]\nname = \"a\"\nconnection = \"x\"\nset = { policy_id = { lookup = \"cost_center\", table = \"nope\" } }\n";
        let err = Policy::parse("p.toml", text).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        assert!(err.message.contains("\"nope\""), "{err}");
    }

    #[test]
    fn bad_status_and_duplicate_names_are_errors() {
        let text =
            "[[rules]]\nname = \"a\"\nconnection = \"x\"\nwhen = { status = [\"retired\"] }\n";
        let err = Policy::parse("p.toml", text).unwrap_err();
        assert!(err.message.contains("retired"), "{err}");
        let text = "[[rules]]\nname = \"a\"\nconnection = \"x\"\n[[rules]]\nname = \"a\"\nconnection = \"y\"\n";
        let err = Policy::parse("p.toml", text).unwrap_err();
        assert!(err.message.contains("used twice"), "{err}");
    }

    #[test]
    fn malformed_template_is_an_error() {
        let text =
            "[[rules]]\nname = \"a\"\nconnection = \"x\"\nset = { m = \"{manager_email\" }\n";
        let err = Policy::parse("p.toml", text).unwrap_err();
        assert!(err.message.contains("unclosed"), "{err}");
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
