//! Stored plans decoded once per process and indexed by whom each action
//! is about, for one person's page (`crate::person`): a person's pending
//! actions are found in the recent plans without decoding and re-hashing
//! every one of them on every view. A leaf module: the engine holds the
//! cache, `person` fills and reads it.

use std::collections::HashMap;
use std::sync::Arc;

use roster_core::Plan;
use roster_store::PlanId;

/// How many decoded plans [`PlanIndexCache`] keeps.
const CACHED_PLANS: usize = 20;

/// The keys [`IndexedPlan`] files an action under: its employee ID as it
/// is (IDs are compared exactly), and its normalized address.
pub(crate) fn id_key(id: &str) -> String {
    format!("id:{id}")
}
pub(crate) fn address_key(address: &str) -> String {
    format!("address:{}", address.to_lowercase())
}

/// One stored plan decoded once, with its actions indexed by who they are
/// about (employee ID and address). A plan's content never
/// changes once stored (its ID and content hash name it), so this stays
/// true; only action states and approvals move, and those are read fresh.
#[derive(Debug)]
pub(crate) struct IndexedPlan {
    pub(crate) hash: String,
    pub(crate) plan: Arc<Plan>,
    pub(crate) by_subject: HashMap<String, Vec<usize>>,
}

impl IndexedPlan {
    pub(crate) fn new(hash: String, plan: Plan) -> IndexedPlan {
        let mut by_subject: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, a) in plan.actions.iter().enumerate() {
            let mut keys = vec![address_key(&a.email.normalized())];
            if let Some(id) = &a.employee_id {
                keys.push(id_key(id.as_str()));
            }
            for k in keys {
                let v = by_subject.entry(k).or_default();
                if v.last() != Some(&i) {
                    v.push(i);
                }
            }
        }
        IndexedPlan {
            hash,
            plan: Arc::new(plan),
            by_subject,
        }
    }
}

/// The recently used [`IndexedPlan`]s of this process, so a person's page
/// does not decode (and re-hash) every recent plan on every view.
#[derive(Debug, Default)]
pub(crate) struct PlanIndexCache {
    plans: HashMap<String, (u64, Arc<IndexedPlan>)>,
    clock: u64,
    /// Plans decoded into the cache since the process started.
    decoded: u64,
}

impl PlanIndexCache {
    pub(crate) fn get(&mut self, id: &PlanId, hash: &str) -> Option<Arc<IndexedPlan>> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.plans.get_mut(id.as_str())?;
        if entry.1.hash != hash {
            return None;
        }
        entry.0 = clock;
        Some(entry.1.clone())
    }

    /// How many plans were decoded into the cache so far.
    #[cfg(test)]
    pub(crate) fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Caches a plan decoded back from the store.
    pub(crate) fn put_decoded(&mut self, id: &PlanId, plan: Arc<IndexedPlan>) {
        self.decoded += 1;
        self.put(id, plan);
    }

    /// Caches a plan (one this process just stored, say).
    pub(crate) fn put(&mut self, id: &PlanId, plan: Arc<IndexedPlan>) {
        self.clock += 1;
        self.plans
            .insert(id.as_str().to_string(), (self.clock, plan));
        while self.plans.len() > CACHED_PLANS {
            let Some(oldest) = self
                .plans
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.plans.remove(&oldest);
        }
    }
}
