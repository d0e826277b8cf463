//! Credential stores beyond the OS vault: HashiCorp Vault and OpenBao (the same HTTP API),
//! KV version 2. Registering a store checks it: reachable, unsealed, the token or AppRole
//! works, the mount is KV v2; each failure has its own code. The store's own credentials
//! are kept in the OS vault, never in the database.
//!
//! Plain HTTP over `http.rs` rather than a Vault crate: seven endpoints, and so the same
//! timeouts, retries, size cap and refusal of redirects as every other service.

use reqwest::{Method, StatusCode};
use rusqlite::{Connection as Db, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;
use uuid::Uuid;
use zeroize::Zeroize;

use crate::Patchbay;
use crate::destination::Refusal;
use crate::error::{Error, Result};
use crate::folders::clean_name;
use crate::http::{Answer, CheckedError, HttpClient, TransportError};
use crate::secret::Secret;
use crate::store::{now, text_column_enum};
use crate::text::name_key;
use crate::vault::VaultKey;

/// The name that stands for the built-in store, the OS vault; no registered store has it.
pub const OS_STORE: &str = "os";

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
    /// Registered by a caller of `serve`: its address is held to serve's rule whenever
    /// it is reached; a desk's store is reached as the desk does.
    #[serde(skip)]
    #[ts(skip)]
    pub(crate) registered_by_api: bool,
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

/// A store to register, as the window's form sends it: a token, or an AppRole role ID
/// and secret ID.
#[derive(Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct StoreForm {
    pub name: String,
    pub address: String,
    pub mount: Option<String>,
    pub namespace: Option<String>,
    #[ts(type = "string | null")]
    pub token: Option<Secret>,
    pub role_id: Option<String>,
    #[ts(type = "string | null")]
    pub secret_id: Option<Secret>,
}

impl TryFrom<StoreForm> for NewStore {
    type Error = Error;

    fn try_from(form: StoreForm) -> Result<Self> {
        let credentials = match (form.token, form.role_id, form.secret_id) {
            (Some(token), None, None) => StoreCredentials::Token(token),
            (None, Some(role_id), Some(secret_id)) => StoreCredentials::AppRole { role_id, secret_id },
            _ => return Err(Error::invalid("credentials", "give a token, or an AppRole role ID and secret ID")),
        };
        Ok(Self { name: form.name, address: form.address, mount: form.mount, namespace: form.namespace, credentials })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialStoreError {
    #[error("the credential store at {address} could not be reached: {reason}; check the address and the network")]
    Unreachable { address: String, reason: String },
    /// The address (or what its name resolved to) is not one this Patchbay may reach.
    #[error("the credential store address '{address}' is refused: {refusal}")]
    Refused { address: String, refusal: Refusal },
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
    #[error(
        "the credential store's policy for this token does not allow {wanted} on '{path}'; grant it that capability on the path"
    )]
    Denied { path: String, wanted: &'static str },
    #[error(
        "'{path}' was changed in the credential store since Patchbay read version {expected}; Patchbay does not overwrite a version someone else wrote. Check the secret there, then try again"
    )]
    VersionConflict { path: String, expected: u64 },
    #[error("the value of '{key}' at '{path}' is not text")]
    NotText { path: String, key: String },
    #[error("the credential store answered what Patchbay could not read ({what})")]
    Unexpected { what: String },
}

