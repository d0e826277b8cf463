-- Names are the same name when they differ only in Unicode case or in letters that look
-- alike (text.rs, name_key). SQLite's NOCASE knows ASCII only, so the key is computed in
-- Rust: by the code that writes a name, and for rows from before this column by the
-- migration step that follows this file (store.rs).
ALTER TABLE folders ADD COLUMN name_key TEXT;
ALTER TABLE assets ADD COLUMN name_key TEXT;
ALTER TABLE connections ADD COLUMN name_key TEXT;
CREATE INDEX folders_sibling_key ON folders(ifnull(parent_id, 0), name_key);
CREATE INDEX assets_folder_key ON assets(folder_id, name_key);
CREATE INDEX connections_folder_key ON connections(folder_id, name_key);
