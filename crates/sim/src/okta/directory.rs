//! The Okta org as a source of people: groups and their members, and the
//! System Log (vendor-apis.md §3).
//!
//! * `GET /api/v1/groups` (`limit` ≤ 200, `after`), Group objects
//!   `{id, type:"OKTA_GROUP", profile:{name, description}}`.
//! * `GET /api/v1/groups/{id}/users` and `GET /api/v1/users/{id}/groups`,
//!   same paging.
//! * `GET /api/v1/logs` (`since`, `until`, `after`, `limit` ≤ 1000, default
//!   100, `sortOrder` ASCENDING by default): LogEvents `{uuid, published,
//!   eventType, actor, target[], outcome}`. A polling query (no `until`)
//!   always carries `rel="next"`, even on an empty page; a bounded one
//!   ends. A `since` before the retained log is refused with 400
//!   `E0000001` naming `since` ([`OktaHandle::expire_log`]; the real
//!   retention is 90 days).
//!
//! Every change made through the handle (a status change, a profile
//! edit, a membership, a lockout storm) writes the event Okta would:
//! `user.lifecycle.*`, `user.account.lock`, `user.account.update_profile`,
//! `group.user_membership.add|remove`. Events in the same millisecond
//! share `published`, as they do in Okta, so clients must dedupe by uuid.

use std::collections::{BTreeMap, BTreeSet};

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{
    ActiveFault, OktaHandle, OktaUser, Org, St, base_of, not_found, ok_json, okta_error,
    page_query, query_string, with_links,
};

/// A group in the org.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OktaGroup {
    pub id: String,
    pub name: String,
    /// Member user ids.
    pub members: BTreeSet<String>,
}

/// One System Log event (the fields roster reads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    pub uuid: String,
    pub published: OffsetDateTime,
    pub event_type: String,
    pub user_id: String,
    pub login: String,
    pub group: Option<String>,
}

impl LogEvent {
    fn to_json(&self) -> Value {
        let mut target = vec![json!({
            "id": self.user_id,
            "type": "User",
            "alternateId": self.login,
            "displayName": self.login,
        })];
        if let Some(g) = &self.group {
            target.push(
                json!({"id": g, "type": "UserGroup", "alternateId": "unknown", "displayName": g}),
            );
        }
        json!({
            "uuid": self.uuid,
            "published": fmt_time(self.published),
            "eventType": self.event_type,
            "version": "0",
            "severity": "INFO",
            "displayMessage": self.event_type,
            "actor": {"id": "00uadmin", "type": "User", "alternateId": "admin@example.com", "displayName": "Admin"},
            "outcome": {"result": "SUCCESS", "reason": null},
            "target": target,
        })
    }
}

/// Okta's timestamp: RFC 3339 in UTC with milliseconds.
pub(crate) fn fmt_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Now, to the millisecond (Okta's resolution).
fn now_ms() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now)
}

pub(crate) fn now_text() -> String {
    fmt_time(now_ms())
}

/// The event Okta logs for a status change.
pub(crate) fn status_event(was: &str, now: &str) -> &'static str {
    match (was, now) {
        (_, "DEPROVISIONED") => "user.lifecycle.deactivate",
        (_, "SUSPENDED") => "user.lifecycle.suspend",
        ("SUSPENDED", _) => "user.lifecycle.unsuspend",
        (_, "LOCKED_OUT") => "user.account.lock",
        ("LOCKED_OUT", _) => "user.account.unlock",
        (_, "PASSWORD_EXPIRED") => "user.account.expire_password",
        ("DEPROVISIONED", _) | ("STAGED", _) => "user.lifecycle.activate",
        _ => "user.lifecycle.update",
    }
}

impl Org {
    pub(super) fn insert_group(&mut self, (name, logins): &(String, Vec<String>)) -> String {
        self.next += 1;
        let id = format!("00g{:017}", self.next);
        let members = logins
            .iter()
            .filter_map(|l| self.user(l).map(|(_, u)| u.id.clone()))
            .collect();
        self.groups.insert(
            self.next,
            OktaGroup {
                id: id.clone(),
                name: name.clone(),
                members,
            },
        );
        id
    }

    pub(super) fn log_event(
        &mut self,
        event_type: &str,
        user_id: &str,
        login: &str,
        group: Option<&str>,
    ) {
        let seq = self.log.len() as u64;
        self.log.push(LogEvent {
            uuid: format!(
                "{:08x}-{:04x}-4000-8000-{:012x}",
                rand::random::<u32>(),
                seq & 0xffff,
                seq
            ),
            published: now_ms(),
            event_type: event_type.to_string(),
            user_id: user_id.to_string(),
            login: login.to_string(),
            group: group.map(str::to_string),
        });
    }

    fn group_by_name_or_id(&mut self, name_or_id: &str) -> Option<&mut OktaGroup> {
        self.groups
            .values_mut()
            .find(|g| g.id == name_or_id || g.name == name_or_id)
    }
}

impl OktaHandle {
    /// Groups, in listing order.
    pub fn groups(&self) -> Vec<OktaGroup> {
        self.0.lock().groups.values().cloned().collect()
    }

