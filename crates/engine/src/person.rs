//! One person's access, everywhere, in one answer: [`Roster::person_access`]
//! (`roster person show PERSON`; issue #13 serves the same type at
//! `GET /api/v1/people/{id}`).
//!
//! It gathers, from what the store holds (no app is read, nothing is
//! written): the person as the source of truth lists them and as roster
//! plans them (gateway pushes folded in, an offboarding applied, their
//! start and end dates judged in the company's time zone), their IdP
//! identity, every account the store holds under their identifiers with
//! the path roster takes in that app (the catalog's `select_path`) and
//! the policy rule that grants it (or why none does), the human tasks
//! still open about them, the actions of stored plans not yet carried out,
//! what a plan for them would do now, and their recent audit events.
//!
//! [`PersonAccess`] is plain data (serde both ways), so every surface
//! renders the same answer.

use roster_core::calendar::Standing;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use roster_core::{Account, Action, ConnectionId, EmploymentStatus, Operation, Person};
use roster_store::{ActionState, AuditRecord, HumanTask, HumanTaskState, PlanId};
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError, ms};
use crate::plan_cache::{IndexedPlan, address_key, id_key};
use crate::planning::{PersonRef, PlanScope};

/// How far back [`PersonAccess::audit`] looks, and how many events it keeps.
pub const AUDIT_DAYS: i64 = 90;
pub const AUDIT_EVENTS: usize = 20;
/// How many recent plans are searched for the person's pending actions.
pub const RECENT_PLANS: usize = 10;

/// Everything roster knows about one person's access (module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersonAccess {
    /// The person as the source of truth lists them (the people snapshot's
    /// row: HR file, IdPs merged); `None` for someone only an IdP pushed to
    /// the SCIM gateway.
    pub source: Option<Person>,
    /// The person as plans see them: gateway pushes folded in, an
    /// offboarding applied, status as their dates make it now.
    pub planned: Person,
    /// An offboarding (`roster offboard`) overrides the source's status.
    pub offboarded: bool,
    /// What their start and end dates mean now, in the company's zone.
    pub dates: DateStanding,
    /// The IdP identity, when sources are configured.
    pub idp: Option<IdpIdentity>,
    /// Every account the store holds under their employee ID or addresses.
    pub accounts: Vec<AccountAccess>,
    /// Connections a rule grants them where they have no account yet.
    pub entitled_without_account: Vec<Grant>,
    /// Human tasks about them not yet verified or cancelled.
    pub open_tasks: Vec<HumanTask>,
    /// Actions of recent stored plans about them not yet carried out.
    pub pending_actions: Vec<PendingAction>,
    /// What a plan for them would do now, from the last read (`None`
    /// when it could not be computed, and `next_plan_error` says why, or
    /// when the caller did not ask for it: both `None`).
    pub next_plan: Option<Vec<Action>>,
    pub next_plan_error: Option<String>,
    /// Their recent audit events, oldest first.
    pub audit: Vec<AuditRecord>,
}

/// [`roster_core::Standing`] as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateStanding {
    /// `current`, `not_yet_started`, `leaving` or `ended`.
    pub kind: String,
    pub time_zone: String,
    /// The start or end date it is about.
    pub date: Option<String>,
    /// When access begins (`not_yet_started`) or closes (`leaving`,
    /// `ended`), ms since the Unix epoch.
    pub at_ms: Option<i64>,
    /// In words, e.g. `ends 2026-12-31 (Europe/Paris): access closes at
    /// the end of that day`.
    pub detail: String,
}

/// The person's identity in their identity provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpIdentity {
    pub source: Option<String>,
    pub id: Option<String>,
    pub state: Option<String>,
}

/// One account and what roster does with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountAccess {
    pub account: Account,
    /// The catalog app the connection is.
    pub app: Option<String>,
    /// Whether the policy speaks about this connection at all.
    pub governed: bool,
    /// The rules that grant the connection to the person (empty: none).
    pub rules: Vec<String>,
    /// In words: which rule grants it, or why none does.
    pub grant: String,
    /// The path roster takes in this app for the next thing it would do to
    /// this account (deactivate an active one, reactivate an inactive one).
    pub path: Option<PathUse>,
}

