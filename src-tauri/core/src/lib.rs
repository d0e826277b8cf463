//! Patchbay's core: every rule of folders, the connector catalog, credential assets and
//! connections, over the SQLite store, the OS vault and Twilio's REST API.
//!
//! [`Patchbay`] is the one entry point. The CLI, the desktop window and the HTTP API
//! are thin adapters over its methods: parse, call, map the error.

pub mod assets;
pub mod catalog;
pub mod config;
pub mod connections;
pub mod error;
pub mod events;
pub mod fixtures;
pub mod folders;
pub mod instances;
pub mod rotation;
mod search_index;
pub mod secret;
pub mod store;
mod text;
pub mod twilio;
pub mod vault;

use uuid::Uuid;

pub use assets::Asset;
pub use catalog::Connector;
pub use config::Config;
pub use connections::{
    AuthRef, Connection, ConnectionPage, ConnectionQuery, ConnectionStatus, NewTwilioConnection, TokenSource,
    TwilioChanges,
};
pub use error::{Error, ErrorBody, Result};
pub use folders::{Folder, FolderContents};
pub use secret::Secret;
pub use vault::Vault;

use connections::ValidatedRow;
use folders::store_err;
use search_index::SearchIndex;
use store::{Store, now};
use twilio::{Credentials, TwilioClient};
use vault::VaultKey;

pub struct Patchbay {
    config: Config,
    store: Store,
    vault: Vault,
    twilio: TwilioClient,
    search: SearchIndex,
}

impl Patchbay {
    /// Opens the data folder's database and the platform vault (lazily).
    pub fn open(config: Config) -> Result<Self> {
        let vault = Vault::platform(config.vault_service.clone());
        Self::open_with_vault(config, vault)
    }

    pub fn open_with_vault(config: Config, vault: Vault) -> Result<Self> {
        let store = Store::open(&config.database_path())?;
        let twilio = TwilioClient::new(config.twilio.clone()).map_err(|err| Error::Connect(err.into()))?;
        let core = Self { config, store, vault, twilio, search: SearchIndex::default() };
        core.repair();
        Ok(core)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    // ---- Folders -------------------------------------------------------------------

    pub fn create_folder(&self, path: &str) -> Result<Folder> {
        folders::create(&self.store.conn(), path)
    }

    /// The whole tree, depth-first, siblings by name.
    pub fn list_folders(&self) -> Result<Vec<Folder>> {
        folders::list(&self.store.conn())
    }

    pub fn rename_folder(&self, path: &str, new_name: &str) -> Result<Folder> {
        folders::rename(&self.store.conn(), path, new_name)
    }

    /// Moves a folder under `new_parent`, or to the top level with `None`.
    pub fn move_folder(&self, path: &str, new_parent: Option<&str>) -> Result<Folder> {
        folders::move_to(&self.store.conn(), path, new_parent)
    }

    /// What deleting the folder would remove, for the confirmation.
    pub fn folder_contents(&self, path: &str) -> Result<FolderContents> {
        let conn = self.store.conn();
        folders::contents(&conn, folders::resolve(&conn, path)?)
    }

    /// Deletes the folder; one that holds anything only when `recursive`, and then with
    /// every connection and asset inside, secrets included. Returns what was removed.
    pub fn delete_folder(&self, path: &str, recursive: bool) -> Result<FolderContents> {
        let conn = self.store.conn();
        let folder = folders::resolve(&conn, path)?;
        let contents = folders::contents(&conn, folder)?;
        if !contents.is_empty() && !recursive {
            return Err(Error::FolderNotEmpty { path: folders::path_of(&conn, folder)?, contents });
        }
        let outside_users = folders::assets_used_from_outside(&conn, folder)?;
        if let Some((name, _)) = outside_users.first() {
            let users = outside_users.iter().map(|(_, id)| id.clone()).collect();
            return Err(Error::AssetInUse { name: name.clone(), connections: users });
        }
        // Journal first, then secrets, then rows: a crash midway is finished by repair().
        folders::mark_contents_deleting(&conn, folder)?;
        self.remove_unfinished(&conn)?;
        folders::delete_row(&conn, folder)?;
        Ok(contents)
    }

    // ---- Connector catalog ---------------------------------------------------------

    pub fn connectors(&self, search: &str) -> Vec<&'static Connector> {
        catalog::search(search)
    }

