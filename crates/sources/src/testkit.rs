//! The source conformance kit (cargo feature `testkit`), the sources'
//! counterpart of `roster_connectors::testkit`.
//!
//! Every source runs the same checks against its simulator, through
//! [`crate::read`], exactly as the engine would:
//!
//! * [`full_read`]: a clean multi-page read is complete and lists exactly
//!   the people the IdP holds, with their raw states and groups.
//! * [`hostile_paging`]: a read under shifting pages is complete and
//!   misses nobody who was there before it began; a read whose listing
//!   repeats a page is **never** reported complete; a truncated page, a
//!   5xx and a 429 are retried, the 429's `Retry-After` honoured, and the
//!   read ends complete and equal to the IdP.
//! * [`incremental`]: after a change, a leaver, a joiner and a removal,
//!   the incremental read from the full read's cursor returns exactly
//!   them, the leaver and the removal terminating and nobody else; a
//!   second read from the new cursor returns nothing.
//! * [`expired_cursor`]: an expired cursor is
//!   [`SourceError::CursorExpired`], not an empty change set.
//! * [`lockout_storm`]: many people locked out at once are read (full and
//!   incremental) as still employed: zero terminations.
//!
//! # The oracle rule
//!
//! Verdicts come from the simulator's own record ([`SourceOracle`]), never
//! from what the source says about itself. Checks return
//! `Err(description)` rather than panicking.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use roster_connectors::RateLimiter;
use roster_core::EmploymentStatus;
use roster_sim::common::Fault;
use roster_sim::graph::GraphHandle;
use roster_sim::okta::OktaHandle;

use crate::lifecycle::LifecycleFlag;
use crate::read::{self, ReadOptions, SourceRead};
use crate::{Source, SourceError};

/// One person as the IdP itself records them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OraclePerson {
    pub id: String,
    /// Lower-cased primary address.
    pub email: String,
    /// The raw state, spelled as the source reports it.
    pub raw_state: String,
    pub groups: BTreeSet<String>,
}

/// The simulator's side of the kit.
pub trait SourceOracle: Send + Sync {
    /// Every person the IdP holds, whatever their state.
    fn people(&self) -> Vec<OraclePerson>;
    fn rate_limit_violations(&self) -> u64;
    /// Request *k* from now gets `faults[k]`.
    fn schedule(&self, faults: &[Fault]);
    fn clear_faults(&self);
    /// Changes something about an employed person (department); their id.
    fn change_someone(&self) -> Option<String>;
    /// Makes an employed person leave, the way this IdP shows a leaver.
    fn make_leaver(&self) -> Option<String>;
    /// Adds a person; their id.
    fn add_person(&self, email: &str) -> String;
    /// Removes a person from the directory (deletion); their id.
    /// `None` when the IdP's incremental read can't show a deletion
    /// (OneLogin: only a full read can).
    fn remove_someone(&self) -> Option<String>;
    /// Locks `n` people out; `None` when the IdP has no lockout state.
    fn lockout_storm(&self, n: usize) -> Option<Vec<String>>;
    /// Makes every cursor handed out so far unusable; false when the
    /// IdP's cursors never expire (OneLogin's `updated_since`).
    fn expire_cursors(&self) -> bool;
}

/// A source under test.
pub struct Subject {
    pub source: Arc<dyn Source>,
    pub oracle: Arc<dyn SourceOracle>,
    /// Small, so the seeded people span several pages.
    pub page_size: Option<u32>,
    pub opts: ReadOptions,
    /// One budget for the whole kit, as the engine keeps one per source.
    budget: RateLimiter,
}

impl Subject {
    pub fn new(source: Arc<dyn Source>, oracle: Arc<dyn SourceOracle>) -> Self {
        Subject {
            budget: RateLimiter::new(source.capabilities().rate_limits)
                .with_margin(Duration::from_millis(40)),
            source,
            oracle,
            page_size: Some(2),
            opts: ReadOptions {
                max_attempts: 6,
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(500),
                max_retry_after: Duration::from_secs(10),
                ..ReadOptions::default()
            },
        }
    }

    fn opts(&self) -> ReadOptions {
        ReadOptions {
            page_size: self.page_size,
            ..self.opts.clone()
        }
    }

    async fn read(&self) -> Result<SourceRead, SourceError> {
        read::read_all(self.source.as_ref(), &self.budget, &self.opts()).await
    }
}

