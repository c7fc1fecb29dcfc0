-- roster schema, version 15 (postgres dialect): REST API and AI-agent tokens.
-- Keep in step with the other dialect's 0015_api_token.sql; only the
-- column types differ.
--
-- prefix: the token's public name (its first characters; unique).
-- hash: SHA-256 of the whole token, lower-case hex; the token itself is
-- shown once and never stored. kind: `token` (a REST client) or
-- `agent` (an AI agent through MCP). name: the principal it acts as.
-- scopes: space-separated (read propose approve apply offboard admin).
-- Times are unix milliseconds chosen by the caller, as everywhere.
CREATE TABLE api_token (
    prefix       TEXT NOT NULL PRIMARY KEY,
    hash         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL,
    last_used_ms BIGINT,
    revoked_ms   BIGINT
);
