//! Connections: their shape, the local checks before Connect, and their SQL.

use std::collections::HashMap;

use rusqlite::{Connection as Db, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::assets;
use crate::catalog::{self, AuthMethod};
use crate::connectors::TwilioAccount;
use crate::error::{Error, Result};
use crate::fields::{Details, FieldValue, FieldValues};
use crate::folders;
use crate::journal::Lifecycle;
use crate::search_index::SearchIndex;
use crate::secret::Secret;
use crate::store::text_column_enum;
use crate::text::{fold, name_key};
use crate::vault::VaultKey;

pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct Connection {
    pub id: String,
    /// Path of the folder that holds it.
    pub folder: String,
    pub connector: String,
    /// Which of the connector's auth methods it uses (`auth_methods[].key` of its definition).
    pub auth_method: String,
    pub name: String,
    /// The non-secret values of its auth method's fields, normalised.
    pub fields: FieldValues,
    /// What the service said about the account at the last successful check.
    pub details: Details,
    pub auth: AuthRef,
    /// Whether its token can be rotated from the connection: its own (an asset's is
    /// rotated from the asset), of an auth method that offers rotation, and live.
    pub rotatable: bool,
    pub status: ConnectionStatus,
    pub last_checked_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Set while polling for its events fails (API instances with events on).
    pub events_failing: Option<PollFailure>,
    /// Only in the answer to the save that was its credential asset's first use: where
    /// the asset may go from now on (its owner can change that in its Destinations).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub asset_first_use: Option<assets::Destination>,
}

impl Connection {
    /// Its connector's summary columns (the Connections table's): each label with the
    /// value shown, a toggle as yes or no.
    pub fn summary(&self) -> Vec<(&'static str, String)> {
        let Some(connector) = catalog::connector(&self.connector) else { return Vec::new() };
        connector
            .columns
            .iter()
            .map(|column| {
                let value = match (self.fields.get(&column.key), self.details.get(&column.key)) {
                    (Some(FieldValue::Text(text)), _) => text.clone(),
                    (Some(FieldValue::Toggle(on)), _) => if *on { "yes" } else { "no" }.to_owned(),
                    (None, Some(detail)) => detail.clone(),
                    (None, None) => column.empty.clone().unwrap_or_default(),
                };
                (column.label.as_str(), value)
            })
            .collect()
    }
}

/// Why the last poll for a connection's events failed (events on, last poll failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct PollFailure {
    pub code: String,
    pub message: String,
    /// When that poll was tried.
    pub at: String,
}

/// Where the connection's secret comes from. Never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export)]
pub enum AuthRef {
    /// Its own secret, in the vault under the connection's id.
    Own,
    /// A credential asset, resolved from the vault each time the connection is used.
    Asset { name: String, folder: String },
    /// The asset it referred to was deleted with `--force`.
    MissingAsset,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "state", rename_all = "snake_case")]
#[ts(export)]
pub enum ConnectionStatus {
    Connected,
    Failed { code: String, message: String },
    NotChecked,
}

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct ConnectionPage {
    /// How many connections match in all, beyond this page.
    pub total: u32,
    pub items: Vec<Connection>,
}

/// What Add connection → connector → Connect submits.
#[derive(Debug)]
pub struct NewConnection {
    pub folder: String,
    /// The connector's key in the catalog.
    pub connector: String,
    /// One of its auth methods; None: the recommended one.
    pub auth_method: Option<String>,
    /// None: the connector's default name, numbered when taken.
    pub name: Option<String>,
    /// The non-secret fields, by name; secrets go in `secret`.
    pub values: FieldValues,
    /// The method's secret, when it has a secret field.
    pub secret: Option<SecretSource>,
}

/// What Edit submits: every field again; `secret: None` keeps the current secret.
#[derive(Debug)]
pub struct ConnectionChanges {
    pub name: String,
    /// A connection keeps its auth method: when given, it must be the one it has.
    pub auth_method: Option<String>,
    pub values: FieldValues,
    pub secret: Option<SecretSource>,
}