/// The read as the oracle spells people.
fn as_oracle(read: &SourceRead) -> Vec<OraclePerson> {
    let mut v: Vec<OraclePerson> = read
        .people
        .iter()
        .map(|p| OraclePerson {
            id: p.id.clone(),
            email: p.email.as_ref().map(|e| e.normalized()).unwrap_or_default(),
            raw_state: p.raw_state.clone(),
            groups: p.groups.iter().cloned().collect(),
        })
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<OraclePerson>) -> Vec<OraclePerson> {
    v.sort();
    v
}

fn same(read: &SourceRead, oracle: &dyn SourceOracle, what: &str) -> Result<(), String> {
    let got = as_oracle(read);
    let want = sorted(oracle.people());
    if got != want {
        let g: BTreeSet<_> = got.iter().collect();
        let w: BTreeSet<_> = want.iter().collect();
        return Err(format!(
            "{what}: the read differs from the IdP.\n  only in the read: {:?}\n  only in the IdP: {:?}",
            g.difference(&w).collect::<Vec<_>>(),
            w.difference(&g).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

fn violations(s: &Subject, what: &str) -> Result<(), String> {
    match s.oracle.rate_limit_violations() {
        0 => Ok(()),
        n => Err(format!(
            "{what}: {n} requests went over the IdP's rate limit"
        )),
    }
}

/// A clean full read equals the IdP, and hands out a cursor.
pub async fn full_read(s: &Subject) -> Result<Vec<String>, String> {
    let read = s
        .read()
        .await
        .map_err(|e| format!("full read failed: {e}"))?;
    if !read.complete {
        return Err(format!(
            "a clean read is incomplete: {:?}",
            read.incomplete_reason
        ));
    }
    if read.pages < 3 {
        return Err(format!(
            "the seed spans only {} pages; the check needs several",
            read.pages
        ));
    }
    same(&read, s.oracle.as_ref(), "clean read")?;
    if read.cursor.is_none() && s.source.capabilities().incremental {
        return Err("a complete full read handed out no cursor".into());
    }
    violations(s, "clean read")?;
    Ok(vec![format!(
        "full read: {} people in {} pages, equal to the IdP",
        read.people.len(),
        read.pages
    )])
}

/// Shifting pages, a repeated page, and retried faults.
pub async fn hostile_paging(s: &Subject) -> Result<Vec<String>, String> {
    let mut report = Vec::new();
    // Another admin adds people while the read runs: each sorts first.
    let before: BTreeSet<String> = s.oracle.people().into_iter().map(|p| p.id).collect();
    s.oracle.schedule(&[
        Fault::None,
        Fault::ShiftListing,
        Fault::None,
        Fault::ShiftListing,
    ]);
    let read = s
        .read()
        .await
        .map_err(|e| format!("read under shifting pages failed: {e}"));
    s.oracle.clear_faults();
    let read = read?;
    let got: BTreeSet<String> = read.people.iter().map(|p| p.id.clone()).collect();
    let missed: Vec<&String> = before.difference(&got).collect();
    if !missed.is_empty() {
        return Err(format!(
            "a read under shifting pages missed people who were there before it began: {missed:?} (complete = {})",
            read.complete
        ));
    }
    if !read.complete {
        return Err(format!(
            "keyset paging should survive shifting pages, but the read is incomplete: {:?}",
            read.incomplete_reason
        ));
    }
    report.push(format!(
        "shifting pages: complete, nobody missed ({} people)",
        got.len()
    ));

    // The IdP ignores the position and answers the first page again.
    s.oracle
        .schedule(&[Fault::None, Fault::None, Fault::RepeatPage]);
    let read = s.read().await;
    s.oracle.clear_faults();
    match read {
        Ok(r) if r.complete => {
            return Err("a read whose listing repeated a page was reported complete".into());
        }
        Ok(r) => report.push(format!(
            "repeated page: incomplete ({})",
            r.incomplete_reason.unwrap_or_default()
        )),
        Err(e) => report.push(format!("repeated page: failed ({e})")),
    }

    // Transient faults are retried; Retry-After is honoured.
    let started = tokio::time::Instant::now();
    s.oracle.schedule(&[
        Fault::None,
        Fault::TruncatedBody,
        Fault::ServerError,
        Fault::RateLimitStorm {
            retry_after_secs: Some(1),
        },
        Fault::DropConnection,
    ]);
    let read = s
        .read()
        .await
        .map_err(|e| format!("read under retried faults failed: {e}"));
    s.oracle.clear_faults();
    let read = read?;
    if !read.complete {
        return Err(format!(
            "a read whose faults were all retried is incomplete: {:?}",
            read.incomplete_reason
        ));
    }
    same(&read, s.oracle.as_ref(), "read under retried faults")?;
    let took = started.elapsed();
    if took < Duration::from_secs(1) {
        return Err(format!(
            "a 429 with Retry-After: 1 was not honoured (the read took {took:?})"
        ));
    }
    violations(s, "hostile paging")?;
    report.push(format!(
        "truncated page, 5xx, 429 (Retry-After 1 s), dropped connection: retried, complete and equal ({took:.1?})"
    ));
    Ok(report)
}

/// Changes since a full read, then nothing since the incremental read.
pub async fn incremental(s: &Subject) -> Result<Vec<String>, String> {
    if !s.source.capabilities().incremental {
        return Ok(vec![
            "incremental: skipped (the source reads in full only)".into(),
        ]);
    }
    let base = s
        .read()
        .await
        .map_err(|e| format!("full read failed: {e}"))?;
    let cursor = base
        .cursor
        .clone()
        .ok_or("the full read handed out no cursor")?;
    let changed = s
        .oracle
        .change_someone()
        .ok_or("the oracle changed nobody")?;
    // `None`: the IdP's leavers are deletions (OneLogin), checked as such.
    let leaver = s.oracle.make_leaver();
    let joiner = s.oracle.add_person("kit-joiner@example.com");
    let removed = s.oracle.remove_someone();
    let changes = read::read_changes(s.source.as_ref(), &s.budget, &cursor, &s.opts())
        .await
        .map_err(|e| format!("incremental read failed: {e}"))?;
    let ids: BTreeSet<&str> = changes.changed.iter().map(|p| p.id.as_str()).collect();
    for (what, id) in [
        ("changed", Some(&changed)),
        ("leaver", leaver.as_ref()),
        ("joiner", Some(&joiner)),
    ]
    .into_iter()
    .filter_map(|(w, id)| Some((w, id?)))
    {
        if !ids.contains(id.as_str()) {
            return Err(format!(
                "the incremental read missed the {what} {id}: {ids:?}"
            ));
        }
    }
    let truth: BTreeMap<String, OraclePerson> = s
        .oracle
        .people()
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    for p in &changes.changed {
        let Some(t) = truth.get(&p.id) else {
            return Err(format!(
                "the incremental read returned {} whom the IdP does not hold",
                p.id
            ));
        };
        if p.raw_state != t.raw_state
            || p.groups.iter().cloned().collect::<BTreeSet<_>>() != t.groups
        {
            return Err(format!(
                "{} read incrementally as {:?} {:?}, but the IdP holds {:?} {:?}",
                p.id, p.raw_state, p.groups, t.raw_state, t.groups
            ));
        }
        let should_terminate = leaver.as_ref() == Some(&p.id);
        if p.lifecycle.terminates() != should_terminate {
            return Err(format!(
                "{} ({}) maps to {} in the incremental read",
                p.id, p.raw_state, p.lifecycle.status
            ));
        }
    }
    if let Some(r) = &removed {
        match changes.removed.iter().find(|x| &x.id == r) {
            Some(x) if x.lifecycle.terminates() => {}
            Some(x) => return Err(format!("removal of {r} maps to {}", x.lifecycle.status)),
            None => return Err(format!("the incremental read missed the removal of {r}")),
        }
    }
    let again = read::read_changes(s.source.as_ref(), &s.budget, &changes.cursor, &s.opts())
        .await
        .map_err(|e| format!("second incremental read failed: {e}"))?;
    // Nothing changed since: the read is empty, or (a source whose cursor
    // overlaps the previous read, like OneLogin's `updated_since`) it
    // repeats exactly what the first one said.
    let news: Vec<&String> = again
        .changed
        .iter()
        .filter(|p| !changes.changed.contains(p))
        .map(|p| &p.id)
        .collect();
    if !news.is_empty() || !again.removed.is_empty() {
        return Err(format!(
            "nothing changed, yet the second incremental read returned {news:?} and removals {:?}",
            again.removed
        ));
    }
    violations(s, "incremental")?;
    Ok(vec![format!(
        "incremental: {} changed, {} removed, each matching the IdP; the next read has no news",
        changes.changed.len(),
        changes.removed.len()
    )])
}

/// An expired cursor is a distinct error.
pub async fn expired_cursor(s: &Subject) -> Result<Vec<String>, String> {
    if !s.source.capabilities().incremental {
        return Ok(vec![
            "expired cursor: skipped (the source reads in full only)".into(),
        ]);
    }
    let base = s
        .read()
        .await
        .map_err(|e| format!("full read failed: {e}"))?;
    let cursor = base.cursor.ok_or("the full read handed out no cursor")?;
    if !s.oracle.expire_cursors() {
        return Ok(vec![
            "expired cursor: skipped (the IdP's cursors never expire)".into(),
        ]);
    }
    match read::read_changes(s.source.as_ref(), &s.budget, &cursor, &s.opts()).await {
        Err(e) if e.needs_full_read() => Ok(vec![format!("expired cursor: {}", e.code())]),
        Err(e) => Err(format!("an expired cursor gave {e}, not SRC-0008")),
        Ok(c) => Err(format!(
            "an expired cursor read as {} changes instead of failing",
            c.changed.len()
        )),
    }
}

/// Many people locked out at once: zero terminations.
pub async fn lockout_storm(s: &Subject) -> Result<Vec<String>, String> {
    let base = s
        .read()
        .await
        .map_err(|e| format!("full read failed: {e}"))?;
    let Some(locked) = s.oracle.lockout_storm(usize::MAX) else {
        return Ok(vec![
            "lockout storm: skipped (the IdP has no lockout state)".into(),
        ]);
    };
    if locked.len() < 3 {
        return Err(format!("the storm locked out only {} people", locked.len()));
    }
    if s.source.capabilities().incremental {
        let cursor = base
            .cursor
            .clone()
            .ok_or("the full read handed out no cursor")?;
        let changes = read::read_changes(s.source.as_ref(), &s.budget, &cursor, &s.opts())
            .await
            .map_err(|e| format!("incremental read after the storm failed: {e}"))?;
        let ids: BTreeSet<&str> = changes.changed.iter().map(|p| p.id.as_str()).collect();
        let missed: Vec<&String> = locked
            .iter()
            .filter(|l| !ids.contains(l.as_str()))
            .collect();
        if !missed.is_empty() {
            return Err(format!(
                "the incremental read missed locked-out people: {missed:?}"
            ));
        }
        // A cursor may reach back past earlier changes (sources start it
        // early rather than miss one), so earlier leavers may be read
        // again; nobody who was not already a leaver may terminate.
        let leavers: BTreeSet<&str> = base
            .people
            .iter()
            .filter(|p| p.lifecycle.terminates())
            .map(|p| p.id.as_str())
            .collect();
        let terminated: Vec<&str> = changes
            .changed
            .iter()
            .filter(|p| p.lifecycle.terminates() && !leavers.contains(p.id.as_str()))
            .map(|p| p.id.as_str())
            .collect();
        if !terminated.is_empty() {
            return Err(format!("a lockout storm terminated {terminated:?}"));
        }
        if let Some(p) = changes
            .changed
            .iter()
            .find(|p| locked.contains(&p.id) && p.lifecycle.flag != Some(LifecycleFlag::LockedOut))
        {
            return Err(format!(
                "{} is locked out but flagged {:?}",
                p.id, p.lifecycle.flag
            ));
        }
    }
    let full = s
        .read()
        .await
        .map_err(|e| format!("full read after the storm failed: {e}"))?;
    let read_locked: Vec<_> = full
        .people
        .iter()
        .filter(|p| locked.contains(&p.id))
        .collect();
    if read_locked.len() != locked.len() {
        return Err(format!(
            "the full read after the storm lists {} of the {} locked-out people",
            read_locked.len(),
            locked.len()
        ));
    }
    let terminated = read_locked
        .iter()
        .filter(|p| p.status() == EmploymentStatus::Terminated)
        .count();
    if terminated > 0 {
        return Err(format!(
            "the full read after the storm terminates {terminated} locked-out people"
        ));
    }
    Ok(vec![format!(
        "lockout storm: {} locked out, all still employed",
        locked.len()
    )])
}

/// Every check, in an order where each leaves the IdP in a state the next
/// can judge.
pub async fn run_all(s: &Subject) -> Result<Vec<String>, String> {
    let mut report = Vec::new();
    report.extend(full_read(s).await?);
    report.extend(hostile_paging(s).await?);
    report.extend(incremental(s).await?);
    report.extend(lockout_storm(s).await?);
    report.extend(expired_cursor(s).await?);
    Ok(report)
}

/// The Okta simulator as an oracle.
pub struct OktaSourceOracle(pub OktaHandle);

impl SourceOracle for OktaSourceOracle {
    fn people(&self) -> Vec<OraclePerson> {
        let groups = self.0.groups();
        self.0
            .users()
            .into_iter()
            .map(|u| OraclePerson {
                groups: groups
                    .iter()
                    .filter(|g| g.members.contains(&u.id))
                    .map(|g| g.name.clone())
                    .collect(),
                email: u.email.to_lowercase(),
                raw_state: u.status,
                id: u.id,
            })
            .collect()
    }
    fn rate_limit_violations(&self) -> u64 {
        self.0.counters().rate_limit_violations
    }
    fn schedule(&self, faults: &[Fault]) {
        self.0.schedule_faults(faults.iter().copied());
    }
    fn clear_faults(&self) {
        self.0.clear_faults();
    }
    fn change_someone(&self) -> Option<String> {
        let u = self.0.users().into_iter().find(|u| u.status == "ACTIVE")?;
        self.0
            .update_user(&u.id, |u| u.department = Some("Changed".into()));
        // A membership change too: the group list must follow.
        if let Some(g) = self.0.groups().first() {
            self.0.add_member(&g.name, &u.login);
        }
        Some(u.id)
    }
    fn make_leaver(&self) -> Option<String> {
        let u = self
            .0
            .users()
            .into_iter()
            .rev()
            .find(|u| u.status == "ACTIVE")?;
        self.0.set_user_status(&u.id, "DEPROVISIONED");
        Some(u.id)
    }
    fn add_person(&self, email: &str) -> String {
        self.0
            .add_user(roster_sim::okta::OktaUser::new(email, "Kit", "Joiner"))
            .id
    }
    fn remove_someone(&self) -> Option<String> {
        // Okta deletes only deactivated users. From the end, so it is not
        // the person `change_someone` changed.
        let u = self
            .0
            .users()
            .into_iter()
            .rev()
            .find(|u| u.status == "ACTIVE" && !u.login.starts_with("kit-"))?;
        self.0.set_user_status(&u.id, "DEPROVISIONED");
        self.0.delete_user(&u.id).then_some(u.id)
    }
    fn lockout_storm(&self, n: usize) -> Option<Vec<String>> {
        Some(self.0.lockout_storm(n))
    }
    fn expire_cursors(&self) -> bool {
        self.0.expire_log();
        true
    }
}

/// The Graph simulator as an oracle.
pub struct GraphOracle(pub GraphHandle);

impl SourceOracle for GraphOracle {
    fn people(&self) -> Vec<OraclePerson> {
        let groups = self.0.groups();
        self.0
            .users()
            .into_iter()
            .map(|u| OraclePerson {
                groups: groups
                    .iter()
                    .filter(|g| g.members.contains(&u.id))
                    .map(|g| g.display_name.clone())
                    .collect(),
                email: u
                    .mail
                    .clone()
                    .unwrap_or_else(|| u.user_principal_name.clone())
                    .to_lowercase(),
                raw_state: crate::lifecycle::entra_enabled(u.account_enabled).to_string(),
                id: u.id,
            })
            .collect()
    }
    fn rate_limit_violations(&self) -> u64 {
        self.0.counters().rate_limit_violations
    }
    fn schedule(&self, faults: &[Fault]) {
        self.0.schedule_faults(faults.iter().copied());
    }
    fn clear_faults(&self) {
        self.0.clear_faults();
    }
    fn change_someone(&self) -> Option<String> {
        let u = self.0.users().into_iter().find(|u| u.account_enabled)?;
        self.0
            .update_user(&u.id, |u| u.department = Some("Changed".into()));
        if let Some(g) = self.0.groups().first() {
            self.0.add_member(&g.display_name, &u.id);
        }
        Some(u.id)
    }
    fn make_leaver(&self) -> Option<String> {
        let u = self
            .0
            .users()
            .into_iter()
            .rev()
            .find(|u| u.account_enabled)?;
        self.0.set_enabled(&u.id, false);
        Some(u.id)
    }
    fn add_person(&self, email: &str) -> String {
        self.0
            .add_user(roster_sim::graph::GraphUser::new(email, "Kit", "Joiner"))
            .id
    }
    fn remove_someone(&self) -> Option<String> {
        let u = self
            .0
            .users()
            .into_iter()
            .rev()
            .find(|u| u.account_enabled && !u.user_principal_name.starts_with("kit-"))?;
        self.0.delete_user(&u.id, true).then_some(u.id)
    }
    fn lockout_storm(&self, _n: usize) -> Option<Vec<String>> {
        // Entra's smart lockout throttles sign-ins; it never changes a
        // user's state, so there is nothing for a source to read.
        None
    }
    fn expire_cursors(&self) -> bool {
        self.0.expire_delta_tokens();
        true
    }
}

/// The OneLogin simulator as an oracle.
pub struct OneLoginOracle(pub roster_sim::onelogin::OneLoginHandle);

impl SourceOracle for OneLoginOracle {
    fn people(&self) -> Vec<OraclePerson> {
        let roles = self.0.roles();
        self.0
            .users()
            .into_iter()
            .map(|u| OraclePerson {
                id: u.id.to_string(),
                email: u.email.to_lowercase(),
                raw_state: u.status.to_string(),
                groups: u
                    .role_ids
                    .iter()
                    .filter_map(|r| roles.get(r).cloned())
                    .collect(),
            })
            .collect()
    }
    fn rate_limit_violations(&self) -> u64 {
        self.0.counters().rate_limit_violations
    }
    fn schedule(&self, faults: &[Fault]) {
        self.0.schedule_faults(faults.iter().copied());
    }
    fn clear_faults(&self) {
        self.0.clear_faults();
    }
    fn change_someone(&self) -> Option<String> {
        let roles = self.0.roles();
        let u = self.0.users().into_iter().find(|u| u.status == 1)?;
        self.0.update_user(&u.email, |u| {
            u.department = Some("Changed".into());
            if let Some(r) = roles.keys().next()
                && !u.role_ids.contains(r)
            {
                u.role_ids.push(*r);
            }
        });
        Some(u.id.to_string())
    }
    fn make_leaver(&self) -> Option<String> {
        // OneLogin has no "left" status: a leaver is deleted, which only a
        // full read shows.
        None
    }
    fn add_person(&self, email: &str) -> String {
        self.0
            .add_user(roster_sim::onelogin::OneLoginUser::new(
                email, "Kit", "Joiner",
            ))
            .id
            .to_string()
    }
    fn remove_someone(&self) -> Option<String> {
        None
    }
    fn lockout_storm(&self, n: usize) -> Option<Vec<String>> {
        Some(
            self.0
                .lockout_storm(n)
                .into_iter()
                .map(|id| id.to_string())
                .collect(),
        )
    }
    fn expire_cursors(&self) -> bool {
        false
    }
}

/// The Google Workspace simulator as an oracle.
pub struct GoogleOracle(pub roster_sim::google::GoogleHandle);

impl SourceOracle for GoogleOracle {
    fn people(&self) -> Vec<OraclePerson> {
        let groups = self.0.groups();
        self.0
            .users()
            .into_iter()
            .map(|u| OraclePerson {
                groups: groups
                    .iter()
                    .filter(|g| g.members.contains(&u.id))
                    .map(|g| g.email.clone())
                    .collect(),
                email: u.primary_email.to_lowercase(),
                raw_state: crate::lifecycle::google_state(u.suspended, u.archived).to_string(),
                id: u.id,
            })
            .collect()
    }
    fn rate_limit_violations(&self) -> u64 {
        self.0.counters().rate_limit_violations
    }
    fn schedule(&self, faults: &[Fault]) {
        self.0.schedule_faults(faults.iter().copied());
    }
    fn clear_faults(&self) {
        self.0.clear_faults();
    }
    fn change_someone(&self) -> Option<String> {
        let u = self.0.users().into_iter().find(|u| !u.suspended)?;
        self.0
            .update_user(&u.id, |u| u.department = Some("Changed".into()));
        Some(u.id)
    }
    fn make_leaver(&self) -> Option<String> {
        let u = self.0.users().into_iter().rev().find(|u| !u.archived)?;
        self.0.update_user(&u.id, |u| u.archived = true);
        Some(u.id)
    }
    fn add_person(&self, email: &str) -> String {
        self.0
            .add_user(roster_sim::google::GoogleUser::new(email, "Kit", "Joiner"))
            .id
    }
    fn remove_someone(&self) -> Option<String> {
        None
    }
    fn lockout_storm(&self, _n: usize) -> Option<Vec<String>> {
        // Google has no lockout state a directory read could show.
        None
    }
    fn expire_cursors(&self) -> bool {
        false
    }
}
