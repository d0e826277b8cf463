//! A REST service on loopback for the generic HTTP connector, answering as RFC 9110 says
//! servers do: `401` with a `WWW-Authenticate` challenge for missing or wrong credentials
//! (Basic or Bearer), `403` for a wrong API key, redirects with `Location`, and `404`.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;

use crate::loopback::LoopbackServer;

/// The credentials the service accepts.
#[derive(Debug, Clone, Serialize)]
pub struct HttpSeed {
    pub username: String,
    pub password: String,
    pub token: String,
    pub api_key_header: String,
    pub api_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub path: String,
    /// The `Authorization` scheme sent (`Basic`, `Bearer`), if any; never the credentials.
    pub scheme: Option<String>,
}

pub struct FakeHttp {
    base: String,
    seed: HttpSeed,
    log: Arc<Mutex<Vec<HttpRequest>>>,
    _server: LoopbackServer,
}

#[derive(Clone)]
struct Ctx {
    seed: HttpSeed,
    log: Arc<Mutex<Vec<HttpRequest>>>,
}

impl FakeHttp {
    pub fn start() -> Self {
        let seed = HttpSeed {
            username: "robot".into(),
            password: crate::fake_twilio::unique_suffix(),
            token: crate::fake_twilio::unique_suffix(),
            api_key_header: "X-API-Key".into(),
            api_key: crate::fake_twilio::unique_suffix(),
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new().fallback(handle).with_state(Ctx { seed: seed.clone(), log: log.clone() });
        let server = LoopbackServer::start(vec![("127.0.0.1:0".parse().unwrap(), router)]);
        Self { base: format!("{}/api", server.base(0)), seed, log, _server: server }
    }

    /// The API's base URL (`http://127.0.0.1:<port>/api`).
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn seed(&self) -> HttpSeed {
        self.seed.clone()
    }

    pub fn requests(&self) -> Vec<HttpRequest> {
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

fn challenge(scheme: &str) -> Response {
    let value = format!("{scheme} realm=\"fake-api\"");
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, value)], "unauthorized").into_response()
}

async fn handle(AxumState(ctx): AxumState<Ctx>, uri: Uri, headers: HeaderMap) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).unwrap_or("");
    let (scheme, credentials) = authorization.split_once(' ').unwrap_or((authorization, ""));
    ctx.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(HttpRequest {
        path: uri.path().to_owned(),
        scheme: Some(scheme.to_owned()).filter(|scheme| !scheme.is_empty()),
    });
    let seed = &ctx.seed;
    match uri.path() {
        "/api/status" => (StatusCode::OK, "{\"ok\":true}").into_response(),
        "/api/basic/status" => {
            let decoded = base64::engine::general_purpose::STANDARD.decode(credentials).unwrap_or_default();
            let expected = format!("{}:{}", seed.username, seed.password);
            if scheme == "Basic" && decoded == expected.as_bytes() {
                StatusCode::NO_CONTENT.into_response()
            } else {
                challenge("Basic")
            }
        }
        "/api/bearer/status" => {
            if scheme == "Bearer" && credentials == seed.token {
                StatusCode::OK.into_response()
            } else {
                challenge("Bearer")
            }
        }
        "/api/key/status" => match headers.get(seed.api_key_header.as_str()).and_then(|value| value.to_str().ok()) {
            Some(key) if key == seed.api_key => StatusCode::OK.into_response(),
            _ => (StatusCode::FORBIDDEN, "forbidden").into_response(),
        },
        "/api/moved" => {
            (StatusCode::FOUND, [(header::LOCATION, "https://elsewhere.example/api/status")]).into_response()
        }
        _ => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
