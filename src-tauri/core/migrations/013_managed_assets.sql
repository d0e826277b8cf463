-- A credential asset in a credential store but not linked (store_id set, link_path NULL)
-- is managed: Patchbay writes its value at <mount>/data/patchbay/<asset id>, key `value`.
--
-- A folder may name the store its new credential assets go to: a store's id, or 'os'
-- for the OS vault; NULL: as its parent folder (at the top: the OS vault).
ALTER TABLE folders ADD COLUMN default_store TEXT;
-- A rotation whose token is kept in a credential store writes the new one with
-- check-and-set: the KV v2 version each such target held when the rotation started
-- (JSON: {"asset/<id>": version}). Someone else's newer version is never overwritten.
ALTER TABLE rotations ADD COLUMN store_versions TEXT NOT NULL DEFAULT '{}';
