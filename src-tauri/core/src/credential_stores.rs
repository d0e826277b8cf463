//! Credential stores beyond the OS vault: HashiCorp Vault and OpenBao (the same HTTP API),
//! KV version 2. Registering a store checks it: reachable, unsealed, the token or AppRole
//! works, the mount is KV v2; each failure has its own code. The store's own credentials
//! are kept in the OS vault, never in the database.
//!
//! Plain HTTP over `http.rs` rather than a Vault crate: five endpoints, and so the same
//! timeouts, retries, size cap and refusal of redirects as every other service.

use reqwest::{Method, StatusCode};
use rusqlite::{Connection as Db, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use ts_rs::TS;
use uuid::Uuid;

use crate::Patchbay;
use crate::destination::check_base_url;
use crate::error::{Error, Result};
use crate::folders::clean_name;
use crate::http::{Answer, HttpClient, TransportError};
use crate::secret::Secret;
use crate::store::{now, text_column_enum};
use crate::text::name_key;
use crate::vault::VaultKey;

text_column_enum! {
    /// How Patchbay signs in to a store.
    #[derive(TS)]
    #[ts(export)]
    pub enum StoreAuth {
        Token = "token",
        AppRole = "approle",
    }
}

/// A registered store, as listed (never its credentials).
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct CredentialStore {
    pub id: String,
    pub name: String,
    /// `vault`: HashiCorp Vault or OpenBao.
    pub kind: String,
    pub address: String,
    /// The KV v2 mount, e.g. `secret`.
    pub mount: String,
    pub namespace: Option<String>,
    pub auth: StoreAuth,
    pub created_at: String,
}

/// How to sign in, as given when registering.
pub enum StoreCredentials {
    Token(Secret),
    AppRole { role_id: String, secret_id: Secret },
}

pub struct NewStore {
    pub name: String,
    pub address: String,
    /// None: `secret`, Vault's default KV v2 mount.
    pub mount: Option<String>,
    pub namespace: Option<String>,
    pub credentials: StoreCredentials,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialStoreError {
    #[error("the credential store at {address} could not be reached: {reason}; check the address and the network")]
    Unreachable { address: String, reason: String },
    #[error(
        "the credential store at {address} is sealed; unseal it (bao operator unseal / vault operator unseal), then try again"
    )]
    Sealed { address: String },
    #[error("the credential store at {address} is not initialized yet; initialize and unseal it first")]
    NotInitialized { address: String },
    #[error("the credential store refused the {what} (HTTP {status}: {message}); check it, or make a new one")]
    AuthFailed { what: &'static str, status: u16, message: String },
    #[error(
        "the mount '{mount}' does not exist, or the token's policy grants nothing under '{mount}/' (asked: {path}); check the mount's name, or grant the policy the paths Patchbay uses there, e.g. {mount}/data/patchbay/*"
    )]
    MountUnavailable { mount: String, path: String },
    #[error(
        "the mount '{mount}' is {found}, not KV version 2; enable a KV v2 mount (bao secrets enable -version=2 -path={mount} kv) or name one"
    )]
    NotKv2 { mount: String, found: String },
    #[error("the credential store has no secret at '{path}'; check the path, or write the secret there")]
    SecretMissing { path: String },
    #[error("the secret at '{path}' has no key '{key}'; its keys are: {keys}")]
    KeyMissing { path: String, key: String, keys: String },
    #[error("the credential store's policy for this token does not allow reading '{path}'; grant it read on that path")]
    Denied { path: String },
    #[error("the value of '{key}' at '{path}' is not text")]
    NotText { path: String, key: String },
    #[error("the credential store answered what Patchbay could not read ({what})")]
    Unexpected { what: String },
}

impl CredentialStoreError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "store_unreachable",
            Self::Sealed { .. } => "store_sealed",
            Self::NotInitialized { .. } => "store_not_initialized",
            Self::AuthFailed { .. } => "store_auth_failed",
            Self::MountUnavailable { .. } => "store_mount_unavailable",
            Self::NotKv2 { .. } => "store_not_kv2",
            Self::SecretMissing { .. } => "store_secret_missing",
            Self::KeyMissing { .. } | Self::NotText { .. } => "store_key_missing",
            Self::Denied { .. } => "store_denied",
            Self::Unexpected { .. } => "store_unexpected_answer",
        }
    }

    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Unreachable { .. } => Some("address"),
            Self::AuthFailed { .. } => Some("credentials"),
            Self::MountUnavailable { .. } | Self::NotKv2 { .. } => Some("mount"),
            Self::SecretMissing { .. } | Self::Denied { .. } => Some("path"),
            Self::KeyMissing { .. } | Self::NotText { .. } => Some("key"),
            _ => None,
        }
    }
}

