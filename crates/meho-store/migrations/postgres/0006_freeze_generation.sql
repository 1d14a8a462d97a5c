-- A counter that moves with every change to `freezes`, in the same transaction (the same table
-- as on SQLite). Triggers, not application code, bump it, so a change by any server or tool
-- sharing the database moves it.
CREATE TABLE IF NOT EXISTS freeze_generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  BIGINT NOT NULL
);
INSERT INTO freeze_generation (id, generation) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

CREATE OR REPLACE FUNCTION meho_freezes_generation() RETURNS trigger AS $$
BEGIN
    UPDATE freeze_generation SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER freezes_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON freezes
    FOR EACH STATEMENT EXECUTE FUNCTION meho_freezes_generation();
