//! Credential assets: a named secret in a folder, its value only in the vault.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::catalog::{self, Feature};
use crate::destination::Reach;
use crate::error::{Error, Result};
use crate::fields::FieldValues;
use crate::folders;
use crate::journal::Lifecycle;
use crate::secret::Secret;
use crate::text::name_key;

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct Asset {
    pub id: String,
    pub name: String,
    /// Path of the folder the asset lives in.
    pub folder: String,
    /// How many connections refer to it.
    pub used_by: u32,
    /// Whether Patchbay can rotate it: a connection uses it as a secret whose auth
    /// method offers rotation (a Twilio Auth Token), and its value is Patchbay's.
    pub rotatable: bool,
    /// The credential store that keeps the value; None: the OS vault.
    pub store: Option<String>,
    /// For an asset linked to a secret in that store: where it is read (never the value).
    pub link: Option<AssetLink>,
    /// Where its value may be sent; empty until its first use or its owner allows one.
    pub destinations: Vec<Destination>,
    pub created_at: String,
    pub updated_at: String,
}

/// A linked asset's source: a key of a KV v2 secret in a credential store.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct AssetLink {
    /// The secret's path under the store's mount, e.g. `twilio/prod`.
    pub path: String,
    pub key: String,
}

/// Assets visible from `folder`: its own and those of every ancestor, nearest first.
pub(crate) fn visible_from(conn: &Connection, folder: i64) -> Result<Vec<Asset>> {
    let mut assets = Vec::new();
    for folder_id in folders::ancestry(conn, folder)? {
        assets.extend(in_folder(conn, folder_id)?);
    }
    Ok(assets)
}

pub(crate) fn in_folder(conn: &Connection, folder: i64) -> Result<Vec<Asset>> {
    select(conn, Some(folder))
}

/// Every asset, by folder then name.
pub(crate) fn all(conn: &Connection) -> Result<Vec<Asset>> {
    let mut assets = select(conn, None)?;
    assets.sort_by(|a, b| a.folder.cmp(&b.folder));
    Ok(assets)
}