/// A path the catalog picks for one operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathUse {
    pub operation: Operation,
    pub path: String,
    /// The connector implementation that drives it; `None`: roster cannot
    /// drive this path itself, so the change becomes a person's task.
    pub connector: Option<String>,
    pub reason: String,
}

/// A connection a rule grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub connection: ConnectionId,
    pub rules: Vec<String>,
}

/// An action of a stored plan not yet carried out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAction {
    pub plan_id: String,
    pub index: usize,
    pub state: ActionState,
    /// Why it waits for approval, when it does.
    pub awaiting_approval: Option<String>,
    pub action: Action,
}

/// What access a person still has: every account the store holds under
/// their identifiers, and the human tasks still open about them.
#[derive(Debug, Clone)]
pub struct RemainingAccess {
    pub accounts: Vec<roster_core::Account>,
    /// Tasks not yet verified or cancelled (open, reopened, or reported
    /// done and waiting for the next read to verify).
    pub open_tasks: Vec<HumanTask>,
}

impl Engine {
    /// See `Roster::remaining_access`.
    pub(crate) async fn remaining_access(
        &self,
        person: &Person,
    ) -> Result<RemainingAccess, EngineError> {
        let addresses = self.addresses(person);
        let mut accounts = self
            .store
            .accounts_for_person(&person.employee_id, &addresses)
            .await?;
        accounts.sort_by(|a, b| {
            (a.connection.as_str(), a.key.as_str()).cmp(&(b.connection.as_str(), b.key.as_str()))
        });
        let open_tasks = self
            .store
            .human_tasks_about(
                person.employee_id.as_str(),
                &addresses,
                &[
                    HumanTaskState::Open,
                    HumanTaskState::Reopened,
                    HumanTaskState::Done,
                ],
            )
            .await?;
        Ok(RemainingAccess {
            accounts,
            open_tasks,
        })
    }

