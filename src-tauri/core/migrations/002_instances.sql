-- Connections provisioned through the HTTP API (`POST /instances`) carry instance
-- metadata; a connection added elsewhere simply has no row here.
CREATE TABLE instances (
    connection_id TEXT PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
    tags          TEXT NOT NULL,   -- JSON array of strings
    token_hash    TEXT NOT NULL,   -- SHA-256 (hex) of the instance token; the token itself is never kept
    settings      TEXT NOT NULL    -- JSON: events and response filtering (no secrets)
);
