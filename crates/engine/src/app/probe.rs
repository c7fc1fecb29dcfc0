//! `roster apps probe CONNECTION`: what a live tenant actually does, next
//! to what its catalog record claims.
//!
//! The probe is read-only (the connector's [`Connector::probe`] sends only
//! GETs: SCIM discovery, one small page of users, the headers on every
//! answer). What it saw is recorded in the audit log as `app.probed`, each
//! observation with the date it was made, and returned as observed facts
//! in the catalog's own shape (`source = "probe:<connection>"`,
//! `as_of = <date>`), ready to paste into an override record.
//!
//! [`Connector::probe`]: roster_connectors::Connector::probe

use roster_core::{ConnectionId, Principal};
use roster_store::AuditKind;
use serde::Serialize;

use crate::app::Roster;
use crate::engine::EngineError;

/// One observed fact, dated, next to the record's claim.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObservedFact {
    pub field: String,
    pub value: serde_json::Value,
    pub detail: String,
    /// `probe:<connection>`.
    pub source: String,
    /// `YYYY-MM-DD`, the day of the probe.
    pub as_of: String,
    /// The record's preferred value for the same field, when it has one
    /// roster can name (rendered as text).
    pub claimed: Option<String>,
}

/// What a probe of one connection found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeReport {
    pub connection: String,
    /// The catalog app the connection is bound to.
    pub app: Option<String>,
    pub observed: Vec<ObservedFact>,
}

impl Roster {
    /// Probes `connection` read-only and records what it saw.
    pub async fn probe_app(
        &self,
        by: &Principal,
        connection: &str,
    ) -> Result<ProbeReport, EngineError> {
        tracing::debug!(principal = %by, connection, "probing a connection");
        let id = ConnectionId::new(connection);
        let Some((connector, _)) = self.engine.connection_parts(&id) else {
            let known: Vec<String> = self
                .engine
                .connector_ids()
                .iter()
                .map(|c| c.to_string())
                .collect();
            return Err(EngineError::InvalidInput(format!(
                "no connection {connection:?} (configured: {})",
                known.join(", ")
            )));
        };
        let observations = connector
            .probe()
            .await
            .map_err(|e| EngineError::Refused(format!("the probe of {connection} failed: {e}")))?;
        if observations.is_empty() {
            return Err(EngineError::Refused(format!(
                "the connector serving {connection} has no probe (SCIM connections and the declarative REST connector are probed)"
            )));
        }
        let app_id = self
            .engine
            .bindings
            .get(&id)
            .map(|b| b.app.clone())
            .or_else(|| Some(connection.to_string()));
        let record = app_id
            .as_deref()
            .and_then(|a| self.engine.catalog.as_ref()?.get(a));
        let today = self.engine.now().date().to_string();
        let source = format!("probe:{connection}");
        let observed: Vec<ObservedFact> = observations
            .into_iter()
            .map(|o| ObservedFact {
                claimed: record.and_then(|r| claimed(r, &o.field)),
                field: o.field,
                value: o.value,
                detail: o.detail,
                source: source.clone(),
                as_of: today.clone(),
            })
            .collect();
        self.engine
            .audit_as(
                &by.actor(),
                AuditKind::AppProbed,
                connection,
                serde_json::json!({ "app": app_id, "observed": observed }),
            )
            .await?;
        Ok(ProbeReport {
            connection: connection.to_string(),
            app: record.map(|r| r.id.clone()),
            observed,
        })
    }
}

/// The record's preferred value for the fields a probe observes.
fn claimed(app: &roster_catalog::App, field: &str) -> Option<String> {
    match field {
        "scim.available" => Some(app.scim.available.value().to_string()),
        "api.auth_method" => Some(app.api.auth_method.value().clone()),
        "api.has_user_api" => Some(app.api.has_user_api.value().to_string()),
        "pagination.method" => Some(app.pagination.method.value().to_string()),
        "rate_limits.header_names" => app
            .rate_limits
            .header_names
            .as_ref()
            .map(|f| f.value().join(", "))
            .or_else(|| Some(format!("headers: {}", app.rate_limits.headers.value()))),
        _ => None,
    }
}
