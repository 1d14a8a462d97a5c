-- The tamper-evident audit log. Each tenant's records form a hash chain (see docs/audit.md).
CREATE TABLE audit_records (
    row_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    tenant       TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    ts           INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    principal    TEXT    NOT NULL,
    target       TEXT,
    action       TEXT,
    outcome      TEXT,
    session_id   TEXT,
    approval_id  TEXT,
    call_id      TEXT,
    body         TEXT    NOT NULL,
    prev_hash    TEXT    NOT NULL,
    hash         TEXT    NOT NULL,
    UNIQUE (tenant, seq)
);

-- Keyset pagination runs newest-first on row_id within each filter. Principals and targets
-- belong to one tenant, so their indexes need no tenant prefix and serve cross-tenant queries too;
-- low-cardinality columns (action) are indexed within a tenant.
CREATE INDEX audit_records_tenant_row ON audit_records (tenant, row_id);
CREATE INDEX audit_records_principal ON audit_records (principal, row_id);
CREATE INDEX audit_records_target ON audit_records (target, row_id);
CREATE INDEX audit_records_action ON audit_records (tenant, action, row_id);
CREATE INDEX audit_records_ts ON audit_records (tenant, ts);
CREATE INDEX audit_records_session ON audit_records (session_id, row_id) WHERE session_id IS NOT NULL;
CREATE INDEX audit_records_approval ON audit_records (approval_id, row_id) WHERE approval_id IS NOT NULL;
CREATE INDEX audit_records_call ON audit_records (call_id, row_id) WHERE call_id IS NOT NULL;

CREATE TABLE audit_checkpoints (
    row_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant     TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    head_hash  TEXT    NOT NULL,
    time       INTEGER NOT NULL,
    key_id     TEXT    NOT NULL,
    signature  TEXT    NOT NULL
);
CREATE INDEX audit_checkpoints_tenant ON audit_checkpoints (tenant, seq);

-- Append-only, enforced by the database: rewriting history needs dropping these first, and the
-- chain and the signed checkpoints catch that.
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
