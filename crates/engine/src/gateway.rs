//! The SCIM gateway in the identity graph.
//!
//! An IdP admin points the IdP's provisioning for an app (say Spendesk,
//! which has no SCIM) at roster's `/scim/v2/{connection}/`. What the IdP
//! pushes there is *intent*: this person should (or, with `active=false`,
//! should no longer) have that app. This module folds the gateway's users
//! into the people the planner sees:
//!
//! * a person the gateway knows for connection `C` gets the attribute
//!   `gateway.C` = `active` or `inactive`, and the pushed groups' names join
//!   their `groups` — so policy rules select on them, e.g.
//!   `when = { "gateway.spendesk" = ["active"] }` or `when = { group = ["Finance"] }`;
//! * a pushed user no person matches becomes a person (the IdP is then the
//!   source of truth for them): employee ID from `employeeNumber`, else
//!   `externalId`, else the SCIM id; status from `active`. They carry
//!   `source = "gateway.C"`: a push for `C` is intent for `C` alone, so in
//!   any other connection only a rule whose `when` names `source` or a
//!   `gateway.*` key grants them anything (see `roster_core::reconcile`),
//!   and plans say "pushed by the IdP for C" where others say "from HR".
//!
//! Matching is by employee number, then by address (userName and emails),
//! case-insensitively.

use std::collections::{BTreeMap, HashMap};

use roster_core::reconcile::SOURCE_ATTRIBUTE;
use roster_core::{Email, EmployeeId, EmploymentStatus, Person};
use roster_store::{ScimIndex, ScimKind, ScimResource};
use serde_json::Value;

use crate::engine::{Engine, EngineError};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Users read per store query while folding a connection.
const SCAN: usize = 2_000;

/// What the gateway says about one pushed user.
struct Pushed {
    employee_number: Option<String>,
    addresses: Vec<String>,
    first_name: String,
    last_name: String,
    active: bool,
    id: String,
    external_id: Option<String>,
    groups: Vec<String>,
}

fn pushed(r: &ScimResource, groups: Vec<String>) -> Pushed {
    let d = &r.data;
    let mut addresses: Vec<String> = Vec::new();
    if let Some(u) = &r.user_name {
        addresses.push(u.to_lowercase());
    }
    if let Some(list) = d.get("emails").and_then(Value::as_array) {
        for e in list {
            if let Some(v) = e.get("value").and_then(Value::as_str) {
                addresses.push(v.to_lowercase());
            }
        }
    }
    addresses.retain(|a| Email::parse(a).is_ok());
    addresses.dedup();
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    Pushed {
        employee_number: d
            .get(ENTERPRISE)
            .and_then(|e| e.get("employeeNumber"))
            .and_then(Value::as_str)
            .map(str::to_string),
        addresses,
        first_name: s(d.get("name").and_then(|n| n.get("givenName"))),
        last_name: s(d.get("name").and_then(|n| n.get("familyName"))),
        active: r.active.unwrap_or(true),
        id: r.id.clone(),
        external_id: r.external_id.clone(),
        groups,
    }
}

impl Engine {
    /// The connections whose gateway holds users, among those the policy
    /// governs or names in a rule's `gateway.*` selector.
    async fn gateway_connections(&self) -> Result<Vec<String>, EngineError> {
        let mut out = Vec::new();
        for c in self.policy.governed_connections() {
            if self.store.scim_count(c.as_str(), ScimKind::User).await? > 0 {
                out.push(c.to_string());
            }
        }
        Ok(out)
    }

    /// Folds every gateway's users into `people` (see the module docs).
    pub async fn fold_gateway(&self, people: &mut Vec<Person>) -> Result<(), EngineError> {
        for conn in self.gateway_connections().await? {
            let mut after = 0;
            loop {
                let page = self
                    .store
                    .scim_scan(&conn, ScimKind::User, after, SCAN)
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                let ids: Vec<String> = page.iter().map(|r| r.id.clone()).collect();
                let groups = self.store.scim_groups_of(&conn, &ids).await?;
                let users: Vec<Pushed> = page
                    .iter()
                    .map(|r| {
                        let g = groups
                            .get(&r.id)
                            .map(|gs| gs.iter().filter_map(|g| g.display_name.clone()).collect())
                            .unwrap_or_default();
                        pushed(r, g)
                    })
                    .collect();
                apply_overlay(&conn, users, people);
            }
        }
        Ok(())
    }

