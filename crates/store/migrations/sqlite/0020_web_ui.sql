-- roster schema, version 20 (sqlite dialect): the web UI's users and sessions.
-- Keep in step with the other dialect's 0020_web_ui.sql; only the column
-- types differ.
--
-- web_user: local users (argon2 PHC string in password_hash; NULL for a
-- user who signs in only through OpenID Connect). role: viewer, operator,
-- approver or admin (roster_core::Role). email ties the user to a person
-- of the sources: when that person leaves, the user's sessions end.
-- web_session: one row per sign-in. id_hash is the SHA-256 (hex) of the
-- session id the browser holds; the id itself is never stored. via:
-- 'local' or 'oidc' (issuer, subject then set). authenticated_ms: the last
-- time the person proved who they are (password or IdP), for the fresh
-- sign-in approving and applying need. Idle expiry is last_seen_ms plus
-- the configured idle time; expires_ms is the absolute end. ended_ms:
-- signed out or ended (a leaver, a removed user).
-- Times are unix milliseconds chosen by the caller, as everywhere.
CREATE TABLE web_user (
    name          TEXT NOT NULL PRIMARY KEY,
    email         TEXT,
    role          TEXT NOT NULL,
    password_hash TEXT,
    created_by    TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL
);
CREATE TABLE web_session (
    id_hash          TEXT NOT NULL PRIMARY KEY,
    user_name        TEXT NOT NULL,
    email            TEXT,
    via              TEXT NOT NULL,
    issuer           TEXT,
    subject          TEXT,
    role             TEXT NOT NULL,
    created_ms       INTEGER NOT NULL,
    authenticated_ms INTEGER NOT NULL,
    last_seen_ms     INTEGER NOT NULL,
    expires_ms       INTEGER NOT NULL,
    ended_ms         INTEGER,
    ended_reason     TEXT
);
CREATE INDEX web_session_user ON web_session (user_name);
CREATE INDEX web_session_email ON web_session (email);
