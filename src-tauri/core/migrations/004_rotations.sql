-- Auth Token rotations: each one's progress, so a crash at any step can be resumed,
-- and its history. Never a token: those are in the vault.
CREATE TABLE rotations (
    id           TEXT PRIMARY KEY,
    account_sid  TEXT NOT NULL,
    subject      TEXT NOT NULL,   -- what was asked to rotate, for people
    targets      TEXT NOT NULL,   -- JSON: vault users holding the token (asset/<id>, connection/<id>)
    dependents   TEXT NOT NULL,   -- JSON: ids of the connections re-validated at the end
    step         TEXT NOT NULL CHECK (step IN
                   ('started', 'secondary_stored', 'validated', 'promoted', 'propagated', 'stored', 'done', 'cancelled')),
    outcome      TEXT,
    revalidated  TEXT,            -- JSON: [{ "id", "name", "status" }]
    started_at   TEXT NOT NULL,
    finished_at  TEXT
);
-- One unfinished rotation per account at a time.
CREATE UNIQUE INDEX rotations_open ON rotations(account_sid) WHERE finished_at IS NULL;
