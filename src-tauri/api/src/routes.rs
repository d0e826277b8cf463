//! `/instances`, `/credential-stores` and `/assets`: each handler checks who is calling,
//! makes one core call, answers JSON.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use patchbay_core::credential_stores::{NewStore, StoreCredentials};
use patchbay_core::instances::ApiCredentials;
use patchbay_core::instances::{Instance, InstanceFilter, connector_of_element};
use patchbay_core::{FieldValue, Patchbay, Secret};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ApiError;
use crate::auth::{Caller, caller};
use crate::body::{InstanceBody, ParsedSpec, instance_json, parse, parse_patch};
use crate::guard::{Guard, method_not_allowed};

#[derive(Clone)]
struct Api {
    core: Arc<Patchbay>,
    credentials: Arc<Credentials>,
}

/// The platform secrets as last read from the vault. `patchbay api credentials --rotate`
/// (another process) replaces them there, and `serve` follows without a restart: secrets
/// older than [`KEEP_AT_MOST`] are read again before use (so the old ones stop working
/// within that), and a request whose secrets do not match makes `serve` read them again
/// at once (so the new ones work at once), at most once a second, so that a client with
/// wrong secrets cannot make it hammer the vault.
struct Credentials {
    current: RwLock<ApiCredentials>,
    last_read: Mutex<Instant>,
}

const REREAD_AT_MOST_EVERY: Duration = Duration::from_secs(1);
const KEEP_AT_MOST: Duration = Duration::from_secs(5);

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

pub async fn router(core: Arc<Patchbay>, guard: Guard) -> Result<Router, patchbay_core::Error> {
    let current = RwLock::new(core.api_credentials(false).await?);
    // As if read a moment ago: the first request with other secrets may read them again.
    let last_read = Mutex::new(Instant::now().checked_sub(REREAD_AT_MOST_EVERY).unwrap_or_else(Instant::now));
    let api = Api { core, credentials: Arc::new(Credentials { current, last_read }) };
    Ok(Router::new()
        .route("/instances", get(list).post(create))
        .route("/instances/{id}", get(fetch).put(replace).patch(update).delete(remove))
        .route("/instances/{id}/events", get(events))
        .route("/credential-stores", get(list_stores).post(add_store))
        .route("/credential-stores/{name}", axum::routing::delete(remove_store))
        .route("/credential-stores/{name}/test", axum::routing::post(test_store))
        .route("/assets", get(list_assets).post(create_asset))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; see docs/openapi.yaml")
        })
        .method_not_allowed_fallback(method_not_allowed)
        // The guard reads the body itself (time and size limits); axum's own limit
        // would answer 413 without the API's error body.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(guard, crate::guard::guard))
        .with_state(api))
}

impl Api {
    /// Every instance: only with the user and organization secrets.
    async fn organization(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.caller(headers).await? {
            Some(Caller::Organization) => Ok(()),
            _ => Err(ApiError::unauthorized()),
        }
    }

    /// One instance: the organization, or the holder of that instance's token.
    async fn instance(&self, headers: &HeaderMap, id: &str) -> Result<Caller, ApiError> {
        match self.caller(headers).await? {
            Some(Caller::Organization) => Ok(Caller::Organization),
            Some(Caller::Element(token)) if self.core.instance_token_matches(id, &token)? => Ok(Caller::Element(token)),
            _ => Err(ApiError::unauthorized()),
        }
    }

    /// Who the headers prove the caller to be, with the secrets re-read once when they
    /// do not match (they may have been rotated since they were read).
    async fn caller(&self, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
        let check = |credentials: &ApiCredentials| caller(headers, &credentials.user, &credentials.organization);
        let stale = self.reread_due(KEEP_AT_MOST);
        if !stale && let Some(found) = check(&self.credentials.current.read().unwrap_or_else(|e| e.into_inner())) {
            return Ok(Some(found));
        }
        if !stale && !self.reread_due(REREAD_AT_MOST_EVERY) {
            return Ok(None);
        }
        let fresh = self.core.api_credentials(false).await?;
        let found = check(&fresh);
        *self.credentials.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(found)
    }

    /// Whether the secrets were read longer ago than `age`; if so, the caller reads them now.
    fn reread_due(&self, age: Duration) -> bool {
        let mut last_read = self.credentials.last_read.lock().unwrap_or_else(|e| e.into_inner());
        let due = last_read.elapsed() >= age;
        if due {
            *last_read = Instant::now();
        }
        due
    }
}