/// What a check of a store found.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct StoreCheck {
    pub name: String,
    /// The server's version (seal status), e.g. `2.7.2`.
    pub version: Option<String>,
    /// The policies of the token Patchbay signs in with.
    pub policies: Vec<String>,
}

/// Vault's HTTP API at one address, as one signed-in session.
struct Session<'a> {
    http: &'a HttpClient,
    address: &'a str,
    namespace: Option<&'a str>,
    token: Option<Secret>,
}

impl Session<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, CredentialStoreError> {
        let url = format!("{}/v1/{path}", self.address.trim_end_matches('/'));
        self.http
            .send(method, &url, body.is_none(), |mut request| {
                if let Some(token) = &self.token {
                    request = request.header("X-Vault-Token", token.expose());
                }
                if let Some(namespace) = self.namespace {
                    request = request.header("X-Vault-Namespace", namespace);
                }
                match body {
                    Some(body) => request
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(serde_json::to_vec(body).expect("JSON values serialise")),
                    None => request,
                }
            })
            .await
            .map_err(|err| match err {
                TransportError::Unreachable(reason) => {
                    CredentialStoreError::Unreachable { address: self.address.to_owned(), reason: reason.to_owned() }
                }
                TransportError::TooLarge => CredentialStoreError::Unexpected { what: err.to_string() },
            })
    }

    /// The answer's JSON when it is a 200; a sealed or uninitialised store as such.
    fn read(&self, answer: &Answer) -> Result<Value, CredentialStoreError> {
        match answer.status {
            StatusCode::OK => answer.json().map_err(|what| CredentialStoreError::Unexpected { what }),
            StatusCode::SERVICE_UNAVAILABLE => Err(CredentialStoreError::Sealed { address: self.address.to_owned() }),
            StatusCode::NOT_IMPLEMENTED => {
                Err(CredentialStoreError::NotInitialized { address: self.address.to_owned() })
            }
            status => Err(CredentialStoreError::Unexpected {
                what: format!("HTTP {} {}", status.as_u16(), first_error(answer)),
            }),
        }
    }
}

/// Vault's error body: `{"errors": ["…"]}`.
fn first_error(answer: &Answer) -> String {
    answer
        .json::<Value>()
        .ok()
        .and_then(|body| body["errors"].get(0).and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

/// Signs in: unsealed first, then the token's lookup, or an AppRole login, which gives
/// the token to use. Returns the session and the token's policies.
async fn sign_in<'a>(
    http: &'a HttpClient,
    address: &'a str,
    namespace: Option<&'a str>,
    credentials: &StoreCredentials,
) -> Result<(Session<'a>, Value, Value), CredentialStoreError> {
    let mut session = Session { http, address, namespace, token: None };
    let seal = session.call(Method::GET, "sys/seal-status", None).await?;
    let seal = session.read(&seal)?;
    if seal["initialized"] == false {
        return Err(CredentialStoreError::NotInitialized { address: address.to_owned() });
    }
    if seal["sealed"] == true {
        return Err(CredentialStoreError::Sealed { address: address.to_owned() });
    }
    let refused = |what: &'static str, answer: &Answer| CredentialStoreError::AuthFailed {
        what,
        status: answer.status.as_u16(),
        message: first_error(answer),
    };
    let policies = match credentials {
        StoreCredentials::Token(token) => {
            session.token = Some(token.clone());
            let answer = session.call(Method::GET, "auth/token/lookup-self", None).await?;
            if matches!(answer.status.as_u16(), 400 | 401 | 403) {
                return Err(refused("token", &answer));
            }
            session.read(&answer)?["data"]["policies"].clone()
        }
        StoreCredentials::AppRole { role_id, secret_id } => {
            let login = serde_json::json!({ "role_id": role_id, "secret_id": secret_id.expose() });
            let answer = session.call(Method::POST, "auth/approle/login", Some(&login)).await?;
            if matches!(answer.status.as_u16(), 400 | 401 | 403) {
                return Err(refused("AppRole role ID or secret ID", &answer));
            }
            let body = session.read(&answer)?;
            let token = body["auth"]["client_token"].as_str().ok_or_else(|| CredentialStoreError::Unexpected {
                what: "an AppRole login without a client token".into(),
            })?;
            session.token = Some(Secret::new(token));
            body["auth"]["policies"].clone()
        }
    };
    Ok((session, seal, policies))
}

