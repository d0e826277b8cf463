-- External credential stores: HashiCorp Vault / OpenBao, KV v2. The built-in OS vault is
-- not a row. A store's own credentials (a token, or an AppRole secret ID) are in the OS
-- vault under store/<id>; the AppRole role ID is no secret and is kept here.
CREATE TABLE credential_stores (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('vault')),
    address    TEXT NOT NULL,
    mount      TEXT NOT NULL,
    namespace  TEXT,
    auth       TEXT NOT NULL CHECK (auth IN ('token', 'approle')),
    role_id    TEXT,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX credential_stores_name ON credential_stores(name_key);
