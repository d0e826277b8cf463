-- Where a credential asset's value may be sent: a connector (its service, at the base
-- URL the operator configured) or, for a connector whose connection names the address
-- (the HTTP connector), that exact origin (`https://api.example.com:8443`); '' when the
-- connector's own service is meant. Anything else is refused before any connection.
-- Rows for today's connections are added by the migration's backfill (store.rs), so
-- nothing that works today stops working.
CREATE TABLE asset_destinations (
    asset_id   TEXT NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    connector  TEXT NOT NULL,
    origin     TEXT NOT NULL DEFAULT '',
    allowed_at TEXT NOT NULL,
    PRIMARY KEY (asset_id, connector, origin)
) WITHOUT ROWID;
