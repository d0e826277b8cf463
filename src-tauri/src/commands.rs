//! The window's commands: parse, call the core, map the error to an `ErrorBody`.
//! Argument names are the UI's (camelCase in JavaScript, as Tauri maps them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use patchbay_core::credential_stores::{CredentialStore, FolderStore, NewStore, StoreCheck, StoreForm};
use patchbay_core::rotation::{RotationPlan, RotationRecord, RotationSubject};
use patchbay_core::{
    Asset, Connection, ConnectionForm, ConnectionPage, ConnectionQuery, Connector, ErrorBody, Folder, FolderContents,
    Patchbay, Secret,
};
use tauri::State;
use tokio::task::AbortHandle;

type Core<'a> = State<'a, Arc<Patchbay>>;
type Answer<T> = Result<T, ErrorBody>;

fn body(err: patchbay_core::Error) -> ErrorBody {
    err.to_body()
}

#[tauri::command]
pub async fn list_folders(core: Core<'_>) -> Answer<Vec<Folder>> {
    core.list_folders().map_err(body)
}

#[tauri::command]
pub async fn create_folder(core: Core<'_>, path: String) -> Answer<Folder> {
    core.create_folder(&path).map_err(body)
}

#[tauri::command]
pub async fn rename_folder(core: Core<'_>, path: String, new_name: String) -> Answer<Folder> {
    core.rename_folder(&path, &new_name).map_err(body)
}

#[tauri::command]
pub async fn move_folder(core: Core<'_>, path: String, new_parent: Option<String>) -> Answer<Folder> {
    core.move_folder(&path, new_parent.as_deref()).map_err(body)
}

#[tauri::command]
pub async fn folder_contents(core: Core<'_>, path: String) -> Answer<FolderContents> {
    core.folder_contents(&path).map_err(body)
}

#[tauri::command]
pub async fn delete_folder(core: Core<'_>, path: String, recursive: bool) -> Answer<FolderContents> {
    core.delete_folder(&path, recursive).await.map_err(body)
}

#[tauri::command]
pub async fn search_connectors(core: Core<'_>, query: String) -> Answer<Vec<Connector>> {
    Ok(core.connectors(&query).into_iter().cloned().collect())
}

#[tauri::command]
pub async fn list_assets(core: Core<'_>, folder: String) -> Answer<Vec<Asset>> {
    core.list_assets(Some(&folder)).map_err(body)
}

#[tauri::command]
pub async fn create_asset(
    core: Core<'_>,
    folder: String,
    name: String,
    value: Secret,
    store: Option<String>,
) -> Answer<Asset> {
    core.create_asset(&folder, &name, value, store.as_deref()).await.map_err(body)
}

#[tauri::command]
pub async fn link_asset(
    core: Core<'_>,
    folder: String,
    name: String,
    store: String,
    path: String,
    key: String,
) -> Answer<Asset> {
    core.link_asset(&folder, &name, &store, &path, &key).await.map_err(body)
}

/// `destination`: `twilio`, `http:https://host`…; `allowed` false takes it away.
#[tauri::command]
pub async fn set_asset_destination(
    core: Core<'_>,
    folder: String,
    name: String,
    destination: String,
    allowed: bool,
) -> Answer<Asset> {
    core.set_asset_destination(&folder, &name, &destination, allowed).map_err(body)
}

#[tauri::command]
pub async fn folder_store(core: Core<'_>, folder: String) -> Answer<FolderStore> {
    core.folder_store(&folder).map_err(body)
}

#[tauri::command]
pub async fn set_folder_store(core: Core<'_>, folder: String, store: Option<String>) -> Answer<FolderStore> {
    core.set_folder_store(&folder, store.as_deref()).map_err(body)
}

#[tauri::command]
pub async fn list_stores(core: Core<'_>) -> Answer<Vec<CredentialStore>> {
    core.list_stores().map_err(body)
}

#[tauri::command]
pub async fn add_store(core: Core<'_>, store: StoreForm) -> Answer<CredentialStore> {
    let new = NewStore::try_from(store).map_err(body)?;
    core.add_store(new).await.map_err(body)
}

#[tauri::command]
pub async fn test_store(core: Core<'_>, name: String) -> Answer<StoreCheck> {
    core.test_store(&name).await.map_err(body)
}

#[tauri::command]
pub async fn remove_store(core: Core<'_>, name: String) -> Answer<()> {
    core.remove_store(&name).await.map_err(body)
}

#[tauri::command]
pub async fn delete_asset(core: Core<'_>, folder: String, name: String, force: bool) -> Answer<()> {
    core.delete_asset(&folder, &name, force).await.map_err(body)
}

