//! The simulated Expensify tenant: policies (workspaces), their employees,
//! and the two jobs roster uses (`update` with the Advanced Employee
//! Updater, `get` for `policyList` and `policy`).
//!
//! Everything here is pure state manipulation with no I/O, so the vendor
//! semantics can be tested without a socket. The HTTP layer in the parent
//! module parses the wire format and calls in here.
//!
//! # Semantics we reproduce (vendor-apis.md §1.1, §1.2)
//!
//! * An employee record is an upsert into one policy. Membership is per
//!   policy: the same address may belong to several.
//! * `employeeID` is a stable external id. A known id arriving with a new
//!   address renames that person in every policy (Expensify "makes the new
//!   address the primary login and merges the accounts").
//! * `isTerminated: true` removes the person from `policyID` only.
//!   Terminating someone who is not a member is a no-op, not a skip.
//!   [U] Terminating a member others in the policy still submit to
//!   (`submitsTo`) or forward to (`forwardsTo`) is skipped with a reason
//!   naming them: their reports would have no approver. The vendor doc
//!   does not say; the simulator takes the strict reading, which is the
//!   one a client must be built for (re-point first).
//! * Per-record problems never fail the job: they land in
//!   `skippedEmployees` with a reason, and the rest of the feed applies.
//! * `firstName`/`lastName` never overwrite a non-empty value (the vendor
//!   keeps names the user set).
//! * `customField1` is auto-filled from `employeeID` when not given.
//! * A policy owner's role is never demoted.
//!
//! # Effect log
//!
//! Every change that actually altered state is appended to an ordered log
//! ([`Effect`]). Re-sending a record that matches the current state changes
//! nothing and logs nothing, which is what lets tests assert that a change
//! was applied "exactly once" even across retries.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// One workspace ("policy") in the simulated tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimPolicy {
    /// A 16-hex policy id, e.g. `A1B2C3D4E5F60001`.
    pub id: String,
    pub name: String,
    /// The owner's address. Owners can't be demoted.
    pub owner: String,
    /// The API caller's role on this policy (`admin`, `auditor`, `user`).
    /// `policyList` with `adminOnly: true` lists only `admin` ones.
    pub caller_role: String,
    /// `corporate` or `team`.
    pub policy_type: String,
    pub output_currency: String,
    /// Members keyed by lower-cased address.
    pub employees: BTreeMap<String, SimEmployee>,
}

impl SimPolicy {
    /// A corporate USD policy the caller administers, with no members.
    pub fn new(id: impl Into<String>, name: impl Into<String>, owner: impl Into<String>) -> Self {
        SimPolicy {
            id: id.into(),
            name: name.into(),
            owner: owner.into(),
            caller_role: "admin".into(),
            policy_type: "corporate".into(),
            output_currency: "USD".into(),
            employees: BTreeMap::new(),
        }
    }

    /// Adds or replaces a member (keyed by lower-cased address).
    pub fn with_employee(mut self, e: SimEmployee) -> Self {
        self.employees.insert(e.email.to_lowercase(), e);
        self
    }

    pub fn employee(&self, email: &str) -> Option<&SimEmployee> {
        self.employees.get(&email.to_lowercase())
    }
}

/// One policy membership as `policy` get returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimEmployee {
    pub email: String,
    /// `user`, `auditor` or `admin`.
    pub role: String,
    /// Who the employee submits reports to (`managerEmail` on write).
    pub submits_to: String,
    pub employee_id: String,
    /// Who approved reports are forwarded to (`approvesTo` on write).
    pub forwards_to: String,
    /// Who reports over the limit go to (`overLimitApprover` on write).
    pub over_limit_forwards_to: String,
    /// In cents.
    pub approval_limit: Option<i64>,
    pub custom_field1: String,
    pub custom_field2: String,
    pub first_name: String,
    pub last_name: String,
}

