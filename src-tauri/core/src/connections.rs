//! Connections: their shape, the local checks before Connect, and their SQL.

use std::collections::HashMap;

use rusqlite::{Connection as Db, OptionalExtension, Row, params};
use serde::Serialize;
use ts_rs::TS;

use crate::assets;
use crate::catalog;
use crate::error::{Error, Result};
use crate::folders;
use crate::journal::Lifecycle;
use crate::search_index::SearchIndex;
use crate::secret::Secret;
use crate::store::text_column_enum;
use crate::text::{fold, name_key};
use crate::twilio::VerifiedAccount;
use crate::vault::VaultKey;

pub const TWILIO: &str = "twilio";
/// The one auth method Twilio connections are stored with so far (connectors/twilio.json).
pub(crate) const TWILIO_AUTH_TOKEN: &str = "auth_token";
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
    pub account_sid: String,
    /// None for an account-level connection (every number of the account).
    pub phone_number: Option<String>,
    pub test_credentials: bool,
    pub auth: AuthRef,
    pub status: ConnectionStatus,
    pub account_friendly_name: Option<String>,
    /// `Trial` or `Full` for live credentials.
    pub account_type: Option<String>,
    pub last_checked_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Set while polling for its events fails (API instances with events on).
    pub events_failing: Option<PollFailure>,
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

/// Where the connection's Auth Token comes from. Never the token itself.
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

/// What Add connection → Twilio → Connect submits.
#[derive(Debug)]
pub struct NewTwilioConnection {
    pub folder: String,
    pub name: Option<String>,
    /// None or blank: an account-level connection.
    pub phone_number: Option<String>,
    pub account_sid: String,
    pub test_credentials: bool,
    pub auth_token: TokenSource,
}

/// What Edit submits: every field again; `auth_token: None` keeps the current token.
#[derive(Debug)]
pub struct TwilioChanges {
    pub name: String,
    pub phone_number: Option<String>,
    pub account_sid: String,
    pub test_credentials: bool,
    pub auth_token: Option<TokenSource>,
}

#[derive(Debug)]
pub enum TokenSource {
    /// Typed or piped in; kept in the vault under the new connection's id.
    Value(Secret),
    /// The name of a credential asset visible from the connection's folder.
    Asset(String),
}

#[derive(Debug, Clone, Default)]
pub struct ConnectionQuery {
    /// Only this folder's connections (not its sub-folders').
    pub folder: Option<String>,
    /// Case- and accent-insensitive substring of name, phone, SID or account name.
    pub search: Option<String>,
    pub limit: Option<u32>,
    pub offset: u32,
}

/// E.164 from what people type: spaces, dashes, dots and brackets go; a leading `+`
/// is required (a national number is ambiguous). The country code must exist and the
/// number's length fit that country (libphonenumber's metadata, via `phonenumber`).
/// Whether the number is in service is Twilio's to say: any possible length passes.
pub fn normalize_phone(raw: &str) -> Result<String> {
    let phone: String = raw.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}')).collect();
    let field = catalog::field(TWILIO, TWILIO_AUTH_TOKEN, "phone_number");
    if !phone.starts_with('+') {
        return Err(Error::invalid(
            "phone_number",
            "the phone number must start with + and the country code, e.g. +15551230001",
        ));
    }
    if !field.accepts(&phone) {
        return Err(Error::invalid(
            "phone_number",
            format!("the phone number must be {}", field.format_hint.as_deref().unwrap_or("in E.164 format")),
        ));
    }
    check_phone_length(&phone)?;
    Ok(phone)
}

fn check_phone_length(phone: &str) -> Result<()> {
    use phonenumber::ParseError;
    let invalid = |why: String| Error::invalid("phone_number", why);
    let parsed = phonenumber::parse(None, phone).map_err(|err| match err {
        ParseError::InvalidCountryCode => {
            invalid(format!("{phone} does not start with a country code that exists; check the digits after +"))
        }
        ParseError::TooLong => invalid(format!("{phone} is too long for a phone number")),
        _ => invalid(format!("{phone} is too short for a phone number")),
    })?;
    let code = parsed.code().value();
    let national = parsed.national().to_string().len() as u16;
    let countries = phonenumber::metadata::DATABASE.by_code(&code).unwrap_or_default();
    let fits = countries.iter().any(|country| {
        // The metadata keeps the lengths per kind of number (fixed line, mobile, toll free …).
        let kinds = country.descriptors();
        [kinds.fixed_line(), kinds.mobile(), kinds.toll_free(), kinds.premium_rate(), kinds.shared_cost()]
            .into_iter()
            .chain([kinds.personal_number(), kinds.voip(), kinds.pager(), kinds.uan(), kinds.voicemail()])
            .flatten()
            .chain([kinds.general()])
            .any(|kind| kind.possible_length().contains(&national))
    });
    if !fits {
        let country = countries.first().map(|country| country.id()).unwrap_or("its country");
        return Err(invalid(format!(
            "{phone} has {national} digits after the country code +{code}, which no number in {country} has; check for a missing or extra digit"
        )));
    }
    Ok(())
}