    /// The actions of the [`RECENT_PLANS`] most recent stored plans about
    /// `person` (by employee ID or any of `addresses`) that are not carried
    /// out yet, newest plan first, each action once (by its key).
    pub(crate) async fn pending_actions_about(
        &self,
        person: &Person,
        addresses: &[String],
    ) -> Result<Vec<PendingAction>, EngineError> {
        let mut keys: BTreeSet<String> = addresses.iter().map(|a| address_key(a)).collect();
        keys.insert(id_key(person.employee_id.as_str()));
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        // The recent plans that have actions about the person, each decoded
        // once per process; then their states and approvals in one
        // statement each, however many plans there are (a statement per
        // plan made every stored plan a permanent cost on every view:
        // `roster bench soak` never recovered once plans were stored).
        let mut about: Vec<(PlanId, Arc<IndexedPlan>, Vec<usize>)> = Vec::new();
        for (id, hash) in self.store.recent_plan_ids(RECENT_PLANS).await? {
            let indexed = self.indexed_plan(&id, &hash).await?;
            let mut indexes: Vec<usize> = keys
                .iter()
                .filter_map(|k| indexed.by_subject.get(k))
                .flatten()
                .copied()
                .collect();
            if indexes.is_empty() {
                continue;
            }
            indexes.sort_unstable();
            indexes.dedup();
            about.push((id, indexed, indexes));
        }
        if about.is_empty() {
            return Ok(out);
        }
        let wanted: Vec<(PlanId, Vec<usize>)> = about
            .iter()
            .map(|(id, _, idx)| (id.clone(), idx.clone()))
            .collect();
        let mut open: HashMap<PlanId, Vec<(usize, ActionState)>> = HashMap::new();
        for (id, index, state) in self.store.states_of_actions_in(&wanted).await? {
            if matches!(
                state,
                ActionState::Pending
                    | ActionState::Running
                    | ActionState::Failed
                    | ActionState::Manual
            ) {
                open.entry(id).or_default().push((index, state));
            }
        }
        let needs_approval: Vec<PlanId> = about
            .iter()
            .filter(|(id, indexed, _)| {
                open.get(id).is_some_and(|o| {
                    o.iter()
                        .any(|(i, _)| indexed.plan.approvals.contains_key(i))
                })
            })
            .map(|(id, _, _)| id.clone())
            .collect();
        let records = self.store.approvals_of_plans(&needs_approval).await?;
        // Newest plan first, as `recent_plan_ids` gave them.
        for (id, indexed, _) in &about {
            let Some(mut actions) = open.remove(id) else {
                continue;
            };
            actions.sort_unstable_by_key(|(i, _)| *i);
            let own: Vec<roster_store::ApprovalRecord> = records
                .iter()
                .filter(|r| r.plan_id == *id)
                .cloned()
                .collect();
            for (index, state) in actions {
                let Some(action) = indexed.plan.actions.get(index) else {
                    continue;
                };
                if !seen.insert(action.key()) {
                    continue;
                }
                out.push(PendingAction {
                    plan_id: id.to_string(),
                    index,
                    state,
                    awaiting_approval: crate::approval::waiting_reason(
                        &indexed.plan,
                        &indexed.hash,
                        &own,
                        index,
                    )
                    .map(str::to_string),
                    action: action.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Stored plan `id` (content hash `hash`) decoded and indexed, from
    /// this process's cache when it is there.
    async fn indexed_plan(&self, id: &PlanId, hash: &str) -> Result<Arc<IndexedPlan>, EngineError> {
        // A cache: a panic elsewhere while holding it leaves nothing wrong
        // in it, so a poisoned lock is taken as it is.
        let cached = || {
            self.plan_index
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(id, hash)
        };
        if let Some(p) = cached() {
            return Ok(p);
        }
        // One view decodes a new plan; the others that miss it meanwhile
        // wait and find it cached. A full plan of a large company is
        // megabytes of JSON: hundreds of views decoding it at once, as each
        // new scheduled plan arrived, took gigabytes and seconds (`roster
        // bench soak`).
        let _loading = self.plan_index_load.lock().await;
        if let Some(p) = cached() {
            return Ok(p);
        }
        let stored = self.stored_plan(id).await?;
        let indexed = Arc::new(IndexedPlan::new(stored.hash, stored.plan));
        self.plan_index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put_decoded(id, indexed.clone());
        Ok(indexed)
    }

    /// See `Roster::person_access` (module docs). Reads only the store;
    /// computes the one-person plan only when `next_plan` is asked for.
    /// Its reads share one store connection (`Store::with_one_reader`):
    /// the page is a dozen small reads, and a connection per read cost
    /// more than the reads.
    pub(crate) async fn person_access(
        &self,
        who: &PersonRef,
        next_plan: bool,
    ) -> Result<PersonAccess, EngineError> {
        self.store
            .with_one_reader(self.person_access_reads(who, next_plan))
            .await
    }

    async fn person_access_reads(
        &self,
        who: &PersonRef,
        next_plan: bool,
    ) -> Result<PersonAccess, EngineError> {
        let engine = self;
        let store = &engine.store;
        let crate::planning::FoundPerson {
            mut planned,
            source,
            offboarded,
        } = engine
            .find_person_with_source(who)
            .await?
            .ok_or_else(|| EngineError::PersonNotFound(who.to_string()))?;
        let now = engine.now();
        let calendar = &engine.calendar;
        let standing = calendar.standing(&planned, now);
        let dates = describe_standing(calendar, standing);
        if !offboarded {
            planned.status = calendar.effective_status(&planned, now);
        }
        let idp = (planned.attributes.contains_key("idp_id")
            || planned.attributes.contains_key(crate::config::IDP_SOURCE))
        .then(|| IdpIdentity {
            source: planned.attributes.get(crate::config::IDP_SOURCE).cloned(),
            id: planned.attributes.get("idp_id").cloned(),
            state: planned.attributes.get("idp_state").cloned(),
        });

        let remaining = self.remaining_access(&planned).await?;
        let governed = engine.policy.governed_connections();
        let mut accounts = Vec::new();
        for account in remaining.accounts {
            let c = account.connection.clone();
            let is_governed = governed.contains(&c);
            let rules: Vec<String> = engine
                .policy
                .entitlement(&planned, &c)
                .map(|e| e.rules.iter().map(|r| r.to_string()).collect())
                .unwrap_or_default();
            let grant = if !is_governed {
                "no rule: unmanaged (the policy says nothing about this connection)".to_string()
            } else if rules.is_empty() {
                if planned.status == EmploymentStatus::Terminated {
                    format!("no rule: {} is a leaver", planned.email)
                } else {
                    "no rule grants it: an excess account, or an orphan if it is not theirs"
                        .to_string()
                }
            } else {
                format!(
                    "rule{} {}",
                    if rules.len() == 1 { "" } else { "s" },
                    rules
                        .iter()
                        .map(|r| format!("{r:?}"))
                        .collect::<Vec<_>>()
                        .join(" + ")
                )
            };
            let op = if account.active {
                Operation::Deactivate
            } else {
                Operation::Reactivate
            };
            let path = path_use(engine, &c, op);
            accounts.push(AccountAccess {
                app: engine.bindings.get(&c).map(|b| b.app.clone()),
                governed: is_governed,
                rules,
                grant,
                path,
                account,
            });
        }
        let mut entitled_without_account = Vec::new();
        for c in &governed {
            if accounts.iter().any(|a| &a.account.connection == c) {
                continue;
            }
            if let Some(e) = engine.policy.entitlement(&planned, c) {
                entitled_without_account.push(Grant {
                    connection: c.clone(),
                    rules: e.rules.iter().map(|r| r.to_string()).collect(),
                });
            }
        }

        let addresses = engine.addresses(&planned);
        let pending_actions = engine.pending_actions_about(&planned, &addresses).await?;

        let (next_plan, next_plan_error) = if !next_plan {
            (None, None)
        } else {
            match engine
                .compute_plan(&PlanScope::Person(PersonRef::EmployeeId(
                    planned.employee_id.clone(),
                )))
                .await
            {
                Ok(plan) => (Some(plan.actions), None),
                Err(e) => (None, Some(e.to_string())),
            }
        };

        let since = ms(now) - AUDIT_DAYS * 24 * 3600 * 1000;
        let mut terms = addresses.clone();
        terms.push(planned.employee_id.as_str().to_lowercase());
        let audit = store.audit_mentioning(&terms, since, AUDIT_EVENTS).await?;

        Ok(PersonAccess {
            source,
            planned,
            offboarded,
            dates,
            idp,
            accounts,
            entitled_without_account,
            open_tasks: remaining
                .open_tasks
                .into_iter()
                .filter(|t| t.state != HumanTaskState::Cancelled)
                .collect(),
            pending_actions,
            next_plan,
            next_plan_error,
            audit,
        })
    }
}

fn path_use(engine: &Engine, c: &ConnectionId, op: Operation) -> Option<PathUse> {
    let catalog = engine.catalog.as_ref()?;
    let binding = engine.bindings.get(c);
    let app = catalog.get(binding.map(|b| b.app.as_str()).unwrap_or(c.as_str()))?;
    let settings = binding.map(|b| b.settings.clone()).unwrap_or_default();
    let choice = roster_catalog::select_path(app, &settings, op);
    Some(PathUse {
        operation: op,
        path: choice.path.to_string(),
        connector: choice.connector.clone(),
        reason: choice.reason,
    })
}

fn describe_standing(calendar: &roster_core::Calendar, standing: Standing) -> DateStanding {
    let zone = calendar.zone_name().to_string();
    let (kind, date, at, detail) = match standing {
        Standing::Current => ("current", None, None, "no date changes access".to_string()),
        Standing::NotYetStarted { start, from } => (
            "not_yet_started",
            Some(start),
            Some(from),
            format!(
                "starts {start} ({zone}): access from the start of {} ({zone})",
                calendar.local_date(from)
            ),
        ),
        Standing::Leaving { end, until } => (
            "leaving",
            Some(end),
            Some(until),
            format!(
                "ends {end} ({zone}): access closes at the end of that day, {} 00:00 local",
                calendar.local_date(until)
            ),
        ),
        Standing::Ended { end, at } => (
            "ended",
            Some(end),
            Some(at),
            format!("ended {end} ({zone}): access closed at the end of that day"),
        ),
    };
    DateStanding {
        kind: kind.to_string(),
        time_zone: zone,
        date: date.map(|d| d.to_string()),
        at_ms: at.map(ms),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Synthetic;
    use roster_core::principal::PrincipalKind;
    use roster_core::{Observed, Principal};
    use roster_store::Store;

    /// Page views that miss a new plan at the same moment wait for one of
    /// them to decode it: it is decoded once, and every view sees its
    /// actions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_plan_is_decoded_once_however_many_views_miss_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.db").display().to_string())
            .await
            .unwrap();
        let today = time::OffsetDateTime::now_utc().date();
        let company = Synthetic::new(400, 3, 7, today).unwrap();
        store.replace_people(&company.people).await.unwrap();
        let read_ms = ms(time::OffsetDateTime::now_utc()) - 60_000;
        for (k, c) in company.connections.iter().enumerate() {
            let observed = Observed::complete(c.clone(), company.accounts(k).0);
            store.replace_accounts(&observed, read_ms).await.unwrap();
        }
        let engine = Arc::new(Engine::new(store.clone(), company.policy().unwrap()));
        // Another process stores the plan (one that stores it itself
        // indexes it as it does: see the next test).
        let other = Engine::new(store, company.policy().unwrap());
        let plan = other.compute_plan(&PlanScope::All).await.unwrap();
        assert!(
            !plan.actions.is_empty(),
            "the synthetic company has changes"
        );
        let by = Principal::new(PrincipalKind::User, "test");
        other.save_plan(&plan, &PlanScope::All, &by).await.unwrap();
        // The people the plan is about, so every view has pending actions.
        let about: Vec<roster_core::EmployeeId> = plan
            .actions
            .iter()
            .filter_map(|a| a.employee_id.clone())
            .take(24)
            .collect();
        assert!(about.len() >= 8, "{} people in the plan", about.len());
        let views: Vec<_> = about
            .iter()
            .map(|id| {
                let (engine, who) = (engine.clone(), PersonRef::EmployeeId(id.clone()));
                tokio::spawn(async move { engine.person_access(&who, false).await })
            })
            .collect();
        for v in views {
            let page = v.await.unwrap().unwrap();
            assert!(
                !page.pending_actions.is_empty(),
                "{:?}",
                page.planned.employee_id
            );
        }
        let decoded = engine
            .plan_index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .decoded();
        assert_eq!(decoded, 1, "the plan was decoded by {decoded} views");
    }

    /// A company with a stored full plan, and an engine over it.
    async fn company_with_plan(
        dir: &std::path::Path,
    ) -> (Arc<Engine>, Synthetic, roster_core::Plan) {
        let store = Store::open(&dir.join("r.db").display().to_string())
            .await
            .unwrap();
        let today = time::OffsetDateTime::now_utc().date();
        let company = Synthetic::new(300, 3, 11, today).unwrap();
        store.replace_people(&company.people).await.unwrap();
        let read_ms = ms(time::OffsetDateTime::now_utc()) - 60_000;
        for (k, c) in company.connections.iter().enumerate() {
            let observed = Observed::complete(c.clone(), company.accounts(k).0);
            store.replace_accounts(&observed, read_ms).await.unwrap();
        }
        let engine = Arc::new(Engine::new(store, company.policy().unwrap()));
        let plan = engine.compute_plan(&PlanScope::All).await.unwrap();
        (engine, company, plan)
    }

    /// A plan this process stores is indexed from the plan in hand: no view
    /// decodes it back from the store, and views see its actions.
    #[tokio::test]
    async fn a_plan_this_process_stores_is_never_decoded_back() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, _company, plan) = company_with_plan(dir.path()).await;
        let by = Principal::new(PrincipalKind::User, "test");
        engine.save_plan(&plan, &PlanScope::All, &by).await.unwrap();
        let id = plan
            .actions
            .iter()
            .find_map(|a| a.employee_id.clone())
            .expect("an action about someone");
        let page = engine
            .person_access(&PersonRef::EmployeeId(id), false)
            .await
            .unwrap();
        assert!(!page.pending_actions.is_empty());
        let decoded = engine
            .plan_index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .decoded();
        assert_eq!(
            decoded, 0,
            "the stored plan was decoded back {decoded} time(s)"
        );
    }

    /// Records a person's approval of plan `id` (content `hash`): of one
    /// action, or with `None` of every action that needs one.
    async fn approve(engine: &Engine, id: &PlanId, hash: &str, action_idx: Option<usize>) {
        engine
            .store
            .record_approval(&roster_store::ApprovalRecord {
                plan_id: id.clone(),
                plan_hash: hash.to_string(),
                action_idx,
                decision: roster_store::Decision::Approved,
                actor: "user:approver".into(),
                reason: "test".into(),
                at_ms: ms(time::OffsetDateTime::now_utc()),
            })
            .await
            .unwrap();
    }

    /// Pending actions of several plans, read together: each plan's
    /// approvals are its own. Two plans with the same content have the same
    /// hash, and approving one must not show the other's actions approved;
    /// actions carried out drop out; the newest plan's copy of an action
    /// is the one shown.
    #[tokio::test]
    async fn pending_actions_of_several_plans_keep_their_own_approvals() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, _company, mut plan) = company_with_plan(dir.path()).await;
        let by = Principal::new(PrincipalKind::User, "test");
        // Make the first action about someone need approval.
        let (index, who) = plan
            .actions
            .iter()
            .enumerate()
            .find_map(|(i, a)| a.employee_id.clone().map(|id| (i, id)))
            .expect("an action about someone");
        plan.approvals.insert(index, "test: needs a person".into());
        let older = engine.save_plan(&plan, &PlanScope::All, &by).await.unwrap();
        let newer = engine.save_plan(&plan, &PlanScope::All, &by).await.unwrap();
        assert_ne!(older, newer);
        let page = |engine: Arc<Engine>, who: roster_core::EmployeeId| async move {
            engine
                .person_access(&PersonRef::EmployeeId(who), false)
                .await
                .unwrap()
                .pending_actions
        };
        // Both waiting; the newest plan's copy is shown, once.
        let pending = page(engine.clone(), who.clone()).await;
        let shown: Vec<_> = pending.iter().filter(|p| p.index == index).collect();
        assert_eq!(shown.len(), 1, "{pending:#?}");
        assert_eq!(shown[0].plan_id, newer.to_string());
        assert_eq!(
            shown[0].awaiting_approval.as_deref(),
            Some("test: needs a person")
        );
        // Approving the older plan (same hash) leaves the newer waiting.
        approve(&engine, &older, &plan.hash(), None).await;
        let pending = page(engine.clone(), who.clone()).await;
        let shown: Vec<_> = pending.iter().filter(|p| p.index == index).collect();
        assert_eq!(shown[0].plan_id, newer.to_string());
        assert_eq!(
            shown[0].awaiting_approval.as_deref(),
            Some("test: needs a person"),
            "the older plan's approval leaked into the newer one"
        );
        // Approving the newer one: shown as approved (no longer waiting).
        approve(&engine, &newer, &plan.hash(), Some(index)).await;
        let pending = page(engine.clone(), who.clone()).await;
        let shown: Vec<_> = pending.iter().filter(|p| p.index == index).collect();
        assert_eq!(shown[0].plan_id, newer.to_string());
        assert_eq!(shown[0].awaiting_approval, None);
        // Carried out in the newer plan: the older plan's copy shows.
        engine
            .store
            .set_action_state(
                &newer,
                index,
                ActionState::Done,
                None,
                ms(time::OffsetDateTime::now_utc()),
            )
            .await
            .unwrap();
        let pending = page(engine.clone(), who.clone()).await;
        let shown: Vec<_> = pending.iter().filter(|p| p.index == index).collect();
        assert_eq!(shown.len(), 1, "{pending:#?}");
        assert_eq!(shown[0].plan_id, older.to_string());
        assert_eq!(
            shown[0].awaiting_approval, None,
            "approved in the older plan"
        );
    }
}