impl CredentialStoreError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "store_unreachable",
            // As when the address is refused on registering, before any request.
            Self::Refused { .. } => "invalid_input",
            Self::Sealed { .. } => "store_sealed",
            Self::NotInitialized { .. } => "store_not_initialized",
            Self::AuthFailed { .. } => "store_auth_failed",
            Self::MountUnavailable { .. } => "store_mount_unavailable",
            Self::NotKv2 { .. } => "store_not_kv2",
            Self::SecretMissing { .. } => "store_secret_missing",
            Self::KeyMissing { .. } | Self::NotText { .. } => "store_key_missing",
            Self::Denied { .. } => "store_denied",
            Self::VersionConflict { .. } => "store_version_conflict",
            Self::Unexpected { .. } => "store_unexpected_answer",
        }
    }

    /// The store answered with a refusal, or was never asked (its address is refused):
    /// a write asked for did not happen. Anything else (no answer, sealed or uninitialised
    /// as a 5xx says, an answer Patchbay could not read) may hide a write that landed.
    pub(crate) fn wrote_nothing(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Sealed { .. } | Self::NotInitialized { .. } | Self::Unexpected { .. } => {
                false
            }
            Self::Refused { .. }
            | Self::AuthFailed { .. }
            | Self::MountUnavailable { .. }
            | Self::NotKv2 { .. }
            | Self::SecretMissing { .. }
            | Self::KeyMissing { .. }
            | Self::Denied { .. }
            | Self::VersionConflict { .. }
            | Self::NotText { .. } => true,
        }
    }

    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Unreachable { .. } | Self::Refused { .. } => Some("address"),
            Self::AuthFailed { .. } => Some("credentials"),
            Self::MountUnavailable { .. } | Self::NotKv2 { .. } => Some("mount"),
            Self::SecretMissing { .. } | Self::Denied { .. } | Self::VersionConflict { .. } => Some("path"),
            Self::KeyMissing { .. } | Self::NotText { .. } => Some("key"),
            _ => None,
        }
    }
}

/// Where a folder's new credential assets are kept.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct FolderStore {
    pub folder: String,
    /// The store new assets go to: a registered store's name, or `os` (the OS vault).
    pub store: String,
    /// The folder that chose it (this one or an ancestor); None: nobody did, so the OS vault.
    pub chosen_in: Option<String>,
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

/// Vault's HTTP API at one store's address, as one signed-in session.
struct Session<'a> {
    http: &'a HttpClient,
    store: &'a CredentialStore,
    token: Option<Secret>,
    /// The token is the one kept for the store, used without asking about it first
    /// (not a fresh AppRole login's): a 403 may mean it stopped working altogether.
    kept_token: bool,
}

impl<'a> Session<'a> {
    fn new(http: &'a HttpClient, store: &'a CredentialStore) -> Self {
        Self { http, store, token: None, kept_token: false }
    }

    /// An AppRole login: the session then uses the token it gives. Returns its policies.
    async fn log_in(&mut self, role_id: &str, secret_id: &Secret) -> Result<Value, CredentialStoreError> {
        let mut login = serde_json::json!({ "role_id": role_id, "secret_id": secret_id.expose() });
        let answer = self.call(Method::POST, "auth/approle/login", Some(&login)).await;
        zeroize_text(&mut login);
        let answer = answer?;
        if matches!(answer.status.as_u16(), 400 | 401 | 403) {
            return Err(auth_failed("AppRole role ID or secret ID", &answer));
        }
        let mut body = self.read(&answer)?;
        let Value::String(token) = body["auth"]["client_token"].take() else {
            return Err(CredentialStoreError::Unexpected { what: "an AppRole login without a client token".into() });
        };
        self.token = Some(Secret::new(token));
        Ok(body["auth"]["policies"].take())
    }

