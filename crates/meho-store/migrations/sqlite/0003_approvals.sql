-- Call-bound approvals: one row per call that policy sent to a human. The row is bound to the
-- sha256 of the canonical call (tenant, requester, target, tool, arguments); the state moves
-- pending -> approved | denied | expired, and approved -> consumed exactly once.
CREATE TABLE IF NOT EXISTS approvals (
    id                 TEXT PRIMARY KEY NOT NULL,
    tenant             TEXT NOT NULL,
    requester          TEXT NOT NULL,
    target             TEXT NOT NULL,
    tool               TEXT NOT NULL,
    call_hash          TEXT NOT NULL,
    arguments          TEXT NOT NULL,
    summary            TEXT NOT NULL,
    rule               TEXT NOT NULL,
    tier               TEXT NOT NULL,
    status             TEXT NOT NULL,
    created_at_us      INTEGER NOT NULL,
    expires_at_us      INTEGER NOT NULL,
    ttl_us             INTEGER NOT NULL,
    decided_at_us      INTEGER,
    decided_by         TEXT,
    reason             TEXT,
    self_approved      INTEGER NOT NULL DEFAULT 0,
    learn_ttl_seconds  INTEGER,
    consumed_at_us     INTEGER
);
CREATE INDEX IF NOT EXISTS approvals_tenant_status ON approvals (tenant, status, created_at_us);