/// Checks a store: signed in, and its mount KV v2. Returns what it found.
async fn check(
    http: &HttpClient,
    store: &CredentialStore,
    credentials: &StoreCredentials,
) -> Result<StoreCheck, CredentialStoreError> {
    let mount = store.mount.as_str();
    let (session, seal, policies) = sign_in(http, &store.address, store.namespace.as_deref(), credentials).await?;
    let path = format!("sys/internal/ui/mounts/{mount}");
    let answer = session.call(Method::GET, &path, None).await?;
    if answer.status == StatusCode::FORBIDDEN || answer.status == StatusCode::NOT_FOUND {
        return Err(CredentialStoreError::MountUnavailable { mount: mount.to_owned(), path });
    }
    let info = session.read(&answer)?;
    let (kind, version) = (info["data"]["type"].as_str().unwrap_or("unknown"), &info["data"]["options"]["version"]);
    if kind != "kv" || version != "2" {
        let found = if kind == "kv" { "KV version 1".to_owned() } else { format!("a '{kind}' mount") };
        return Err(CredentialStoreError::NotKv2 { mount: mount.to_owned(), found });
    }
    Ok(StoreCheck {
        name: store.name.clone(),
        version: seal["version"].as_str().map(str::to_owned),
        policies: policies.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect(),
    })
}

/// `key` of the KV v2 secret at `path` (under the mount), read now.
async fn read_key(
    http: &HttpClient,
    store: &CredentialStore,
    credentials: &StoreCredentials,
    path: &str,
    key: &str,
) -> Result<Secret, CredentialStoreError> {
    let (session, _, _) = sign_in(http, &store.address, store.namespace.as_deref(), credentials).await?;
    let shown = format!("{}/data/{path}", store.mount);
    let answer = session.call(Method::GET, &shown, None).await?;
    match answer.status {
        StatusCode::NOT_FOUND => return Err(CredentialStoreError::SecretMissing { path: shown }),
        StatusCode::FORBIDDEN => return Err(CredentialStoreError::Denied { path: shown }),
        _ => {}
    }
    let body = session.read(&answer)?;
    let data = &body["data"]["data"];
    match data.get(key) {
        Some(Value::String(value)) => Ok(Secret::new(value.clone())),
        Some(_) => Err(CredentialStoreError::NotText { path: shown, key: key.to_owned() }),
        None => {
            let keys: Vec<&str> = data.as_object().into_iter().flatten().map(|(name, _)| name.as_str()).collect();
            Err(CredentialStoreError::KeyMissing { path: shown, key: key.to_owned(), keys: keys.join(", ") })
        }
    }
}

/// A secret's path under a mount: segments of letters, digits, `-`, `_` and `.`.
fn clean_secret_path(raw: &str) -> Result<String> {
    let path = raw.trim().trim_matches('/');
    let valid = !path.is_empty()
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && segment != ".."
                && segment.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if !valid {
        return Err(Error::invalid(
            "path",
            format!("'{path}' is not a secret's path under the mount, e.g. twilio/prod"),
        ));
    }
    Ok(path.to_owned())
}

