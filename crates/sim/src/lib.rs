//! Faithful simulators of the vendor APIs roster talks to.
//!
//! Each simulator is a real HTTP server on 127.0.0.1 that follows the
//! vendor's documented contract (see `shared/reference/vendor-apis.md`),
//! including its awkward parts: errors in HTTP-200 bodies, rate limits,
//! variant payload shapes. Connector tests run against them, and
//! `roster sim <vendor>` runs them standalone for demos.
//!
//! Every simulator exposes a handle to inspect and mutate its state, count
//! requests, read an ordered log of applied changes, and inject faults.
//! Tests judge connectors by that state and log, never by what the
//! connector says it did.
//!
//! What the simulators deliberately do not do: persist anything, speak TLS,
//! or listen on anything but loopback.
//!
//! | module | vendor | start |
//! |---|---|---|
//! | [`expensify`] | Expensify Integration Server | [`expensify::ExpensifySim::start`] |
//! | [`scim_app`] | a generic SCIM 2.0 app | [`scim_app::ScimSim::start`] |
//! | [`bill_spend`] | BILL Spend & Expense v3 | [`bill_spend::BillSim::start`] |
//! | [`spendesk`] | Spendesk public API + admin console | [`spendesk::SpendeskSim::start`] |
//! | [`okta`] | Okta Management API (+ its SCIM client, groups, System Log) | [`okta::OktaSim::start`] |
//! | [`onelogin`] | OneLogin API v2 users and roles (+ the token endpoint) | [`onelogin::OneLoginSim::start`] |
//! | [`google`] | Google Workspace Directory API (+ the service-account token endpoint) | [`google::GoogleSim::start`] |
//! | [`graph`] | Microsoft Graph users, groups, delta (+ the token endpoint) | [`graph::GraphSim::start`] |
//! | [`rest_apps`] | Zoom, Atlassian, Zendesk, Asana and HubSpot user APIs (the declarative REST connector's five) | [`rest_apps::RestAppSim::start`] |
//! | [`servicenow`] | ServiceNow Table API (tickets mirrored from roster's tasks) | [`servicenow::ServiceNowSim::start`] |
//!
//! The simulators after Expensify share [`common`]: one fault switchboard
//! (standing faults, per-request schedules), counters and effect log shape,
//! and a [`common::Running`] server handle that derefs to the simulator's
//! handle.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]
// Handlers return `Result<_, Response>` so an early exit *is* the vendor's
// error answer; a response is built once per request, so its size on the
// stack costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

pub mod bill_spend;
pub mod common;
pub mod expensify;
pub mod google;
pub mod graph;
pub mod okta;
pub mod onelogin;
pub mod rest_apps;
pub mod scim_app;
pub mod servicenow;
pub mod spendesk;
