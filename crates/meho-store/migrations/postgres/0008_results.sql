-- Kept rows of reduced results (issue #15): when a tool result is too large to show, the model
-- sees a summary and a handle, and the full rows stay here so it can run read-only SQL over them
-- later, from any replica. A row is readable only by the tenant and principal that made it, and
-- only until it expires; the sweep deletes expired rows, and a principal's oldest rows are
-- evicted when its live bytes would pass the per-principal cap.
CREATE TABLE IF NOT EXISTS results (
    -- The handle the model holds: `res-` and 32 lowercase hex from a v4 UUID (unguessable).
    handle         TEXT PRIMARY KEY NOT NULL,
    -- The tenant of the call that produced the result.
    tenant         TEXT NOT NULL,
    -- The principal of that call; only it may read the rows.
    principal      TEXT NOT NULL,
    -- The tool that produced the result.
    tool           TEXT NOT NULL,
    -- The governed call's id, tying the rows to its audit records.
    call_id        TEXT NOT NULL,
    -- The shape the reducer detected, e.g. `kubernetes_list`.
    shape          TEXT NOT NULL,
    -- The column names, in order, as a JSON array of strings.
    columns        TEXT NOT NULL,
    -- How many rows `rows` holds.
    row_count      BIGINT NOT NULL,
    -- The size of `rows` in bytes, summed for the per-principal cap without reading the blobs.
    bytes          BIGINT NOT NULL,
    -- The rows as JSON lines: one compact JSON object per line, each ending in `\n`.
    rows           BYTEA NOT NULL,
    -- When the result was kept, in microseconds since the Unix epoch.
    created_at_us  BIGINT NOT NULL,
    -- When it stops being readable, in microseconds since the Unix epoch.
    expires_at_us  BIGINT NOT NULL
);
-- A principal's results oldest first: the per-principal cap sums and evicts through this.
CREATE INDEX IF NOT EXISTS results_principal_created ON results (tenant, principal, created_at_us);
-- The sweep deletes by expiry.
CREATE INDEX IF NOT EXISTS results_expires ON results (expires_at_us);
