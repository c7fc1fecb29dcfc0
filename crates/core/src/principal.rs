//! Who is acting: the authenticated principal on every call into the
//! application layer, and the rules the policy sets on who may decide.
//!
//! A principal is established by the surface that authenticated it (the
//! CLI maps the operating-system user it runs as, never a typed name; the
//! REST API a token; the UI a session; MCP an agent token; the service is
//! itself) and is what the audit log records. This module only names
//! principals and judges them against the policy; it authenticates no one.
//!
//! # Who may approve (`[approvals]` and `[connections.C]` in the policy)
//!
//! * **Separation of duties** (`approvals.separation_of_duties`): `"agents"`
//!   (the default) refuses an approval by the principal that proposed the
//!   plan when that principal is an agent, so an AI agent can never
//!   propose and approve its own removals; `"always"` refuses it for
//!   everyone; `"off"` never.
//! * **App owners** (`connections.C.approvers = ["alice", "group:finance"]`):
//!   only these principals (by name, or by a group they belong to) may
//!   approve or reject that connection's actions. Unset: any operator.
//!
//! Rejecting is judged like approving: keeping a leaver's access is a
//! decision as consequential as removing it.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ConnectionId;
use crate::policy::Policy;

/// How a principal authenticated, which the policy can test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person at a shell: the operating-system user roster runs as,
    /// mapped through the config's `[operators]`.
    User,
    /// A REST API token.
    ApiToken,
    /// A person signed in to the web UI.
    UiSession,
    /// An AI agent (MCP) token.
    Agent,
    /// roster itself: the service's scheduled and event-driven runs.
    Service,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ApiToken => "token",
            PrincipalKind::UiSession => "session",
            PrincipalKind::Agent => "agent",
            PrincipalKind::Service => "service",
        }
    }

    pub fn parse(s: &str) -> Option<PrincipalKind> {
        Some(match s {
            "user" => PrincipalKind::User,
            "token" => PrincipalKind::ApiToken,
            "session" => PrincipalKind::UiSession,
            "agent" => PrincipalKind::Agent,
            "service" => PrincipalKind::Service,
            _ => return None,
        })
    }
}

/// What an API or agent token may do. Every REST route and MCP tool
/// declares the one scope it needs; a token carries a set of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// See people, accounts, apps, plans, tasks, reports, the audit log.
    Read,
    /// Propose plans and offboardings (stored as proposed; nothing runs).
    Propose,
    /// Approve or reject a plan's held actions.
    Approve,
    /// Carry out an approved plan; complete tasks; pause and resume.
    Apply,
    /// Offboard a person now (override, revoke sessions, apply).
    Offboard,
    /// Manage tokens and connections' administrative state.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::Read,
        Scope::Propose,
        Scope::Approve,
        Scope::Apply,
        Scope::Offboard,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Propose => "propose",
            Scope::Approve => "approve",
            Scope::Apply => "apply",
            Scope::Offboard => "offboard",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether an AI agent's token may ever carry this scope: only
    /// reading and proposing. An agent can never approve, apply, offboard
    /// or administer, whatever its token says.
    pub fn agent_may(self) -> bool {
        matches!(self, Scope::Read | Scope::Propose)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person's role in the web UI: which [`Scope`]s a signed-in person
/// has. The one table (README "Web UI" repeats it):
///
/// | role       | scopes                                            |
/// |------------|---------------------------------------------------|
/// | `viewer`   | read                                              |
/// | `operator` | read, propose, offboard                           |
/// | `approver` | read, approve                                     |
/// | `admin`    | read, propose, approve, apply, offboard, admin    |
///
/// Carrying out a plan, completing a task, settling a match and pausing a
/// connection need `apply`, as in the REST API: only `admin` has it.
/// There is no default role: a person with none cannot sign in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Approver,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Approver, Role::Admin];

    /// The scopes the role grants (the table above).
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Role::Viewer => &[Scope::Read],
            Role::Operator => &[Scope::Read, Scope::Propose, Scope::Offboard],
            Role::Approver => &[Scope::Read, Scope::Approve],
            Role::Admin => &Scope::ALL,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// The stable name the policy and the audit log use (`alice`,
    /// `ci-deploy`, `roster`).
    pub name: String,
    /// Groups it belongs to, for `approvers = ["group:..."]`.
    #[serde(default)]
    pub groups: BTreeSet<String>,
}

impl Principal {
    pub fn new(kind: PrincipalKind, name: impl Into<String>) -> Principal {
        Principal {
            kind,
            name: name.into(),
            groups: BTreeSet::new(),
        }
    }

    pub fn with_groups(mut self, groups: impl IntoIterator<Item = String>) -> Principal {
        self.groups.extend(groups);
        self
    }

    /// roster's own runs (the service).
    pub fn service() -> Principal {
        Principal::new(PrincipalKind::Service, "roster")
    }

    /// As the audit log and stored plans name it: `kind:name`
    /// (`user:alice`, `agent:claude`), so a name can never pass for
    /// another kind of principal.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.name)
    }

    /// The kind of an [`Principal::actor`] string; `None` for names
    /// recorded before principals existed.
    pub fn kind_of_actor(actor: &str) -> Option<PrincipalKind> {
        actor
            .split_once(':')
            .and_then(|(k, _)| PrincipalKind::parse(k))
    }

    fn matches(&self, entry: &str) -> bool {
        match entry.strip_prefix("group:") {
            Some(g) => self.groups.contains(g),
            None => entry == self.name || entry == self.actor(),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.actor())
    }
}