    /// Creates a group; returns its id.
    pub fn add_group(&self, name: &str) -> String {
        self.0.lock().insert_group(&(name.to_string(), Vec::new()))
    }

    /// Adds a user to a group (by name or id), logging
    /// `group.user_membership.add`.
    pub fn add_member(&self, group: &str, login: &str) -> bool {
        self.membership(group, login, true)
    }

    /// Removes a user from a group, logging `group.user_membership.remove`.
    pub fn remove_member(&self, group: &str, login: &str) -> bool {
        self.membership(group, login, false)
    }

    fn membership(&self, group: &str, login: &str, add: bool) -> bool {
        let mut org = self.0.lock();
        let Some((_, u)) = org.user(login).map(|(k, u)| (k, u.clone())) else {
            return false;
        };
        let Some(g) = org.group_by_name_or_id(group) else {
            return false;
        };
        let changed = if add {
            g.members.insert(u.id.clone())
        } else {
            g.members.remove(&u.id)
        };
        let gid = g.id.clone();
        if changed {
            let kind = if add {
                "group.user_membership.add"
            } else {
                "group.user_membership.remove"
            };
            org.log_event(kind, &u.id, &u.login, Some(&gid));
        }
        true
    }

    /// Edits a user's profile, logging `user.account.update_profile`.
    pub fn update_user(&self, id_or_login: &str, edit: impl FnOnce(&mut OktaUser)) -> bool {
        let mut org = self.0.lock();
        let Some((k, _)) = org.user(id_or_login) else {
            return false;
        };
        let Some(u) = org.users.get_mut(&k) else {
            return false;
        };
        edit(u);
        u.last_updated = now_text();
        let (id, login) = (u.id.clone(), u.login.clone());
        org.log_event("user.account.update_profile", &id, &login, None);
        true
    }

    /// Deletes a deactivated user for good (Okta refuses to delete any
    /// other), logging `user.lifecycle.delete.completed`.
    pub fn delete_user(&self, id_or_login: &str) -> bool {
        let mut org = self.0.lock();
        let Some((k, u)) = org.user(id_or_login).map(|(k, u)| (k, u.clone())) else {
            return false;
        };
        if u.status != "DEPROVISIONED" {
            return false;
        }
        org.users.remove(&k);
        for g in org.groups.values_mut() {
            g.members.remove(&u.id);
        }
        org.log_event("user.lifecycle.delete.completed", &u.id, &u.login, None);
        true
    }

    /// A password-spraying attack: the first `n` ACTIVE users are locked
    /// out at once, each with its `user.account.lock` event. Returns their
    /// ids.
    pub fn lockout_storm(&self, n: usize) -> Vec<String> {
        let mut org = self.0.lock();
        let keys: Vec<i64> = org
            .users
            .iter()
            .filter(|(_, u)| u.status == "ACTIVE")
            .map(|(k, _)| *k)
            .take(n)
            .collect();
        let mut ids = Vec::new();
        for k in keys {
            let Some(u) = org.users.get_mut(&k) else {
                continue;
            };
            u.status = "LOCKED_OUT".into();
            u.last_updated = now_text();
            let (id, login) = (u.id.clone(), u.login.clone());
            org.log_event("user.account.lock", &id, &login, None);
            ids.push(id);
        }
        ids
    }

    /// Forgets every event so far: a `since` before now is refused, as a
    /// cursor older than Okta's 90-day retention would be.
    pub fn expire_log(&self) {
        let mut org = self.0.lock();
        org.log.clear();
        org.log_retained_from = Some(now_ms());
    }

    /// The System Log so far.
    pub fn log_events(&self) -> Vec<LogEvent> {
        self.0.lock().log.clone()
    }
}

fn group_json(g: &OktaGroup, base: &str) -> Value {
    json!({
        "id": g.id,
        "created": "2026-01-05T09:00:00.000Z",
        "lastUpdated": "2026-01-05T09:00:00.000Z",
        "lastMembershipUpdated": "2026-01-05T09:00:00.000Z",
        "objectClass": ["okta:user_group"],
        "type": "OKTA_GROUP",
        "profile": {"name": g.name, "description": null},
        "_links": {"users": {"href": format!("{base}/api/v1/groups/{}/users", g.id)}},
    })
}

/// A keyset page over `rows` (id, JSON), with Okta's Link headers.
fn keyset_page(
    rows: Vec<(String, Value)>,
    after: Option<&str>,
    limit: usize,
    path: &str,
    q: &BTreeMap<String, String>,
) -> Response {
    let start = match after {
        None => 0,
        Some(a) => match rows.iter().position(|(id, _)| id == a) {
            Some(i) => i + 1,
            None => {
                return okta_error(StatusCode::BAD_REQUEST, "E0000001", "Invalid after cursor");
            }
        },
    };
    let page: Vec<&(String, Value)> = rows.iter().skip(start).take(limit).collect();
    let more = rows.len() > start + page.len();
    let next = match (more, page.last()) {
        (true, Some((id, _))) => Some(format!("{path}?{}", query_string(q, Some(id)))),
        _ => None,
    };
    let body = Value::Array(page.iter().map(|(_, v)| v.clone()).collect());
    with_links(
        ok_json(body),
        format!("{path}?{}", query_string(q, after)),
        next,
    )
}

