//! The safety guards under harmful edits, with default settings.
//!
//! A company whose apps are in line with a sound policy, a few ordinary
//! leavers, and then one random harmful edit: a misspelled `when` key, a
//! renamed or deleted rule, a rule widened to grant admin to everyone, the
//! HR file emptied or cut in half, a rule naming a connection that does not
//! exist. Whatever the edit, the plan (reconcile + guards, defaults only)
//! must never take access from a still-employed person past the default
//! removal limit, nor grant a privileged role or more new accounts than the
//! default grant limit, without an approval — while every ordinary leaver
//! is closed at once whenever the source itself was not damaged.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use roster_core::guard::{self, GuardContext, SourceCounts};
use roster_core::{
    Account, AccountKey, Cause, ConnectionId, Email, EmployeeId, EmploymentStatus, Observed,
    Operation, Person, Policy, reconcile_guarded,
};
use time::macros::datetime;

#[derive(Clone, Copy, Debug)]
enum Edit {
    /// Nothing harmful: the control.
    None,
    /// `status` misspelled `staus` in the expensify rule.
    MisspelledKey,
    /// The expensify rule renamed.
    RenamedRule,
    /// The spendesk rule deleted.
    DeletedRule,
    /// The spendesk rule loses its `when` and grants `role = "admin"`.
    WidenedToAdmin,
    /// The expensify rule names `expensfy`.
    RenamedConnection,
    /// The HR file is empty.
    EmptiedSource,
    /// The HR file lost every other row.
    HalvedSource,
}

fn edits() -> impl Strategy<Value = Edit> {
    prop_oneof![
        Just(Edit::None),
        Just(Edit::MisspelledKey),
        Just(Edit::RenamedRule),
        Just(Edit::DeletedRule),
        Just(Edit::WidenedToAdmin),
        Just(Edit::RenamedConnection),
        Just(Edit::EmptiedSource),
        Just(Edit::HalvedSource),
    ]
}

fn policy_text(edit: Edit) -> String {
    let status_key = match edit {
        Edit::MisspelledKey => "staus",
        _ => "status",
    };
    let expensify_name = match edit {
        Edit::RenamedRule => "all-staff-expensify",
        _ => "everyone-expensify",
    };
    let expensify_conn = match edit {
        Edit::RenamedConnection => "expensfy",
        _ => "expensify",
    };
    let mut text = format!(
        r#"
[connections.expensify]
orphans = "deactivate"

[connections.spendesk]

[[rules]]
name = "{expensify_name}"
connection = "{expensify_conn}"
when = {{ {status_key} = ["active", "leave"] }}
set = {{ role = "user" }}
"#
    );
    match edit {
        Edit::DeletedRule => {}
        Edit::WidenedToAdmin => text.push_str(
            r#"
[[rules]]
name = "finance-spendesk"
connection = "spendesk"
set = { role = "admin" }
"#,
        ),
        _ => text.push_str(
            r#"
[[rules]]
name = "finance-spendesk"
connection = "spendesk"
when = { department = ["Finance"] }
set = { role = "user" }
"#,
        ),
    }
    text
}

fn person(i: usize, finance: bool, status: EmploymentStatus) -> Person {
    Person {
        employee_id: EmployeeId::new(format!("E{i}")),
        email: Email::parse(&format!("p{i}@acme.example")).unwrap(),
        aliases: vec![],
        first_name: format!("P{i}"),
        last_name: "Test".into(),
        department: if finance { "Finance" } else { "Sales" }.into(),
        cost_center: "CC-1".into(),
        manager_email: None,
        status,
        start_date: None,
        end_date: None,
        groups: vec![],
        attributes: BTreeMap::new(),
    }
}

fn account(conn: &str, p: &Person) -> Account {
    Account {
        connection: ConnectionId::new(conn),
        key: AccountKey::new(p.email.as_str()),
        email: Some(p.email.clone()),
        employee_id: Some(p.employee_id.clone()),
        active: true,
        attributes: [("role".to_string(), "user".to_string())].into(),
    }
}

/// The default removal allowance (see `roster_core::guard`).
fn removal_allowance(active: usize) -> usize {
    let okta = active * 20 / 100;
    let share = active * 5 / 100;
    guard::DEFAULT_MAX_REMOVALS.min(okta).max(share)
}