    // ---- Credential assets ---------------------------------------------------------

    pub fn create_asset(&self, folder: &str, name: &str, value: Secret) -> Result<Asset> {
        let name = folders::clean_name("name", name)?;
        if value.is_empty() {
            return Err(Error::invalid("value", "the credential asset's value must not be empty"));
        }
        let conn = self.store.conn();
        let folder_id = folders::resolve(&conn, folder)?;
        if assets::find_in_folder(&conn, folder_id, &name)?.is_some() {
            return Err(Error::NameTaken {
                what: "credential asset",
                name,
                place: format!("folder '{}'", folders::path_of(&conn, folder_id)?),
            });
        }
        let id = Uuid::new_v4().to_string();
        let stamp = now();
        conn.execute(
            "INSERT INTO assets (id, folder_id, name, lifecycle, created_at, updated_at) VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
            rusqlite::params![id, folder_id, name, stamp],
        )
        .map_err(store_err)?;
        self.commit_secret(&conn, "assets", &id, &VaultKey::Asset(id.clone()), &value)?;
        assets::in_folder(&conn, folder_id)?
            .into_iter()
            .find(|asset| asset.id == id)
            .ok_or_else(|| Error::NotFound { what: "credential asset", id })
    }

    /// Assets visible from `folder` (its own and its ancestors'), or every asset.
    pub fn list_assets(&self, folder: Option<&str>) -> Result<Vec<Asset>> {
        let conn = self.store.conn();
        match folder {
            Some(path) => assets::visible_from(&conn, folders::resolve(&conn, path)?),
            None => assets::all(&conn),
        }
    }

    /// Deletes the asset and its secret. While connections use it, only with `force`;
    /// they then show as failed until given another token.
    pub fn delete_asset(&self, folder: &str, name: &str, force: bool) -> Result<()> {
        let conn = self.store.conn();
        let folder_id = folders::resolve(&conn, folder)?;
        let id = assets::find_in_folder(&conn, folder_id, name)?
            .ok_or_else(|| Error::AssetNotFound { name: name.trim().to_owned(), folder: folder.trim().to_owned() })?;
        let users = assets::users(&conn, &id)?;
        if !users.is_empty() && !force {
            return Err(Error::AssetInUse { name: name.trim().to_owned(), connections: users });
        }
        conn.execute("UPDATE assets SET lifecycle = 'deleting' WHERE id = ?1", [&id]).map_err(store_err)?;
        let orphaned: Vec<String> = conn
            .prepare("SELECT id FROM connections WHERE auth_asset_id = ?1")
            .and_then(|mut s| s.query_map([&id], |r| r.get(0))?.collect())
            .map_err(store_err)?;
        self.remove_unfinished(&conn)?;
        let stamp = now();
        for connection in orphaned {
            let name: String = connections::load(&conn, &connection)?.name;
            connections::record_check(&conn, &connection, Err(&Error::AssetDeleted { connection: name }), &stamp)?;
        }
        Ok(())
    }

    // ---- Connections ---------------------------------------------------------------

    /// Connect: checks the form locally, validates with Twilio, and saves only what
    /// Twilio accepted (row and secret together, or neither).
    pub async fn add_twilio_connection(&self, new: NewTwilioConnection) -> Result<Connection> {
        let phone_number = connections::normalize_phone(&new.phone_number)?;
        let account_sid = connections::check_account_sid(&new.account_sid)?;
        let (folder_id, name, asset_id, token) = {
            let conn = self.store.conn();
            let folder_id = folders::resolve(&conn, &new.folder)?;
            let name = match &new.name {
                Some(name) => folders::clean_name("name", name)?,
                None => format!("Twilio {phone_number}"),
            };
            connections::ensure_name_free(&conn, folder_id, &name, None)?;
            let (asset_id, token) = self.resolve_token(&conn, folder_id, new.auth_token)?;
            (folder_id, name, asset_id, token)
        };

        let credentials = Credentials { account_sid: &account_sid, auth_token: &token };
        let account = twilio::verify(&self.twilio, credentials, &phone_number, new.test_credentials).await?;

        let conn = self.store.conn();
        // Checked again: the name may have been taken while Twilio answered.
        connections::ensure_name_free(&conn, folder_id, &name, None)?;
        let id = Uuid::new_v4().to_string();
        connections::insert(
            &conn,
            folder_id,
            &ValidatedRow {
                id: &id,
                name: &name,
                account_sid: &account_sid,
                phone_number: &phone_number,
                test_credentials: new.test_credentials,
                asset_id: asset_id.as_deref(),
                account: &account,
                checked_at: &now(),
            },
        )?;
        if asset_id.is_none() {
            self.commit_secret(&conn, "connections", &id, &VaultKey::Connection(id.clone()), &token)?;
        }
        connections::view(&conn, connections::load(&conn, &id)?)
    }