/// A phone number as typed, or None when none was given (blank counts as none).
pub fn normalize_optional_phone(raw: Option<&str>) -> Result<Option<String>> {
    raw.filter(|raw| !raw.trim().is_empty()).map(normalize_phone).transpose()
}

pub fn check_account_sid(raw: &str) -> Result<String> {
    let sid = raw.trim();
    check_format("account_sid", sid, "Account SID")?;
    Ok(sid.to_owned())
}

pub(crate) fn check_auth_token(token: &Secret, source: &str) -> Result<()> {
    check_format("auth_token", token.expose(), source)
}

fn check_format(field_name: &'static str, value: &str, what: &str) -> Result<()> {
    let field = catalog::field(TWILIO, TWILIO_AUTH_TOKEN, field_name);
    if field.accepts(value) {
        return Ok(());
    }
    let hint = field.format_hint.as_deref().unwrap_or("in the expected format");
    // The value is never echoed: for a token it is the secret itself.
    Err(Error::invalid(field_name, format!("the {what} must be {hint}")))
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
    pub account_sid: String,
    pub phone_number: String,
    pub test_credentials: bool,
    pub auth_kind: AuthKind,
    pub auth_asset_id: Option<String>,
    status: CheckState,
    status_code: Option<String>,
    status_message: Option<String>,
    pub account_friendly_name: Option<String>,
    account_type: Option<String>,
    last_checked_at: Option<String>,
    created_at: String,
    updated_at: String,
    connector: String,
    auth_method: String,
    events_failing: Option<PollFailure>,
}

impl Stored {
    /// The connection's number; None when it is account-level (stored as "").
    pub(crate) fn phone(&self) -> Option<&str> {
        Some(self.phone_number.as_str()).filter(|phone| !phone.is_empty())
    }

    /// Where the connection's Auth Token is in the vault: its own entry or its asset's.
    pub(crate) fn token_key(&self) -> Result<VaultKey> {
        match (self.auth_kind, &self.auth_asset_id) {
            (AuthKind::Own, _) => Ok(VaultKey::Connection(self.id.clone())),
            (_, Some(asset_id)) => Ok(VaultKey::Asset(asset_id.clone())),
            (_, None) => Err(Error::AssetDeleted { connection: self.name.clone() }),
        }
    }
}

const COLUMNS: &str = "c.id, c.folder_id, c.name, c.account_sid, c.phone_number, c.test_credentials, c.auth_kind,
    c.auth_asset_id, c.status, c.status_code, c.status_message, c.account_friendly_name, c.account_type,
    c.last_checked_at, c.created_at, c.updated_at, c.connector,
    e.last_error_code, e.last_error_message, e.last_attempt_at, c.auth_method";