impl SimEmployee {
    /// A plain `user` member submitting to `manager`.
    pub fn new(
        email: impl Into<String>,
        manager: impl Into<String>,
        employee_id: impl Into<String>,
    ) -> Self {
        let employee_id = employee_id.into();
        SimEmployee {
            email: email.into(),
            role: "user".into(),
            submits_to: manager.into(),
            custom_field1: employee_id.clone(),
            employee_id,
            ..SimEmployee::default()
        }
    }

    /// The wire form in `policyInfo[id].employees[]`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("email".into(), json!(self.email));
        m.insert("role".into(), json!(self.role));
        m.insert("submitsTo".into(), json!(self.submits_to));
        m.insert("employeeID".into(), json!(self.employee_id));
        m.insert("forwardsTo".into(), json!(self.forwards_to));
        m.insert(
            "overLimitForwardsTo".into(),
            json!(self.over_limit_forwards_to),
        );
        if let Some(limit) = self.approval_limit {
            m.insert("approvalLimit".into(), json!(limit));
        }
        m.insert("customField1".into(), json!(self.custom_field1));
        m.insert("customField2".into(), json!(self.custom_field2));
        m.insert("firstName".into(), json!(self.first_name));
        m.insert("lastName".into(), json!(self.last_name));
        Value::Object(m)
    }
}

/// What an applied change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EffectKind {
    /// The address became a member of the policy.
    Added,
    /// The address was removed from the policy (`isTerminated`).
    Removed,
    /// Fields of an existing membership changed (wire names, sorted).
    Updated { fields: Vec<String> },
    /// A known `employeeID` arrived with a new address: renamed.
    EmailChanged { from: String },
}

/// One applied change, in the order the simulator applied it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    /// Position in the log, from 0.
    pub seq: u64,
    pub policy_id: String,
    /// The (new) address, lower-cased.
    pub email: String,
    pub kind: EffectKind,
}

/// The whole simulated tenant.
#[derive(Clone, Debug, Default)]
pub struct Tenant {
    pub policies: BTreeMap<String, SimPolicy>,
    pub effects: Vec<Effect>,
}

/// A job-level failure: becomes `{"responseCode":code,"responseMessage":..}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobError {
    pub code: u16,
    pub message: String,
}

impl JobError {
    pub fn invalid(message: impl Into<String>) -> Self {
        JobError {
            code: 410,
            message: message.into(),
        }
    }
}

/// The outcome of one employee-updater job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateOutcome {
    pub updated_count: u64,
    pub diff_to_add: BTreeMap<String, Vec<String>>,
    pub diff_to_remove: BTreeMap<String, Vec<String>>,
    /// `(email, reason)` in feed order.
    pub skipped: Vec<(String, String)>,
}

impl UpdateOutcome {
    pub fn to_json(&self, dry_run: bool) -> Value {
        json!({
            "responseCode": 200,
            "dry-run": dry_run,
            "updatedEmployeesCount": self.updated_count,
            "diff": {"diffToAdd": self.diff_to_add, "diffToRemove": self.diff_to_remove},
            "skippedEmployees": self.skipped.iter()
                .map(|(email, reason)| json!({"email": email, "reason": reason}))
                .collect::<Vec<_>>(),
        })
    }
}

/// The vendor's address check, strict on purpose: its own example rejects
/// `'manager@domain '` (a trailing space), so nothing is trimmed.
pub fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

/// A record field read as a string: strings as they are, numbers printed,
/// anything else (or absent, or empty) as `None`.
fn field(rec: &Map<String, Value>, name: &str) -> Option<String> {
    match rec.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `isTerminated` as a bool or the strings `"true"`/`"false"` (the
/// vendor's own Postman example sends a string).
fn parse_terminated(v: Option<&Value>) -> Result<bool, String> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") || s.is_empty() => Ok(false),
        Some(other) => Err(format!("Invalid isTerminated value '{other}'")),
    }
}

/// A record after validation: everything needed to apply it.
struct Parsed {
    email: String,
    policy_id: String,
    terminated: bool,
    employee_id: Option<String>,
    manager: Option<String>,
    role: Option<String>,
    approves_to: Option<String>,
    approval: Option<(i64, String)>,
    first_name: Option<String>,
    last_name: Option<String>,
    custom_field1: Option<String>,
    custom_field2: Option<String>,
}

