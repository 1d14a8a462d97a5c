-- The human-in-the-loop state beside approvals: what an approved call replays, the
-- approve-and-learn waivers, runtime grants and freezes. Rows are never deleted; revocation and
-- lifting are timestamps, so the store keeps the history the audit log describes.

-- The tool arguments exactly as the agent sent them, replayed when the approval is collected.
-- `arguments` (bound by call_hash, shown to approvers) may be a canonical view of them.
ALTER TABLE approvals ADD COLUMN request TEXT;

-- Approve-and-learn: lifts require_approval for one exact command, elevation, caller and end user.
CREATE TABLE IF NOT EXISTS waivers (
    id             TEXT PRIMARY KEY NOT NULL,
    tenant         TEXT NOT NULL,
    target         TEXT NOT NULL,
    command        TEXT NOT NULL,
    sudo           INTEGER NOT NULL DEFAULT 0,
    sudo_user      TEXT,
    caller         TEXT NOT NULL,
    end_user       TEXT NOT NULL,
    approval_id    TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at_us  INTEGER NOT NULL,
    expires_at_us  INTEGER NOT NULL,
    revoked_at_us  INTEGER,
    revoked_by     TEXT
);
CREATE INDEX IF NOT EXISTS waivers_target ON waivers (tenant, target, expires_at_us);

-- Runtime grants: widen-only, TTL'd allow patterns on hosts whose baseline is an allowlist.
CREATE TABLE IF NOT EXISTS grants (
    id             TEXT PRIMARY KEY NOT NULL,
    tenant         TEXT NOT NULL,
    target         TEXT NOT NULL,
    pattern        TEXT NOT NULL,
    tier           TEXT NOT NULL,
    reason         TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at_us  INTEGER NOT NULL,
    expires_at_us  INTEGER NOT NULL,
    revoked_at_us  INTEGER,
    revoked_by     TEXT
);
CREATE INDEX IF NOT EXISTS grants_target ON grants (tenant, target, expires_at_us);

-- Freezes: a kill switch on a principal, a session or a credential serial, in force until lifted.
CREATE TABLE IF NOT EXISTS freezes (
    id             TEXT PRIMARY KEY NOT NULL,
    tenant         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    value          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at_us  INTEGER NOT NULL,
    lifted_at_us   INTEGER,
    lifted_by      TEXT,
    lift_reason    TEXT
);
CREATE INDEX IF NOT EXISTS freezes_active ON freezes (tenant, kind, value, lifted_at_us);