/// When the proposer of a plan may not approve it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeparationOfDuties {
    /// Never: whoever proposed a plan may approve it.
    Off,
    /// When an agent proposed the plan (the default).
    #[default]
    Agents,
    /// Always: an approver differs from the proposer.
    Always,
}

/// Why a principal may not decide about an action.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecisionRefused {
    #[error(
        "separation of duties: {proposer} proposed this plan, so someone else must approve it \
         (approvals.separation_of_duties = \"{mode}\")"
    )]
    SameAsProposer {
        proposer: String,
        mode: &'static str,
    },
    #[error(
        "{principal} may not decide for {connection}: its approvers are {approvers} \
         (connections.{connection}.approvers in the policy)"
    )]
    NotAnApprover {
        principal: String,
        connection: ConnectionId,
        approvers: String,
    },
}

/// Whether `principal` may approve (or reject) actions of `connection` in
/// a plan `proposer` (an [`Principal::actor`] string, when known) proposed.
pub fn may_decide(
    policy: &Policy,
    principal: &Principal,
    proposer: Option<&str>,
    connection: &ConnectionId,
    approving: bool,
) -> Result<(), DecisionRefused> {
    if approving && let Some(proposer) = proposer {
        let mode = policy.approvals.separation_of_duties.unwrap_or_default();
        let proposed_by_agent = Principal::kind_of_actor(proposer) == Some(PrincipalKind::Agent);
        let applies = match mode {
            SeparationOfDuties::Off => false,
            SeparationOfDuties::Agents => proposed_by_agent,
            SeparationOfDuties::Always => true,
        };
        if applies && proposer == principal.actor() {
            return Err(DecisionRefused::SameAsProposer {
                proposer: proposer.to_string(),
                mode: match mode {
                    SeparationOfDuties::Off => "off",
                    SeparationOfDuties::Agents => "agents",
                    SeparationOfDuties::Always => "always",
                },
            });
        }
    }
    if let Some(approvers) = &policy.connection(connection).approvers
        && !approvers.iter().any(|a| principal.matches(a))
    {
        return Err(DecisionRefused::NotAnApprover {
            principal: principal.actor(),
            connection: connection.clone(),
            approvers: approvers.join(", "),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(extra: &str) -> Policy {
        Policy::parse(
            "p.toml",
            &format!(
                "{extra}\n[[rules]]\nname = \"all\"\nconnection = \"app\"\nset = {{ role = \"user\" }}\n"
            ),
        )
        .unwrap()
    }

    fn app() -> ConnectionId {
        ConnectionId::new("app")
    }

    #[test]
    fn roles_grant_the_documented_scopes_and_only_admin_applies() {
        use Scope::*;
        assert_eq!(Role::Viewer.scopes(), [Read]);
        assert_eq!(Role::Operator.scopes(), [Read, Propose, Offboard]);
        assert_eq!(Role::Approver.scopes(), [Read, Approve]);
        assert_eq!(Role::Admin.scopes(), Scope::ALL);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert!(r.scopes().contains(&Read));
            assert_eq!(r.scopes().contains(&Apply), r == Role::Admin);
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn an_agent_never_approves_its_own_plan_by_default_but_a_person_may() {
        let p = policy("");
        let agent = Principal::new(PrincipalKind::Agent, "claude");
        let alice = Principal::new(PrincipalKind::User, "alice");
        assert!(matches!(
            may_decide(&p, &agent, Some("agent:claude"), &app(), true),
            Err(DecisionRefused::SameAsProposer { .. })
        ));
        // Rejecting one's own proposal is always allowed.
        assert!(may_decide(&p, &agent, Some("agent:claude"), &app(), false).is_ok());
        assert!(may_decide(&p, &alice, Some("agent:claude"), &app(), true).is_ok());
        assert!(may_decide(&p, &alice, Some("user:alice"), &app(), true).is_ok());
        // A user named like the agent is not the agent.
        let impostor = Principal::new(PrincipalKind::User, "claude");
        assert!(may_decide(&p, &impostor, Some("agent:claude"), &app(), true).is_ok());
    }

    #[test]
    fn always_separates_everyone_and_off_no_one() {
        let alice = Principal::new(PrincipalKind::User, "alice");
        let always = policy("[approvals]\nseparation_of_duties = \"always\"");
        assert!(may_decide(&always, &alice, Some("user:alice"), &app(), true).is_err());
        assert!(may_decide(&always, &alice, Some("user:bob"), &app(), true).is_ok());
        let off = policy("[approvals]\nseparation_of_duties = \"off\"");
        let agent = Principal::new(PrincipalKind::Agent, "claude");
        assert!(may_decide(&off, &agent, Some("agent:claude"), &app(), true).is_ok());
    }

    #[test]
    fn approvers_restrict_a_connection_to_names_and_groups() {
        let p = policy("[connections.app]\napprovers = [\"alice\", \"group:finance\"]");
        let alice = Principal::new(PrincipalKind::User, "alice");
        let bob = Principal::new(PrincipalKind::User, "bob");
        let carol =
            Principal::new(PrincipalKind::UiSession, "carol").with_groups(["finance".to_string()]);
        assert!(may_decide(&p, &alice, None, &app(), true).is_ok());
        assert!(may_decide(&p, &carol, None, &app(), false).is_ok());
        let refused = may_decide(&p, &bob, None, &app(), false).unwrap_err();
        assert!(
            refused.to_string().contains("connections.app.approvers"),
            "{refused}"
        );
        // Other connections are not restricted.
        assert!(may_decide(&p, &bob, None, &ConnectionId::new("other"), true).is_ok());
    }
}