impl Tenant {
    pub fn new(policies: impl IntoIterator<Item = SimPolicy>) -> Self {
        Tenant {
            policies: policies.into_iter().map(|p| (p.id.clone(), p)).collect(),
            effects: Vec::new(),
        }
    }

    fn log(&mut self, policy_id: &str, email: &str, kind: EffectKind) {
        let seq = self.effects.len() as u64;
        self.effects.push(Effect {
            seq,
            policy_id: policy_id.to_string(),
            email: email.to_lowercase(),
            kind,
        });
    }

    /// Runs the Advanced Employee Updater over `records`. With `dry_run`
    /// the diff is computed on a copy and nothing (not even the effect log)
    /// changes.
    pub fn update_employees(
        &mut self,
        records: &[Value],
        dry_run: bool,
    ) -> Result<UpdateOutcome, JobError> {
        if records.is_empty() {
            return Err(JobError::invalid(
                "Invalid input data, e.g. employee data is missing",
            ));
        }
        if dry_run {
            let mut copy = self.clone();
            return copy.apply_records(records);
        }
        self.apply_records(records)
    }

    fn apply_records(&mut self, records: &[Value]) -> Result<UpdateOutcome, JobError> {
        let mut out = UpdateOutcome::default();
        for (i, rec) in records.iter().enumerate() {
            let Value::Object(rec) = rec else {
                return Err(JobError::invalid(format!(
                    "Invalid input data: employee record {i} is not an object"
                )));
            };
            let parsed = match self.validate(rec) {
                Ok(p) => p,
                Err(reason) => {
                    let email = field(rec, "employeeEmail").unwrap_or_default();
                    out.skipped.push((email, reason));
                    continue;
                }
            };
            let changed = if parsed.terminated {
                self.terminate(&parsed, &mut out)
            } else {
                self.upsert(&parsed, &mut out)
            };
            if changed {
                out.updated_count += 1;
            }
        }
        Ok(out)
    }

    fn validate(&self, rec: &Map<String, Value>) -> Result<Parsed, String> {
        let terminated = parse_terminated(rec.get("isTerminated"))?;
        // A termination only needs to name the person and the policy; an
        // upsert needs the four documented required fields.
        let required: &[&str] = if terminated {
            &["employeeEmail", "policyID"]
        } else {
            &["employeeEmail", "managerEmail", "employeeID", "policyID"]
        };
        for name in required {
            if field(rec, name).is_none() {
                return Err(format!("Missing required field '{name}'"));
            }
        }
        let email = field(rec, "employeeEmail").unwrap_or_default();
        if !valid_email(&email) {
            return Err(format!("Invalid employee email address '{email}'"));
        }
        let policy_id = field(rec, "policyID").unwrap_or_default();
        if !self.policies.contains_key(&policy_id) {
            return Err(format!("No policy found for '{policy_id}'"));
        }
        let manager = field(rec, "managerEmail");
        if let Some(m) = &manager
            && !valid_email(m)
        {
            return Err(format!("Invalid manager email address '{m}'"));
        }
        let role = field(rec, "role");
        if let Some(r) = &role
            && !matches!(r.as_str(), "user" | "auditor" | "admin")
        {
            return Err(format!(
                "Invalid role '{r}': expected user, auditor or admin"
            ));
        }
        let approves_to = field(rec, "approvesTo");
        if let Some(a) = &approves_to
            && !valid_email(a)
        {
            return Err(format!("Invalid approvesTo email address '{a}'"));
        }
        let approver = field(rec, "overLimitApprover").or_else(|| field(rec, "limitApprover"));
        let approval = match field(rec, "approvalLimit") {
            None => None,
            Some(raw) => {
                let limit: i64 = raw
                    .parse()
                    .map_err(|_| format!("Invalid approvalLimit '{raw}': expected an integer"))?;
                let Some(approver) = approver else {
                    return Err("overLimitApprover is required when approvalLimit is given".into());
                };
                if !valid_email(&approver) {
                    return Err(format!(
                        "Invalid over limit approver email address '{approver}'"
                    ));
                }
                Some((limit, approver))
            }
        };
        Ok(Parsed {
            email,
            policy_id,
            terminated,
            employee_id: field(rec, "employeeID"),
            manager,
            role,
            approves_to,
            approval,
            first_name: field(rec, "firstName"),
            last_name: field(rec, "lastName"),
            custom_field1: field(rec, "customField1"),
            custom_field2: field(rec, "customField2"),
        })
    }

