//! Plans: the reviewable output of reconciliation.
//!
//! A plan is a deterministic list of [`Action`]s, each with a human-readable
//! reason, plus the [`Finding`]s that need a person's eyes but no action
//! (orphans, ambiguous matches, incomplete reads). Its [`Plan::hash`] covers
//! both the actions and the digest of the observed state they were computed
//! from, so an approval bound to the hash cannot be replayed on a world that
//! has moved on.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::guard::GuardReport;
use crate::ids::{AccountKey, ConnectionId, Email, EmployeeId};
use crate::model::Observed;

/// A lifecycle operation on an account. `Read` is listed so the catalog
/// can describe how accounts are read; plans never contain it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Read,
    Create,
    Update,
    Deactivate,
    Reactivate,
    /// Remove a suspended account for good, once the connection's grace
    /// period is over. Not one of [`Operation::ALL`]: the catalog describes
    /// the five lifecycle operations; deletion is a policy choice on top.
    Delete,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Read,
        Operation::Create,
        Operation::Update,
        Operation::Deactivate,
        Operation::Reactivate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Deactivate => "deactivate",
            Operation::Reactivate => "reactivate",
            Operation::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Operation> {
        Operation::ALL
            .into_iter()
            .chain([Operation::Delete])
            .find(|o| o.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The `terraform plan`-style sign: `+` create, `~` update,
    /// `-` deactivate, `^` reactivate.
    pub fn sign(self) -> char {
        match self {
            Operation::Read => ' ',
            Operation::Create => '+',
            Operation::Update => '~',
            Operation::Deactivate => '-',
            Operation::Reactivate => '^',
            Operation::Delete => 'x',
        }
    }

    /// Does this operation take access away?
    pub fn is_deprovision(self) -> bool {
        matches!(self, Operation::Deactivate | Operation::Delete)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attribute's change, before → after. `None` means unset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeChange {
    pub name: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Why an action is planned: what in the world asks for it. The guards
/// ([`crate::guard`]) judge an action by its cause: a leaver's
/// deactivation goes at once, access taken from someone still employed
/// waits past a small limit.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Not recorded: a plan stored before actions carried their cause.
    #[default]
    Unknown,
    /// A rule grants the person an app they have no account in.
    Grant,
    /// A rule grants the person an app whose account is deactivated.
    Regrant,
    /// The account differs from what the source and the rules say.
    Drift,
    /// The person is terminated in the source of truth.
    Left,
    /// No rule grants the app any more to a person who is still active or
    /// on leave.
    NoLongerGranted,
    /// An active account no person matches (`orphans = "deactivate"`).
    Orphan,
    /// A leaver's suspended account, past the connection's grace period.
    GraceExpired,
    /// The account's approver (`manager_email`, `approves_to`) is leaving:
    /// it moves to the leaver's manager before the leaver's account closes
    /// (see [`crate::repoint`]).
    Repoint,
}

impl Cause {
    pub const ALL: [Cause; 9] = [
        Cause::Unknown,
        Cause::Grant,
        Cause::Regrant,
        Cause::Drift,
        Cause::Left,
        Cause::NoLongerGranted,
        Cause::Orphan,
        Cause::GraceExpired,
        Cause::Repoint,
    ];

    /// The stable name used in plans, JSON and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Unknown => "unknown",
            Cause::Grant => "grant",
            Cause::Regrant => "regrant",
            Cause::Drift => "drift",
            Cause::Left => "left",
            Cause::NoLongerGranted => "no_longer_granted",
            Cause::Orphan => "orphan",
            Cause::GraceExpired => "grace_expired",
            Cause::Repoint => "repoint",
        }
    }

    pub fn is_unknown(&self) -> bool {
        *self == Cause::Unknown
    }

    /// Does this removal take access from someone the source of truth
    /// still lists as employed (or does not list at all)? These are the
    /// removals a typo in a rule or a short read produces.
    pub fn removes_from_non_leaver(self) -> bool {
        matches!(self, Cause::NoLongerGranted | Cause::Orphan)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing to do to one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub connection: ConnectionId,
    pub operation: Operation,
    /// The person the action is for; `None` for an orphan's deactivation.
    pub employee_id: Option<EmployeeId>,
    /// The address the account is (or will be) known by.
    pub email: Email,
    /// The app's key for an existing account; `None` for a create.
    pub account: Option<AccountKey>,
    /// The full desired attribute set (create, reactivate, update), so a
    /// connector that writes whole records (Expensify, SCIM PUT) has it.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// What differs, for updates and reactivations.
    #[serde(default)]
    pub changes: Vec<AttributeChange>,
    pub reason: String,
    /// Why the action is planned. Left out of the JSON when unknown, so a
    /// plan stored before causes existed keeps its content hash.
    #[serde(default, skip_serializing_if = "Cause::is_unknown")]
    pub cause: Cause,
}

impl Action {
    /// A stable key for this action within a plan: connection, operation
    /// and the account (or person) it targets. Two plans that want the same
    /// effect give the same key, which the engine uses for idempotency.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.connection,
            self.operation,
            self.account
                .as_ref()
                .map(|a| a.to_string())
                .unwrap_or_else(|| self.email.normalized())
        )
    }
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// An active account no person matches.
    Orphan,
    /// An account that matches more than one person, or whose rules
    /// disagree. Never acted on until a person resolves it.
    Ambiguous,
    /// A second account for a person who already has one in the app.
    Duplicate,
    /// The read was incomplete: deprovisions were withheld.
    IncompleteRead,
    /// A rule's `lookup` table has no value some person needs (and no
    /// default): that person's create, update or reactivation is withheld.
    UnresolvedLookup,
    /// The source of truth shrank (or terminated many people at once)
    /// since the last accepted snapshot: deprovisions were withheld until a
    /// person confirms the source (see [`crate::guard`]).
    SourceChange,
    /// A dated change not due yet (see [`crate::calendar`]): a joiner whose
    /// provisioning day is ahead, or a leaver who keeps access until the
    /// end of their end date. Nothing for a person to do.
    Scheduled,
    /// A leaver is still someone's approver and no successor is known:
    /// nothing was re-pointed and their deactivation in the app is withheld
    /// (see [`crate::repoint`]).
    NoSuccessor,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Orphan => "orphan",
            FindingKind::Ambiguous => "ambiguous",
            FindingKind::Duplicate => "duplicate",
            FindingKind::IncompleteRead => "incomplete_read",
            FindingKind::UnresolvedLookup => "unresolved_lookup",
            FindingKind::SourceChange => "source_change",
            FindingKind::Scheduled => "scheduled",
            FindingKind::NoSuccessor => "no_successor",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub connection: ConnectionId,
    pub kind: FindingKind,
    pub account: Option<AccountKey>,
    pub email: Option<Email>,
    pub detail: String,
}

