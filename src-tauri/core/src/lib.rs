//! Patchbay's core: every rule of folders, the connector catalog, credential assets and
//! connections, over the SQLite store, the OS vault and Twilio's REST API.
//!
//! [`Patchbay`] is the one entry point. The CLI, the desktop window and the HTTP API
//! are thin adapters over its methods: parse, call, map the error.

pub mod assets;
pub mod catalog;
pub mod config;
pub mod connections;
pub mod connectors;
pub mod credential_stores;
pub mod destination;
pub mod error;
pub mod events;
pub mod fields;
pub mod fixtures;
pub mod folders;
pub mod http;
pub mod instances;
mod journal;
mod owner;
pub mod process;
pub mod rotation;
mod search_index;
pub mod secret;
pub mod store;
mod text;
pub mod twilio;
pub mod vault;

use uuid::Uuid;

pub use assets::{Asset, Destination};
pub use catalog::Connector;
pub use config::Config;
pub use connections::{
    AuthRef, Connection, ConnectionChanges, ConnectionForm, ConnectionPage, ConnectionQuery, ConnectionStatus,
    NewConnection, SecretSource,
};
pub use error::{Error, ErrorBody, Result};
pub use fields::{Details, FieldValue, FieldValues};
pub use folders::{Folder, FolderContents};
pub use secret::Secret;
pub use vault::Vault;

use assets::{AssetHome, ResolvedSecret};
use catalog::AuthMethod;
use connections::ValidatedRow;
use connectors::{Services, Verify};
use journal::Unfinished;
use owner::Owner;
use search_index::SearchIndex;
use store::{Store, now};
use vault::VaultKey;

/// The largest credential asset value: far above any real token or key, far below what
/// would make the vault or a form slow.
pub const MAX_ASSET_BYTES: usize = 64 * 1024;

pub struct Patchbay {
    config: Config,
    store: Store,
    vault: Vault,
    services: Services,
    search: SearchIndex,
    /// This open core's claim on the work it leaves unfinished (see owner.rs).
    owner: Owner,
    /// Name keys of the credential stores whose removal this core's repair finished.
    stores_removed_by_repair: std::sync::Mutex<Vec<String>>,
}

impl Patchbay {
    /// Opens the data folder's database and the platform vault (lazily). Touches neither
    /// the vault nor the network: call [`Patchbay::repair`] once the caller can wait.
    pub fn open(config: Config) -> Result<Self> {
        let vault = Vault::platform(config.vault_service.clone(), config.vault_timeout);
        Self::open_with_vault(config, vault)
    }