    fn terminate(&mut self, p: &Parsed, out: &mut UpdateOutcome) -> bool {
        let Some(policy) = self.policies.get_mut(&p.policy_id) else {
            return false;
        };
        let mut key = p.email.to_lowercase();
        if !policy.employees.contains_key(&key)
            && let Some(id) = &p.employee_id
            && let Some((k, _)) = policy.employees.iter().find(|(_, e)| &e.employee_id == id)
        {
            key = k.clone();
        }
        // An approver others still submit or forward to is not removed:
        // their reports would go nowhere. Move those employees first.
        if let Some(others) = policy.employees.get(&key).map(|leaving| {
            policy
                .employees
                .iter()
                .filter(|(k, _)| **k != key)
                .filter(|(_, e)| {
                    e.submits_to.eq_ignore_ascii_case(&leaving.email)
                        || e.forwards_to.eq_ignore_ascii_case(&leaving.email)
                })
                .map(|(_, e)| e.email.clone())
                .collect::<Vec<_>>()
        }) && !others.is_empty()
        {
            out.skipped.push((
                p.email.clone(),
                format!(
                    "'{}' is still the approver of {}; change who they submit to first",
                    p.email,
                    others.join(", ")
                ),
            ));
            return false;
        }
        let Some(removed) = policy.employees.remove(&key) else {
            return false;
        };
        out.diff_to_remove
            .entry(p.policy_id.clone())
            .or_default()
            .push(removed.email.clone());
        let pid = p.policy_id.clone();
        self.log(&pid, &removed.email, EffectKind::Removed);
        true
    }

    /// Renames `employee_id`'s memberships to `new_email` everywhere.
    /// Returns whether anything changed.
    fn merge_by_employee_id(&mut self, employee_id: &str, new_email: &str) -> bool {
        let new_key = new_email.to_lowercase();
        let mut renamed = Vec::new();
        for policy in self.policies.values_mut() {
            let old = policy
                .employees
                .iter()
                .find(|(k, e)| e.employee_id == employee_id && **k != new_key)
                .map(|(k, _)| k.clone());
            let Some(old_key) = old else { continue };
            let Some(mut e) = policy.employees.remove(&old_key) else {
                continue;
            };
            let from = e.email.clone();
            e.email = new_email.to_string();
            // If the new address is already a member here, the accounts
            // merge: the existing membership under the new address wins.
            policy.employees.entry(new_key.clone()).or_insert(e);
            renamed.push((policy.id.clone(), from));
        }
        let changed = !renamed.is_empty();
        for (pid, from) in renamed {
            self.log(&pid, new_email, EffectKind::EmailChanged { from });
        }
        changed
    }

