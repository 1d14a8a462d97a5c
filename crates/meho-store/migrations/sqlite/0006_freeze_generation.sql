-- A counter that moves with every change to `freezes`, in the same transaction: a process holding
-- the freezes in force in memory reads this one row per check and reads the table again only
-- when it moved. Triggers, not application code, bump it, so a freeze written by any process or
-- tool sharing the database is seen.
CREATE TABLE IF NOT EXISTS freeze_generation (
    id          INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    generation  INTEGER NOT NULL
);
INSERT OR IGNORE INTO freeze_generation (id, generation) VALUES (1, 0);

CREATE TRIGGER IF NOT EXISTS freezes_generation_insert AFTER INSERT ON freezes
BEGIN
    UPDATE freeze_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS freezes_generation_update AFTER UPDATE ON freezes
BEGIN
    UPDATE freeze_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS freezes_generation_delete AFTER DELETE ON freezes
BEGIN
    UPDATE freeze_generation SET generation = generation + 1 WHERE id = 1;
END;