/// Active assets of one folder, or of all (`None`), by name.
fn select(conn: &Connection, folder: Option<i64>) -> Result<Vec<Asset>> {
    let mut statement = conn.prepare_cached(
        "SELECT a.id, a.name, a.created_at, a.updated_at, a.folder_id,
                    (SELECT count(*) FROM connections c WHERE c.auth_asset_id = a.id),
                    s.name, a.link_path, a.link_key
             FROM assets a LEFT JOIN credential_stores s ON s.id = a.store_id WHERE (?1 IS NULL OR a.folder_id = ?1) AND a.lifecycle = 'active'
             ORDER BY a.name COLLATE NOCASE",
    )?;
    let rows = statement
        .query_map([folder], |row| {
            Ok((
                Asset {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    created_at: row.get(2)?,
                    updated_at: row.get(3)?,
                    used_by: row.get(5)?,
                    rotatable: false,
                    store: row.get(6)?,
                    link: match (row.get(7)?, row.get(8)?) {
                        (Some(path), Some(key)) => Some(AssetLink { path, key }),
                        _ => None,
                    },
                    destinations: Vec::new(),
                    folder: String::new(),
                },
                row.get::<_, i64>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut paths = std::collections::HashMap::new();
    let mut methods =
        conn.prepare_cached("SELECT DISTINCT connector, auth_method FROM connections WHERE auth_asset_id = ?1")?;
    rows.into_iter()
        .map(|(mut asset, folder)| {
            let used_with: Vec<(String, String)> = methods
                .query_map([&asset.id], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            asset.rotatable = asset.link.is_none()
                && used_with.iter().any(|(connector, method)| {
                    catalog::connector(connector)
                        .and_then(|connector| connector.auth_method(method))
                        .is_some_and(|method| method.offers(Feature::TokenRotation))
                });
            asset.destinations = destinations(conn, &asset.id)?;
            asset.folder = match paths.get(&folder) {
                Some(path) => String::clone(path),
                None => paths.entry(folder).or_insert(folders::path_of(conn, folder)?).clone(),
            };
            Ok(asset)
        })
        .collect()
}

/// The id of the asset `name` visible from `folder` (the nearest one wins).
pub(crate) fn resolve_visible(conn: &Connection, folder: i64, name: &str) -> Result<String> {
    for folder_id in folders::ancestry(conn, folder)? {
        if let Some(id) = find_in_folder(conn, folder_id, name)? {
            return Ok(id);
        }
    }
    Err(Error::AssetNotFound { name: name.to_owned(), folder: folders::path_of(conn, folder)? })
}

pub(crate) fn find_in_folder(conn: &Connection, folder: i64, name: &str) -> Result<Option<String>> {
    conn.query_row(
        "SELECT id FROM assets WHERE folder_id = ?1 AND name_key = ?2 AND lifecycle = 'active'",
        params![folder, name_key(name.trim())],
        |row| row.get(0),
    )
    .optional()
    .map_err(Error::from)
}

/// The asset `id` of the folder, as listed.
pub(crate) fn one(conn: &Connection, folder: i64, id: String) -> Result<Asset> {
    in_folder(conn, folder)?
        .into_iter()
        .find(|asset| asset.id == id)
        .ok_or(Error::NotFound { what: "credential asset", id })
}

/// Refuses `name` when an asset of the folder reads the same (being written or deleted
/// included: its name is not free until it is gone).
pub(crate) fn ensure_name_free(conn: &Connection, folder: i64, name: &str) -> Result<()> {
    match same_name_in_folder(conn, folder, name)? {
        Some(existing) => Err(Error::NameTaken {
            what: "credential asset",
            name: existing,
            place: format!("folder '{}'", folders::path_of(conn, folder)?),
        }),
        None => Ok(()),
    }
}

/// The name of an asset of the folder that reads the same as `name`, being written or
/// deleted included (its name is not free until it is gone).
fn same_name_in_folder(conn: &Connection, folder: i64, name: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT name FROM assets WHERE folder_id = ?1 AND name_key = ?2",
            params![folder, name_key(name)],
            |row| row.get(0),
        )
        .optional()?)
}

/// A new asset, `pending` until its value is in the OS vault or in the store `store_id`.
pub(crate) fn insert_pending(
    conn: &Connection,
    id: &str,
    folder: i64,
    name: &str,
    owner: &str,
    store_id: Option<&str>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO assets (id, folder_id, name, name_key, lifecycle, owner, created_at, updated_at, store_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
        params![id, folder, name, name_key(name), Lifecycle::Pending, owner, crate::store::now(), store_id],
    )?;
    Ok(())
}

/// A new credential asset linked to a store's secret: complete at once (nothing to write).
pub(crate) fn insert_linked(
    conn: &Connection,
    id: &str,
    folder: i64,
    name: &str,
    store_id: &str,
    path: &str,
    key: &str,
) -> Result<()> {
    conn.execute(
        "INSERT INTO assets (id, folder_id, name, name_key, lifecycle, created_at, updated_at, store_id, link_path, link_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9)",
        params![id, folder, name, name_key(name), Lifecycle::Active, crate::store::now(), store_id, path, key],
    )?;
    Ok(())
}

/// Where an asset's value is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AssetHome {
    /// The OS vault, as `asset/<id>`.
    Os,
    /// `key` of the KV v2 secret at `path` under a credential store's mount: Patchbay's
    /// own (`patchbay/<asset id>`, key `value`) when `managed`; else the admin's, linked.
    Store { store_id: String, path: String, key: String, managed: bool },
}

/// The key of a managed asset's secret, at `patchbay/<asset id>`.
const MANAGED_KEY: &str = "value";

/// Where the asset's value is kept; the OS vault for an asset that is gone (its entry
/// there, if any, is what is left to remove).
pub(crate) fn home_of(conn: &Connection, id: &str) -> Result<AssetHome> {
    let row: Option<(Option<String>, Option<String>, Option<String>)> = conn
        .query_row("SELECT store_id, link_path, link_key FROM assets WHERE id = ?1", [id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    Ok(match row {
        Some((Some(store_id), Some(path), Some(key))) => AssetHome::Store { store_id, path, key, managed: false },
        Some((Some(store_id), _, _)) => {
            AssetHome::Store { store_id, path: format!("patchbay/{id}"), key: MANAGED_KEY.into(), managed: true }
        }
        _ => AssetHome::Os,
    })
}

/// Ids of the connections that use the asset.
pub(crate) fn user_ids(conn: &Connection, id: &str) -> Result<Vec<String>> {
    let mut statement = conn.prepare_cached("SELECT id FROM connections WHERE auth_asset_id = ?1")?;
    Ok(statement.query_map([id], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?)
}

/// `(name, folder path)` of the asset, when it still exists.
pub(crate) fn describe(conn: &Connection, id: &str) -> Result<Option<(String, String)>> {
    let row: Option<(String, i64)> = conn
        .query_row("SELECT name, folder_id FROM assets WHERE id = ?1", [id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    row.map(|(name, folder)| Ok((name, folders::path_of(conn, folder)?))).transpose()
}

/// Names (with folder) of the connections that use the asset.
pub(crate) fn users(conn: &Connection, id: &str) -> Result<Vec<String>> {
    let mut statement =
        conn.prepare_cached("SELECT name, folder_id FROM connections WHERE auth_asset_id = ?1 ORDER BY name")?;
    let rows = statement
        .query_map([id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(|(name, folder)| Ok(format!("{}/{name}", folders::path_of(conn, folder)?))).collect()
}

/// A place an asset's value may be sent: a connector's service (at the base URL its
/// operator configured), or, for a connector whose connections name their own address
/// (the HTTP connector), that exact origin and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct Destination {
    /// The connector's key, e.g. `twilio` or `http`.
    pub connector: String,
    /// `https://api.example.com:8443` for a connector that sends to the connection's
    /// own address; None: the connector's service.
    pub origin: Option<String>,
}

impl Destination {
    /// Where a connection of `connector` with these values sends its secret.
    pub(crate) fn of(connector: &str, values: &FieldValues) -> Self {
        let origin = catalog::connector(connector)
            .and_then(|connector| connector.address_field())
            .map(|field| origin_of(crate::fields::text(values, field).unwrap_or_default()));
        Self { connector: connector.to_owned(), origin }
    }

    /// `http:https://api.example.com`, or `twilio`: a destination as the CLI writes it.
    pub fn parse(raw: &str) -> Result<Self> {
        let (key, origin) = match raw.trim().split_once(':') {
            Some((key, origin)) => (key.trim(), Some(origin.trim())),
            None => (raw.trim(), None),
        };
        let connector = catalog::require(key)?;
        let names_address = connector.address_field().is_some();
        let origin = match (origin, names_address) {
            (None, false) => None,
            (Some(origin), true) => Some(origin_of(origin)),
            (None, true) => {
                return Err(Error::invalid(
                    "destination",
                    format!(
                        "{} sends to the address each connection names: write '{}:https://host[:port]'",
                        connector.name, connector.key
                    ),
                ));
            }
            (Some(_), false) => {
                return Err(Error::invalid(
                    "destination",
                    format!("{} sends to its own service only: write '{}'", connector.name, connector.key),
                ));
            }
        };
        if origin.as_deref() == Some(OPAQUE_ORIGIN) {
            return Err(Error::invalid("destination", "write the address as https://host[:port]"));
        }
        Ok(Self { connector: connector.key.clone(), origin })
    }
}

/// What `Url::origin` gives an address it cannot place (not a URL, or not http(s)).
const OPAQUE_ORIGIN: &str = "null";

/// `https://Api.Example.com:443/v1?x` → `https://api.example.com`: scheme, host and port,
/// as browsers compare them; `null` for what is no http(s) URL.
fn origin_of(url: &str) -> String {
    url::Url::parse(url.trim()).map_or_else(|_| OPAQUE_ORIGIN.to_owned(), |url| url.origin().ascii_serialization())
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = catalog::connector(&self.connector).map_or(self.connector.as_str(), |c| c.name.as_str());
        match &self.origin {
            Some(origin) => write!(f, "{name} at {origin}"),
            None => f.write_str(name),
        }
    }
}

/// Where the asset's value may be sent, in order.
pub(crate) fn destinations(conn: &Connection, id: &str) -> Result<Vec<Destination>> {
    let mut statement = conn.prepare_cached(
        "SELECT connector, origin FROM asset_destinations WHERE asset_id = ?1 ORDER BY connector, origin",
    )?;
    let rows = statement.query_map([id], |row| {
        let origin: String = row.get(1)?;
        Ok(Destination { connector: row.get(0)?, origin: Some(origin).filter(|origin| !origin.is_empty()) })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Lets the asset's value go to `destination`; false when it already could.
pub(crate) fn allow(conn: &Connection, id: &str, destination: &Destination) -> Result<bool> {
    Ok(conn.execute(
        "INSERT OR IGNORE INTO asset_destinations (asset_id, connector, origin, allowed_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, destination.connector, destination.origin.as_deref().unwrap_or_default(), crate::store::now()],
    )? == 1)
}

/// Takes `destination` away; false when it was not allowed.
pub(crate) fn disallow(conn: &Connection, id: &str, destination: &Destination) -> Result<bool> {
    Ok(conn.execute(
        "DELETE FROM asset_destinations WHERE asset_id = ?1 AND connector = ?2 AND origin = ?3",
        params![id, destination.connector, destination.origin.as_deref().unwrap_or_default()],
    )? == 1)
}

/// A connection's secret as Connect or Edit resolved it: typed, or an asset's value.
pub(crate) struct ResolvedSecret {
    /// The credential asset it came from.
    pub asset_id: Option<String>,
    /// None for an auth method without a secret field.
    pub secret: Option<Secret>,
}

/// How an asset's value may go to a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sending {
    /// It is one of the asset's destinations.
    Allowed,
    /// The asset's first use, by its owner at their desk saving a connection: the caller
    /// records the destination with the connection.
    FirstUse,
}

/// Whether the asset `id` may go to `destination` (`saving`: for a connection being
/// saved, whose first use may decide); `serve`'s callers never widen where it may go.
pub(crate) fn sending(
    conn: &Connection,
    id: &str,
    destination: &Destination,
    reach: Reach,
    saving: bool,
) -> Result<Sending> {
    let allowed = destinations(conn, id)?;
    if allowed.contains(destination) {
        return Ok(Sending::Allowed);
    }
    if allowed.is_empty() && reach == Reach::Desk && saving {
        return Ok(Sending::FirstUse);
    }
    let (name, folder) = describe(conn, id)?.unwrap_or_default();
    Err(Error::AssetDestinationRefused(Box::new(DestinationRefused {
        name,
        folder,
        destination: destination.clone(),
        allowed,
        from_api: reach == Reach::Served,
    })))
}

/// Gives every asset the destinations of the connections that use it (the migration
/// that introduced destinations), so that nothing that worked stops working.
pub(crate) fn backfill_destinations(tx: &Connection) -> Result<(), crate::store::StoreError> {
    let users: Vec<(String, String, String)> = tx
        .prepare("SELECT auth_asset_id, connector, fields FROM connections WHERE auth_asset_id IS NOT NULL")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (asset_id, connector, fields) in users {
        // A connector this Patchbay no longer has cannot be used anyway.
        if catalog::connector(&connector).is_none() {
            continue;
        }
        let values: FieldValues = serde_json::from_str(&fields).unwrap_or_default();
        let destination = Destination::of(&connector, &values);
        tx.execute(
            "INSERT OR IGNORE INTO asset_destinations (asset_id, connector, origin, allowed_at)
             SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM assets WHERE id = ?1)",
            params![asset_id, destination.connector, destination.origin.unwrap_or_default(), crate::store::now()],
        )?;
    }
    Ok(())
}

/// An asset's value was to go somewhere it may not: what a person reads says where it
/// may go and who can allow more, and how.
#[derive(Debug, thiserror::Error)]
#[error(
    "credential asset '{name}' (folder '{folder}') may not be sent to {destination}; {}. {}",
    allowed_text(allowed),
    how_to_allow(name, folder, destination, *from_api)
)]
pub struct DestinationRefused {
    name: String,
    folder: String,
    destination: Destination,
    allowed: Vec<Destination>,
    /// Asked by a `serve` caller, who cannot allow it.
    from_api: bool,
}

fn allowed_text(allowed: &[Destination]) -> String {
    match allowed {
        [] => "it may not be sent anywhere yet".into(),
        _ => format!("it may go to {}", allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    }
}

fn how_to_allow(name: &str, folder: &str, destination: &Destination, from_api: bool) -> String {
    let to = match &destination.origin {
        Some(origin) => format!("{}:{origin}", destination.connector),
        None => destination.connector.clone(),
    };
    let how = format!(
        "in the window (Credential assets, the asset's Destinations) or with `patchbay asset allow '{name}' --folder '{folder}' --to {to}`"
    );
    if from_api {
        format!("This API cannot allow it; the asset's owner can, {how}")
    } else {
        format!("Its owner can allow it {how}")
    }
}