pub(super) async fn list_groups(
    State(sh): St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let pq = match page_query(&q, fault) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let base = base_of(&headers);
    // `q`: groups whose name starts with it, as Okta's search does.
    let q_name = q.get("q").map(|s| s.to_lowercase());
    let rows: Vec<(String, Value)> = sh
        .lock()
        .groups
        .values()
        .filter(|g| {
            q_name
                .as_ref()
                .is_none_or(|p| g.name.to_lowercase().starts_with(p))
        })
        .map(|g| (g.id.clone(), group_json(g, &base)))
        .collect();
    keyset_page(
        rows,
        pq.after.as_deref(),
        pq.limit,
        &format!("{base}/api/v1/groups"),
        &q,
    )
}

pub(super) async fn group_users(
    State(sh): St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Path(group): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let pq = match page_query(&q, fault) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let base = base_of(&headers);
    let org = sh.lock();
    let Some(g) = org.groups.values().find(|g| g.id == group) else {
        return not_found(&format!("{group} (UserGroup)"));
    };
    // Members in the users' listing order, as Okta lists them.
    let rows: Vec<(String, Value)> = org
        .users
        .values()
        .filter(|u| g.members.contains(&u.id))
        .map(|u| (u.id.clone(), u.to_json(&base)))
        .collect();
    drop(org);
    keyset_page(
        rows,
        pq.after.as_deref(),
        pq.limit,
        &format!("{base}/api/v1/groups/{group}/users"),
        &q,
    )
}

pub(super) async fn user_groups(
    State(sh): St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Path(user): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let pq = match page_query(&q, fault) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let base = base_of(&headers);
    let org = sh.lock();
    let Some((_, u)) = org.user(&user) else {
        return not_found(&format!("{user} (User)"));
    };
    let uid = u.id.clone();
    let rows: Vec<(String, Value)> = org
        .groups
        .values()
        .filter(|g| g.members.contains(&uid))
        .map(|g| (g.id.clone(), group_json(g, &base)))
        .collect();
    drop(org);
    keyset_page(
        rows,
        pq.after.as_deref(),
        pq.limit,
        &format!("{base}/api/v1/users/{user}/groups"),
        &q,
    )
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).ok()
}

pub(super) async fn list_logs(
    State(sh): St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let bad = |what: &str| {
        okta_error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            &format!("Api validation failed: {what}"),
        )
    };
    let limit = match q.get("limit").map(|l| l.trim().parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if (1..=1000).contains(&l) => l,
        Some(_) => return bad("limit"),
    };
    let since = match q.get("since") {
        None => None,
        Some(s) => match parse_time(s) {
            Some(t) => Some(t),
            None => return bad("since: not an ISO 8601 timestamp"),
        },
    };
    let until = match q.get("until") {
        None => None,
        Some(s) => match parse_time(s) {
            Some(t) => Some(t),
            None => return bad("until: not an ISO 8601 timestamp"),
        },
    };
    let descending = q
        .get("sortOrder")
        .is_some_and(|o| o.eq_ignore_ascii_case("DESCENDING"));
    let after = q
        .get("after")
        .filter(|a| !a.is_empty() && !ActiveFault::repeat_page(fault))
        .cloned();
    let base = base_of(&headers);
    let org = sh.lock();
    if let (Some(from), Some(since)) = (org.log_retained_from, since)
        && since < from
    {
        return bad("since: the System Log does not reach back that far (retention)");
    }
    // Default `since` is seven days back; everything the simulator holds
    // is newer.
    let mut rows: Vec<&LogEvent> = org
        .log
        .iter()
        .filter(|e| since.is_none_or(|s| e.published >= s) && until.is_none_or(|u| e.published < u))
        .collect();
    if descending {
        rows.reverse();
    }
    let start = match &after {
        None => 0,
        Some(a) => match rows.iter().position(|e| &e.uuid == a) {
            Some(i) => i + 1,
            None => return bad("after: invalid cursor"),
        },
    };
    let page: Vec<&LogEvent> = rows.iter().skip(start).take(limit).copied().collect();
    let body = Value::Array(page.iter().map(|e| e.to_json()).collect());
    let path = format!("{base}/api/v1/logs");
    // The polling link: with no `until` there is always a next page, even
    // an empty one (it starts after the last event seen, or where this one
    // started).
    let more = rows.len() > start + page.len();
    let next_after = page.last().map(|e| e.uuid.clone()).or(after.clone());
    let next = if until.is_none() || more {
        Some(format!(
            "{path}?{}",
            query_string(&q, next_after.as_deref())
        ))
    } else {
        None
    };
    drop(org);
    with_links(
        ok_json(body),
        format!("{path}?{}", query_string(&q, after.as_deref())),
        next,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_time_has_milliseconds_and_parses_back() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let s = fmt_time(t);
        assert_eq!(s, "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_time(&s).unwrap().millisecond(), 123);
    }
}