    /// What a 403 to `wanted` on `path` means: the policy denies it, or the kept token
    /// no longer works at all (expired, revoked), which only the token's lookup tells.
    async fn refusal(&self, path: String, wanted: &'static str) -> CredentialStoreError {
        if self.kept_token
            && let Ok(answer) = self.call(Method::GET, "auth/token/lookup-self", None).await
            && matches!(answer.status.as_u16(), 400 | 401 | 403)
        {
            return auth_failed("token", &answer);
        }
        CredentialStoreError::Denied { path, wanted }
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, CredentialStoreError> {
        let url = format!("{}/v1/{path}", self.store.address);
        self.http
            .send_checked(method, &url, body.is_none(), |mut request| {
                if let Some(token) = &self.token {
                    request = request.header("X-Vault-Token", token.expose());
                }
                if let Some(namespace) = &self.store.namespace {
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
                CheckedError::Transport(TransportError::Unreachable(reason)) => {
                    CredentialStoreError::Unreachable { address: self.store.address.clone(), reason: reason.to_owned() }
                }
                CheckedError::Transport(err @ TransportError::TooLarge) => {
                    CredentialStoreError::Unexpected { what: err.to_string() }
                }
                CheckedError::Refused(refusal) => {
                    CredentialStoreError::Refused { address: self.store.address.clone(), refusal }
                }
            })
    }

    /// The answer's JSON when it is a 200; a sealed or uninitialised store as such.
    fn read(&self, answer: &Answer) -> Result<Value, CredentialStoreError> {
        let address = || self.store.address.clone();
        match answer.status {
            StatusCode::OK => answer.json().map_err(|what| CredentialStoreError::Unexpected { what }),
            StatusCode::SERVICE_UNAVAILABLE => Err(CredentialStoreError::Sealed { address: address() }),
            StatusCode::NOT_IMPLEMENTED => Err(CredentialStoreError::NotInitialized { address: address() }),
            status => Err(CredentialStoreError::Unexpected {
                what: format!("HTTP {} {}", status.as_u16(), first_error(answer)),
            }),
        }
    }

    /// `<mount>/data/<path>`, as people see it in messages and policies.
    fn data_path(&self, path: &str) -> String {
        format!("{}/data/{path}", self.store.mount)
    }

    /// The KV v2 secret at `path` under the mount: its newest version, or `version`.
    async fn read_secret(&self, path: &str, version: Option<u64>) -> Result<KvSecret, CredentialStoreError> {
        let shown = self.data_path(path);
        let asked = match version {
            Some(version) => format!("{shown}?version={version}"),
            None => shown.clone(),
        };
        let answer = self.call(Method::GET, &asked, None).await?;
        match answer.status {
            StatusCode::NOT_FOUND => return Err(CredentialStoreError::SecretMissing { path: shown }),
            StatusCode::FORBIDDEN => return Err(self.refusal(shown, "read").await),
            _ => {}
        }
        let mut body = self.read(&answer)?;
        let version = body["data"]["metadata"]["version"].as_u64();
        match (body["data"]["data"].take(), version) {
            (Value::Object(data), Some(version)) => Ok(KvSecret { path: shown, data, version }),
            // A deleted (not destroyed) newest version reads as null data.
            (Value::Null, _) => Err(CredentialStoreError::SecretMissing { path: shown }),
            _ => Err(CredentialStoreError::Unexpected { what: format!("a KV v2 read of {shown} without data") }),
        }
    }

    /// Writes a new version of the secret at `path` with check-and-set: `cas` 0 creates
    /// it only if absent, N only if N is still its newest version. Returns the new version.
    async fn write_secret(
        &self,
        path: &str,
        data: &serde_json::Map<String, Value>,
        cas: u64,
    ) -> Result<u64, CredentialStoreError> {
        let shown = self.data_path(path);
        let mut body = serde_json::json!({ "options": { "cas": cas }, "data": data });
        let answer = self.call(Method::POST, &shown, Some(&body)).await;
        zeroize_text(&mut body);
        let answer = answer?;
        match answer.status {
            StatusCode::FORBIDDEN => return Err(self.refusal(shown, "write").await),
            // Vault answers a check-and-set mismatch with 400 and these words.
            StatusCode::BAD_REQUEST if first_error(&answer).contains("check-and-set") => {
                return Err(CredentialStoreError::VersionConflict { path: shown, expected: cas });
            }
            _ => {}
        }
        let written = self.read(&answer)?;
        written["data"]["version"].as_u64().ok_or_else(|| CredentialStoreError::Unexpected {
            what: format!("a KV v2 write of {shown} without its version"),
        })
    }

    /// Removes every version of the secret at `path` (its metadata): Patchbay's own only.
    async fn destroy_secret(&self, path: &str) -> Result<(), CredentialStoreError> {
        let shown = format!("{}/metadata/{path}", self.store.mount);
        let answer = self.call(Method::DELETE, &shown, None).await?;
        match answer.status {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            StatusCode::FORBIDDEN => Err(self.refusal(shown, "delete").await),
            _ => self.read(&answer).map(drop),
        }
    }
}

/// A KV v2 secret as read: every key (a linked secret may hold more than the one
/// Patchbay uses, and a write must keep them) and the version, for check-and-set.
/// Its text values are zeroed on drop.
pub(crate) struct KvSecret {
    path: String,
    data: serde_json::Map<String, Value>,
    pub version: u64,
}

impl KvSecret {
    /// Where it was read, as `<mount>/data/<path>`.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn value(&self, key: &str) -> Result<Secret, CredentialStoreError> {
        match self.data.get(key) {
            Some(Value::String(value)) => Ok(Secret::new(value.as_str())),
            Some(_) => Err(CredentialStoreError::NotText { path: self.path.clone(), key: key.to_owned() }),
            None => Err(CredentialStoreError::KeyMissing {
                path: self.path.clone(),
                key: key.to_owned(),
                keys: self.data.keys().map(String::as_str).collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

impl Drop for KvSecret {
    fn drop(&mut self) {
        self.data.values_mut().for_each(zeroize_text);
    }
}

/// Zeroes every text in a JSON value that held secrets (a login, a secret's data).
fn zeroize_text(value: &mut Value) {
    match value {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(zeroize_text),
        Value::Object(entries) => entries.values_mut().for_each(zeroize_text),
        _ => {}
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

/// The store refused these credentials; its own words, never the credentials.
fn auth_failed(what: &'static str, answer: &Answer) -> CredentialStoreError {
    CredentialStoreError::AuthFailed { what, status: answer.status.as_u16(), message: first_error(answer) }
}

/// Signs in to check a store: unsealed first, then the token's lookup, or an AppRole
/// login. Returns the session, the seal status and the token's policies.
async fn sign_in<'a>(
    http: &'a HttpClient,
    store: &'a CredentialStore,
    credentials: &StoreCredentials,
) -> Result<(Session<'a>, Value, Value), CredentialStoreError> {
    let mut session = Session::new(http, store);
    let address = || store.address.clone();
    let seal = session.call(Method::GET, "sys/seal-status", None).await?;
    let seal = session.read(&seal)?;
    if seal["initialized"] == false {
        return Err(CredentialStoreError::NotInitialized { address: address() });
    }
    if seal["sealed"] == true {
        return Err(CredentialStoreError::Sealed { address: address() });
    }
    let policies = match credentials {
        StoreCredentials::Token(token) => {
            session.token = Some(token.clone());
            let answer = session.call(Method::GET, "auth/token/lookup-self", None).await?;
            if matches!(answer.status.as_u16(), 400 | 401 | 403) {
                return Err(auth_failed("token", &answer));
            }
            session.read(&answer)?["data"]["policies"].take()
        }
        StoreCredentials::AppRole { role_id, secret_id } => session.log_in(role_id, secret_id).await?,
    };
    Ok((session, seal, policies))
}

/// A session to read and write secrets, with nothing asked first: the kept token as it
/// is, or one AppRole login. A sealed store, or a token that stopped working, shows in
/// the answer to the call itself (503; a 403 then asked about), so a secret read is one
/// request rather than three.
async fn open<'a>(
    http: &'a HttpClient,
    store: &'a CredentialStore,
    credentials: &StoreCredentials,
) -> Result<Session<'a>, CredentialStoreError> {
    let mut session = Session::new(http, store);
    match credentials {
        StoreCredentials::Token(token) => {
            session.token = Some(token.clone());
            session.kept_token = true;
        }
        StoreCredentials::AppRole { role_id, secret_id } => {
            session.log_in(role_id, secret_id).await?;
        }
    }
    Ok(session)
}

/// Checks a store: signed in, and its mount KV v2. Returns what it found.
async fn check(
    http: &HttpClient,
    store: &CredentialStore,
    credentials: &StoreCredentials,
) -> Result<StoreCheck, CredentialStoreError> {
    let mount = store.mount.as_str();
    let (session, seal, policies) = sign_in(http, store, credentials).await?;
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

/// The store named `name`, by its id; `os` (the OS vault) is None.
pub(crate) fn store_id_by_name(db: &Db, name: &str) -> Result<Option<String>> {
    if name_key(name) == name_key(OS_STORE) {
        return Ok(None);
    }
    Ok(Some(rows::by_name(db, name)?.0.id))
}

pub(crate) mod rows {
    use super::*;

    pub(super) fn insert(db: &Db, store: &CredentialStore, role_id: Option<&str>) -> Result<()> {
        db.execute(
            "INSERT INTO credential_stores (id, name, name_key, kind, address, mount, namespace, auth, role_id, created_at,
                                            registered_by_api)
             VALUES (?1, ?2, ?3, 'vault', ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                store.id,
                store.name,
                name_key(&store.name),
                store.address,
                store.mount,
                store.namespace,
                store.auth,
                role_id,
                store.created_at,
                store.registered_by_api
            ],
        )?;
        Ok(())
    }

    const COLUMNS: &str = "id, name, kind, address, mount, namespace, auth, created_at, role_id, registered_by_api";

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
                registered_by_api: row.get(9)?,
            },
            row.get(8)?,
        ))
    }

    /// Every store in use: one being removed is neither listed nor used.
    pub(super) fn all(db: &Db) -> Result<Vec<CredentialStore>> {
        let mut statement = db.prepare(&format!(
            "SELECT {COLUMNS} FROM credential_stores WHERE lifecycle = 'active' ORDER BY name COLLATE NOCASE"
        ))?;
        let rows = statement.query_map([], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows.into_iter().map(|(store, _)| store).collect())
    }

    /// The store called `name` (as names compare), with its AppRole role ID.
    pub(super) fn by_name(db: &Db, name: &str) -> Result<(CredentialStore, Option<String>)> {
        db.query_row(
            &format!("SELECT {COLUMNS} FROM credential_stores WHERE name_key = ?1 AND lifecycle = 'active'"),
            [name_key(name)],
            from_row,
        )
        .optional()?
        .ok_or_else(|| Error::StoreNotFound(name.trim().to_owned()))
    }

    pub(super) fn by_id(db: &Db, id: &str) -> Result<(CredentialStore, Option<String>)> {
        db.query_row(
            &format!("SELECT {COLUMNS} FROM credential_stores WHERE id = ?1 AND lifecycle = 'active'"),
            [id],
            from_row,
        )
        .optional()?
        .ok_or_else(|| Error::NotFound { what: "credential store", id: id.to_owned() })
    }

    /// How many credential assets the store keeps or is linked to.
    pub(super) fn assets_in(db: &Db, id: &str) -> Result<u32> {
        Ok(db.query_row("SELECT count(*) FROM assets WHERE store_id = ?1", [id], |row| row.get(0))?)
    }

    /// The folders that name the store as their default.
    pub(super) fn default_of(db: &Db, id: &str) -> Result<Vec<i64>> {
        let mut statement = db.prepare("SELECT id FROM folders WHERE default_store = ?1")?;
        Ok(statement.query_map([id], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?)
    }

    /// The name of the store being removed with this id.
    pub(crate) fn removing_name(db: &Db, id: &str) -> Result<Option<String>> {
        Ok(db
            .query_row("SELECT name FROM credential_stores WHERE id = ?1 AND lifecycle = 'deleting'", [id], |row| {
                row.get(0)
            })
            .optional()?)
    }

    /// The id and owner of the store called `name` when its removal has begun.
    pub(super) fn removing_by_name(db: &Db, name: &str) -> Result<Option<(String, Option<String>)>> {
        Ok(db
            .query_row(
                "SELECT id, owner FROM credential_stores WHERE name_key = ?1 AND lifecycle = 'deleting'",
                [name_key(name)],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?)
    }

    /// The name of the store that reads the same as `name`, one being removed included
    /// (its name is not free until it is gone).
    pub(super) fn name_taken(db: &Db, name: &str) -> Result<Option<String>> {
        Ok(db
            .query_row("SELECT name FROM credential_stores WHERE name_key = ?1", [name_key(name)], |row| row.get(0))
            .optional()?)
    }
}

impl Patchbay {
    /// Registers a store after checking it; its credentials go to the OS vault first, so
    /// a row never names credentials that are not there.
    pub async fn add_store(&self, new: NewStore) -> Result<CredentialStore> {
        let name = clean_name("name", &new.name)?;
        if name_key(&name) == name_key(OS_STORE) {
            return Err(Error::invalid("name", format!("'{OS_STORE}' stands for the OS vault; choose another name")));
        }
        let address = new.address.trim().trim_end_matches('/').to_owned();
        // Before anything is stored or sent; names are checked again on each address.
        self.config
            .destinations()
            .check_url(&address)
            .map_err(|refusal| Error::invalid("address", refusal.explain("address", &address)))?;
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
            registered_by_api: self.config.reach == crate::destination::Reach::Served,
        };
        check(self.services.store_client(&store), &store, &new.credentials).await?;
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

    /// Signs in to the store with this id, with the credentials kept for it, and hands
    /// the session to `work`.
    async fn with_session<T>(
        &self,
        store_id: &str,
        work: impl AsyncFnOnce(&Session<'_>) -> Result<T, CredentialStoreError>,
    ) -> Result<T> {
        let (store, role_id) = rows::by_id(&self.store.conn(), store_id)?;
        let credentials = self.credentials_of(&store, role_id).await?;
        let session = open(self.services.store_client(&store), &store, &credentials).await?;
        Ok(work(&session).await?)
    }

    /// The KV v2 secret at `path` in the store with this id, read now: its newest
    /// version, or `version` (KV v2 keeps the older ones).
    pub(crate) async fn read_store_secret(&self, store_id: &str, path: &str, version: Option<u64>) -> Result<KvSecret> {
        self.with_session(store_id, async |session| session.read_secret(path, version).await).await
    }

    /// `key` of the secret at `path` in the store with this id, read now (newest, or
    /// `version`), with the version read.
    pub(crate) async fn read_store_key(
        &self,
        store_id: &str,
        path: &str,
        key: &str,
        version: Option<u64>,
    ) -> Result<(Secret, u64)> {
        let secret = self.read_store_secret(store_id, path, version).await?;
        Ok((secret.value(key)?, secret.version))
    }

    /// Sets `key` of the secret at `path` in the store with this id, with check-and-set:
    /// `cas` 0 makes a new secret (refused if one is there); N writes only over version
    /// N, keeping the secret's other keys. Returns the new version.
    pub(crate) async fn write_store_key(
        &self,
        store_id: &str,
        path: &str,
        key: &str,
        value: &Secret,
        cas: u64,
    ) -> Result<u64> {
        self.with_session(store_id, async |session| {
            let mut data = serde_json::Map::new();
            if cas > 0 {
                let current = session.read_secret(path, None).await?;
                if current.version != cas {
                    return Err(CredentialStoreError::VersionConflict { path: current.path.clone(), expected: cas });
                }
                data = current.data.clone();
            }
            data.insert(key.to_owned(), Value::String(value.expose().to_owned()));
            let written = session.write_secret(path, &data, cas).await;
            data.values_mut().for_each(zeroize_text);
            written
        })
        .await
    }

    /// Removes every version of the secret at `path` in the store with this id.
    pub(crate) async fn destroy_store_secret(&self, store_id: &str, path: &str) -> Result<()> {
        self.with_session(store_id, async |session| session.destroy_secret(path).await).await
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
        // A store removed meanwhile is named as asked for: never by its id (a read of its
        // row or credentials that found them gone), nor as a broken constraint.
        let removed = |db: &Db| match rows::by_id(db, &store_row.id) {
            Ok(_) => Ok(None),
            Err(Error::NotFound { .. }) => Ok(Some(Error::StoreNotFound(store_row.name.clone()))),
            Err(err) => Err(err),
        };
        if let Err(err) = self.read_store_key(&store_row.id, &path, key, None).await {
            return Err(removed(&self.store.conn())?.unwrap_or(err));
        }
        let id = Uuid::new_v4().to_string();
        let folder_id = self.store.write(|tx| {
            if let Some(gone) = removed(tx)? {
                return Err(gone);
            }
            let folder_id = crate::folders::resolve(tx, folder)?;
            crate::assets::ensure_name_free(tx, folder_id, &name)?;
            crate::assets::insert_linked(tx, &id, folder_id, &name, &store_row.id, &path, key)?;
            Ok(folder_id)
        })?;
        crate::assets::one(&self.store.conn(), folder_id, id)
    }

    /// Where the folder's new credential assets are kept.
    pub fn folder_store(&self, folder: &str) -> Result<FolderStore> {
        let conn = self.store.conn();
        let folder_id = crate::folders::resolve(&conn, folder)?;
        let chosen = crate::folders::chosen_store(&conn, folder_id)?;
        let store = match chosen.as_ref().map(|(_, store)| store.as_str()) {
            None | Some(crate::folders::OS_DEFAULT) => OS_STORE.to_owned(),
            Some(id) => rows::by_id(&conn, id)?.0.name,
        };
        Ok(FolderStore {
            folder: crate::folders::path_of(&conn, folder_id)?,
            store,
            chosen_in: chosen.map(|(id, _)| crate::folders::path_of(&conn, id)).transpose()?,
        })
    }

    /// Names the store of the folder's new credential assets: a registered store, `os`
    /// (the OS vault), or None to go as its parent folder. Assets already made stay put.
    pub fn set_folder_store(&self, folder: &str, store: Option<&str>) -> Result<FolderStore> {
        self.store.write(|tx| {
            // Looked up under the write lock: a store being removed is not chosen.
            let chosen = match store {
                None => None,
                Some(name) => {
                    Some(store_id_by_name(tx, name)?.unwrap_or_else(|| crate::folders::OS_DEFAULT.to_owned()))
                }
            };
            let folder_id = crate::folders::resolve(tx, folder)?;
            crate::folders::set_default_store(tx, folder_id, chosen.as_deref())
        })?;
        self.folder_store(folder)
    }

    /// Checks a registered store again, with the credentials kept for it.
    pub async fn test_store(&self, name: &str) -> Result<StoreCheck> {
        let (store, role_id) = rows::by_name(&self.store.conn(), name)?;
        let credentials = self.credentials_of(&store, role_id).await?;
        Ok(check(self.services.store_client(&store), &store, &credentials).await?)
    }

    /// Whether this core's repair finished the removal of the store called `name` (told
    /// once: a second removal of that name finds nothing).
    fn take_removed_by_repair(&self, name: &str) -> bool {
        let mut removed = self.stores_removed_by_repair.lock().unwrap_or_else(|e| e.into_inner());
        let found = removed.iter().position(|key| *key == name_key(name));
        found.map(|at| removed.swap_remove(at)).is_some()
    }

    /// Forgets a store and its credentials (the secrets in it stay where they are);
    /// refused while credential assets are linked to it. Journaled like deleting a
    /// connection: the row is marked `deleting` (hidden and unusable from then on), the
    /// credentials leave the OS vault, then the row goes. A removal cut short (killed,
    /// or the OS vault gave up) is finished by the next `remove_store` of that name, or
    /// by repair once its process is gone.
    pub async fn remove_store(&self, name: &str) -> Result<()> {
        let removal = self.store.write(|tx| {
            // A removal cut short is taken up again: this core's own, or one whose process
            // is gone; a live process's is never touched.
            if let Some((id, owner)) = rows::removing_by_name(tx, name)? {
                let live_elsewhere = owner.as_deref().is_some_and(|owner| {
                    owner != self.owner.id() && !crate::owner::is_gone(&self.config.data_dir, Some(owner))
                });
                if live_elsewhere {
                    return Err(Error::invalid(
                        "name",
                        format!("credential store '{}' is being removed by another Patchbay process; try again when it is done", name.trim()),
                    ));
                }
                return Ok(Some((crate::journal::store_removal(&id), owner)));
            }
            let store = match rows::by_name(tx, name) {
                // This core's repair just finished that very removal (the CLI repairs
                // before each command): the retry is done, not "not found".
                Err(Error::StoreNotFound(_)) if self.take_removed_by_repair(name) => return Ok(None),
                found => found?.0,
            };
            let assets = rows::assets_in(tx, &store.id)?;
            if assets > 0 {
                return Err(Error::invalid(
                    "name",
                    format!(
                        "credential store '{}' keeps or is linked to {assets} credential assets; delete them first",
                        store.name
                    ),
                ));
            }
            let folders = rows::default_of(tx, &store.id)?
                .into_iter()
                .map(|folder| crate::folders::path_of(tx, folder))
                .collect::<Result<Vec<_>>>()?;
            if !folders.is_empty() {
                return Err(Error::invalid(
                    "name",
                    format!(
                        "credential store '{}' is where new credential assets of {} go; choose another store for them first",
                        store.name,
                        folders.join(", ")
                    ),
                ));
            }
            let owner = self.owner.id();
            Ok(Some((crate::journal::mark_store_removing(tx, &store.id, owner)?, Some(owner.to_owned()))))
        })?;
        match removal {
            Some((doomed, owner)) => self.finish_rows(std::slice::from_ref(&doomed), owner.as_deref()).await,
            None => Ok(()),
        }
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
