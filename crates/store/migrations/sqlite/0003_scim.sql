-- SCIM service provider resources (SQLite dialect).
--
-- Keep this file and ../postgres/0003_scim.sql in step: same tables, same
-- columns, same indexes; only the column types differ.
--
-- Inbound SCIM resources (Users and Groups pushed to roster by an IdP such
-- as Okta or Entra), one namespace per connection. `data` is the
-- normalized resource JSON without `id`, `meta` and the membership lists,
-- which live in their own columns and tables. The `*_lc` columns hold
-- lower-cased copies (Unicode lowercasing done in Rust) of caseExact=false
-- attributes, so equality filters are answered by an index on both
-- engines. `seq` is the creation order, which gives list pages a stable
-- order.
CREATE TABLE scim_resource (
    seq             INTEGER NOT NULL PRIMARY KEY,
    connection      TEXT NOT NULL,
    kind            TEXT NOT NULL,
    id              TEXT NOT NULL,
    user_name       TEXT,
    user_name_lc    TEXT,
    display_name    TEXT,
    display_name_lc TEXT,
    external_id     TEXT,
    active          INTEGER,
    version         INTEGER NOT NULL,
    created_ms      INTEGER NOT NULL,
    modified_ms     INTEGER NOT NULL,
    data            TEXT NOT NULL
);
CREATE UNIQUE INDEX scim_resource_id ON scim_resource (connection, kind, id);
-- userName is unique per connection, case-insensitively (groups leave it
-- NULL, which both engines allow any number of times).
CREATE UNIQUE INDEX scim_resource_user_name ON scim_resource (connection, kind, user_name_lc);
CREATE INDEX scim_resource_external_id ON scim_resource (connection, kind, external_id);
CREATE INDEX scim_resource_display_name ON scim_resource (connection, kind, display_name_lc);
CREATE INDEX scim_resource_id_any ON scim_resource (connection, id);

-- Lower-cased email addresses of users, for `emails.value eq` and
-- `emails[type eq "work"].value eq` lookups.
CREATE TABLE scim_email (
    connection  TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    value_lc    TEXT NOT NULL,
    PRIMARY KEY (connection, value_lc, resource_id)
);
CREATE INDEX scim_email_resource ON scim_email (connection, resource_id);

-- Group membership: the single source of truth for `Group.members` and
-- `User.groups`. `ord` keeps members in the order they were added.
CREATE TABLE scim_member (
    connection  TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    member_id   TEXT NOT NULL,
    member_type TEXT,
    display     TEXT,
    ord         INTEGER NOT NULL,
    PRIMARY KEY (connection, group_id, member_id)
);
CREATE INDEX scim_member_member ON scim_member (connection, member_id);

-- Bearer tokens for inbound SCIM, one or more per connection. Only the
-- SHA-256 of a token is stored; `prefix` (the first characters of the
-- token, not secret) names it in listings and audit records.
CREATE TABLE scim_token (
    prefix       TEXT NOT NULL PRIMARY KEY,
    connection   TEXT NOT NULL,
    hash         TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_used_ms INTEGER,
    revoked_ms   INTEGER
);
CREATE INDEX scim_token_connection ON scim_token (connection);