/// What `COLUMNS` reads from: the row and its event cursor, if it has one (one row each).
const ROWS: &str = "connections c LEFT JOIN event_cursors e ON e.connection_id = c.id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        id: row.get(0)?,
        folder_id: row.get(1)?,
        name: row.get(2)?,
        account_sid: row.get(3)?,
        phone_number: row.get(4)?,
        test_credentials: row.get(5)?,
        auth_kind: row.get(6)?,
        auth_asset_id: row.get(7)?,
        status: row.get(8)?,
        status_code: row.get(9)?,
        status_message: row.get(10)?,
        account_friendly_name: row.get(11)?,
        account_type: row.get(12)?,
        last_checked_at: row.get(13)?,
        created_at: row.get(14)?,
        updated_at: row.get(15)?,
        connector: row.get(16)?,
        events_failing: match (row.get::<_, Option<String>>(17)?, row.get(18)?, row.get(19)?) {
            (Some(code), Some(message), Some(at)) => Some(PollFailure { code, message, at }),
            _ => None,
        },
        auth_method: row.get(20)?,
    })
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
    let mut folder_paths: HashMap<i64, String> = HashMap::new();
    let mut asset_refs: HashMap<String, AuthRef> = HashMap::new();
    rows.into_iter()
        .map(|row| {
            let folder = match folder_paths.get(&row.folder_id) {
                Some(path) => path.clone(),
                None => {
                    let path = folders::path_of(db, row.folder_id)?;
                    folder_paths.insert(row.folder_id, path.clone());
                    path
                }
            };
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
            let status = match row.status {
                CheckState::Connected => ConnectionStatus::Connected,
                CheckState::Failed => ConnectionStatus::Failed {
                    code: row.status_code.unwrap_or_default(),
                    message: row.status_message.unwrap_or_default(),
                },
                CheckState::NotChecked => ConnectionStatus::NotChecked,
            };
            Ok(Connection {
                id: row.id,
                folder,
                connector: row.connector,
                auth_method: row.auth_method,
                name: row.name,
                phone_number: Some(row.phone_number).filter(|phone| !phone.is_empty()),
                account_sid: row.account_sid,
                test_credentials: row.test_credentials,
                auth,
                status,
                account_friendly_name: row.account_friendly_name,
                account_type: row.account_type,
                last_checked_at: row.last_checked_at,
                created_at: row.created_at,
                updated_at: row.updated_at,
                events_failing: row.events_failing,
            })
        })
        .collect()
}

pub(crate) fn view(db: &Db, row: Stored) -> Result<Connection> {
    Ok(views(db, vec![row])?.pop().expect("one row in, one view out"))
}