/// How the accounts of one connection were classified.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// Linked to a person and as desired.
    pub linked: usize,
    /// Linked, but attributes differ from policy.
    pub drifted: usize,
    /// A person should have an account and has none.
    pub missing: usize,
    /// An active account its person should no longer have.
    pub excess: usize,
    /// An active account no person matches.
    pub orphan: usize,
    /// Accounts not linked because the match was ambiguous or duplicate.
    pub unmatched: usize,
    /// Inactive accounts nobody is entitled to: nothing to do.
    pub inactive: usize,
    /// Accounts a person marked as not managed by roster (match queue).
    #[serde(default)]
    pub ignored: usize,
}

/// The result of one reconciliation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub findings: Vec<Finding>,
    pub classification: BTreeMap<ConnectionId, Classification>,
    /// SHA-256 over the observed state the plan was computed from.
    pub observed_digest: String,
    /// Actions (by index) that need a person's approval before they may
    /// run, with the reason (see [`crate::guard`]).
    #[serde(default)]
    pub approvals: BTreeMap<usize, String>,
    /// Which guards fired, with their numbers, and the guard settings the
    /// policy changed from the defaults (see [`crate::guard`]).
    #[serde(default, skip_serializing_if = "GuardReport::is_empty")]
    pub guards: GuardReport,
    /// Set when the policy changed since the last applied plan: what the
    /// change alone causes. Informational: not part of [`Plan::hash`], since
    /// it describes the plan rather than adding to what it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_change: Option<PolicyChange>,
}

/// The policy differs from the one the last applied plan was computed
/// under; `effect` is what the difference alone causes on today's people
/// and accounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyChange {
    /// The last applied plan.
    pub since_plan: String,
    /// When it was applied (ms since the Unix epoch).
    pub applied_ms: i64,
    /// SHA-256 of its policy's text, and of today's.
    pub previous_policy_hash: String,
    pub policy_hash: String,
    pub effect: PolicyEffect,
}

/// Actions one plan has that another, computed from the same people and
/// accounts under a different policy, does not: counted by what they do to
/// access.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyEffect {
    /// Deactivations and deletions.
    pub removals: usize,
    /// Creations and reactivations.
    pub grants: usize,
    /// Attribute updates (including a different update of the same account).
    pub updates: usize,
}

