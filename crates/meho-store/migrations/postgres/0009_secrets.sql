-- Credentials meho itself must hold, e.g. the static API token an operator configures for a
-- REST API and references as `stored:<name>`. Only ciphertext is stored: each
-- value is sealed with AES-256-GCM under a key that comes from the environment or a file, never
-- from this database. The associated data binds a ciphertext to its tenant, name and key id, so a
-- value copied to another row does not open.
CREATE TABLE IF NOT EXISTS secrets (
    -- The tenant the secret belongs to.
    tenant         TEXT NOT NULL,
    -- The secret's name, `[A-Za-z0-9_.-]{1,128}`.
    name           TEXT NOT NULL,
    -- The fingerprint of the key that sealed it (16 lowercase hex; not secret).
    key_id         TEXT NOT NULL,
    -- The AEAD algorithm, `A256GCM`.
    algorithm      TEXT NOT NULL,
    -- The 96-bit nonce, fresh for every seal.
    nonce          BYTEA NOT NULL,
    -- The ciphertext followed by its 128-bit tag.
    ciphertext     BYTEA NOT NULL,
    -- When the name was first stored, in microseconds since the Unix epoch.
    created_at_us  BIGINT NOT NULL,
    -- When its value was last replaced or re-encrypted, in microseconds since the Unix epoch.
    updated_at_us  BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