    /// Edit: validates the changed connection with Twilio like Connect, and saves only
    /// what Twilio accepted. A token left out (`None`) is the one the connection has.
    pub async fn update_twilio_connection(&self, id: &str, changes: TwilioChanges) -> Result<Connection> {
        let phone_number = connections::normalize_phone(&changes.phone_number)?;
        let account_sid = connections::check_account_sid(&changes.account_sid)?;
        let name = folders::clean_name("name", &changes.name)?;
        let (stored, asset_id, token) = {
            let conn = self.store.conn();
            let stored = connections::load(&conn, id)?;
            connections::ensure_name_free(&conn, stored.folder_id, &name, Some(&stored.id))?;
            let (asset_id, token) = match changes.auth_token {
                Some(source) => self.resolve_token(&conn, stored.folder_id, source)?,
                None => (stored.auth_asset_id.clone().filter(|_| stored.auth_kind == "asset"), self.token_of(&stored)?),
            };
            (stored, asset_id, token)
        };

        let credentials = Credentials { account_sid: &account_sid, auth_token: &token };
        let account = twilio::verify(&self.twilio, credentials, &phone_number, changes.test_credentials).await?;

        let conn = self.store.conn();
        connections::ensure_name_free(&conn, stored.folder_id, &name, Some(&stored.id))?;
        let own_key = VaultKey::Connection(stored.id.clone());
        if asset_id.is_none() {
            // Overwrites the old value in place: the row never points at a missing secret.
            self.vault.put(&own_key, &token)?;
        }
        connections::update(
            &conn,
            &ValidatedRow {
                id: &stored.id,
                name: &name,
                account_sid: &account_sid,
                phone_number: &phone_number,
                test_credentials: changes.test_credentials,
                asset_id: asset_id.as_deref(),
                account: &account,
                checked_at: &now(),
            },
        )?;
        if asset_id.is_some() && stored.auth_kind == "own" {
            self.vault.delete(&own_key)?;
        }
        connections::view(&conn, connections::load(&conn, &stored.id)?)
    }

    /// A typed token (format-checked) or a credential asset visible from `folder`.
    fn resolve_token(
        &self,
        conn: &rusqlite::Connection,
        folder: i64,
        source: TokenSource,
    ) -> Result<(Option<String>, Secret)> {
        match source {
            TokenSource::Value(token) => {
                connections::check_auth_token(&token, "Auth Token")?;
                Ok((None, token))
            }
            TokenSource::Asset(asset_name) => {
                let asset_id = assets::resolve_visible(conn, folder, asset_name.trim())?;
                let token = self.vault.get(&VaultKey::Asset(asset_id.clone()))?;
                connections::check_auth_token(&token, &format!("value of credential asset '{}'", asset_name.trim()))?;
                Ok((Some(asset_id), token))
            }
        }
    }

    pub fn list_connections(&self, query: &ConnectionQuery) -> Result<ConnectionPage> {
        connections::query(&self.store.conn(), &self.search, query)
    }

    /// Renames a connection; nothing else changes, so Twilio is not asked.
    pub fn rename_connection(&self, id: &str, name: &str) -> Result<Connection> {
        let name = folders::clean_name("name", name)?;
        let conn = self.store.conn();
        let stored = connections::load(&conn, id)?;
        connections::ensure_name_free(&conn, stored.folder_id, &name, Some(&stored.id))?;
        connections::rename(&conn, &stored, &name)?;
        connections::view(&conn, connections::load(&conn, &stored.id)?)
    }