/// What the window's connector form submits: the fields it rendered, and the secret
/// typed or the credential asset chosen instead (neither on Edit: keep it).
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(export)]
pub struct ConnectionForm {
    pub connector: String,
    pub auth_method: String,
    pub name: Option<String>,
    pub values: FieldValues,
    #[ts(type = "string | null")]
    pub secret: Option<Secret>,
    pub secret_asset: Option<String>,
}

impl ConnectionForm {
    fn secret_source(&mut self) -> Option<SecretSource> {
        match (self.secret.take(), self.secret_asset.take()) {
            (_, Some(asset)) => Some(SecretSource::Asset(asset)),
            (Some(secret), None) => Some(SecretSource::Value(secret)),
            (None, None) => None,
        }
    }

    pub fn into_new(mut self, folder: String) -> NewConnection {
        NewConnection {
            folder,
            secret: self.secret_source(),
            name: self.name.filter(|name| !name.trim().is_empty()),
            connector: self.connector,
            auth_method: Some(self.auth_method),
            values: self.values,
        }
    }

    pub fn into_changes(mut self) -> ConnectionChanges {
        ConnectionChanges {
            secret: self.secret_source(),
            name: self.name.unwrap_or_default(),
            auth_method: Some(self.auth_method),
            values: self.values,
        }
    }
}

#[derive(Debug)]
pub enum SecretSource {
    /// Typed or piped in; kept in the vault under the new connection's id.
    Value(Secret),
    /// The name of a credential asset visible from the connection's folder.
    Asset(String),
}

#[derive(Debug, Clone, Default)]
pub struct ConnectionQuery {
    /// Only this folder's connections (not its sub-folders').
    pub folder: Option<String>,
    /// Case- and accent-insensitive substring of the name, a field's value or a detail.
    pub search: Option<String>,
    pub limit: Option<u32>,
    pub offset: u32,
}

text_column_enum! {
    /// Where a connection's secret is kept: its own vault entry, or a credential asset's.
    pub enum AuthKind {
        Own = "own",
        Asset = "asset",
    }
}

text_column_enum! {
    /// The stored outcome of the last check; `ConnectionStatus` is its view, with the reason.
    pub enum CheckState {
        Connected = "connected",
        Failed = "failed",
        NotChecked = "not_checked",
    }
}

/// A connection row as stored.
pub(crate) struct Stored {
    pub id: String,
    pub folder_id: i64,
    pub name: String,
    pub connector: String,
    pub auth_method: String,
    pub fields: FieldValues,
    pub details: Details,
    pub auth_kind: AuthKind,
    pub auth_asset_id: Option<String>,
    status: CheckState,
    status_code: Option<String>,
    status_message: Option<String>,
    last_checked_at: Option<String>,
    created_at: String,
    updated_at: String,
    events_failing: Option<PollFailure>,
}

impl Stored {
    /// Where the connection's secret is in the vault: its own entry or its asset's.
    pub(crate) fn secret_key(&self) -> Result<VaultKey> {
        match (self.auth_kind, &self.auth_asset_id) {
            (AuthKind::Own, _) => Ok(VaultKey::Connection(self.id.clone())),
            (_, Some(asset_id)) => Ok(VaultKey::Asset(asset_id.clone())),
            (_, None) => Err(Error::AssetDeleted { connection: self.name.clone() }),
        }
    }

    /// Its auth method's definition.
    pub(crate) fn method(&self) -> Result<&'static AuthMethod> {
        catalog::require(&self.connector)?.auth_method_or_default(Some(&self.auth_method))
    }
}

const COLUMNS: &str = "c.id, c.folder_id, c.name, c.connector, c.auth_method, c.fields, c.details, c.auth_kind,
    c.auth_asset_id, c.status, c.status_code, c.status_message, c.last_checked_at, c.created_at, c.updated_at,
    e.last_error_code, e.last_error_message, e.last_attempt_at";

/// What `COLUMNS` reads from: the row and its event cursor, if it has one (one row each).
const ROWS: &str = "connections c LEFT JOIN event_cursors e ON e.connection_id = c.id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Stored> {
    from_row_at(row, 0)
}