    pub fn open_with_vault(config: Config, vault: Vault) -> Result<Self> {
        let store = Store::open(&config.database_path())?;
        let owner = Owner::claim(&config.data_dir)?;
        let services = Services::new(&config);
        Ok(Self {
            config,
            store,
            vault,
            services,
            search: SearchIndex::default(),
            owner,
            stores_removed_by_repair: Default::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    // ---- Folders -------------------------------------------------------------------

    pub fn create_folder(&self, path: &str) -> Result<Folder> {
        self.store.write(|tx| folders::create(tx, path))
    }

    /// The whole tree, depth-first, siblings by name.
    pub fn list_folders(&self) -> Result<Vec<Folder>> {
        folders::list(&self.store.conn())
    }

    pub fn rename_folder(&self, path: &str, new_name: &str) -> Result<Folder> {
        self.store.write(|tx| folders::rename(tx, path, new_name))
    }

    /// Moves a folder under `new_parent`, or to the top level with `None`.
    pub fn move_folder(&self, path: &str, new_parent: Option<&str>) -> Result<Folder> {
        self.store.write(|tx| folders::move_to(tx, path, new_parent))
    }

    /// What deleting the folder would remove, for the confirmation.
    pub fn folder_contents(&self, path: &str) -> Result<FolderContents> {
        let conn = self.store.conn();
        folders::contents(&conn, folders::resolve(&conn, path)?)
    }

    /// Deletes the folder; one that holds anything only when `recursive`, and then with
    /// every connection and asset inside, secrets included. Returns what was removed.
    pub async fn delete_folder(&self, path: &str, recursive: bool) -> Result<FolderContents> {
        // Journal first, then secrets, then rows: a crash midway is finished by repair.
        let (folder, contents, doomed) = self.store.write(|tx| {
            let folder = folders::resolve(tx, path)?;
            let contents = folders::contents(tx, folder)?;
            if !contents.is_empty() && !recursive {
                return Err(Error::FolderNotEmpty { path: folders::path_of(tx, folder)?, contents });
            }
            let outside_users = folders::assets_used_from_outside(tx, folder)?;
            if let Some((name, _)) = outside_users.first() {
                let users = outside_users.iter().map(|(_, id)| id.clone()).collect();
                return Err(Error::AssetInUse { name: name.clone(), connections: users });
            }
            Ok((folder, contents, journal::mark_subtree_deleting(tx, folder, self.owner.id())?))
        })?;
        self.finish_rows(&doomed, Some(self.owner.id())).await?;
        self.store.write(|tx| folders::delete_row(tx, folder))?;
        Ok(contents)
    }

    // ---- Connector catalog ---------------------------------------------------------

    pub fn connectors(&self, search: &str) -> Vec<&'static Connector> {
        catalog::search(search)
    }

    // ---- Credential assets ---------------------------------------------------------

    /// A new credential asset, its value kept in `store` (a registered credential
    /// store's name, or `os` for the OS vault), by default the folder's store.
    pub async fn create_asset(&self, folder: &str, name: &str, value: Secret, store: Option<&str>) -> Result<Asset> {
        let name = folders::clean_name("name", name)?;
        if value.is_empty() {
            return Err(Error::invalid("value", "the credential asset's value must not be empty"));
        }
        if value.len() > MAX_ASSET_BYTES {
            return Err(Error::invalid(
                "value",
                format!("the credential asset's value must be at most {} KiB", MAX_ASSET_BYTES / 1024),
            ));
        }
        let id = Uuid::new_v4().to_string();
        let folder_id = self.store.write(|tx| {
            let folder_id = folders::resolve(tx, folder)?;
            assets::ensure_name_free(tx, folder_id, &name)?;
            // Under the write lock: a store being removed keeps no new asset.
            let store_id = match store {
                Some(chosen) => credential_stores::store_id_by_name(tx, chosen)?,
                None => folders::default_store(tx, folder_id)?,
            };
            assets::insert_pending(tx, &id, folder_id, &name, self.owner.id(), store_id.as_deref())?;
            Ok(folder_id)
        })?;
        let pending =
            Unfinished { table: journal::Table::Assets, id: id.clone(), secrets: vec![VaultKey::Asset(id.clone())] };
        self.commit_secrets(&pending, &[&value]).await?;
        assets::one(&self.store.conn(), folder_id, id)
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
    pub async fn delete_asset(&self, folder: &str, name: &str, force: bool) -> Result<()> {
        let (doomed, orphaned) = self.store.write(|tx| {
            let folder_id = folders::resolve(tx, folder)?;
            let id = assets::find_in_folder(tx, folder_id, name)?.ok_or_else(|| Error::AssetNotFound {
                name: name.trim().to_owned(),
                folder: folder.trim().to_owned(),
            })?;
            let users = assets::users(tx, &id)?;
            if !users.is_empty() && !force {
                return Err(Error::AssetInUse { name: name.trim().to_owned(), connections: users });
            }
            let orphaned = assets::user_ids(tx, &id)?;
            Ok((journal::mark_asset_deleting(tx, &id, self.owner.id())?, orphaned))
        })?;
        self.finish_rows(std::slice::from_ref(&doomed), Some(self.owner.id())).await?;
        let stamp = now();
        self.store.write(|tx| {
            for connection in &orphaned {
                let name = connections::load(tx, connection)?.name;
                connections::record_check(tx, connection, Err(&Error::AssetDeleted { connection: name }), &stamp)?;
            }
            Ok(())
        })
    }

    /// Lets the asset's value go to `destination` (`twilio`, `http:https://host`) as
    /// well, or with `allowed` false takes that away: its owner's act, never an API
    /// caller's. Connections already saved for a destination taken away fail their next
    /// use with `asset_destination_refused`.
    pub fn set_asset_destination(&self, folder: &str, name: &str, destination: &str, allowed: bool) -> Result<Asset> {
        if self.config.reach == crate::destination::Reach::Served {
            return Err(Error::invalid(
                "destination",
                "where a credential asset may go is set by its owner, in the window or the CLI, not through this API",
            ));
        }
        let destination = Destination::parse(destination)?;
        let (folder_id, id) = self.store.write(|tx| {
            let folder_id = folders::resolve(tx, folder)?;
            let id = assets::find_in_folder(tx, folder_id, name)?.ok_or_else(|| Error::AssetNotFound {
                name: name.trim().to_owned(),
                folder: folder.trim().to_owned(),
            })?;
            if allowed {
                assets::allow(tx, &id, &destination)?;
            } else {
                assets::disallow(tx, &id, &destination)?;
            }
            Ok((folder_id, id))
        })?;
        assets::one(&self.store.conn(), folder_id, id)
    }

    // ---- Connections ---------------------------------------------------------------

    /// Connect: checks the form locally, validates with the connector's service, and
    /// saves only what it accepted (row and secret together, or neither).
    pub async fn add_connection(&self, new: NewConnection) -> Result<Connection> {
        let connector = catalog::require(&new.connector)?;
        let method = connector.auth_method_or_default(new.auth_method.as_deref())?;
        let module = connectors::module(&connector.key);
        let values = fields::check(method, &new.values)?;
        module.check(method, &values)?;
        let (folder_id, chosen_name) = {
            let conn = self.store.conn();
            let folder_id = folders::resolve(&conn, &new.folder)?;
            let name = new.name.as_deref().map(|name| folders::clean_name("name", name)).transpose()?;
            if let Some(name) = &name {
                connections::ensure_name_free(&conn, folder_id, name, None)?;
            }
            (folder_id, name)
        };
        let destination = Destination::of(&connector.key, &values);
        let ResolvedSecret { asset_id, secret } =
            self.resolve_secret(folder_id, &destination, method, new.secret).await?;

        let details =
            module.verify(&self.services, Verify { method, values: &values, secret: secret.as_ref() }).await?;

        let id = Uuid::new_v4().to_string();
        let first_use = self.store.write(|tx| {
            // Checked (or chosen) now: the name may have been taken while the service answered.
            let name = match &chosen_name {
                Some(name) => {
                    connections::ensure_name_free(tx, folder_id, name, None)?;
                    name.clone()
                }
                // Nobody chose one: the default, numbered when taken, never a refusal.
                None => connections::free_name(tx, folder_id, &module.default_name(&values, &details))?,
            };
            let row = ValidatedRow {
                id: &id,
                name: &name,
                connector: &connector.key,
                auth_method: &method.key,
                fields: &values,
                details: &details,
                asset_id: asset_id.as_deref(),
                checked_at: &now(),
            };
            let own_secret = asset_id.is_none() && secret.is_some();
            connections::insert(tx, folder_id, &row, own_secret.then(|| self.owner.id()))?;
            self.record_first_use(tx, asset_id.as_deref(), &destination)
        })?;
        if let (None, Some(secret)) = (&asset_id, &secret) {
            let pending = Unfinished {
                table: journal::Table::Connections,
                id: id.clone(),
                secrets: vec![VaultKey::Connection(id.clone())],
            };
            self.commit_secrets(&pending, &[secret]).await?;
        }
        Ok(Connection { asset_first_use: first_use, ..self.connection(&id)? })
    }

    /// Edit: validates the changed connection with its service like Connect, and saves
    /// only what it accepted. A secret left out (`None`) is the one the connection has.
    pub async fn update_connection(&self, id: &str, changes: ConnectionChanges) -> Result<Connection> {
        let name = folders::clean_name("name", &changes.name)?;
        let stored = {
            let conn = self.store.conn();
            let stored = connections::load(&conn, id)?;
            connections::ensure_name_free(&conn, stored.folder_id, &name, Some(&stored.id))?;
            stored
        };
        let method = stored.method()?;
        if changes.auth_method.as_deref().is_some_and(|key| key.trim() != method.key) {
            return Err(Error::invalid(
                "auth_method",
                format!("the connection uses {}; to use another auth method, add a new connection", method.label),
            ));
        }
        let module = connectors::module(&stored.connector);
        let values = fields::check(method, &changes.values)?;
        module.check(method, &values)?;
        // The values may name another address: a kept asset must be allowed there too.
        let destination = Destination::of(&stored.connector, &values);
        let ResolvedSecret { asset_id, secret } = match changes.secret {
            Some(source) => self.resolve_secret(stored.folder_id, &destination, method, Some(source)).await?,
            None => ResolvedSecret {
                asset_id: stored.auth_asset_id.clone().filter(|_| stored.auth_kind == connections::AuthKind::Asset),
                secret: self.secret_for(&stored, &destination, true).await?,
            },
        };

        let details =
            module.verify(&self.services, Verify { method, values: &values, secret: secret.as_ref() }).await?;

        let own_key = VaultKey::Connection(stored.id.clone());
        if let (None, Some(secret)) = (&asset_id, &secret) {
            // Overwrites the old value in place: the row never points at a missing secret.
            self.vault.put(&own_key, secret).await?;
        }
        let first_use = self.store.write(|tx| {
            connections::ensure_name_free(tx, stored.folder_id, &name, Some(&stored.id))?;
            let row = ValidatedRow {
                id: &stored.id,
                name: &name,
                connector: &stored.connector,
                auth_method: &stored.auth_method,
                fields: &values,
                details: &details,
                asset_id: asset_id.as_deref(),
                checked_at: &now(),
            };
            connections::update(tx, &row)?;
            self.record_first_use(tx, asset_id.as_deref(), &destination)
        })?;
        if asset_id.is_some() && stored.auth_kind == connections::AuthKind::Own {
            self.vault.delete(&own_key).await?;
        }
        Ok(Connection { asset_first_use: first_use, ..self.connection(&stored.id)? })
    }

    /// The method's secret: typed (format-checked) or a credential asset visible from
    /// `folder`, with the asset's id. None for a method without a secret field. An asset
    /// is refused, before its value is read, unless it may go to `destination`.
    async fn resolve_secret(
        &self,
        folder: i64,
        destination: &Destination,
        method: &'static AuthMethod,
        source: Option<SecretSource>,
    ) -> Result<ResolvedSecret> {
        let Some(field) = method.secret_field() else {
            return match source {
                None => Ok(ResolvedSecret { asset_id: None, secret: None }),
                Some(_) => Err(Error::invalid("secret", format!("{} takes no secret", method.label))),
            };
        };
        match source {
            None => Err(Error::invalid(&field.name, format!("enter the {}", field.label))),
            Some(SecretSource::Value(secret)) => {
                fields::check_secret(field, &secret, &field.label)?;
                Ok(ResolvedSecret { asset_id: None, secret: Some(secret) })
            }
            Some(SecretSource::Asset(asset_name)) => {
                let asset_id = {
                    let conn = self.store.conn();
                    let asset_id = assets::resolve_visible(&conn, folder, asset_name.trim())?;
                    assets::sending(&conn, &asset_id, destination, self.config.reach, true)?;
                    asset_id
                };
                let secret = self.asset_value(&asset_id).await?;
                let source = format!("value of credential asset '{}'", asset_name.trim());
                fields::check_secret(field, &secret, &source)?;
                Ok(ResolvedSecret { asset_id: Some(asset_id), secret: Some(secret) })
            }
        }
    }

    /// Records `destination` for the asset when saving this connection is its first use
    /// (asked again under the write lock: someone may have allowed another meanwhile).
    fn record_first_use(
        &self,
        tx: &rusqlite::Transaction<'_>,
        asset_id: Option<&str>,
        destination: &Destination,
    ) -> Result<Option<Destination>> {
        let Some(asset_id) = asset_id else { return Ok(None) };
        if assets::sending(tx, asset_id, destination, self.config.reach, true)? == assets::Sending::Allowed {
            return Ok(None);
        }
        assets::allow(tx, asset_id, destination)?;
        Ok(Some(destination.clone()))
    }

    pub fn list_connections(&self, query: &ConnectionQuery) -> Result<ConnectionPage> {
        connections::query(&self.store.conn(), &self.search, query)
    }

    /// Renames a connection; nothing else changes, so Twilio is not asked.
    pub fn rename_connection(&self, id: &str, name: &str) -> Result<Connection> {
        let name = folders::clean_name("name", name)?;
        self.store.write(|tx| {
            let stored = connections::load(tx, id)?;
            connections::ensure_name_free(tx, stored.folder_id, &name, Some(&stored.id))?;
            connections::rename(tx, &stored, &name)
        })?;
        self.connection(id)
    }

    pub fn connection(&self, id: &str) -> Result<Connection> {
        let conn = self.store.conn();
        connections::view(&conn, connections::load(&conn, id)?)
    }

    /// Test connection: validates again with the secret as it is now in the vault (a
    /// rotated asset reaches every connection that uses it) and records the outcome.
    pub async fn test_connection(&self, id: &str) -> Result<Connection> {
        let stored = connections::load(&self.store.conn(), id)?;
        let outcome = self.verify_stored(&stored).await;
        self.store.write(|tx| connections::record_check(tx, &stored.id, outcome.as_ref(), &now()))?;
        outcome?;
        self.connection(&stored.id)
    }

    /// Asks the connection's service whether its stored values and secret still work.
    async fn verify_stored(&self, stored: &connections::Stored) -> Result<Details> {
        let method = stored.method()?;
        let module = connectors::module(&stored.connector);
        let secret = self.secret_for(stored, &Destination::of(&stored.connector, &stored.fields), false).await?;
        module.verify(&self.services, Verify { method, values: &stored.fields, secret: secret.as_ref() }).await
    }

    /// Deletes the connection and, if it has its own, its secret.
    pub async fn delete_connection(&self, id: &str) -> Result<()> {
        let doomed = self.store.write(|tx| journal::mark_connection_deleting(tx, id.trim(), self.owner.id()))?;
        self.finish_rows(std::slice::from_ref(&doomed), Some(self.owner.id())).await
    }

    /// The connection's secret, to be sent to `destination`: its own, or its asset's
    /// when the asset may go there (checked before its value is read; `saving`: a
    /// connection being saved, whose first use may decide). None when its auth method
    /// has no secret. Every use of a saved connection's secret comes through here.
    pub(crate) async fn secret_for(
        &self,
        stored: &connections::Stored,
        destination: &Destination,
        saving: bool,
    ) -> Result<Option<Secret>> {
        if stored.method()?.secret_field().is_none() {
            return Ok(None);
        }
        match (stored.auth_kind, &stored.auth_asset_id) {
            (connections::AuthKind::Asset, Some(asset_id)) => {
                assets::sending(&self.store.conn(), asset_id, destination, self.config.reach, saving)?;
            }
            // Its own secret goes where it was saved for: serve's callers cannot move a
            // secret they may not have given (PUT/PATCH of another address, secret kept).
            (connections::AuthKind::Own, _)
                if self.config.reach == crate::destination::Reach::Served
                    && *destination != Destination::of(&stored.connector, &stored.fields) =>
            {
                let field = catalog::require(&stored.connector)?.address_field().unwrap_or("secret");
                return Err(Error::invalid(
                    field,
                    format!(
                        "the connection's secret was saved for another address; to send it to {destination}, give the secret again"
                    ),
                ));
            }
            _ => {}
        }
        Ok(Some(self.read_secret(&stored.secret_key()?).await?.0))
    }

    /// A credential asset's value: from the OS vault, or read from its credential store
    /// now (a rotation done there is seen at once).
    async fn asset_value(&self, asset_id: &str) -> Result<Secret> {
        Ok(self.read_secret(&VaultKey::Asset(asset_id.to_owned())).await?.0)
    }

    /// A secret where it is kept: the OS vault, or an asset's credential store, with the
    /// version read there (for check-and-set).
    pub(crate) async fn read_secret(&self, key: &VaultKey) -> Result<(Secret, Option<u64>)> {
        self.read_secret_at(key, None).await
    }

    /// As [`Patchbay::read_secret`]; in a credential store, `version` rather than the
    /// newest (the OS vault keeps one value and ignores it).
    pub(crate) async fn read_secret_at(&self, key: &VaultKey, version: Option<u64>) -> Result<(Secret, Option<u64>)> {
        match self.home_of(key)? {
            AssetHome::Store { store_id, path, key, .. } => {
                let (value, version) = self.read_store_key(&store_id, &path, &key, version).await?;
                Ok((value, Some(version)))
            }
            AssetHome::Os => Ok((self.vault.get(key).await?, None)),
        }
    }

    /// Writes a secret where it is kept; in a credential store with check-and-set
    /// (`cas` 0: a new secret there).
    pub(crate) async fn put_secret(&self, key: &VaultKey, value: &Secret, cas: u64) -> Result<()> {
        match self.home_of(key)? {
            AssetHome::Store { store_id, path, key, .. } => {
                self.write_store_key(&store_id, &path, &key, value, cas).await.map(drop)
            }
            AssetHome::Os => Ok(self.vault.put(key, value).await?),
        }
    }

    /// Removes a secret where it is kept. A linked asset's secret is the admin's and stays.
    async fn delete_secret(&self, key: &VaultKey) -> Result<()> {
        match self.home_of(key)? {
            AssetHome::Store { store_id, path, managed: true, .. } => self.destroy_store_secret(&store_id, &path).await,
            AssetHome::Store { managed: false, .. } => Ok(()),
            AssetHome::Os => Ok(self.vault.delete(key).await?),
        }
    }

    fn home_of(&self, key: &VaultKey) -> Result<AssetHome> {
        match key {
            VaultKey::Asset(id) => assets::home_of(&self.store.conn(), id),
            _ => Ok(AssetHome::Os),
        }
    }

    // ---- Consistency between rows and vault ----------------------------------------

    /// Writes the secrets of this core's `pending` row, then makes the row active. If
    /// the vault refuses or does not answer in time, the row goes too (a late write is
    /// undone by the vault itself): nothing half-saved is left behind, and the name is
    /// free to try again. A credential store's write whose answer was lost is treated
    /// like a crash: it is removed at once, or, when the store cannot be reached for
    /// that either, the row stays `pending` for a later process's repair to remove both.
    async fn commit_secrets(&self, pending: &Unfinished, values: &[&Secret]) -> Result<()> {
        let owner = self.owner.id();
        // A caller may stop waiting (the window's Cancel drops this future). The OS vault
        // undoes a write it finishes after that, so the row goes then; a store's write
        // may still land, so the row stays for repair.
        let mut lands_late = false;
        for key in &pending.secrets {
            lands_late |= matches!(self.home_of(key)?, AssetHome::Store { .. });
        }
        let mut row = RowGuard { store: &self.store, pending, owner, armed: !lands_late };
        for (written, (key, value)) in pending.secrets.iter().zip(values).enumerate() {
            if let Err(err) = self.put_secret(key, value, 0).await {
                row.armed = false;
                // Its path is this new row's own, so removing it is always safe.
                let undone = if may_have_landed(&err) { written + 1 } else { written };
                let partial = Unfinished { secrets: pending.secrets[..undone].to_vec(), ..pending.clone() };
                if let Err(cleanup) = self.finish_rows(&[partial], Some(owner)).await {
                    tracing::warn!(code = cleanup.code(), "a failed save is left for repair: {cleanup}");
                }
                return Err(err);
            }
        }
        let activated = self.store.write(|tx| journal::activate(tx, pending, owner));
        row.armed = false;
        if activated.is_err() {
            // Not ours any more (it never should be): leave no secret without its row.
            self.finish_rows(std::slice::from_ref(pending), Some(owner)).await?;
        }
        activated
    }

    /// Removes the secrets of rows marked `pending` or `deleting` by `owner`, then the
    /// rows. Each step can be repeated, so a crash midway is finished by repair.
    async fn finish_rows(&self, items: &[Unfinished], owner: Option<&str>) -> Result<()> {
        for item in items {
            for key in &item.secrets {
                self.delete_secret(key).await?;
            }
            self.store.write(|tx| journal::forget(tx, item, owner))?;
        }
        Ok(())
    }

    /// Finishes the work of processes that ended midway (a crash, kill -9, a vault or a
    /// credential store that never answered): their pending rows and secrets go, their
    /// deletions and store removals complete. Work of live processes, this one
    /// included, is never touched. Safe to call from several processes at once. A vault
    /// or store that is unavailable now only delays its rows, never the others'.
    pub async fn repair(&self) -> Result<()> {
        let owners = journal::owners(&self.store.conn())?;
        let mut first_failure = None;
        for owner in owners {
            if owner.as_deref() == Some(self.owner.id()) || !owner::is_gone(&self.config.data_dir, owner.as_deref()) {
                continue;
            }
            let abandoned = journal::of_owner(&self.store.conn(), owner.as_deref())?;
            for item in &abandoned {
                let store = match item.table {
                    journal::Table::Stores => credential_stores::rows::removing_name(&self.store.conn(), &item.id)?,
                    _ => None,
                };
                if let Err(err) = self.finish_rows(std::slice::from_ref(item), owner.as_deref()).await {
                    first_failure.get_or_insert(err);
                } else if let Some(name) = store {
                    // A retry of that removal in this process is then done, not "not found".
                    self.stores_removed_by_repair.lock().unwrap_or_else(|e| e.into_inner()).push(text::name_key(&name));
                }
            }
        }
        owner::sweep(&self.config.data_dir);
        first_failure.map_or(Ok(()), Err)
    }
}

/// Whether a failed write may still have landed: a credential store that gave no answer,
/// or one that says nothing definite (a 5xx, an unreadable answer). The OS vault undoes a
/// write it finishes late itself.
fn may_have_landed(err: &Error) -> bool {
    matches!(err, Error::CredentialStore(err) if !err.wrote_nothing())
}

/// Removes a pending row of the OS vault whose secrets were being written when its future
/// was dropped.
struct RowGuard<'a> {
    store: &'a Store,
    pending: &'a Unfinished,
    owner: &'a str,
    armed: bool,
}

impl Drop for RowGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let forgotten = self.store.write(|tx| journal::forget(tx, self.pending, Some(self.owner)));
            if let Err(err) = forgotten {
                tracing::warn!(code = err.code(), "an interrupted save is left for repair: {err}");
            }
        }
    }
}