    fn upsert(&mut self, p: &Parsed, out: &mut UpdateOutcome) -> bool {
        let mut changed = false;
        if let Some(id) = &p.employee_id {
            changed |= self.merge_by_employee_id(id, &p.email);
        }
        let Some(policy) = self.policies.get_mut(&p.policy_id) else {
            return changed;
        };
        let key = p.email.to_lowercase();
        let is_owner = policy.owner.eq_ignore_ascii_case(&p.email);
        let existed = policy.employees.contains_key(&key);
        let e = policy.employees.entry(key).or_insert_with(|| SimEmployee {
            email: p.email.clone(),
            role: "user".into(),
            ..SimEmployee::default()
        });
        let mut fields = Vec::new();
        let set =
            |fields: &mut Vec<String>, name: &str, slot: &mut String, value: &Option<String>| {
                if let Some(v) = value
                    && slot != v
                {
                    *slot = v.clone();
                    fields.push(name.to_string());
                }
            };
        set(&mut fields, "managerEmail", &mut e.submits_to, &p.manager);
        set(
            &mut fields,
            "employeeID",
            &mut e.employee_id,
            &p.employee_id,
        );
        if !(is_owner && e.role == "admin") {
            set(&mut fields, "role", &mut e.role, &p.role);
        }
        set(
            &mut fields,
            "approvesTo",
            &mut e.forwards_to,
            &p.approves_to,
        );
        set(
            &mut fields,
            "customField2",
            &mut e.custom_field2,
            &p.custom_field2,
        );
        let cf1 = p.custom_field1.clone().or_else(|| {
            // Auto-filled from employeeID, but never over a value set
            // explicitly before.
            if e.custom_field1.is_empty() {
                p.employee_id.clone()
            } else {
                None
            }
        });
        set(&mut fields, "customField1", &mut e.custom_field1, &cf1);
        if e.first_name.is_empty() {
            set(&mut fields, "firstName", &mut e.first_name, &p.first_name);
        }
        if e.last_name.is_empty() {
            set(&mut fields, "lastName", &mut e.last_name, &p.last_name);
        }
        if let Some((limit, approver)) = &p.approval {
            if e.approval_limit != Some(*limit) {
                e.approval_limit = Some(*limit);
                fields.push("approvalLimit".into());
            }
            set(
                &mut fields,
                "overLimitApprover",
                &mut e.over_limit_forwards_to,
                &Some(approver.clone()),
            );
        }
        let email = e.email.clone();
        let pid = p.policy_id.clone();
        if !existed {
            out.diff_to_add
                .entry(pid.clone())
                .or_default()
                .push(email.clone());
            self.log(&pid, &email, EffectKind::Added);
            changed = true;
        } else if !fields.is_empty() {
            fields.sort();
            self.log(&pid, &email, EffectKind::Updated { fields });
            changed = true;
        }
        changed
    }

    /// `policyList`: `[{id,name,owner,role,type,outputCurrency}]`.
    pub fn policy_list(&self, admin_only: bool) -> Value {
        let list: Vec<Value> = self
            .policies
            .values()
            .filter(|p| !admin_only || p.caller_role == "admin")
            .map(|p| {
                json!({
                    "id": p.id, "name": p.name, "owner": p.owner, "role": p.caller_role,
                    "type": p.policy_type, "outputCurrency": p.output_currency,
                })
            })
            .collect();
        json!({"responseCode": 200, "policyList": list})
    }

    /// `policy` getter. Unknown ids give 404 ("policy not found").
    pub fn policy_info(&self, ids: &[String], fields: &[String]) -> Result<Value, JobError> {
        let mut info = Map::new();
        for id in ids {
            let Some(p) = self.policies.get(id) else {
                return Err(JobError {
                    code: 404,
                    message: format!("Policy not found: '{id}'"),
                });
            };
            let mut entry = Map::new();
            for f in fields {
                match f.as_str() {
                    "employees" => {
                        let list: Vec<Value> =
                            p.employees.values().map(SimEmployee::to_json).collect();
                        entry.insert("employees".into(), Value::Array(list));
                    }
                    // The other documented fields exist in the real API;
                    // the simulator holds no such data, so they are empty.
                    "categories" | "reportFields" | "tags" | "tax" => {
                        entry.insert(f.clone(), json!([]));
                    }
                    other => {
                        return Err(JobError::invalid(format!(
                            "Argument 'fields' contains an unknown field '{other}'"
                        )));
                    }
                }
            }
            info.insert(id.clone(), Value::Object(entry));
        }
        Ok(json!({"responseCode": 200, "policyInfo": info}))
    }

    /// Policies `email` is a member of, sorted.
    pub fn policies_of(&self, email: &str) -> Vec<String> {
        let key = email.to_lowercase();
        self.policies
            .values()
            .filter(|p| p.employees.contains_key(&key))
            .map(|p| p.id.clone())
            .collect()
    }
}