/// A KV v2 mount's name: path segments of letters, digits, `-` and `_`.
fn clean_mount(raw: Option<&str>) -> Result<String> {
    let mount = raw.map(|mount| mount.trim().trim_matches('/')).filter(|mount| !mount.is_empty()).unwrap_or("secret");
    let valid = mount.split('/').all(|segment| {
        !segment.is_empty() && segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if !valid {
        return Err(Error::invalid(
            "mount",
            format!("'{mount}' is not a mount path (letters, digits, - and _, segments by /)"),
        ));
    }
    Ok(mount.to_owned())
}

mod rows {
    use super::*;

    pub(super) fn insert(db: &Db, store: &CredentialStore, role_id: Option<&str>) -> Result<()> {
        db.execute(
            "INSERT INTO credential_stores (id, name, name_key, kind, address, mount, namespace, auth, role_id, created_at)
             VALUES (?1, ?2, ?3, 'vault', ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                store.id,
                store.name,
                name_key(&store.name),
                store.address,
                store.mount,
                store.namespace,
                store.auth,
                role_id,
                store.created_at
            ],
        )?;
        Ok(())
    }

    const COLUMNS: &str = "id, name, kind, address, mount, namespace, auth, created_at, role_id";

    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(CredentialStore, Option<String>)> {
        Ok((
            CredentialStore {
                id: row.get(0)?,
                name: row.get(1)?,
                kind: row.get(2)?,
                address: row.get(3)?,
                mount: row.get(4)?,
                namespace: row.get(5)?,
                auth: row.get(6)?,
                created_at: row.get(7)?,
            },
            row.get(8)?,
        ))
    }

    pub(super) fn all(db: &Db) -> Result<Vec<CredentialStore>> {
        let mut statement =
            db.prepare(&format!("SELECT {COLUMNS} FROM credential_stores ORDER BY name COLLATE NOCASE"))?;
        let rows = statement.query_map([], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows.into_iter().map(|(store, _)| store).collect())
    }

    /// The store called `name` (as names compare), with its AppRole role ID.
    pub(super) fn by_name(db: &Db, name: &str) -> Result<(CredentialStore, Option<String>)> {
        db.query_row(
            &format!("SELECT {COLUMNS} FROM credential_stores WHERE name_key = ?1"),
            [name_key(name)],
            from_row,
        )
        .optional()?
        .ok_or_else(|| Error::NotFound { what: "credential store", id: name.trim().to_owned() })
    }

    pub(super) fn by_id(db: &Db, id: &str) -> Result<(CredentialStore, Option<String>)> {
        db.query_row(&format!("SELECT {COLUMNS} FROM credential_stores WHERE id = ?1"), [id], from_row)
            .optional()?
            .ok_or_else(|| Error::NotFound { what: "credential store", id: id.to_owned() })
    }

    /// How many credential assets are linked to the store.
    pub(super) fn linked_assets(db: &Db, id: &str) -> Result<u32> {
        Ok(db.query_row("SELECT count(*) FROM assets WHERE store_id = ?1", [id], |row| row.get(0))?)
    }

    pub(super) fn name_taken(db: &Db, name: &str) -> Result<Option<String>> {
        Ok(db
            .query_row("SELECT name FROM credential_stores WHERE name_key = ?1", [name_key(name)], |row| row.get(0))
            .optional()?)
    }

    pub(super) fn delete(db: &Db, id: &str) -> Result<()> {
        db.execute("DELETE FROM credential_stores WHERE id = ?1", [id])?;
        Ok(())
    }
}

impl Patchbay {
    /// Registers a store after checking it; its credentials go to the OS vault first, so
    /// a row never names credentials that are not there.
    pub async fn add_store(&self, new: NewStore) -> Result<CredentialStore> {
        let name = clean_name("name", &new.name)?;
        let address = new.address.trim().trim_end_matches('/').to_owned();
        check_base_url(&address)
            .map_err(|refusal| Error::invalid("address", format!("the address '{address}' is refused: {refusal}")))?;
        let mount = clean_mount(new.mount.as_deref())?;
        let namespace = new.namespace.map(|ns| ns.trim().trim_matches('/').to_owned()).filter(|ns| !ns.is_empty());
        if let Some(existing) = rows::name_taken(&self.store.conn(), &name)? {
            return Err(Error::NameTaken { what: "credential store", name: existing, place: "this Patchbay".into() });
        }
        let auth = match new.credentials {
            StoreCredentials::Token(_) => StoreAuth::Token,
            StoreCredentials::AppRole { .. } => StoreAuth::AppRole,
        };
        let store = CredentialStore {
            id: Uuid::new_v4().to_string(),
            name,
            kind: "vault".into(),
            address,
            mount,
            namespace,
            auth,
            created_at: now(),
        };
        check(&self.services.vault_http, &store, &new.credentials).await?;
        let (role_id, secret) = match new.credentials {
            StoreCredentials::Token(token) => (None, token),
            StoreCredentials::AppRole { role_id, secret_id } => (Some(role_id), secret_id),
        };
        let key = VaultKey::CredentialStore(store.id.clone());
        self.vault.put(&key, &secret).await?;
        let inserted = self.store.write(|tx| {
            if let Some(existing) = rows::name_taken(tx, &store.name)? {
                return Err(Error::NameTaken {
                    what: "credential store",
                    name: existing,
                    place: "this Patchbay".into(),
                });
            }
            rows::insert(tx, &store, role_id.as_deref())
        });
        if let Err(err) = inserted {
            self.vault.delete(&key).await?;
            return Err(err);
        }
        Ok(store)
    }

    pub fn list_stores(&self) -> Result<Vec<CredentialStore>> {
        rows::all(&self.store.conn())
    }

    /// The credentials kept for a store (its secret from the OS vault).
    async fn credentials_of(&self, store: &CredentialStore, role_id: Option<String>) -> Result<StoreCredentials> {
        let secret = self.vault.get(&VaultKey::CredentialStore(store.id.clone())).await?;
        Ok(match (store.auth, role_id) {
            (StoreAuth::AppRole, Some(role_id)) => StoreCredentials::AppRole { role_id, secret_id: secret },
            _ => StoreCredentials::Token(secret),
        })
    }

    /// Reads `key` of the secret at `path` in the store with this id, now.
    pub(crate) async fn read_linked(&self, store_id: &str, path: &str, key: &str) -> Result<Secret> {
        let (store, role_id) = rows::by_id(&self.store.conn(), store_id)?;
        let credentials = self.credentials_of(&store, role_id).await?;
        Ok(read_key(&self.services.vault_http, &store, &credentials, path, key).await?)
    }

    /// A credential asset linked to `key` of the secret at `path` in the store named
    /// `store`: only read, each time it is used. Checked readable now.
    pub async fn link_asset(
        &self,
        folder: &str,
        name: &str,
        store: &str,
        path: &str,
        key: &str,
    ) -> Result<crate::Asset> {
        let name = clean_name("name", name)?;
        let path = clean_secret_path(path)?;
        let key = key.trim();
        if key.is_empty() {
            return Err(Error::invalid("key", "name the key of the secret to read, e.g. auth_token"));
        }
        let (store_row, _) = rows::by_name(&self.store.conn(), store)?;
        self.read_linked(&store_row.id, &path, key).await?;
        let id = Uuid::new_v4().to_string();
        self.store.write(|tx| {
            let folder_id = crate::folders::resolve(tx, folder)?;
            if let Some(existing) = crate::assets::same_name_in_folder(tx, folder_id, &name)? {
                return Err(Error::NameTaken {
                    what: "credential asset",
                    name: existing,
                    place: format!("folder '{}'", crate::folders::path_of(tx, folder_id)?),
                });
            }
            crate::assets::insert_linked(tx, &id, folder_id, &name, &store_row.id, &path, key)
        })?;
        let conn = self.store.conn();
        crate::assets::in_folder(&conn, crate::folders::resolve(&conn, folder)?)?
            .into_iter()
            .find(|asset| asset.id == id)
            .ok_or_else(|| Error::NotFound { what: "credential asset", id })
    }

    /// Checks a registered store again, with the credentials kept for it.
    pub async fn test_store(&self, name: &str) -> Result<StoreCheck> {
        let (store, role_id) = rows::by_name(&self.store.conn(), name)?;
        let credentials = self.credentials_of(&store, role_id).await?;
        Ok(check(&self.services.vault_http, &store, &credentials).await?)
    }

    /// Forgets a store and its credentials (the secrets in it stay where they are);
    /// refused while credential assets are linked to it.
    pub async fn remove_store(&self, name: &str) -> Result<()> {
        let (store, _) = rows::by_name(&self.store.conn(), name)?;
        self.store.write(|tx| {
            let linked = rows::linked_assets(tx, &store.id)?;
            if linked > 0 {
                return Err(Error::invalid(
                    "name",
                    format!(
                        "credential store '{}' has {linked} linked credential assets; delete them first",
                        store.name
                    ),
                ));
            }
            rows::delete(tx, &store.id)
        })?;
        self.vault.delete(&VaultKey::CredentialStore(store.id)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_paths_and_default_to_secret() {
        assert_eq!(clean_mount(None).unwrap(), "secret");
        assert_eq!(clean_mount(Some(" /team-a/kv/ ")).unwrap(), "team-a/kv");
        for bad in ["a b", "a//b", "../sys", "kv?x"] {
            assert_eq!(clean_mount(Some(bad)).unwrap_err().field(), Some("mount"), "{bad}");
        }
    }
}
