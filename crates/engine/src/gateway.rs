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
//!
//! The fold reads the gateway's **typed intent** (`roster_store::GatewayIntent`,
//! table `gateway_intent`), which the SCIM server writes in the same
//! transaction as each pushed user; it never parses the pushed JSON. A
//! user the IdP deleted (status `deleted`) says nothing, as before: the
//! person's other sources decide. Users pushed before schema 12 have no
//! row yet: each fold first backfills them ([`Engine::backfill_gateway`]),
//! the whole connection for a full plan, the users looked up for a
//! targeted one.

use std::collections::{BTreeMap, HashMap};

use roster_core::reconcile::SOURCE_ATTRIBUTE;
use roster_core::{Email, EmployeeId, EmploymentStatus, Person};
use roster_store::{GatewayIntent, GatewayStatus, ScimIndex, ScimKind};

use crate::engine::{Engine, EngineError};
use crate::inbound::user_intent;

/// Rows read per store query while folding or backfilling a connection.
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

/// The fold's view of one intent row; `None` for a user the IdP deleted,
/// which says nothing about anyone (as when its resource was simply gone).
fn pushed(i: GatewayIntent) -> Option<Pushed> {
    let active = match i.status {
        GatewayStatus::Active => true,
        GatewayStatus::Inactive => false,
        GatewayStatus::Deleted => return None,
    };
    let mut addresses: Vec<String> = Vec::new();
    if let Some(u) = &i.user_name {
        addresses.push(u.to_lowercase());
    }
    addresses.extend(i.emails.iter().map(|e| e.to_lowercase()));
    addresses.retain(|a| Email::parse(a).is_ok());
    addresses.dedup();
    Some(Pushed {
        employee_number: i.employee_number,
        addresses,
        first_name: i.given_name.unwrap_or_default(),
        last_name: i.family_name.unwrap_or_default(),
        active,
        id: i.user_id,
        external_id: i.external_id,
        groups: i.groups,
    })
}

impl Engine {
    /// The connections whose gateway holds users, among those the policy
    /// governs or names in a rule's `gateway.*` selector.
    async fn gateway_connections(&self) -> Result<Vec<String>, EngineError> {
        let governed: Vec<String> = self
            .policy
            .governed_connections()
            .iter()
            .map(|c| c.to_string())
            .collect();
        Ok(self
            .store
            .scim_connections_with(&governed, ScimKind::User)
            .await?)
    }

    /// Carries users over that have a SCIM resource but no intent row
    /// (pushed before schema 12, or written through the store without
    /// one): their intent is computed from the stored body once, by the
    /// same [`user_intent`] the SCIM server uses, and stored. `among`
    /// limits it to those users. Returns how many rows were written.
    ///
    /// This is the only place the engine reads a SCIM body. A row is
    /// written only while its resource is unchanged, so a concurrent push
    /// (which writes its own intent) always wins.
    pub async fn backfill_gateway(
        &self,
        connection: &str,
        among: Option<&[String]>,
    ) -> Result<usize, EngineError> {
        let mut total = 0;
        loop {
            let lacking = self
                .store
                .scim_users_lacking_intent(connection, among, SCAN)
                .await?;
            if lacking.is_empty() {
                break;
            }
            let rows: Vec<_> = lacking
                .iter()
                .map(|r| {
                    let intent = user_intent(
                        r.user_name.as_deref(),
                        r.external_id.as_deref(),
                        r.active,
                        &r.data,
                    );
                    (r.id.clone(), r.version, intent)
                })
                .collect();
            let at = self.now().unix_timestamp() * 1000;
            let written = self
                .store
                .gateway_intent_backfill(connection, &rows, at)
                .await?;
            total += written;
            // Nothing written: every one raced with a push, which wrote
            // its own row (or will be read again next time).
            if written == 0 || lacking.len() < SCAN {
                break;
            }
        }
        if total > 0 {
            tracing::info!(connection, users = total, "gateway intent backfilled");
        }
        Ok(total)
    }

    /// Folds every gateway's users into `people` (see the module docs).
    pub async fn fold_gateway(&self, people: &mut Vec<Person>) -> Result<(), EngineError> {
        for conn in self.gateway_connections().await? {
            self.backfill_gateway(&conn, None).await?;
            let mut after = 0;
            loop {
                let page = self.store.gateway_intent_scan(&conn, after, SCAN).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                let done = page.len() < SCAN;
                apply_overlay(&conn, page.into_iter().filter_map(pushed).collect(), people);
                if done {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The intent rows of the users of `conn` with `ids`, backfilled first.
    async fn intents_of(
        &self,
        conn: &str,
        ids: &[String],
    ) -> Result<Vec<GatewayIntent>, EngineError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.backfill_gateway(conn, Some(ids)).await?;
        Ok(self.store.gateway_intents(conn, ids).await?)
    }

    /// The gateway's word on one person, for a targeted run: looks the
    /// person up by address (userName, else emails) in every gateway
    /// connection.
    pub async fn fold_gateway_for(&self, person: &mut Person) -> Result<(), EngineError> {
        for conn in self.gateway_connections().await? {
            let email = person.email.as_str();
            let mut ids = self
                .store
                .scim_user_ids(&conn, ScimIndex::UserName, email)
                .await?;
            if ids.is_empty() {
                ids = self
                    .store
                    .scim_user_ids(&conn, ScimIndex::Email, email)
                    .await?;
            }
            let users = self
                .intents_of(&conn, &ids)
                .await?
                .into_iter()
                .filter_map(pushed)
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
            let ids = self
                .store
                .scim_user_ids(&conn, ScimIndex::UserName, email.as_str())
                .await?;
            let users = self
                .intents_of(&conn, &ids)
                .await?
                .into_iter()
                .filter_map(pushed)
                .collect();
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
