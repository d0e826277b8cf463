-- A credential asset may be linked to an existing secret of a credential store: Patchbay
-- only reads `link_key` of the KV v2 secret at `link_path` (under the store's mount), each
-- time the asset is used, so a rotation done in the store reaches every connection. The
-- asset then has no value in the OS vault.
ALTER TABLE assets ADD COLUMN store_id TEXT REFERENCES credential_stores(id);
ALTER TABLE assets ADD COLUMN link_path TEXT;
ALTER TABLE assets ADD COLUMN link_key TEXT;