/// The core's spec, with fields given as credential assets (a username) read from them.
async fn resolve(
    api: &Api,
    parsed: ParsedSpec,
    folder: &str,
) -> Result<patchbay_core::instances::InstanceSpec, ApiError> {
    let mut spec = parsed.spec;
    for (field, asset) in parsed.from_assets {
        let value = api
            .core
            .field_from_asset(folder, &asset, field, field.configuration_key(), &spec.connector, &spec.values)
            .await?;
        spec.values.insert(field.name.clone(), FieldValue::Text(value));
    }
    Ok(spec)
}

async fn create(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Answer {
    api.organization(&headers).await?;
    let parsed = parse(&body)?.into_spec(false, None)?;
    let folder = parsed.spec.folder.clone();
    let spec = resolve(&api, parsed, &folder).await?;
    let (instance, token) = api.core.provision_instance(spec).await?;
    Ok((StatusCode::OK, axum::Json(instance_json(&instance, Some(&token)))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListQuery {
    folder: Option<String>,
    /// Comma-separated; an instance must carry every one.
    tags: Option<String>,
    element: Option<String>,
    /// Paging as connector platforms do it: `pageSize`, and `nextPage` set to the
    /// `Elements-Next-Page-Token` header of the previous page.
    page_size: Option<u32>,
    next_page: Option<String>,
}

pub const DEFAULT_PAGE_SIZE: u32 = 200;
pub const MAX_PAGE_SIZE: u32 = 500;
/// The response header that carries the next page's token, when there is one.
pub const NEXT_PAGE_HEADER: &str = "Elements-Next-Page-Token";

async fn list(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    api.organization(&headers).await?;
    let Query(query) = query.map_err(|err| ApiError::bad_request(format!("invalid query: {}", err.body_text())))?;
    // Checked first: a request that asks for an unknown element is still a bad request.
    let page_size = query.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(ApiError::bad_request(format!("pageSize must be between 1 and {MAX_PAGE_SIZE}")));
    }
    let connector = match query.element.as_deref() {
        None => None,
        Some(element) => match connector_of_element(element) {
            Some(connector) => Some(connector.key.clone()),
            None => return Ok((StatusCode::OK, axum::Json(json!([]))).into_response()),
        },
    };
    let filter = InstanceFilter {
        folder: query.folder,
        connector,
        tags: query
            .tags
            .map(|tags| tags.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect())
            .unwrap_or_default(),
    };
    let from = match query.next_page.as_deref() {
        None | Some("") => 0,
        Some(token) => page_position(token)
            .ok_or_else(|| ApiError::bad_request("nextPage is not a token this API gave; start from the first page"))?,
    };
    let (instances, next) = api.core.instances(&filter, from, page_size)?;
    let body = axum::Json(Value::Array(instances.iter().map(|i| instance_json(i, None)).collect()));
    let mut headers = HeaderMap::new();
    if let Some(next) = next {
        headers.insert(NEXT_PAGE_HEADER, format!("p{next}").parse().expect("an ASCII header value"));
    }
    Ok((StatusCode::OK, headers, body).into_response())
}

/// Where a page token says the page starts (tokens are `p<position>`; opaque to clients).
fn page_position(token: &str) -> Option<u32> {
    token.strip_prefix('p')?.parse().ok()
}

async fn fetch(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    api.instance(&headers, &id).await?;
    Ok((StatusCode::OK, axum::Json(instance_json(&api.core.instance(&id)?, None))))
}

async fn replace(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Answer {
    let caller = api.instance(&headers, &id).await?;
    apply(&api, caller, &id, parse(&body)?).await
}

/// PATCH: the fields sent change, the others keep their values.
async fn update(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Answer {
    let caller = api.instance(&headers, &id).await?;
    let patch = parse_patch(&body)?;
    apply(&api, caller, &id, patch.over(&api.core.instance(&id)?)).await
}

/// PUT's and PATCH's common end: the whole new request, checked and applied.
async fn apply(api: &Api, caller: Caller, id: &str, body: InstanceBody) -> Answer {
    let current = api.core.instance(id)?;
    let parsed = body.into_spec(true, Some(&current.connection.auth_method))?;
    if matches!(caller, Caller::Element(_)) {
        element_may_apply(&current, &parsed)?;
    }
    let folder = api.core.connection(id)?.folder;
    let spec = resolve(api, parsed, &folder).await?;
    Ok((StatusCode::OK, axum::Json(instance_json(&api.core.replace_instance(id, spec).await?, None))))
}

/// An instance token may read and use its instance, and rename or re-tag it, but not
/// point it at other credentials or send its events elsewhere: that takes the
/// organization's secrets. (Nor may it name credential assets, whose names it could
/// otherwise probe.)
fn element_may_apply(current: &Instance, parsed: &ParsedSpec) -> Result<(), ApiError> {
    let spec = &parsed.spec;
    let connection = &current.connection;
    let method = patchbay_core::catalog::connector(&connection.connector)
        .and_then(|connector| connector.auth_method(&connection.auth_method));
    let same_values = method.is_some_and(|method| {
        patchbay_core::fields::check(method, &spec.values).is_ok_and(|values| values == connection.fields)
    });
    let unchanged = spec.secret.is_none()
        && parsed.from_assets.is_empty()
        && spec.connector == connection.connector
        && same_values
        && spec.settings.events.callback_url == current.settings.events.callback_url
        && spec.signature_key.is_none();
    if unchanged {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "an instance token may not change the instance's credentials, phone number or event callback; send the organization's Authorization instead",
    ))
}

/// The instance's events and where their delivery stands (failures stay visible).
async fn events(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    api.instance(&headers, &id).await?;
    let deliveries = api.core.deliveries(&id)?;
    Ok((StatusCode::OK, axum::Json(serde_json::to_value(deliveries).expect("plain data serialises"))))
}

async fn remove(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    api.instance(&headers, &id).await?;
    api.core.delete_connection(&id).await?;
    Ok((StatusCode::OK, axum::Json(json!({ "id": id, "deleted": true }))))
}

// ---- Credential stores and assets: the organization's, like the CLI's `store` and `asset`.

fn json_answer(value: impl serde::Serialize) -> Answer {
    Ok((StatusCode::OK, axum::Json(serde_json::to_value(value).expect("plain data serialises"))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StoreBody {
    name: String,
    address: String,
    mount: Option<String>,
    namespace: Option<String>,
    /// Sign in with a token…
    token: Option<Secret>,
    /// …or with AppRole.
    approle: Option<AppRoleBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AppRoleBody {
    role_id: String,
    secret_id: Secret,
}

async fn list_stores(State(api): State<Api>, headers: HeaderMap) -> Answer {
    api.organization(&headers).await?;
    json_answer(api.core.list_stores()?)
}

async fn add_store(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Answer {
    api.organization(&headers).await?;
    let body: StoreBody = crate::body::from_json(&body)?;
    let credentials = match (body.token, body.approle) {
        (Some(token), None) => StoreCredentials::Token(token),
        (None, Some(approle)) => StoreCredentials::AppRole { role_id: approle.role_id, secret_id: approle.secret_id },
        _ => return Err(ApiError::bad_request("send either token or approle (roleId, secretId)")),
    };
    let new =
        NewStore { name: body.name, address: body.address, mount: body.mount, namespace: body.namespace, credentials };
    json_answer(api.core.add_store(new).await?)
}

async fn test_store(State(api): State<Api>, headers: HeaderMap, Path(name): Path<String>) -> Answer {
    api.organization(&headers).await?;
    json_answer(api.core.test_store(&name).await?)
}

async fn remove_store(State(api): State<Api>, headers: HeaderMap, Path(name): Path<String>) -> Answer {
    api.organization(&headers).await?;
    api.core.remove_store(&name).await?;
    json_answer(json!({ "name": name, "deleted": true }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetsQuery {
    folder: Option<String>,
}

async fn list_assets(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<AssetsQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    api.organization(&headers).await?;
    let Query(query) = query.map_err(|err| ApiError::bad_request(format!("invalid query: {}", err.body_text())))?;
    json_answer(api.core.list_assets(query.folder.as_deref())?)
}

/// A new credential asset: a `value` kept in `store` (default: the folder's), or a
/// `link` to a key of a secret already in `store`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetBody {
    folder: String,
    name: String,
    store: Option<String>,
    value: Option<Secret>,
    link: Option<LinkBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    path: String,
    key: String,
}

async fn create_asset(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Answer {
    api.organization(&headers).await?;
    let body: AssetBody = crate::body::from_json(&body)?;
    let asset = match (body.value, body.link, body.store) {
        (Some(value), None, store) => api.core.create_asset(&body.folder, &body.name, value, store.as_deref()).await?,
        (None, Some(link), Some(store)) => {
            api.core.link_asset(&body.folder, &body.name, &store, &link.path, &link.key).await?
        }
        _ => {
            return Err(ApiError::bad_request(
                "send a value (and optionally a store), or a store and a link (path, key)",
            ));
        }
    };
    json_answer(asset)
}