#[tauri::command]
pub async fn list_connections(
    core: Core<'_>,
    folder: Option<String>,
    search: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
) -> Answer<ConnectionPage> {
    let query = ConnectionQuery { folder, search, limit, offset: offset.unwrap_or(0) };
    core.list_connections(&query).map_err(body)
}

#[tauri::command]
pub async fn get_connection(core: Core<'_>, id: String) -> Answer<Connection> {
    core.connection(&id).map_err(body)
}

/// Calls in flight that the window can stop (Connect, a rotation), by its request id.
#[derive(Default)]
pub struct PendingCalls(Mutex<HashMap<String, AbortHandle>>);

#[tauri::command]
pub async fn add_connection(
    core: Core<'_>,
    pending: State<'_, PendingCalls>,
    request_id: String,
    folder: String,
    form: ConnectionForm,
) -> Answer<Connection> {
    let core = Arc::clone(&core);
    connect(&pending, request_id, async move { core.add_connection(form.into_new(folder)).await }).await
}

#[tauri::command]
pub async fn update_connection(
    core: Core<'_>,
    pending: State<'_, PendingCalls>,
    request_id: String,
    id: String,
    form: ConnectionForm,
) -> Answer<Connection> {
    let core = Arc::clone(&core);
    connect(&pending, request_id, async move { core.update_connection(&id, form.into_changes()).await }).await
}

/// A Connect the window can cancel: the core leaves nothing behind when it is dropped
/// while Twilio or the vault is being asked.
async fn connect(
    pending: &State<'_, PendingCalls>,
    request_id: String,
    connect: impl Future<Output = patchbay_core::Result<Connection>> + Send + 'static,
) -> Answer<Connection> {
    match abortable(pending, request_id, connect).await {
        Some(result) => result.map_err(body),
        None => Err(body(patchbay_core::Error::Cancelled("Connect was cancelled; nothing was saved".into()))),
    }
}

/// Runs `call` as its own task that `cancel_call` can abort; None once aborted.
async fn abortable<T: Send + 'static>(
    pending: &State<'_, PendingCalls>,
    request_id: String,
    call: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    let task = tokio::spawn(call);
    lock(pending).insert(request_id.clone(), task.abort_handle());
    let outcome = task.await;
    lock(pending).remove(&request_id);
    outcome.ok()
}

#[tauri::command]
pub async fn cancel_call(pending: State<'_, PendingCalls>, request_id: String) -> Answer<bool> {
    Ok(lock(&pending).remove(&request_id).map(|task| task.abort()).is_some())
}

fn lock<'a>(pending: &'a State<'_, PendingCalls>) -> std::sync::MutexGuard<'a, HashMap<String, AbortHandle>> {
    pending.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[tauri::command]
pub async fn rotation_plan(core: Core<'_>, subject: RotationSubject) -> Answer<RotationPlan> {
    core.plan_rotation(&subject).await.map_err(body)
}

/// Rotates; closing the dialog (`cancel_call`) before promotion cancels the rotation and
/// changes nothing, after it the rotation finishes storing the new token.
#[tauri::command]
pub async fn rotate_auth_token(
    core: Core<'_>,
    pending: State<'_, PendingCalls>,
    request_id: String,
    subject: RotationSubject,
) -> Answer<RotationRecord> {
    let id = core.start_rotation(&subject).await.map_err(body)?;
    let (runner, run_id) = (Arc::clone(&core), id.clone());
    if let Some(finished) = abortable(&pending, request_id, async move { runner.run_rotation(&run_id).await }).await {
        return finished.map_err(body);
    }
    match core.cancel_rotation(&id).await {
        Err(patchbay_core::Error::RotationPromoted) => core.run_rotation(&id).await.map_err(body),
        Ok(cancelled) => Err(body(patchbay_core::Error::Cancelled(cancelled.outcome.unwrap_or_default()))),
        Err(err) => Err(body(err)),
    }
}

#[tauri::command]
pub async fn resume_rotations(core: Core<'_>) -> Answer<Vec<RotationRecord>> {
    core.resume_rotations().await.map_err(body)
}

#[tauri::command]
pub async fn rotation_history(core: Core<'_>) -> Answer<Vec<RotationRecord>> {
    core.rotation_history().map_err(body)
}

#[tauri::command]
pub async fn test_connection(core: Core<'_>, id: String) -> Answer<Connection> {
    core.test_connection(&id).await.map_err(body)
}

#[tauri::command]
pub async fn delete_connection(core: Core<'_>, id: String) -> Answer<()> {
    core.delete_connection(&id).await.map_err(body)
}