/// `n` deterministic policies with `per_policy` members each.
///
/// Policy `i` has id `A0000000000000{i:02X}`-style 16-hex ids, owner
/// `owner@example.com`, and members `p{i}-e{j}@example.com` with employee ids
/// `E{i}-{j}` submitting to `manager@example.com`.
pub fn seed_policies(n: usize, per_policy: usize) -> Vec<SimPolicy> {
    (0..n)
        .map(|i| {
            let mut p = SimPolicy::new(
                format!("{:016X}", 0xA000_0000_0000_0000_u64 + i as u64),
                format!("Workspace {i}"),
                "owner@example.com",
            );
            for j in 0..per_policy {
                let mut e = SimEmployee::new(
                    format!("p{i}-e{j}@example.com"),
                    "manager@example.com",
                    format!("E{i}-{j}"),
                );
                e.first_name = format!("First{j}");
                e.last_name = format!("Last{i}");
                p.employees.insert(e.email.to_lowercase(), e);
            }
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        Tenant::new([
            SimPolicy::new("P1", "One", "owner@x.com"),
            SimPolicy::new("P2", "Two", "owner@x.com"),
        ])
    }

    fn rec(email: &str, policy: &str, id: &str) -> Value {
        json!({"employeeEmail": email, "managerEmail": "boss@x.com", "employeeID": id, "policyID": policy})
    }

    #[test]
    fn an_approver_others_still_submit_to_is_not_removed_until_they_are_moved() {
        let mut t = tenant();
        let mut boss = rec("b@x.com", "P1", "2");
        boss["managerEmail"] = json!("ceo@x.com");
        let mut report = rec("a@x.com", "P1", "1");
        report["managerEmail"] = json!("B@x.com");
        t.update_employees(&[boss, report], false).unwrap();
        let leave = json!({"employeeEmail": "b@x.com", "policyID": "P1", "isTerminated": true});
        let out = t
            .update_employees(std::slice::from_ref(&leave), false)
            .unwrap();
        assert_eq!(out.updated_count, 0);
        assert!(out.skipped[0].1.contains("a@x.com"), "{:?}", out.skipped);
        assert!(t.policies["P1"].employees.contains_key("b@x.com"));
        // Re-pointed first, in the same feed: then the approver goes.
        let mut moved = rec("a@x.com", "P1", "1");
        moved["managerEmail"] = json!("ceo@x.com");
        let out = t.update_employees(&[moved, leave], false).unwrap();
        assert!(out.skipped.is_empty(), "{:?}", out.skipped);
        assert!(!t.policies["P1"].employees.contains_key("b@x.com"));
    }

    #[test]
    fn upsert_is_idempotent_and_logged_once() {
        let mut t = tenant();
        let out = t
            .update_employees(&[rec("a@x.com", "P1", "1")], false)
            .unwrap();
        assert_eq!(out.updated_count, 1);
        assert_eq!(out.diff_to_add["P1"], vec!["a@x.com"]);
        let again = t
            .update_employees(&[rec("a@x.com", "P1", "1")], false)
            .unwrap();
        assert_eq!(again.updated_count, 0, "same record twice changes nothing");
        assert_eq!(t.effects.len(), 1);
        assert_eq!(t.policies["P1"].employees["a@x.com"].custom_field1, "1");
    }

    #[test]
    fn skips_carry_vendor_reasons_and_do_not_fail_the_job() {
        let mut t = tenant();
        let mut bad_mgr = rec("b@x.com", "P1", "2");
        bad_mgr["managerEmail"] = json!("manager@domain ");
        let mut bad_role = rec("c@x.com", "P1", "3");
        bad_role["role"] = json!("owner");
        let mut missing = rec("d@x.com", "P1", "4");
        missing.as_object_mut().unwrap().remove("employeeID");
        let out = t
            .update_employees(
                &[
                    rec("a@x.com", "Marketing", "1"),
                    bad_mgr,
                    bad_role,
                    missing,
                    rec("e@x.com", "P2", "5"),
                ],
                false,
            )
            .unwrap();
        let reasons: Vec<&str> = out.skipped.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(reasons[0], "No policy found for 'Marketing'");
        assert_eq!(
            reasons[1],
            "Invalid manager email address 'manager@domain '"
        );
        assert!(reasons[2].starts_with("Invalid role 'owner'"));
        assert_eq!(reasons[3], "Missing required field 'employeeID'");
        assert_eq!(out.updated_count, 1);
        assert!(t.policies["P2"].employee("e@x.com").is_some());
    }

    #[test]
    fn same_employee_id_with_new_email_renames_everywhere() {
        let mut t = tenant();
        t.update_employees(
            &[rec("old@x.com", "P1", "7"), rec("old@x.com", "P2", "7")],
            false,
        )
        .unwrap();
        t.update_employees(&[rec("new@x.com", "P1", "7")], false)
            .unwrap();
        assert_eq!(t.policies_of("new@x.com"), vec!["P1", "P2"]);
        assert!(t.policies_of("old@x.com").is_empty());
        let renames = t
            .effects
            .iter()
            .filter(|e| matches!(e.kind, EffectKind::EmailChanged { .. }))
            .count();
        assert_eq!(renames, 2);
    }

    #[test]
    fn termination_removes_from_one_policy_and_accepts_string_flag() {
        let mut t = tenant();
        t.update_employees(
            &[rec("a@x.com", "P1", "1"), rec("a@x.com", "P2", "1")],
            false,
        )
        .unwrap();
        let out = t
            .update_employees(
                &[json!({"employeeEmail": "a@x.com", "policyID": "P1", "isTerminated": "true"})],
                false,
            )
            .unwrap();
        assert_eq!(out.diff_to_remove["P1"], vec!["a@x.com"]);
        assert_eq!(t.policies_of("a@x.com"), vec!["P2"]);
        // Terminating a non-member is a no-op, not a skip.
        let out = t
            .update_employees(
                &[json!({"employeeEmail": "a@x.com", "policyID": "P1", "isTerminated": true})],
                false,
            )
            .unwrap();
        assert!(out.skipped.is_empty());
        assert_eq!(out.updated_count, 0);
    }

    #[test]
    fn dry_run_changes_nothing() {
        let mut t = tenant();
        let out = t
            .update_employees(&[rec("a@x.com", "P1", "1")], true)
            .unwrap();
        assert_eq!(out.diff_to_add["P1"], vec!["a@x.com"]);
        assert!(t.policies["P1"].employees.is_empty());
        assert!(t.effects.is_empty());
    }

    #[test]
    fn names_are_never_overwritten_and_owner_is_never_demoted() {
        let mut t = tenant();
        let mut r = rec("owner@x.com", "P1", "1");
        r["firstName"] = json!("Ann");
        r["role"] = json!("admin");
        t.update_employees(&[r.clone()], false).unwrap();
        r["firstName"] = json!("Bob");
        r["role"] = json!("user");
        t.update_employees(&[r], false).unwrap();
        let e = t.policies["P1"].employee("owner@x.com").unwrap();
        assert_eq!(e.first_name, "Ann");
        assert_eq!(e.role, "admin");
    }

    #[test]
    fn approval_limit_needs_an_approver() {
        let mut t = tenant();
        let mut r = rec("a@x.com", "P1", "1");
        r["approvalLimit"] = json!(10000);
        let out = t.update_employees(&[r.clone()], false).unwrap();
        assert_eq!(out.skipped.len(), 1);
        r["limitApprover"] = json!("cfo@x.com");
        let out = t.update_employees(&[r], false).unwrap();
        assert!(out.skipped.is_empty());
        let e = t.policies["P1"].employee("a@x.com").unwrap();
        assert_eq!(
            (e.approval_limit, e.over_limit_forwards_to.as_str()),
            (Some(10000), "cfo@x.com")
        );
    }
}
