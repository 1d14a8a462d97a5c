-- The tamper-evident audit log. Each tenant's records form a hash chain (see docs/audit.md).
CREATE TABLE audit_records (
    row_id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT   NOT NULL UNIQUE,
    tenant       TEXT   NOT NULL,
    seq          BIGINT NOT NULL,
    ts           BIGINT NOT NULL,
    kind         TEXT   NOT NULL,
    principal    TEXT   NOT NULL,
    target       TEXT,
    action       TEXT,
    outcome      TEXT,
    session_id   TEXT,
    approval_id  TEXT,
    call_id      TEXT,
    body         TEXT   NOT NULL,
    prev_hash    TEXT   NOT NULL,
    hash         TEXT   NOT NULL,
    UNIQUE (tenant, seq)
);

CREATE INDEX audit_records_tenant_row ON audit_records (tenant, row_id);
CREATE INDEX audit_records_principal ON audit_records (principal, row_id);
CREATE INDEX audit_records_target ON audit_records (target, row_id);
CREATE INDEX audit_records_action ON audit_records (tenant, action, row_id);
CREATE INDEX audit_records_ts ON audit_records (tenant, ts);
CREATE INDEX audit_records_session ON audit_records (session_id, row_id) WHERE session_id IS NOT NULL;
CREATE INDEX audit_records_approval ON audit_records (approval_id, row_id) WHERE approval_id IS NOT NULL;
CREATE INDEX audit_records_call ON audit_records (call_id, row_id) WHERE call_id IS NOT NULL;

CREATE TABLE audit_checkpoints (
    row_id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant     TEXT   NOT NULL,
    seq        BIGINT NOT NULL,
    head_hash  TEXT   NOT NULL,
    time       BIGINT NOT NULL,
    key_id     TEXT   NOT NULL,
    signature  TEXT   NOT NULL
);
CREATE INDEX audit_checkpoints_tenant ON audit_checkpoints (tenant, seq);

-- Append-only, enforced inside the database. For a stronger boundary, run meho as a role that
-- does not own these tables (it then cannot disable the triggers either).
CREATE FUNCTION meho_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'meho audit tables are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION meho_audit_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION meho_audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION meho_audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION meho_audit_append_only();