impl PolicyEffect {
    pub fn is_empty(&self) -> bool {
        self.removals == 0 && self.grants == 0 && self.updates == 0
    }
}

/// What `new` does that `before` would not: the actions of `new` with no
/// counterpart in `before` — the same operation on the same account (or
/// person), and for an update the same changes. Reasons may differ, since
/// they name rules; a grant with other attributes is still the same grant. With `before`
/// the plan under the old policy and `new` the plan under the current one,
/// both from the same inputs, this is what the policy change alone causes.
pub fn policy_effect(before: &Plan, new: &Plan) -> PolicyEffect {
    let mut seen: std::collections::HashMap<String, Vec<&Action>> =
        std::collections::HashMap::with_capacity(before.actions.len());
    for a in &before.actions {
        seen.entry(a.key()).or_default().push(a);
    }
    let mut effect = PolicyEffect::default();
    for a in &new.actions {
        // A grant or removal is the same one whatever its attributes; an
        // update is the same only if it changes the same things.
        let same = seen.get(&a.key()).is_some_and(|olds| {
            a.operation != Operation::Update
                || olds
                    .iter()
                    .any(|o| o.attributes == a.attributes && o.changes == a.changes)
        });
        if same {
            continue;
        }
        match a.operation {
            Operation::Deactivate | Operation::Delete => effect.removals += 1,
            Operation::Create | Operation::Reactivate => effect.grants += 1,
            Operation::Update => effect.updates += 1,
            Operation::Read => {}
        }
    }
    effect
}

impl PolicyChange {
    /// `policy changed since plan X (applied ...): the change alone causes
    /// N removals, M grants, K updates`.
    pub fn summary(&self) -> String {
        let applied = time::OffsetDateTime::from_unix_timestamp(self.applied_ms.div_euclid(1000))
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| format!("{} ms", self.applied_ms));
        let e = &self.effect;
        let n =
            |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
        format!(
            "policy changed since plan {} (applied {applied}): the change alone causes {}, {}, {}",
            self.since_plan,
            n(e.removals, "removal", "removals"),
            n(e.grants, "grant", "grants"),
            n(e.updates, "update", "updates"),
        )
    }
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The plan's content hash: actions, findings and the observed digest.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.observed_digest.as_bytes());
        for a in &self.actions {
            h.update(serde_json::to_vec(a).unwrap_or_default());
            h.update(b"\n");
        }
        for f in &self.findings {
            h.update(serde_json::to_vec(f).unwrap_or_default());
            h.update(b"\n");
        }
        for (i, why) in &self.approvals {
            h.update(format!("approval {i}: {why}\n").as_bytes());
        }
        // Only when present, so plans stored before guard reports existed
        // keep their hash.
        if !self.guards.is_empty() {
            h.update(serde_json::to_vec(&self.guards).unwrap_or_default());
        }
        hex::encode(h.finalize())
    }

    /// Counts of actions by operation.
    pub fn counts(&self) -> BTreeMap<Operation, usize> {
        let mut m = BTreeMap::new();
        for a in &self.actions {
            *m.entry(a.operation).or_insert(0) += 1;
        }
        m
    }

    /// `Plan: 3 to create, 2 to update, 1 to deactivate, 0 to reactivate.`
    pub fn summary_line(&self) -> String {
        let c = self.counts();
        let n = |op| c.get(&op).copied().unwrap_or(0);
        let approvals = if self.approvals.is_empty() {
            String::new()
        } else {
            format!(" {} action(s) need approval.", self.approvals.len())
        };
        format!(
            "Plan: {} to create, {} to update, {} to reactivate, {} to deactivate{}; {} finding{}.{approvals}",
            n(Operation::Create),
            n(Operation::Update),
            n(Operation::Reactivate),
            n(Operation::Deactivate),
            match n(Operation::Delete) {
                0 => String::new(),
                d => format!(", {d} to delete"),
            },
            self.findings.len(),
            if self.findings.len() == 1 { "" } else { "s" }
        )
    }
}