/// A row whose `COLUMNS` start at column `at`.
fn from_row_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Stored> {
    Ok(Stored {
        id: row.get(at)?,
        folder_id: row.get(at + 1)?,
        name: row.get(at + 2)?,
        connector: row.get(at + 3)?,
        auth_method: row.get(at + 4)?,
        fields: json_column(row, at + 5)?,
        details: json_column(row, at + 6)?,
        auth_kind: row.get(at + 7)?,
        auth_asset_id: row.get(at + 8)?,
        status: row.get(at + 9)?,
        status_code: row.get(at + 10)?,
        status_message: row.get(at + 11)?,
        last_checked_at: row.get(at + 12)?,
        created_at: row.get(at + 13)?,
        updated_at: row.get(at + 14)?,
        events_failing: match (row.get::<_, Option<String>>(at + 15)?, row.get(at + 16)?, row.get(at + 17)?) {
            (Some(code), Some(message), Some(at)) => Some(PollFailure { code, message, at }),
            _ => None,
        },
    })
}

/// A JSON text column, read into its type.
fn json_column<T: serde::de::DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text)
        .map_err(|err| rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(err)))
}

pub(crate) fn load(db: &Db, id: &str) -> Result<Stored> {
    db.query_row(
        &format!("SELECT {COLUMNS} FROM {ROWS} WHERE c.id = ?1 AND c.lifecycle = 'active'"),
        [id.trim()],
        from_row,
    )
    .optional()?
    .ok_or_else(|| Error::NotFound { what: "connection", id: id.to_owned() })
}

/// Turns stored rows into views, looking each folder and asset up once.
pub(crate) fn views(db: &Db, rows: Vec<Stored>) -> Result<Vec<Connection>> {
    let folder_paths = folders::paths_of(db, rows.iter().map(|row| row.folder_id))?;
    let mut asset_refs: HashMap<String, AuthRef> = HashMap::new();
    rows.into_iter()
        .map(|row| {
            let folder = folder_paths[&row.folder_id].clone();
            let auth = match (row.auth_kind, &row.auth_asset_id) {
                (AuthKind::Own, _) => AuthRef::Own,
                (_, None) => AuthRef::MissingAsset,
                (_, Some(asset_id)) => match asset_refs.get(asset_id) {
                    Some(auth) => auth.clone(),
                    None => {
                        let auth = match assets::describe(db, asset_id)? {
                            Some((name, folder)) => AuthRef::Asset { name, folder },
                            None => AuthRef::MissingAsset,
                        };
                        asset_refs.insert(asset_id.clone(), auth.clone());
                        auth
                    }
                },
            };
            let rotatable = row.auth_kind == AuthKind::Own
                && row.method().is_ok_and(|method| method.offers(catalog::Feature::TokenRotation))
                && !TwilioAccount::of(&row.fields).test_credentials;
            let status = match row.status {
                CheckState::Connected => ConnectionStatus::Connected,
                CheckState::Failed => ConnectionStatus::Failed {
                    code: row.status_code.unwrap_or_default(),
                    message: row.status_message.unwrap_or_default(),
                },
                CheckState::NotChecked => ConnectionStatus::NotChecked,
            };
            Ok(Connection {
                rotatable,
                id: row.id,
                folder,
                connector: row.connector,
                auth_method: row.auth_method,
                name: row.name,
                fields: row.fields,
                details: row.details,
                auth,
                status,
                last_checked_at: row.last_checked_at,
                created_at: row.created_at,
                updated_at: row.updated_at,
                events_failing: row.events_failing,
                asset_first_use: None,
            })
        })
        .collect()
}

pub(crate) fn view(db: &Db, row: Stored) -> Result<Connection> {
    Ok(views(db, vec![row])?.pop().expect("one row in, one view out"))
}

/// The active connections of a connector's auth method whose field `name` is `value`, by name.
pub(crate) fn with_field(db: &Db, connector: &str, method: &str, name: &str, value: &str) -> Result<Vec<Stored>> {
    let mut statement = db.prepare(&format!(
        "SELECT {COLUMNS} FROM {ROWS} WHERE c.connector = ?1 AND c.auth_method = ?2
             AND json_extract(c.fields, '$.' || ?3) = ?4 AND c.lifecycle = 'active' ORDER BY c.name"
    ))?;
    Ok(statement.query_map(params![connector, method, name, value], from_row)?.collect::<rusqlite::Result<_>>()?)
}

