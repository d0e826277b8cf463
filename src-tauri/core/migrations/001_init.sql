-- Folders form a tree; names are unique among siblings, ignoring ASCII case.
CREATE TABLE folders (
    id         INTEGER PRIMARY KEY,
    parent_id  INTEGER REFERENCES folders(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX folders_sibling_name ON folders(ifnull(parent_id, 0), name COLLATE NOCASE);
CREATE INDEX folders_parent ON folders(parent_id);

-- `lifecycle` is the journal that keeps rows and vault entries consistent:
-- 'pending' rows are written before their secret, 'deleting' rows are marked before
-- their secret is removed; the repair pass at open finishes or undoes either.
CREATE TABLE assets (
    id         TEXT PRIMARY KEY,
    folder_id  INTEGER NOT NULL REFERENCES folders(id),
    name       TEXT NOT NULL,
    lifecycle  TEXT NOT NULL CHECK (lifecycle IN ('pending', 'active', 'deleting')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX assets_folder_name ON assets(folder_id, name COLLATE NOCASE);

CREATE TABLE connections (
    seq                   INTEGER PRIMARY KEY,
    id                    TEXT NOT NULL UNIQUE,
    folder_id             INTEGER NOT NULL REFERENCES folders(id),
    connector             TEXT NOT NULL,
    name                  TEXT NOT NULL,
    account_sid           TEXT NOT NULL,
    phone_number          TEXT NOT NULL,
    test_credentials      INTEGER NOT NULL CHECK (test_credentials IN (0, 1)),
    -- 'own': the token is in the vault under the connection's id; 'asset': it is the
    -- value of auth_asset_id (NULL once that asset was force-deleted).
    auth_kind             TEXT NOT NULL CHECK (auth_kind IN ('own', 'asset')),
    auth_asset_id         TEXT REFERENCES assets(id) ON DELETE SET NULL,
    status                TEXT NOT NULL CHECK (status IN ('connected', 'failed', 'not_checked')),
    status_code           TEXT,
    status_message        TEXT,
    account_friendly_name TEXT,
    account_type          TEXT,
    last_checked_at       TEXT,
    lifecycle             TEXT NOT NULL CHECK (lifecycle IN ('pending', 'active', 'deleting')),
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    -- Folded (lower-case, accent-free) name, phone, SID and account name, for search.
    search_text           TEXT NOT NULL
);
CREATE UNIQUE INDEX connections_folder_name ON connections(folder_id, name COLLATE NOCASE);
CREATE INDEX connections_asset ON connections(auth_asset_id);
CREATE INDEX connections_account ON connections(account_sid);

-- Connection search scans the folded texts in memory (search_index.rs), ordered by name;
-- this counter tells it, across processes, when its copy is stale.
CREATE INDEX connections_by_name ON connections(name COLLATE NOCASE, id);
CREATE TABLE search_generation (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
INSERT INTO search_generation (id, value) VALUES (1, 0);
CREATE TRIGGER connections_search_insert AFTER INSERT ON connections BEGIN
    UPDATE search_generation SET value = value + 1;
END;
CREATE TRIGGER connections_search_delete AFTER DELETE ON connections BEGIN
    UPDATE search_generation SET value = value + 1;
END;
CREATE TRIGGER connections_search_update AFTER UPDATE OF name, folder_id, lifecycle, search_text ON connections BEGIN
    UPDATE search_generation SET value = value + 1;
END;

-- Every orchestrator starts with a Shared folder.
INSERT INTO folders (parent_id, name, created_at, updated_at)
VALUES (NULL, 'Shared', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