/// A digest of observed state, independent of the order accounts came in.
///
/// Each account is hashed field by field (length-prefixed, so no two
/// different accounts can feed the hasher the same bytes), the per-account
/// hashes are sorted, and the connection's digest is taken over them.
pub fn observed_digest(observed: &[Observed]) -> String {
    // One connection per thread at a time; order is restored by sorting.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = observed.len().div_ceil(threads).max(1);
    let parts: Vec<[u8; 32]> = std::thread::scope(|scope| {
        let handles: Vec<_> = observed
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().map(observed_digest_one).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    observed_digest_of(parts)
}

/// One connection's share of [`observed_digest`]: a digest of its
/// completeness and of its accounts in any order.
pub fn observed_digest_one(o: &Observed) -> [u8; 32] {
    fn put(h: &mut Sha256, s: &str) {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    let mut accounts: Vec<[u8; 32]> = o
        .accounts
        .iter()
        .map(|a| {
            let mut h = Sha256::new();
            put(&mut h, a.connection.as_str());
            put(&mut h, a.key.as_str());
            put(
                &mut h,
                a.email.as_ref().map(|e| e.as_str()).unwrap_or("\u{0}"),
            );
            put(
                &mut h,
                a.employee_id
                    .as_ref()
                    .map(|e| e.as_str())
                    .unwrap_or("\u{0}"),
            );
            h.update([u8::from(a.active)]);
            h.update((a.attributes.len() as u64).to_le_bytes());
            for (k, v) in &a.attributes {
                put(&mut h, k);
                put(&mut h, v);
            }
            h.finalize().into()
        })
        .collect();
    accounts.sort_unstable();
    let mut h = Sha256::new();
    put(&mut h, o.connection.as_str());
    h.update([u8::from(o.complete)]);
    for a in &accounts {
        h.update(a);
    }
    h.finalize().into()
}

/// [`observed_digest`] from its connections' shares, in any order.
pub fn observed_digest_of(mut parts: Vec<[u8; 32]>) -> String {
    parts.sort_unstable();
    let mut h = Sha256::new();
    for p in &parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// Renders a plan for people, like `terraform plan`: grouped by
/// connection, `+` create, `^` reactivate, `~` update (with each attribute
/// before → after), `-` deactivate, `?` a finding, each action with its
/// `[cause]`; then the guards that fired and the guard settings the policy
/// changed, and a summary line.
pub fn render(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut connections: Vec<&ConnectionId> = plan
        .actions
        .iter()
        .map(|a| &a.connection)
        .chain(plan.findings.iter().map(|f| &f.connection))
        .collect();
    connections.sort();
    connections.dedup();
    for conn in connections {
        let _ = writeln!(out, "{conn}:");
        for (i, a) in plan
            .actions
            .iter()
            .enumerate()
            .filter(|(_, a)| &a.connection == conn)
        {
            let who = match &a.employee_id {
                Some(id) => format!("{} ({id})", a.email),
                None => a.email.to_string(),
            };
            let cause = if a.cause.is_unknown() {
                String::new()
            } else {
                format!("  [{}]", a.cause)
            };
            let _ = writeln!(
                out,
                "  {} {:<10} {who}{cause}",
                a.operation.sign(),
                a.operation.as_str()
            );
            let _ = writeln!(out, "      because {}", a.reason);
            if let Some(why) = plan.approvals.get(&i) {
                let _ = writeln!(out, "      needs approval (action #{i}): {why}");
            }
            match a.operation {
                Operation::Create => {
                    for (k, v) in &a.attributes {
                        let _ = writeln!(out, "      {k} = {v:?}");
                    }
                }
                Operation::Update | Operation::Reactivate => {
                    for c in &a.changes {
                        let _ = writeln!(
                            out,
                            "      {}: {} -> {}",
                            c.name,
                            c.before
                                .as_deref()
                                .map(|v| format!("{v:?}"))
                                .unwrap_or_else(|| "(unset)".into()),
                            c.after
                                .as_deref()
                                .map(|v| format!("{v:?}"))
                                .unwrap_or_else(|| "(unset)".into()),
                        );
                    }
                }
                Operation::Deactivate | Operation::Delete | Operation::Read => {}
            }
        }
        for f in plan.findings.iter().filter(|f| &f.connection == conn) {
            let what = match (&f.email, &f.account) {
                (Some(e), _) => e.to_string(),
                (None, Some(k)) => k.to_string(),
                (None, None) => String::new(),
            };
            let line = format!("  ? {:<10} {what}", f.kind.as_str());
            let _ = writeln!(out, "{}", line.trim_end());
            let _ = writeln!(out, "      {}", f.detail);
        }
    }
    if let Some(change) = &plan.policy_change {
        let _ = writeln!(out, "{}.", change.summary());
    }
    out.push_str(&crate::guard::render_report(&plan.guards));
    out.push_str(&plan.summary_line());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AccountKey;
    use crate::model::Account;

    fn act(op: Operation, key: &str, attrs: &[(&str, &str)]) -> Action {
        Action {
            connection: ConnectionId::new("app"),
            operation: op,
            employee_id: None,
            email: Email::parse(&format!("{key}@acme.example")).unwrap_or_else(|_| unreachable!()),
            account: (op != Operation::Create).then(|| AccountKey::new(key)),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            changes: Vec::new(),
            reason: format!("{op} {key}"),
            cause: Cause::Unknown,
        }
    }

    fn plan_of(actions: Vec<Action>) -> Plan {
        Plan {
            actions,
            ..Plan::default()
        }
    }

    #[test]
    fn policy_effect_counts_only_what_the_new_plan_adds() {
        let before = plan_of(vec![
            act(Operation::Deactivate, "leaver", &[]),
            act(Operation::Create, "joiner", &[("ws", "W1")]),
            act(Operation::Update, "mover", &[("ws", "W2")]),
        ]);
        let mut same_but_reworded = act(Operation::Deactivate, "leaver", &[]);
        same_but_reworded.reason = "rule renamed".into();
        let new = plan_of(vec![
            same_but_reworded,
            act(Operation::Deactivate, "still-here-1", &[]),
            act(Operation::Delete, "still-here-2", &[]),
            act(Operation::Create, "joiner", &[("ws", "W9")]),
            act(Operation::Create, "new-joiner", &[]),
            act(Operation::Reactivate, "back", &[]),
            act(Operation::Update, "mover", &[("ws", "W2")]),
            act(Operation::Update, "other", &[("role", "admin")]),
        ]);
        assert_eq!(
            policy_effect(&before, &new),
            PolicyEffect {
                removals: 2,
                grants: 2,
                updates: 1
            }
        );
        assert!(policy_effect(&new, &new).is_empty());
    }

    #[test]
    fn a_policy_change_is_rendered_before_the_summary() {
        let mut plan = plan_of(vec![act(Operation::Deactivate, "a", &[])]);
        plan.policy_change = Some(PolicyChange {
            since_plan: "P1".into(),
            applied_ms: 1_764_000_000_000,
            previous_policy_hash: "old".into(),
            policy_hash: "new".into(),
            effect: PolicyEffect {
                removals: 1,
                grants: 0,
                updates: 2,
            },
        });
        let text = render(&plan);
        assert!(
            text.contains("policy changed since plan P1 (applied 2025-11-24T16:00:00Z): the change alone causes 1 removal, 0 grants, 2 updates.\nPlan: "),
            "{text}"
        );
        let hash = plan.hash();
        plan.policy_change = None;
        assert_eq!(plan.hash(), hash, "informational only");
    }

    fn account(key: &str, role: &str) -> Account {
        Account {
            connection: ConnectionId::new("app"),
            key: AccountKey::new(key),
            email: Email::parse(&format!("{key}@acme.example")).ok(),
            employee_id: None,
            active: true,
            attributes: [("role".to_string(), role.to_string())]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn observed_digest_ignores_order_and_sees_every_change() {
        let a = Observed::complete(
            ConnectionId::new("app"),
            vec![account("a", "user"), account("b", "user")],
        );
        let b = Observed::complete(
            ConnectionId::new("app"),
            vec![account("b", "user"), account("a", "user")],
        );
        assert_eq!(
            observed_digest(std::slice::from_ref(&a)),
            observed_digest(&[b])
        );
        let mut changed = a.clone();
        changed.accounts[1]
            .attributes
            .insert("role".into(), "admin".into());
        assert_ne!(
            observed_digest(std::slice::from_ref(&a)),
            observed_digest(&[changed])
        );
        let mut inactive = a.clone();
        inactive.accounts[0].active = false;
        assert_ne!(
            observed_digest(std::slice::from_ref(&a)),
            observed_digest(&[inactive])
        );
        let mut incomplete = a.clone();
        incomplete.complete = false;
        assert_ne!(
            observed_digest(std::slice::from_ref(&a)),
            observed_digest(&[incomplete])
        );
        // Field boundaries are unambiguous: moving text between key and
        // value changes the digest.
        let mut x = a.clone();
        x.accounts[0].attributes = [("ro".to_string(), "leuser".to_string())]
            .into_iter()
            .collect();
        assert_ne!(
            observed_digest(std::slice::from_ref(&a)),
            observed_digest(&[x])
        );
    }
}
