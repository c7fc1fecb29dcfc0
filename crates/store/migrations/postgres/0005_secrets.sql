-- roster schema, version 5 (postgres dialect): secrets encrypted at rest.
-- Keep in step with the other dialect's 0005_secrets.sql.

-- Vendor credentials, sealed by roster-secrets before they reach the store:
-- `sealed` is "v1:<key-id>:<base64url(nonce || ciphertext)>", bound to
-- `name`, and opens only with the master key, which never lives here.
CREATE TABLE secret (
    name       TEXT NOT NULL PRIMARY KEY,
    sealed     TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
