//! Every kind of event roster writes to the audit log, in one enum.
//!
//! The log stores the kind as text (`plan.created`), which is what exports,
//! filters and verifiers see; writers name it through this enum, so a
//! misspelt kind is a compile error and the list of kinds is this file.
//! Names are stable: a kind once written is never renamed.

use std::fmt;

macro_rules! audit_kinds {
    ($( $(#[$doc:meta])* $variant:ident => $text:literal, )*) => {
        /// One kind of audit event.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum AuditKind {
            $( $(#[$doc])* $variant, )*
        }

        impl AuditKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [AuditKind] = &[$(AuditKind::$variant,)*];

            /// The text the log stores.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( AuditKind::$variant => $text, )*
                }
            }

            /// The kind a stored text names, if it is one roster writes.
            pub fn parse(s: &str) -> Option<AuditKind> {
                match s {
                    $( $text => Some(AuditKind::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

audit_kinds! {
    /// The people snapshot was replaced from a source.
    SourceImported => "source.imported",
    /// The source shrank or terminated many: deactivations withheld.
    SourceChangeHeld => "source.change_held",
    /// A person confirmed the source as it is.
    SourceAccepted => "source.accepted",
    /// A connection was read.
    ConnectionRead => "connection.read",
    ConnectionReadFailed => "connection.read_failed",
    ConnectionQuarantined => "connection.quarantined",
    /// The kill switch was pulled / lifted.
    ConnectionPaused => "connection.paused",
    ConnectionResumed => "connection.resumed",
    /// A plan was computed and stored.
    PlanCreated => "plan.created",
    PlanApproved => "plan.approved",
    PlanRejected => "plan.rejected",
    PlanAwaitingApproval => "plan.awaiting_approval",
    PlanApplyStarted => "plan.apply_started",
    PlanApplyFinished => "plan.apply_finished",
    /// An authenticated principal offboarded one person.
    PersonOffboarded => "person.offboarded",
    /// An offboarding ended (or failed to end) the person's sessions in
    /// one identity provider; the payload names the source and outcome.
    SessionsRevoked => "sessions.revoked",
    /// One action's outcome, written by the executor.
    ActionApplied => "action.applied",
    ActionSkipped => "action.skipped",
    ActionFailed => "action.failed",
    /// A task's lease ran out (its worker is gone).
    TaskLeaseExpired => "task.lease_expired",
    /// Human tasks.
    TaskOpened => "task.opened",
    TaskVerified => "task.verified",
    TaskReopened => "task.reopened",
    TaskCancelled => "task.cancelled",
    TaskDone => "task.done",
    TaskEscalated => "task.escalated",
    TaskReminded => "task.reminded",
    /// A task was mirrored as a ticket in the ITSM tool, or its ticket
    /// was resolved or reopened by roster.
    TicketOpened => "ticket.opened",
    TicketResolved => "ticket.resolved",
    TicketReopened => "ticket.reopened",
    /// An import file for an app was written.
    ExportWritten => "export.written",
    /// A queued match was resolved by a person.
    MatchResolved => "match.resolved",
    /// SCIM gateway tokens.
    ScimTokenCreated => "scim.token.created",
    ScimTokenRevoked => "scim.token.revoked",
    /// REST API and AI-agent tokens.
    ApiTokenCreated => "api.token.created",
    ApiTokenRevoked => "api.token.revoked",
    /// Web UI users (local accounts) and sign-ins.
    WebUserAdded => "web.user.added",
    WebUserRemoved => "web.user.removed",
    WebUserRoleSet => "web.user.role_set",
    WebSignIn => "web.sign_in",
    WebSignInRefused => "web.sign_in_refused",
    WebSignOut => "web.sign_out",
    /// A leaver's own roster access ended (UI sessions, API tokens).
    WebAccessEnded => "web.access_ended",
    /// A notification could not be delivered after its retries.
    NotifyFailed => "notify.failed",
    /// A leaver's access is still open past `[notify] leaver_sla_hours`.
    LeaverAccessOverdue => "leaver.access_overdue",
    /// A plan's actions have waited for approval past
    /// `[notify] approval_sla_hours`: the fallback group is asked.
    PlanApprovalEscalated => "plan.approval_escalated",
    /// Stored vendor secrets.
    SecretSet => "secret.set",
    SecretRemoved => "secret.removed",
    /// Every stored secret re-sealed under a new master key; the old
    /// key ids retired (`roster secret rotate`).
    SecretRotated => "secret.rotated",
    /// A connection's live tenant was probed read-only (`roster apps
    /// probe`); the payload holds the dated observations.
    AppProbed => "app.probed",
    /// A browser runbook's screenshot: its SHA-256 (the image is kept
    /// apart, under a retention period, redacted before storage).
    BrowserScreenshot => "browser.screenshot",
    /// Event payloads were erased (see [`crate::audit::ERASED_KIND`]).
    AuditErased => "audit.erased",
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_dotted_name_that_parses_back() {
        let mut seen = std::collections::BTreeSet::new();
        for k in AuditKind::ALL {
            let s = k.as_str();
            assert!(s.contains('.') && s == s.to_lowercase(), "{s}");
            assert!(seen.insert(s), "{s} twice");
            assert_eq!(AuditKind::parse(s), Some(*k));
        }
        assert_eq!(AuditKind::AuditErased.as_str(), crate::audit::ERASED_KIND);
    }
}
