-- roster schema, version 12 (postgres dialect): the SCIM gateway's intent, typed.
-- Keep in step with ../sqlite/0012_gateway_intent.sql: same table, same
-- columns, same index; only the column types differ.
--
-- One row per user an IdP pushed to `/scim/v2/{connection}/`: what the
-- engine folds into the people it plans for (status, identifiers, names,
-- the pushed groups' names), so planning never re-parses the pushed JSON.
-- The SCIM server computes the row from the body it parsed and the store
-- writes it in the same transaction as the resource, its membership and
-- its audit record, so the two can never disagree after a crash.
--
-- status: active | inactive (from `active`; absent counts as active) |
-- deleted (the IdP deleted the user; the row stays as the record of it).
-- seq: the SCIM resource's creation order (`scim_resource.seq`).
-- emails, group_names: JSON arrays of strings (addresses as pushed; the
-- displayName of each group the user is a direct member of, in group
-- creation order). group_names is refreshed in the same transaction as
-- any group write that changes it.
--
-- Users pushed before this version have no row until the engine's gateway
-- fold backfills them (roster_engine::gateway), once, from the stored JSON.
CREATE TABLE gateway_intent (
    connection      TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    status          TEXT NOT NULL,
    user_name       TEXT,
    external_id     TEXT,
    employee_number TEXT,
    emails          TEXT NOT NULL,
    given_name      TEXT,
    family_name     TEXT,
    group_names     TEXT NOT NULL,
    modified_ms     BIGINT NOT NULL,
    PRIMARY KEY (connection, user_id)
);
CREATE INDEX gateway_intent_seq ON gateway_intent (connection, seq);