    pub fn connection(&self, id: &str) -> Result<Connection> {
        let conn = self.store.conn();
        connections::view(&conn, connections::load(&conn, id)?)
    }

    /// Test connection: validates again with the token as it is now in the vault (a
    /// rotated asset reaches every connection that uses it) and records the outcome.
    pub async fn test_connection(&self, id: &str) -> Result<Connection> {
        let (stored, token) = {
            let conn = self.store.conn();
            let stored = connections::load(&conn, id)?;
            let token = self.token_of(&stored);
            if let Err(err) = &token {
                connections::record_check(&conn, &stored.id, Err(err), &now())?;
            }
            (stored, token?)
        };
        let credentials = Credentials { account_sid: &stored.account_sid, auth_token: &token };
        let outcome = twilio::verify(&self.twilio, credentials, &stored.phone_number, stored.test_credentials)
            .await
            .map_err(Error::from);
        let conn = self.store.conn();
        connections::record_check(&conn, &stored.id, outcome.as_ref(), &now())?;
        outcome?;
        connections::view(&conn, connections::load(&conn, &stored.id)?)
    }

    /// Deletes the connection and, if it has its own, its secret.
    pub fn delete_connection(&self, id: &str) -> Result<()> {
        let conn = self.store.conn();
        let stored = connections::load(&conn, id)?;
        connections::set_lifecycle(&conn, &stored.id, "deleting")?;
        self.remove_unfinished(&conn)
    }

    fn token_of(&self, stored: &connections::Stored) -> Result<Secret> {
        match (stored.auth_kind.as_str(), &stored.auth_asset_id) {
            ("own", _) => Ok(self.vault.get(&VaultKey::Connection(stored.id.clone()))?),
            (_, Some(asset_id)) => Ok(self.vault.get(&VaultKey::Asset(asset_id.clone()))?),
            (_, None) => Err(Error::AssetDeleted { connection: stored.name.clone() }),
        }
    }

    // ---- Consistency between rows and vault ----------------------------------------

    /// Writes the secret of a `pending` row, then marks the row active. If the vault
    /// refuses, the row goes too: nothing half-saved is left behind.
    fn commit_secret(
        &self,
        conn: &rusqlite::Connection,
        table: &str,
        id: &str,
        key: &VaultKey,
        secret: &Secret,
    ) -> Result<()> {
        if let Err(err) = self.vault.put(key, secret) {
            conn.execute(&format!("DELETE FROM {table} WHERE id = ?1"), [id]).map_err(store_err)?;
            return Err(err.into());
        }
        conn.execute(&format!("UPDATE {table} SET lifecycle = 'active' WHERE id = ?1"), [id]).map_err(store_err)?;
        Ok(())
    }

    /// Finishes every `pending` or `deleting` row: its secret is removed from the vault,
    /// then the row. Pending rows never reached the user (their Connect failed or
    /// crashed), so removing them is the safe outcome.
    fn remove_unfinished(&self, conn: &rusqlite::Connection) -> Result<()> {
        for (id, owns_secret, signs_events) in connections::unfinished(conn)? {
            if owns_secret {
                self.vault.delete(&VaultKey::Connection(id.clone()))?;
            }
            if signs_events {
                self.vault.delete(&VaultKey::EventSigningKey(id.clone()))?;
            }
            connections::delete_row(conn, &id)?;
        }
        let unfinished_assets: Vec<String> = conn
            .prepare("SELECT id FROM assets WHERE lifecycle != 'active'")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(store_err)?;
        for id in unfinished_assets {
            self.vault.delete(&VaultKey::Asset(id.clone()))?;
            conn.execute("DELETE FROM assets WHERE id = ?1", [&id]).map_err(store_err)?;
        }
        Ok(())
    }

    /// The start-up pass after a crash. A vault that is unavailable now only delays it.
    fn repair(&self) {
        if let Err(err) = self.remove_unfinished(&self.store.conn()) {
            tracing::warn!(code = err.code(), "could not finish interrupted changes yet: {err}");
        }
    }
}