/// The connections that use a credential asset.
pub(crate) fn using_asset(db: &Db, asset_id: &str) -> Result<Vec<Stored>> {
    let mut statement = db.prepare(&format!("SELECT {COLUMNS} FROM {ROWS} WHERE c.auth_asset_id = ?1"))?;
    Ok(statement.query_map([asset_id], from_row)?.collect::<rusqlite::Result<_>>()?)
}

/// Refuses a name another connection of the folder has, or one that reads the same
/// (`except`: the one being edited).
pub(crate) fn ensure_name_free(db: &Db, folder: i64, name: &str, except: Option<&str>) -> Result<()> {
    let taken: Option<String> = db
        .query_row(
            "SELECT name FROM connections WHERE folder_id = ?1 AND name_key = ?2 AND id IS NOT ?3",
            params![folder, name_key(name), except],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(existing) = taken {
        return Err(Error::NameTaken {
            what: "connection",
            name: existing,
            place: format!("folder '{}'", folders::path_of(db, folder)?),
        });
    }
    Ok(())
}

/// `base`, or `base (2)`, `base (3)` … whichever the folder does not have yet.
pub(crate) fn free_name(db: &Db, folder: i64, base: &str) -> Result<String> {
    let numbered = (2..1000).map(|number| format!("{base} ({number})"));
    for candidate in std::iter::once(base.to_owned()).chain(numbered) {
        match ensure_name_free(db, folder, &candidate, None) {
            Err(Error::NameTaken { .. }) => continue,
            other => return other.map(|()| candidate),
        }
    }
    // A thousand of the same: say so rather than pick a stranger name.
    ensure_name_free(db, folder, base, None).map(|()| base.to_owned())
}

/// A connection's values as its service accepted them, for a new row or an edited one.
pub(crate) struct ValidatedRow<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub connector: &'a str,
    pub auth_method: &'a str,
    pub fields: &'a FieldValues,
    pub details: &'a Details,
    pub asset_id: Option<&'a str>,
    pub checked_at: &'a str,
}

/// With a secret of its own to write (`pending_owner`: who writes it) the new row starts
/// `pending`; with an asset, or no secret at all, it is complete at once.
pub(crate) fn insert(db: &Db, folder_id: i64, row: &ValidatedRow<'_>, pending_owner: Option<&str>) -> Result<()> {
    let auth_kind = if row.asset_id.is_some() { AuthKind::Asset } else { AuthKind::Own };
    let (lifecycle, owner) = match pending_owner {
        Some(owner) => (Lifecycle::Pending, Some(owner)),
        None => (Lifecycle::Active, None),
    };
    db.execute(
        "INSERT INTO connections (id, folder_id, connector, auth_method, name, fields, details, auth_kind,
             auth_asset_id, status, last_checked_at, lifecycle, owner, created_at, updated_at, search_text, name_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'connected', ?10, ?11, ?12, ?10, ?10, ?13, ?14)",
        params![
            row.id,
            folder_id,
            row.connector,
            row.auth_method,
            row.name,
            json(row.fields),
            json(row.details),
            auth_kind,
            row.asset_id,
            row.checked_at,
            lifecycle,
            owner,
            search_text(row.name, row.fields, row.details),
            name_key(row.name),
        ],
    )?;
    Ok(())
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("field values and details serialise")
}

/// What search looks in, folded: the name, the fields' text and the details.
pub(crate) fn search_text(name: &str, fields: &FieldValues, details: &Details) -> String {
    let texts = fields.values().filter_map(|value| match value {
        FieldValue::Text(text) => Some(text.as_str()),
        FieldValue::Toggle(_) => None,
    });
    let words: Vec<&str> = std::iter::once(name).chain(texts).chain(details.values().map(String::as_str)).collect();
    fold(&words.join(" "))
}

