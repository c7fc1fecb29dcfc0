//! The loop around a [`Source`]: follow page tokens to the end, pace every
//! request through the source's [`RateBudget`], retry what may succeed
//! later, and say honestly how complete a read is.
//!
//! The engine will own this loop, as it owns the connectors' through
//! `roster_connectors::driver`; until then this is the minimal one.
//! **Retries happen in one place, [`call`]**: bounded attempts, exponential
//! backoff from [`ReadOptions::initial_backoff`], at least the IdP's
//! `Retry-After` (which also holds every caller sharing the budget). It is
//! meant to be replaced by the connectors' shared retry policy.
//!
//! * [`read_all`]: a full read. A failure before any person was read is an
//!   error; a later one (or a repeated page token, or too many pages)
//!   returns what was read with `complete = false` and the reason. Nothing
//!   may be terminated on the strength of an incomplete read: a person
//!   missing from it may simply not have been reached.
//! * [`read_changes`]: an incremental read, all or nothing. Any failure is
//!   an error and the stored cursor stays where it was, so the next read
//!   covers the same changes again. [`SourceError::CursorExpired`] comes
//!   through unchanged: do a full read.
//! * [`read_people`]: named people read whole (an event hook said they
//!   changed), all or nothing; a person the IdP no longer knows is a
//!   removal.
//! * Pacing: every call, retries included, waits for a turn in the budget
//!   (the source's declared windows). On top, when the IdP reports its own
//!   window ([`SourceRateInfo`]), the loop stops at the source's share of
//!   it ([`SourceCapabilities::header_share`], Okta's default one half):
//!   once the org as a whole has used that share, everyone waits for the
//!   window's reset, so roster slows down before a 429 and leaves the rest
//!   of the limit to the IdP's other clients.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::time::Duration;

use roster_connectors::driver::{Progress, wait_turn};
use roster_core::ConnectionId;

use crate::{
    ChangesRequest, ManagerRef, Membership, PageRequest, PageToken, PersonRequest, RateBudget,
    Removal, Source, SourceCapabilities, SourceError, SourcePerson, SourceRateInfo, SyncCursor,
};

/// How hard the loop tries.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this ends the retries.
    pub max_retry_after: Duration,
    /// A read that needs more pages than this is cut short.
    pub max_pages: u32,
    /// Page size hint passed to the source.
    pub page_size: Option<u32>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            max_pages: 100_000,
            page_size: None,
        }
    }
}

/// Everything one full read returned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceRead {
    pub source: ConnectionId,
    /// By id; groups folded in, manager ids resolved to addresses where
    /// the manager was read too.
    pub people: Vec<SourcePerson>,
    /// False when the read may have missed people.
    pub complete: bool,
    pub incomplete_reason: Option<String>,
    /// Where the next incremental read starts (only from a complete read).
    pub cursor: Option<SyncCursor>,
    pub pages: u32,
}

/// Everything one incremental read returned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceChanges {
    /// People who changed, re-read whole, by id.
    pub changed: Vec<SourcePerson>,
    pub removed: Vec<Removal>,
    /// Store this; the next incremental read starts here.
    pub cursor: SyncCursor,
    pub pages: u32,
}

/// The delay before attempt `attempt + 1` (attempts count from 1).
fn backoff(opts: &ReadOptions, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    opts.initial_backoff
        .saturating_mul(factor)
        .min(opts.max_backoff)
}

/// Applies the IdP's window report: at the source's share of the window,
/// everyone waits for its reset.
async fn note_rate(
    budget: &dyn RateBudget,
    caps: &SourceCapabilities,
    info: Option<SourceRateInfo>,
) {
    let Some(info) = info else { return };
    let (Some(remaining), Some(reset)) = (info.remaining, info.reset_after) else {
        return;
    };
    let share = caps.header_share.clamp(0.01, 1.0);
    let floor = match info.limit {
        // Keep (1 - share) of the window for the IdP's other clients.
        Some(limit) => (f64::from(limit) * (1.0 - share)).floor() as u32,
        None => 0,
    };
    // The request just answered is counted in `remaining`: exactly the
    // share used is allowed, past it everyone waits.
    if remaining < floor {
        tracing::debug!(
            remaining,
            floor,
            ?reset,
            "identity provider's window at roster's share; waiting for its reset"
        );
        budget.hold_for(reset).await;
    }
}