fn grant_allowance(active: usize) -> usize {
    guard::DEFAULT_MAX_GRANTS.max(active * 10 / 100)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn harmful_edits_never_pass_the_default_guards(
        n in 8usize..80,
        finance_mask in proptest::collection::vec(any::<bool>(), 80),
        leaver_picks in proptest::collection::vec(0usize..80, 0..4),
        edit in edits(),
    ) {
        // The truth: n people, a few of whom just left (at most what the
        // source-change guard lets through as routine).
        let routine = guard::SOURCE_CHANGE_MIN_PEOPLE.max(n * 5 / 100);
        let leavers: BTreeSet<usize> =
            leaver_picks.iter().map(|i| i % n).take(routine).collect();
        let before: Vec<Person> =
            (0..n).map(|i| person(i, finance_mask[i], EmploymentStatus::Active)).collect();
        let truth: Vec<Person> = (0..n)
            .map(|i| {
                let status = if leavers.contains(&i) {
                    EmploymentStatus::Terminated
                } else {
                    EmploymentStatus::Active
                };
                person(i, finance_mask[i], status)
            })
            .collect();
        // The apps are in line with the sound policy as it was before.
        let expensify: Vec<Account> = before.iter().map(|p| account("expensify", p)).collect();
        let spendesk: Vec<Account> = before
            .iter()
            .filter(|p| p.department == "Finance")
            .map(|p| account("spendesk", p))
            .collect();
        let active: BTreeMap<&str, usize> =
            [("expensify", expensify.len()), ("spendesk", spendesk.len())].into();
        let observed = vec![
            Observed::complete(ConnectionId::new("expensify"), expensify),
            Observed::complete(ConnectionId::new("spendesk"), spendesk),
        ];

        // What the source says after the edit.
        let source: Vec<Person> = match edit {
            Edit::EmptiedSource => Vec::new(),
            Edit::HalvedSource => truth.iter().step_by(2).cloned().collect(),
            _ => truth.clone(),
        };
        let policy = Policy::parse("policy.toml", &policy_text(edit)).expect("policy parses as-is");
        let context = GuardContext {
            first_plan: BTreeSet::new(),
            active_counts: None,
            source_change: guard::source_change(
                Some(SourceCounts::of(&before)),
                SourceCounts::of(&source),
                &policy.approvals,
            ),
            focus: None,
            calendar: Default::default(),
            hard_delete: BTreeSet::new(),
            financial: BTreeSet::new(),
        };
        let plan = reconcile_guarded(
            &source,
            &observed,
            &policy,
            &[],
            &context,
            datetime!(2026-11-25 0:00 UTC),
        );

        let still_employed: BTreeSet<String> = truth
            .iter()
            .filter(|p| p.status != EmploymentStatus::Terminated)
            .map(|p| p.email.normalized())
            .collect();
        let mut unapproved_removals: BTreeMap<&str, usize> = BTreeMap::new();
        let mut unapproved_grants: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, a) in plan.actions.iter().enumerate() {
            let approved = plan.approvals.contains_key(&i);
            let conn = a.connection.as_str();
            if a.operation.is_deprovision()
                && still_employed.contains(&a.email.normalized())
                && !approved
            {
                *unapproved_removals.entry(conn).or_default() += 1;
            }
            if matches!(a.operation, Operation::Create | Operation::Reactivate) && !approved {
                *unapproved_grants.entry(conn).or_default() += 1;
            }
            let grants_admin = a.attributes.get("role").is_some_and(|r| r == "admin")
                && a.operation != Operation::Deactivate;
            prop_assert!(!grants_admin || approved, "admin granted without approval: {a:?}");
        }
        for (conn, n) in &unapproved_removals {
            let allowed = removal_allowance(active[conn]);
            prop_assert!(
                *n <= allowed,
                "{edit:?}: {n} still-employed people lose {conn} unapproved (allowed {allowed})\n{}",
                roster_core::plan::render(&plan)
            );
        }
        for (conn, n) in &unapproved_grants {
            let allowed = grant_allowance(active[conn]);
            prop_assert!(*n <= allowed, "{edit:?}: {n} new {conn} accounts unapproved");
        }

        match edit {
            Edit::EmptiedSource | Edit::HalvedSource => {
                // A damaged source is an incomplete read: nothing goes.
                prop_assert!(context.source_change.is_some());
                prop_assert!(plan.actions.iter().all(|a| !a.operation.is_deprovision()));
            }
            _ => {
                // Every ordinary leaver is closed at once, everywhere.
                prop_assert!(context.source_change.is_none());
                for i in &leavers {
                    let p = &truth[*i];
                    let mut apps = vec!["expensify"];
                    if p.department == "Finance" {
                        apps.push("spendesk");
                    }
                    for app in apps {
                        let found = plan.actions.iter().enumerate().find(|(_, a)| {
                            a.connection.as_str() == app
                                && a.operation == Operation::Deactivate
                                && a.email == p.email
                        });
                        let Some((idx, a)) = found else {
                            return Err(TestCaseError::fail(format!(
                                "{edit:?}: leaver {} keeps {app}\n{}",
                                p.email,
                                roster_core::plan::render(&plan)
                            )));
                        };
                        prop_assert_eq!(a.cause, Cause::Left);
                        prop_assert!(
                            !plan.approvals.contains_key(&idx),
                            "{:?}: leaver {} held in {}: {:?}",
                            edit,
                            p.email,
                            app,
                            plan.approvals.get(&idx)
                        );
                    }
                }
            }
        }
        if matches!(edit, Edit::None | Edit::RenamedRule) {
            prop_assert!(plan.approvals.is_empty(), "{:?}", plan.approvals);
        }
    }
}
