//! The lifecycle journal that keeps rows and vault entries consistent.
//!
//! A row that owns secrets is written `pending` before its secrets reach the vault and
//! marked `deleting` before they leave it, each time with the id of the process doing
//! the work (owner.rs). Every state change names the row *and* the owner it expects, and
//! checks that it changed exactly that row: two processes never finish or undo the same
//! piece of work, and repair only touches work whose owner is gone.
//!
//! A credential store's removal is journaled the same way: its row is marked `deleting`
//! before its credentials leave the OS vault, and deleted after.

use rusqlite::{Connection, params};

use crate::error::{Error, Result};
use crate::store::text_column_enum;
use crate::vault::VaultKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Connections,
    Assets,
    Stores,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::Assets => "assets",
            Self::Stores => "credential_stores",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Connections => "connection",
            Self::Assets => "credential asset",
            Self::Stores => "credential store",
        }
    }
}

/// A row on its way in or out, with the vault entries that go with it.
#[derive(Debug, Clone)]
pub(crate) struct Unfinished {
    pub table: Table,
    pub id: String,
    pub secrets: Vec<VaultKey>,
}

/// The secrets a connection row may own: its Auth Token (when not an asset's) and the
/// key that signs its events.
const CONNECTION_SECRETS: &str =
    "SELECT c.id, c.auth_kind = 'own', ifnull(json_extract(i.settings, '$.signing_key'), 0)
     FROM connections c LEFT JOIN instances i ON i.connection_id = c.id";

fn connection_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<Unfinished> {
    let id: String = row.get(0)?;
    let mut secrets = Vec::new();
    if row.get(1)? {
        secrets.push(VaultKey::Connection(id.clone()));
    }
    if row.get(2)? {
        secrets.push(VaultKey::EventSigningKey(id.clone()));
    }
    Ok(Unfinished { table: Table::Connections, id, secrets })
}

fn asset_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<Unfinished> {
    let id: String = row.get(0)?;
    Ok(Unfinished { table: Table::Assets, secrets: vec![VaultKey::Asset(id.clone())], id })
}

/// A credential store's removal: its row, and its own credentials in the OS vault.
pub(crate) fn store_removal(id: &str) -> Unfinished {
    Unfinished { table: Table::Stores, id: id.to_owned(), secrets: vec![VaultKey::CredentialStore(id.to_owned())] }
}

/// Owners (None: from before owners were recorded) with unfinished rows.
pub(crate) fn owners(db: &Connection) -> Result<Vec<Option<String>>> {
    let mut statement = db.prepare_cached(
        "SELECT owner FROM connections WHERE lifecycle != 'active'
         UNION SELECT owner FROM assets WHERE lifecycle != 'active'
         UNION SELECT owner FROM credential_stores WHERE lifecycle != 'active'",
    )?;
    Ok(statement.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?)
}

/// Every unfinished row of one owner.
pub(crate) fn of_owner(db: &Connection, owner: Option<&str>) -> Result<Vec<Unfinished>> {
    let mut items: Vec<Unfinished> = db
        .prepare_cached(&format!("{CONNECTION_SECRETS} WHERE c.lifecycle != 'active' AND c.owner IS ?1"))?
        .query_map([owner], connection_item)?
        .collect::<rusqlite::Result<_>>()?;
    let assets = db
        .prepare_cached("SELECT id FROM assets WHERE lifecycle != 'active' AND owner IS ?1")?
        .query_map([owner], asset_item)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    items.extend(assets);
    let stores = db
        .prepare_cached("SELECT id FROM credential_stores WHERE lifecycle != 'active' AND owner IS ?1")?
        .query_map([owner], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    items.extend(stores.iter().map(|id| store_removal(id)));
    Ok(items)
}

/// Marks an active connection for deletion by `owner`, and says what it holds.
pub(crate) fn mark_connection_deleting(db: &Connection, id: &str, owner: &str) -> Result<Unfinished> {
    let item = db
        .prepare_cached(&format!("{CONNECTION_SECRETS} WHERE c.id = ?1 AND c.lifecycle = 'active'"))?
        .query_row([id], connection_item)
        .map_err(|_| Error::NotFound { what: "connection", id: id.to_owned() })?;
    mark_deleting(db, &item, owner)?;
    Ok(item)
}

/// Marks an active asset for deletion by `owner`.
pub(crate) fn mark_asset_deleting(db: &Connection, id: &str, owner: &str) -> Result<Unfinished> {
    let item = Unfinished { table: Table::Assets, id: id.to_owned(), secrets: vec![VaultKey::Asset(id.to_owned())] };
    mark_deleting(db, &item, owner)?;
    Ok(item)
}

/// Marks every active connection and asset in the subtree of `folder` for deletion.
pub(crate) fn mark_subtree_deleting(db: &Connection, folder: i64, owner: &str) -> Result<Vec<Unfinished>> {
    let subtree = crate::folders::SUBTREE;
    let mut items: Vec<Unfinished> = db
        .prepare(&format!("{subtree} {CONNECTION_SECRETS} WHERE c.folder_id IN subtree AND c.lifecycle = 'active'"))?
        .query_map([folder], connection_item)?
        .collect::<rusqlite::Result<_>>()?;
    let assets = db
        .prepare(&format!("{subtree} SELECT id FROM assets WHERE folder_id IN subtree AND lifecycle = 'active'"))?
        .query_map([folder], asset_item)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    items.extend(assets);
    for item in &items {
        mark_deleting(db, item, owner)?;
    }
    Ok(items)
}

/// Marks an active credential store for removal by `owner`: hidden and unusable from now.
pub(crate) fn mark_store_removing(db: &Connection, id: &str, owner: &str) -> Result<Unfinished> {
    let item = store_removal(id);
    mark_deleting(db, &item, owner)?;
    Ok(item)
}

text_column_enum! {
    /// A row's place in the journal: `pending` while its secret is being
    /// written, `deleting` while its secret is being removed (a credential store's own,
    /// while it is removed), `active` in between.
    pub enum Lifecycle {
        Pending = "pending",
        Active = "active",
        Deleting = "deleting",
    }
}

fn mark_deleting(db: &Connection, item: &Unfinished, owner: &str) -> Result<()> {
    let changed = db.execute(
        &format!("UPDATE {} SET lifecycle = ?3, owner = ?2 WHERE id = ?1 AND lifecycle = ?4", item.table.name()),
        params![item.id, owner, Lifecycle::Deleting, Lifecycle::Active],
    )?;
    expect_one(changed, item)
}

/// A pending row whose secrets are in the vault now becomes visible.
pub(crate) fn activate(db: &Connection, item: &Unfinished, owner: &str) -> Result<()> {
    let changed = db.execute(
        &format!(
            "UPDATE {} SET lifecycle = ?3, owner = NULL WHERE id = ?1 AND lifecycle = ?4 AND owner = ?2",
            item.table.name()
        ),
        params![item.id, owner, Lifecycle::Active, Lifecycle::Pending],
    )?;
    expect_one(changed, item)
}

/// Removes an unfinished row of `owner` once its secrets are out of the vault.
pub(crate) fn forget(db: &Connection, item: &Unfinished, owner: Option<&str>) -> Result<()> {
    db.execute(
        &format!("DELETE FROM {} WHERE id = ?1 AND lifecycle != 'active' AND owner IS ?2", item.table.name()),
        params![item.id, owner],
    )?;
    Ok(())
}

fn expect_one(changed: usize, item: &Unfinished) -> Result<()> {
    match changed {
        1 => Ok(()),
        _ => Err(Error::NotFound { what: item.table.noun(), id: item.id.clone() }),
    }
}
