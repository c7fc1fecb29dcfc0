//! The identity graph's nodes: people (from the source of truth) and the
//! accounts apps hold.
//!
//! A [`Person`] comes from the source of truth (an HR file or an IdP). An
//! [`Account`] is what one connection reported when it was last read. The
//! edge between them (a link) is computed by [`crate::correlate`]; it is never
//! stored on either side, so a new read can never leave a stale link behind.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::ids::{AccountKey, ConnectionId, Email, EmployeeId};

/// Where a person stands with the company.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmploymentStatus {
    Active,
    /// On leave: still employed, access kept unless policy says otherwise.
    Leave,
    Terminated,
}

impl EmploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EmploymentStatus::Active => "active",
            EmploymentStatus::Leave => "leave",
            EmploymentStatus::Terminated => "terminated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "active" => Some(EmploymentStatus::Active),
            "leave" | "on leave" | "on_leave" => Some(EmploymentStatus::Leave),
            "terminated" => Some(EmploymentStatus::Terminated),
            _ => None,
        }
    }
}

impl fmt::Display for EmploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person as the source of truth describes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub employee_id: EmployeeId,
    pub email: Email,
    /// Secondary addresses and aliases that also identify this person.
    #[serde(default)]
    pub aliases: Vec<Email>,
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub department: String,
    #[serde(default)]
    pub cost_center: String,
    #[serde(default)]
    pub manager_email: Option<Email>,
    pub status: EmploymentStatus,
    #[serde(default)]
    pub start_date: Option<Date>,
    #[serde(default)]
    pub end_date: Option<Date>,
    /// IdP group names (policy rules can select on them).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Any further source attributes (location, title, ...).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl Person {
    /// The built-in attributes every person has, by the names policy rules
    /// use for them (see [`Person::attribute_str`]). Any other attribute
    /// comes from the source: an extra HR column, or the SCIM gateway.
    pub const BUILTIN_ATTRIBUTES: [&'static str; 11] = [
        "employee_id",
        "email",
        "first_name",
        "last_name",
        "display_name",
        "department",
        "cost_center",
        "manager_email",
        "status",
        "start_date",
        "end_date",
    ];

    /// The value of a named source attribute, as policy rules see it.
    /// Built-in fields come first; anything else is looked up in
    /// `attributes`. `groups` is not a scalar and is handled by selectors.
    pub fn attribute(&self, name: &str) -> Option<String> {
        self.attribute_str(name).map(Cow::into_owned)
    }

    /// [`Person::attribute`] without copying what the person already holds
    /// as a string (the planner asks millions of times per run).
    pub fn attribute_str(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            "employee_id" => Some(Cow::Borrowed(self.employee_id.as_str())),
            "email" => Some(Cow::Borrowed(self.email.as_str())),
            "first_name" => Some(Cow::Borrowed(&self.first_name)),
            "last_name" => Some(Cow::Borrowed(&self.last_name)),
            "display_name" => Some(Cow::Owned(self.display_name())),
            "department" => Some(Cow::Borrowed(&self.department)),
            "cost_center" => Some(Cow::Borrowed(&self.cost_center)),
            "manager_email" => self
                .manager_email
                .as_ref()
                .map(|e| Cow::Borrowed(e.as_str())),
            "status" => Some(Cow::Borrowed(self.status.as_str())),
            "start_date" => self.start_date.map(|d| Cow::Owned(d.to_string())),
            "end_date" => self.end_date.map(|d| Cow::Owned(d.to_string())),
            other => self
                .attributes
                .get(other)
                .map(|v| Cow::Borrowed(v.as_str())),
        }
    }

    pub fn display_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_string()
    }
}

/// One account in one app, as last read from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub connection: ConnectionId,
    /// The app's own key for the account.
    pub key: AccountKey,
    pub email: Option<Email>,
    /// The employee ID the app holds for the account, if it keeps one.
    pub employee_id: Option<EmployeeId>,
    pub active: bool,
    /// App attributes in roster's vocabulary (e.g. `policy_id`,
    /// `manager_email`, `role`), as the connector translated them.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Everything one read of one connection returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub connection: ConnectionId,
    pub accounts: Vec<Account>,
    /// False when the read may have missed accounts (a failed page, a
    /// listing shorter than the reported total, a repeated page). Nothing is
    /// ever deprovisioned on the strength of an incomplete read.
    pub complete: bool,
    /// Why the read is incomplete, when it is.
    #[serde(default)]
    pub incomplete_reason: Option<String>,
}

impl Observed {
    pub fn complete(connection: ConnectionId, accounts: Vec<Account>) -> Self {
        Observed {
            connection,
            accounts,
            complete: true,
            incomplete_reason: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_attribute_is_answered_from_the_person_not_the_free_map() {
        let date = Date::from_calendar_date(2020, time::Month::January, 1).ok();
        let p = Person {
            employee_id: EmployeeId::new("E1"),
            email: Email::parse("a@acme.example").unwrap_or_else(|_| unreachable!()),
            aliases: Vec::new(),
            first_name: "A".into(),
            last_name: "B".into(),
            department: "D".into(),
            cost_center: "CC".into(),
            manager_email: Email::parse("m@acme.example").ok(),
            status: EmploymentStatus::Active,
            start_date: date,
            end_date: date,
            groups: Vec::new(),
            attributes: BTreeMap::new(),
        };
        for name in Person::BUILTIN_ATTRIBUTES {
            assert!(p.attribute_str(name).is_some(), "{name}");
        }
    }
}