    /// The gateway's word on one person, for a targeted run: looks the
    /// person up by address in every gateway connection.
    pub async fn fold_gateway_for(&self, person: &mut Person) -> Result<(), EngineError> {
        for conn in self.gateway_connections().await? {
            let mut found = self
                .store
                .scim_find(
                    &conn,
                    ScimKind::User,
                    ScimIndex::UserName,
                    person.email.as_str(),
                )
                .await?;
            if found.is_empty() {
                found = self
                    .store
                    .scim_find(
                        &conn,
                        ScimKind::User,
                        ScimIndex::Email,
                        person.email.as_str(),
                    )
                    .await?;
            }
            let ids: Vec<String> = found.iter().map(|r| r.id.clone()).collect();
            let groups = self.store.scim_groups_of(&conn, &ids).await?;
            let users = found
                .iter()
                .map(|r| {
                    let g = groups
                        .get(&r.id)
                        .map(|gs| gs.iter().filter_map(|g| g.display_name.clone()).collect())
                        .unwrap_or_default();
                    pushed(r, g)
                })
                .collect();
            let mut one = vec![person.clone()];
            apply_overlay(&conn, users, &mut one);
            if let Some(p) = one.into_iter().next() {
                *person = p;
            }
        }
        Ok(())
    }
}

impl Engine {
    /// A person known only to the gateway (no HR record), by address.
    pub async fn gateway_person(&self, email: &Email) -> Result<Option<Person>, EngineError> {
        let mut none: Vec<Person> = Vec::new();
        for conn in self.gateway_connections().await? {
            let found = self
                .store
                .scim_find(&conn, ScimKind::User, ScimIndex::UserName, email.as_str())
                .await?;
            let users = found.iter().map(|r| pushed(r, Vec::new())).collect();
            apply_overlay(&conn, users, &mut none);
            if let Some(p) = none.pop() {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }
}

/// Marks matched people and adds unmatched pushed users as people.
fn apply_overlay(conn: &str, users: Vec<Pushed>, people: &mut Vec<Person>) {
    let key = format!("gateway.{conn}");
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut by_addr: HashMap<String, usize> = HashMap::new();
    for (i, p) in people.iter().enumerate() {
        by_id.insert(p.employee_id.to_string(), i);
        by_addr.insert(p.email.normalized(), i);
        for a in &p.aliases {
            by_addr.insert(a.normalized(), i);
        }
    }
    let mut added: BTreeMap<String, Person> = BTreeMap::new();
    for u in users {
        let matched = u
            .employee_number
            .as_ref()
            .and_then(|n| by_id.get(n))
            .or_else(|| u.addresses.iter().find_map(|a| by_addr.get(a)))
            .copied();
        let state = if u.active { "active" } else { "inactive" };
        match matched {
            Some(i) => {
                let p = &mut people[i];
                p.attributes.insert(key.clone(), state.to_string());
                for g in u.groups {
                    if !p.groups.iter().any(|x| x.eq_ignore_ascii_case(&g)) {
                        p.groups.push(g);
                    }
                }
            }
            None => {
                let Some(email) = u.addresses.first().and_then(|a| Email::parse(a).ok()) else {
                    continue;
                };
                let id = u
                    .employee_number
                    .clone()
                    .or(u.external_id.clone())
                    .unwrap_or_else(|| format!("scim:{conn}:{}", u.id));
                let mut p = Person {
                    employee_id: EmployeeId::new(id),
                    email,
                    aliases: Vec::new(),
                    first_name: u.first_name,
                    last_name: u.last_name,
                    department: String::new(),
                    cost_center: String::new(),
                    manager_email: None,
                    status: if u.active {
                        EmploymentStatus::Active
                    } else {
                        EmploymentStatus::Terminated
                    },
                    start_date: None,
                    end_date: None,
                    groups: u.groups,
                    attributes: Default::default(),
                };
                p.attributes.insert(key.clone(), state.to_string());
                // Pushed for `conn` only: reconcile keeps them in that lane.
                p.attributes
                    .insert(SOURCE_ATTRIBUTE.to_string(), key.clone());
                added.insert(p.email.normalized(), p);
            }
        }
    }
    people.extend(added.into_values());
}
