-- Removing a credential store is journaled like deleting a connection: its row is marked
-- 'deleting' by the process doing it (owner, as in 005_owners.sql) before its credentials
-- leave the OS vault, and deleted after. A store being removed is hidden and cannot be used; a
-- retry of the removal, or repair once its owner is gone, finishes it.
ALTER TABLE credential_stores ADD COLUMN lifecycle TEXT NOT NULL DEFAULT 'active'
    CHECK (lifecycle IN ('active', 'deleting'));
ALTER TABLE credential_stores ADD COLUMN owner TEXT;
-- 1: registered by a caller of `patchbay serve`, whose rule ([serve] allow_destinations)
-- its address is then held to; 0: by a person at their desk, whose store serve reaches
-- as the desk does.
ALTER TABLE credential_stores ADD COLUMN registered_by_api INTEGER NOT NULL DEFAULT 0;
