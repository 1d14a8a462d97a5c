-- The identity of this meho installation: one row, written on first start.
CREATE TABLE IF NOT EXISTS instance (
    id          TEXT PRIMARY KEY NOT NULL,
    created_at  BIGINT NOT NULL
);