/// One source call through the budget, with retries. The one place the
/// loop retries (see the module docs).
async fn call<T, F, Fut>(
    budget: &dyn RateBudget,
    opts: &ReadOptions,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
    mut f: F,
) -> Result<T, SourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SourceError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        wait_turn(budget, progress).await;
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if !e.is_retryable() || attempt >= opts.max_attempts.max(1) => return Err(e),
            Err(e) => {
                let mut delay = backoff(opts, attempt);
                if let Some(after) = e.retry_after() {
                    if after > opts.max_retry_after {
                        return Err(e);
                    }
                    // Everyone sharing the budget waits, not only this caller.
                    budget.hold_for(after).await;
                    delay = delay.max(after);
                }
                tracing::debug!(attempt, ?delay, error = %e, "retrying source call");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Reads every person of the source.
pub async fn read_all(
    source: &dyn Source,
    budget: &dyn RateBudget,
    opts: &ReadOptions,
) -> Result<SourceRead, SourceError> {
    read_all_with_progress(source, budget, opts, &mut |_| {}).await
}

/// [`read_all`] with a progress callback (long waits are reported as
/// [`Progress::Waiting`]).
pub async fn read_all_with_progress(
    source: &dyn Source,
    budget: &dyn RateBudget,
    opts: &ReadOptions,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Result<SourceRead, SourceError> {
    let caps = source.capabilities();
    let mut people: BTreeMap<String, SourcePerson> = BTreeMap::new();
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut seen: HashSet<PageToken> = HashSet::new();
    let mut token: Option<PageToken> = None;
    let mut cursor: Option<SyncCursor> = None;
    let mut incomplete: Vec<String> = Vec::new();
    let mut pages: u32 = 0;
    loop {
        if pages >= opts.max_pages {
            incomplete.push(format!(
                "stopped after {pages} pages (max_pages); more remained"
            ));
            break;
        }
        let req = PageRequest {
            page_token: token.clone(),
            page_size: opts.page_size,
        };
        let page = match call(budget, opts, progress, || source.read_page(req.clone())).await {
            Ok(p) => p,
            Err(e) if people.is_empty() => return Err(e),
            Err(e) => {
                incomplete.push(format!("page {} failed: {e}", pages + 1));
                break;
            }
        };
        pages += 1;
        note_rate(budget, &caps, page.rate_limit).await;
        progress(&Progress::PageRead {
            page: pages,
            accounts: page.people.len(),
        });
        // A person listed twice (Okta: deactivated between its two
        // listings) keeps the later listing, which is the newer word.
        for p in page.people {
            people.insert(p.id.clone(), p);
        }
        fold(&mut groups, page.memberships);
        if page.cursor.is_some() {
            cursor = page.cursor;
        }
        match page.next {
            None => break,
            Some(next) => {
                if !seen.insert(next.clone()) {
                    incomplete.push(
                        "the identity provider returned the same page token twice; stopped to avoid a loop"
                            .into(),
                    );
                    break;
                }
                token = Some(next);
            }
        }
    }
    let mut people: Vec<SourcePerson> = people.into_values().collect();
    apply_groups(&mut people, &groups, false);
    resolve_managers(&mut people);
    let complete = incomplete.is_empty();
    Ok(SourceRead {
        source: source.id().clone(),
        people,
        complete,
        incomplete_reason: (!complete).then(|| incomplete.join("; ")),
        cursor: if complete { cursor } else { None },
        pages,
    })
}

/// Reads what changed since `cursor`.
pub async fn read_changes(
    source: &dyn Source,
    budget: &dyn RateBudget,
    cursor: &SyncCursor,
    opts: &ReadOptions,
) -> Result<SourceChanges, SourceError> {
    let caps = source.capabilities();
    if !caps.incremental {
        return Err(SourceError::Unsupported {
            what: "incremental reads".into(),
        });
    }
    let progress: &mut (dyn FnMut(&Progress<'_>) + Send) = &mut |_| {};
    let mut changed: BTreeMap<String, SourcePerson> = BTreeMap::new();
    let mut removed: BTreeMap<String, Removal> = BTreeMap::new();
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut seen: HashSet<PageToken> = HashSet::new();
    let mut token: Option<PageToken> = None;
    let mut pages: u32 = 0;
    let next_cursor = loop {
        if pages >= opts.max_pages {
            return Err(SourceError::Protocol {
                detail: format!("the incremental read did not end within {pages} pages"),
            });
        }
        let req = ChangesRequest {
            cursor: cursor.clone(),
            page_token: token.clone(),
            page_size: opts.page_size,
        };
        let page = call(budget, opts, progress, || source.read_changes(req.clone())).await?;
        pages += 1;
        note_rate(budget, &caps, page.rate_limit).await;
        // Later pages carry later news: a person changed after being
        // removed (an Entra restore) is changed, and the other way round.
        for p in page.changed {
            removed.remove(&p.id);
            changed.insert(p.id.clone(), p);
        }
        for r in page.removed {
            changed.remove(&r.id);
            groups.remove(&r.id);
            removed.insert(r.id.clone(), r);
        }
        fold(&mut groups, page.memberships);
        match page.next {
            None => match page.cursor {
                Some(c) => break c,
                None => {
                    return Err(SourceError::Protocol {
                        detail: "the incremental read ended without a cursor to continue from"
                            .into(),
                    });
                }
            },
            Some(next) => {
                if !seen.insert(next.clone()) {
                    return Err(SourceError::Protocol {
                        detail: "the identity provider returned the same page token twice".into(),
                    });
                }
                token = Some(next);
            }
        }
    };
    let mut changed: Vec<SourcePerson> = changed.into_values().collect();
    apply_groups(&mut changed, &groups, true);
    resolve_managers(&mut changed);
    Ok(SourceChanges {
        changed,
        removed: removed.into_values().collect(),
        cursor: next_cursor,
        pages,
    })
}

/// Reads the people named by `ids` whole, one after another, through the
/// budget ([`Source::read_person`]): who an event hook said changed. All or
/// nothing, like [`read_changes`]; the answer has no cursor to store
/// (`cursor` is the empty cursor and must not be kept).
pub async fn read_people(
    source: &dyn Source,
    budget: &dyn RateBudget,
    ids: &[String],
    opts: &ReadOptions,
) -> Result<SourceChanges, SourceError> {
    let caps = source.capabilities();
    let progress: &mut (dyn FnMut(&Progress<'_>) + Send) = &mut |_| {};
    let mut changed: BTreeMap<String, SourcePerson> = BTreeMap::new();
    let mut removed: BTreeMap<String, Removal> = BTreeMap::new();
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pages: u32 = 0;
    let unique: BTreeSet<&String> = ids.iter().collect();
    for id in unique {
        let mut token: Option<PageToken> = None;
        let mut seen: HashSet<PageToken> = HashSet::new();
        loop {
            if pages >= opts.max_pages {
                return Err(SourceError::Protocol {
                    detail: format!("reading the named people did not end within {pages} pages"),
                });
            }
            let req = PersonRequest::new(id.clone()).with_page_token(token.clone());
            let page = call(budget, opts, progress, || source.read_person(req.clone())).await?;
            pages += 1;
            note_rate(budget, &caps, page.rate_limit).await;
            for p in page.changed {
                removed.remove(&p.id);
                changed.insert(p.id.clone(), p);
            }
            for r in page.removed {
                changed.remove(&r.id);
                groups.remove(&r.id);
                removed.insert(r.id.clone(), r);
            }
            fold(&mut groups, page.memberships);
            match page.next {
                None => break,
                Some(next) => {
                    if !seen.insert(next.clone()) {
                        return Err(SourceError::Protocol {
                            detail: "the identity provider returned the same page token twice"
                                .into(),
                        });
                    }
                    token = Some(next);
                }
            }
        }
    }
    let mut changed: Vec<SourcePerson> = changed.into_values().collect();
    apply_groups(&mut changed, &groups, true);
    resolve_managers(&mut changed);
    Ok(SourceChanges {
        changed,
        removed: removed.into_values().collect(),
        cursor: SyncCursor::new(""),
        pages,
    })
}

fn fold(groups: &mut BTreeMap<String, BTreeSet<String>>, memberships: Vec<Membership>) {
    for m in memberships {
        groups.entry(m.person_id).or_default().insert(m.group);
    }
}

/// Adds listed memberships to each person's groups. `replace`: the
/// memberships are the person's complete list (incremental reads re-read
/// a changed person's groups whole) once any were listed for them.
fn apply_groups(
    people: &mut [SourcePerson],
    groups: &BTreeMap<String, BTreeSet<String>>,
    replace: bool,
) {
    for p in people.iter_mut() {
        let mut set: BTreeSet<String> = if replace && groups.contains_key(&p.id) {
            BTreeSet::new()
        } else {
            p.groups.drain(..).collect()
        };
        if let Some(g) = groups.get(&p.id) {
            set.extend(g.iter().cloned());
        }
        p.groups = set.into_iter().collect();
    }
}

/// Turns manager ids into addresses where the manager is among `people`.
fn resolve_managers(people: &mut [SourcePerson]) {
    let by_id: BTreeMap<String, roster_core::Email> = people
        .iter()
        .filter_map(|p| p.email.clone().map(|e| (p.id.clone(), e)))
        .collect();
    for p in people.iter_mut() {
        if let Some(ManagerRef::Id(id)) = &p.manager
            && let Some(email) = by_id.get(id)
        {
            p.manager = Some(ManagerRef::Email(email.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let o = ReadOptions {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(700),
            ..ReadOptions::default()
        };
        assert_eq!(backoff(&o, 1), Duration::from_millis(100));
        assert_eq!(backoff(&o, 2), Duration::from_millis(200));
        assert_eq!(backoff(&o, 3), Duration::from_millis(400));
        assert_eq!(backoff(&o, 4), Duration::from_millis(700));
        assert_eq!(backoff(&o, 40), Duration::from_millis(700));
    }

    #[tokio::test(start_paused = true)]
    async fn the_header_share_holds_everyone_at_half_the_window() {
        let caps = SourceCapabilities::new(crate::SourceKind::Okta).with_header_share(0.5);
        let budget = crate::RateLimiter::unlimited();
        let reset = Some(Duration::from_secs(30));
        // 60 of 100 left: the org has used 40%, go on.
        note_rate(
            &budget,
            &caps,
            Some(SourceRateInfo::new(Some(100), Some(60), reset)),
        )
        .await;
        assert_eq!(budget.take_turn(), roster_connectors::Turn::Go);
        // 50 left: exactly half used, still allowed.
        note_rate(
            &budget,
            &caps,
            Some(SourceRateInfo::new(Some(100), Some(50), reset)),
        )
        .await;
        assert_eq!(budget.take_turn(), roster_connectors::Turn::Go);
        // 49 left: past half, wait for the reset.
        note_rate(
            &budget,
            &caps,
            Some(SourceRateInfo::new(Some(100), Some(49), reset)),
        )
        .await;
        assert!(
            matches!(budget.take_turn(), roster_connectors::Turn::Wait(d) if d > Duration::from_secs(29))
        );
    }
}