pub(crate) fn update(db: &Db, row: &ValidatedRow<'_>) -> Result<()> {
    let auth_kind = if row.asset_id.is_some() { AuthKind::Asset } else { AuthKind::Own };
    db.execute(
        "UPDATE connections SET name = ?2, fields = ?3, details = ?4, auth_kind = ?5, auth_asset_id = ?6,
             status = 'connected', status_code = NULL, status_message = NULL, last_checked_at = ?7, updated_at = ?7,
             search_text = ?8, name_key = ?9
         WHERE id = ?1",
        params![
            row.id,
            row.name,
            json(row.fields),
            json(row.details),
            auth_kind,
            row.asset_id,
            row.checked_at,
            search_text(row.name, row.fields, row.details),
            name_key(row.name),
        ],
    )?;
    Ok(())
}

pub(crate) fn rename(db: &Db, stored: &Stored, name: &str) -> Result<()> {
    db.execute(
        "UPDATE connections SET name = ?2, search_text = ?3, updated_at = ?4, name_key = ?5 WHERE id = ?1",
        params![
            stored.id,
            name,
            search_text(name, &stored.fields, &stored.details),
            crate::store::now(),
            name_key(name)
        ],
    )?;
    Ok(())
}

/// Records the outcome of a Connect or Test connection.
pub(crate) fn record_check(db: &Db, id: &str, outcome: std::result::Result<&Details, &Error>, at: &str) -> Result<()> {
    match outcome {
        Ok(details) => {
            let stored = load(db, id)?;
            db.execute(
                "UPDATE connections SET status = 'connected', status_code = NULL, status_message = NULL,
                     details = ?2, last_checked_at = ?3, updated_at = ?3, search_text = ?4
                 WHERE id = ?1",
                params![id, json(details), at, search_text(&stored.name, &stored.fields, details)],
            )
        }
        Err(err) => db.execute(
            "UPDATE connections SET status = 'failed', status_code = ?2, status_message = ?3, last_checked_at = ?4,
                 updated_at = ?4
             WHERE id = ?1",
            params![id, err.code(), err.to_string(), at],
        ),
    }?;
    Ok(())
}

/// One page of connections, by name: a folder's, or those matching a search.
pub(crate) fn query(db: &Db, index: &SearchIndex, query: &ConnectionQuery) -> Result<ConnectionPage> {
    let folder_id = query.folder.as_deref().map(|path| folders::resolve(db, path)).transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
    let needle = query.search.as_deref().map(|s| fold(s.trim())).filter(|s| !s.is_empty());

    let (total, rows) = match needle {
        Some(needle) => {
            let matches = index.search(db, &needle, folder_id, query.offset as usize, limit as usize)?;
            (matches.total, load_by_seq(db, &matches.page)?)
        }
        None => {
            // Two spellings rather than `?1 IS NULL OR …`, which would keep SQLite
            // from using the (folder_id, name) index for a folder's page.
            let filter = match folder_id {
                Some(_) => "WHERE c.folder_id = ?1 AND c.lifecycle = 'active'",
                None => "WHERE ?1 IS NULL AND c.lifecycle = 'active'",
            };
            let total = db
                .prepare_cached(&format!("SELECT count(*) FROM connections c {filter}"))
                .and_then(|mut s| s.query_row([folder_id], |row| row.get(0)))?;
            let rows = db
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM {ROWS} {filter} ORDER BY c.name COLLATE NOCASE, c.id LIMIT ?2 OFFSET ?3"
                ))
                .and_then(|mut s| s.query_map(params![folder_id, limit, query.offset], from_row)?.collect())?;
            (total, rows)
        }
    };
    Ok(ConnectionPage { total, items: views(db, rows)? })
}

/// The rows with these `seq`s, in the order given: one query for the page.
fn load_by_seq(db: &Db, seqs: &[i64]) -> Result<Vec<Stored>> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; seqs.len()].join(", ");
    let mut statement = db.prepare(&format!("SELECT c.seq, {COLUMNS} FROM {ROWS} WHERE c.seq IN ({placeholders})"))?;
    let mut found: HashMap<i64, Stored> = statement
        .query_map(rusqlite::params_from_iter(seqs), |row| Ok((row.get(0)?, from_row_at(row, 1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(seqs.iter().filter_map(|seq| found.remove(seq)).collect())
}
