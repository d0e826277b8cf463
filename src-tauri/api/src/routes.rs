//! `/instances`: each handler checks who is calling, makes one core call, answers JSON.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use patchbay_core::instances::{ELEMENT_KEY, InstanceFilter};
use patchbay_core::{Patchbay, Secret};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, caller};
use crate::body::{ParsedSpec, Username, instance_json, parse};
use crate::{ApiError, MAX_BODY_BYTES};

#[derive(Clone)]
struct Api {
    core: Arc<Patchbay>,
    user: Arc<Secret>,
    organization: Arc<Secret>,
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

pub async fn router(core: Arc<Patchbay>) -> Result<Router, patchbay_core::Error> {
    let credentials = core.api_credentials(false).await?;
    let api = Api { core, user: Arc::new(credentials.user), organization: Arc::new(credentials.organization) };
    Ok(Router::new()
        .route("/instances", get(list).post(create))
        .route("/instances/{id}", get(fetch).put(replace).delete(remove))
        .route("/instances/{id}/events", get(events))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; see docs/openapi.yaml")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api))
}

impl Api {
    /// Every instance: only with the user and organization secrets.
    fn organization(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match caller(headers, &self.user, &self.organization) {
            Some(Caller::Organization) => Ok(()),
            _ => Err(ApiError::unauthorized()),
        }
    }

    /// One instance: the organization, or the holder of that instance's token.
    fn instance(&self, headers: &HeaderMap, id: &str) -> Result<(), ApiError> {
        match caller(headers, &self.user, &self.organization) {
            Some(Caller::Organization) => Ok(()),
            Some(Caller::Element(token)) if self.core.instance_token_matches(id, &token)? => Ok(()),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// The core's spec, with a username given as a credential asset resolved to its SID.
async fn resolve(
    api: &Api,
    parsed: ParsedSpec,
    folder: &str,
) -> Result<patchbay_core::instances::InstanceSpec, ApiError> {
    let mut spec = parsed.spec;
    spec.account_sid = match parsed.username {
        Username::Sid(sid) => sid,
        Username::Asset(name) => api.core.account_sid_from_asset(folder, &name).await?,
    };
    spec.settings.check()?;
    Ok(spec)
}

async fn create(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Answer {
    api.organization(&headers)?;
    let parsed = parse(&body)?.into_spec(false)?;
    let folder = parsed.spec.folder.clone();
    let spec = resolve(&api, parsed, &folder).await?;
    let (instance, token) = api.core.provision_instance(spec).await?;
    Ok((StatusCode::OK, axum::Json(instance_json(&instance, Some(&token)))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    folder: Option<String>,
    /// Comma-separated; an instance must carry every one.
    tags: Option<String>,
    element: Option<String>,
}

async fn list(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    api.organization(&headers)?;
    let Query(query) = query.map_err(|err| ApiError::bad_request(format!("invalid query: {}", err.body_text())))?;
    if query.element.as_deref().is_some_and(|element| element != ELEMENT_KEY) {
        return Ok((StatusCode::OK, axum::Json(json!([]))));
    }
    let filter = InstanceFilter {
        folder: query.folder,
        tags: query
            .tags
            .map(|tags| tags.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect())
            .unwrap_or_default(),
    };
    let instances = api.core.instances(&filter)?;
    Ok((StatusCode::OK, axum::Json(Value::Array(instances.iter().map(|i| instance_json(i, None)).collect()))))
}

async fn fetch(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    api.instance(&headers, &id)?;
    Ok((StatusCode::OK, axum::Json(instance_json(&api.core.instance(&id)?, None))))
}

async fn replace(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Answer {
    api.instance(&headers, &id)?;
    let parsed = parse(&body)?.into_spec(true)?;
    let folder = api.core.connection(&id)?.folder;
    let spec = resolve(&api, parsed, &folder).await?;
    Ok((StatusCode::OK, axum::Json(instance_json(&api.core.replace_instance(&id, spec).await?, None))))
}

/// The instance's events and where their delivery stands (failures stay visible).
async fn events(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    api.instance(&headers, &id)?;
    let deliveries = api.core.deliveries(&id)?;
    Ok((StatusCode::OK, axum::Json(serde_json::to_value(deliveries).expect("plain data serialises"))))
}

async fn remove(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    api.instance(&headers, &id)?;
    api.core.delete_connection(&id).await?;
    Ok((StatusCode::OK, axum::Json(json!({ "id": id, "deleted": true }))))
}