/// The accounts (SID, and whether with Test Credentials) of the connections using an asset.
pub(crate) fn accounts_using_asset(db: &Db, asset_id: &str) -> Result<Vec<(String, bool)>> {
    let mut statement =
        db.prepare("SELECT DISTINCT account_sid, test_credentials FROM connections WHERE auth_asset_id = ?1")?;
    Ok(statement.query_map([asset_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?)
}

/// Ids of an account's connections with live credentials, by name.
pub(crate) fn live_ids_of_account(db: &Db, account_sid: &str) -> Result<Vec<String>> {
    let mut statement = db.prepare(
        "SELECT id FROM connections WHERE account_sid = ?1 AND test_credentials = 0 AND lifecycle = 'active' ORDER BY name",
    )?;
    Ok(statement.query_map([account_sid], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?)
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

/// A connection's values as Twilio accepted them, for a new row or an edited one.
pub(crate) struct ValidatedRow<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub account_sid: &'a str,
    /// "" for an account-level connection.
    pub phone_number: &'a str,
    pub test_credentials: bool,
    pub asset_id: Option<&'a str>,
    pub account: &'a VerifiedAccount,
    pub checked_at: &'a str,
}

/// With its own secret the new row starts `pending`, owned by `owner` (the vault write
/// follows); with an asset it is complete at once.
pub(crate) fn insert(db: &Db, folder_id: i64, row: &ValidatedRow<'_>, owner: &str) -> Result<()> {
    let (auth_kind, lifecycle, owner) = match row.asset_id {
        Some(_) => (AuthKind::Asset, Lifecycle::Active, None),
        None => (AuthKind::Own, Lifecycle::Pending, Some(owner)),
    };
    let search_text = search_text(row.name, row.phone_number, row.account_sid, row.account.friendly_name.as_deref());
    db.execute(
        "INSERT INTO connections (id, folder_id, connector, name, account_sid, phone_number, test_credentials,
             auth_kind, auth_asset_id, status, account_friendly_name, account_type, last_checked_at, lifecycle,
             owner, created_at, updated_at, search_text, name_key, auth_method)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'connected', ?10, ?11, ?12, ?13, ?15, ?12, ?12, ?14, ?16, ?17)",
        params![
            row.id,
            folder_id,
            TWILIO,
            row.name,
            row.account_sid,
            row.phone_number,
            row.test_credentials,
            auth_kind,
            row.asset_id,
            row.account.friendly_name,
            row.account.account_type,
            row.checked_at,
            lifecycle,
            search_text,
            owner,
            name_key(row.name),
            TWILIO_AUTH_TOKEN,
        ],
    )?;
    Ok(())
}

pub(crate) fn search_text(name: &str, phone: &str, sid: &str, friendly_name: Option<&str>) -> String {
    fold(&format!("{name} {phone} {sid} {}", friendly_name.unwrap_or_default()))
}

pub(crate) fn update(db: &Db, row: &ValidatedRow<'_>) -> Result<()> {
    let auth_kind = if row.asset_id.is_some() { AuthKind::Asset } else { AuthKind::Own };
    let search_text = search_text(row.name, row.phone_number, row.account_sid, row.account.friendly_name.as_deref());
    db.execute(
        "UPDATE connections SET name = ?2, account_sid = ?3, phone_number = ?4, test_credentials = ?5, auth_kind = ?6,
             auth_asset_id = ?7, status = 'connected', status_code = NULL, status_message = NULL,
             account_friendly_name = ?8, account_type = ?9, last_checked_at = ?10, updated_at = ?10, search_text = ?11,
             name_key = ?12
         WHERE id = ?1",
        params![
            row.id,
            row.name,
            row.account_sid,
            row.phone_number,
            row.test_credentials,
            auth_kind,
            row.asset_id,
            row.account.friendly_name,
            row.account.account_type,
            row.checked_at,
            search_text,
            name_key(row.name),
        ],
    )?;
    Ok(())
}

pub(crate) fn rename(db: &Db, stored: &Stored, name: &str) -> Result<()> {
    let search_text =
        search_text(name, &stored.phone_number, &stored.account_sid, stored.account_friendly_name.as_deref());
    db.execute(
        "UPDATE connections SET name = ?2, search_text = ?3, updated_at = ?4, name_key = ?5 WHERE id = ?1",
        params![stored.id, name, search_text, crate::store::now(), name_key(name)],
    )?;
    Ok(())
}

/// Records the outcome of a Connect or Test connection.
pub(crate) fn record_check(
    db: &Db,
    id: &str,
    outcome: std::result::Result<&VerifiedAccount, &Error>,
    at: &str,
) -> Result<()> {
    match outcome {
        Ok(account) => {
            let stored = load(db, id)?;
            db.execute(
                "UPDATE connections SET status = 'connected', status_code = NULL, status_message = NULL,
                     account_friendly_name = ?2, account_type = ?3, last_checked_at = ?4, updated_at = ?4,
                     search_text = ?5
                 WHERE id = ?1",
                params![
                    id,
                    account.friendly_name,
                    account.account_type,
                    at,
                    search_text(
                        &stored.name,
                        &stored.phone_number,
                        &stored.account_sid,
                        account.friendly_name.as_deref()
                    ),
                ],
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

/// The rows with these `seq`s, in the order given.
fn load_by_seq(db: &Db, seqs: &[i64]) -> Result<Vec<Stored>> {
    let mut statement = db.prepare_cached(&format!("SELECT {COLUMNS} FROM {ROWS} WHERE c.seq = ?1"))?;
    seqs.iter().map(|seq| statement.query_row([seq], from_row).map_err(Error::from)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_normalised_to_e164() {
        assert_eq!(normalize_phone(" +1 (555) 123-0001 ").unwrap(), "+15551230001");
        assert_eq!(normalize_phone("+1.555.123.0001").unwrap(), "+15551230001");
        assert_eq!(normalize_phone("+44 20 7183 8750").unwrap(), "+442071838750");
        for bad in [
            "5551230001",
            "+",
            "+0123456789",
            "+1555abc0001",
            "+1234567890123456",
            "+99912345678",
            "+1555123000",
            "+4420718387501234",
        ] {
            let err = normalize_phone(bad).unwrap_err();
            assert_eq!((err.code(), err.field()), ("invalid_input", Some("phone_number")), "{bad}");
        }
    }

    #[test]
    fn sid_and_token_formats_are_checked_without_echoing_the_token() {
        assert!(check_account_sid(&format!("AC{}", "0a".repeat(16))).is_ok());
        assert_eq!(check_account_sid("AC123").unwrap_err().field(), Some("account_sid"));
        let token = Secret::new("not-a-token-but-a-secret");
        let err = check_auth_token(&token, "Auth Token").unwrap_err();
        assert_eq!(err.field(), Some("auth_token"));
        assert!(!err.to_string().contains("not-a-token"));
    }
}
