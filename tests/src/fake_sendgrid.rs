//! A fake Twilio SendGrid v3 API on loopback, as `shared/sendgrid/` documents it: two
//! hosts (global, and EU for regional subusers; a key works on its own host only),
//! `Authorization: Bearer`, `406` without an `Accept` header, SendGrid's error body,
//! `X-RateLimit-*` on every answer (Reset as a Unix time, as the docs' example), and
//! `/v3/scopes`, `/v3/verified_senders` (paged by `limit` and `lastSeenID`),
//! `/v3/verified_senders/steps_completed` and `/v3/user/account`.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::loopback::{Faults, LoopbackServer};

/// An API key and what it may do.
#[derive(Debug, Clone, Serialize)]
pub struct SendGridKey {
    pub key: String,
    pub scopes: Vec<String>,
    /// Served by the EU host (an EU regional subuser's key).
    pub eu: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SendGridSeed {
    /// Full access: sends, reads senders and the account.
    pub full: SendGridKey,
    /// Mail Send only: may not read senders or the account (403).
    pub send_only: SendGridKey,
    /// Valid, without `mail.send`.
    pub read_only: SendGridKey,
    /// An EU regional subuser's full-access key.
    pub eu: SendGridKey,
    /// A verified Single Sender of the account.
    pub verified_sender: String,
    /// A Single Sender still waiting for its verification email to be opened.
    pub unverified_sender: String,
}

#[derive(Debug, Clone, Copy)]
pub enum SendGridFault {
    /// 429 with SendGrid's body; no Retry-After (SendGrid documents none).
    RateLimited,
    Status(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendGridRequest {
    pub host: &'static str,
    pub method: String,
    pub path: String,
    pub query: String,
}

struct Sender {
    id: i64,
    email: String,
    verified: bool,
}

#[derive(Default)]
struct State {
    keys: Vec<SendGridKey>,
    senders: Vec<Sender>,
    domain_verified: bool,
    faults: Faults<SendGridFault>,
    log: Vec<SendGridRequest>,
}

pub struct FakeSendGrid {
    api_base: String,
    eu_api_base: String,
    seed: SendGridSeed,
    state: Arc<Mutex<State>>,
    _server: LoopbackServer,
}

fn key(scopes: &[&str], eu: bool) -> SendGridKey {
    // SG. + 22 + . + 43 characters: 69, as SendGrid's keys.
    let random: String = (0..3).map(|_| crate::fake_twilio::unique_suffix()).collect();
    SendGridKey {
        key: format!("SG.{}.{}", &random[..22], &random[22..65]),
        scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
        eu,
    }
}

#[derive(Clone)]
struct Ctx {
    state: Arc<Mutex<State>>,
    host: &'static str,
}

impl FakeSendGrid {
    pub fn start() -> Self {
        let full =
            ["mail.send", "user.account.read", "verified_senders.read", "sender_verification_eligible", "2fa_required"];
        let seed = SendGridSeed {
            full: key(&full, false),
            send_only: key(&["mail.send", "sender_verification_eligible"], false),
            read_only: key(&["alerts.read", "stats.read"], false),
            eu: key(&full, true),
            verified_sender: "alerts@acme.example".into(),
            unverified_sender: "pending@acme.example".into(),
        };
        // Enough senders to take two pages of 100, the verified one on the second.
        let mut senders: Vec<Sender> = (1..=120)
            .map(|id| Sender { id: id * 7, email: format!("team{id}@acme.example"), verified: true })
            .collect();
        senders.push(Sender { id: 1001, email: seed.verified_sender.clone(), verified: true });
        senders.push(Sender { id: 1002, email: seed.unverified_sender.clone(), verified: false });
        let keys = vec![seed.full.clone(), seed.send_only.clone(), seed.read_only.clone(), seed.eu.clone()];
        let state = Arc::new(Mutex::new(State { keys, senders, ..State::default() }));
        let router = |host| Router::new().fallback(handle).with_state(Ctx { state: state.clone(), host });
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = LoopbackServer::start(vec![(any, router("global")), (any, router("eu"))]);
        Self { api_base: server.base(0), eu_api_base: server.base(1), seed, state, _server: server }
    }

    /// Stands in for `https://api.sendgrid.com`.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// Stands in for `https://api.eu.sendgrid.com`.
    pub fn eu_api_base(&self) -> &str {
        &self.eu_api_base
    }

    pub fn seed(&self) -> SendGridSeed {
        self.seed.clone()
    }

    /// Whether the account has an authenticated domain.
    pub fn set_domain_verified(&self, verified: bool) {
        self.state().domain_verified = verified;
    }

    pub fn inject(&self, fault: SendGridFault, times: u32) {
        self.state().faults.push(fault, times);
    }

    pub fn requests(&self) -> Vec<SendGridRequest> {
        self.state().log.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// SendGrid's error body as its spec declares it (real answers add `"help": null`, which
/// the spec's schemas for these paths do not declare).
fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "errors": [{ "field": null, "message": message }] }))).into_response()
}

fn with_rate_limit_headers(mut response: Response) -> Response {
    let reset = (chrono::Utc::now() + chrono::Duration::minutes(1)).timestamp().to_string();
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", "600".parse().unwrap());
    headers.insert("x-ratelimit-remaining", "599".parse().unwrap());
    headers.insert("x-ratelimit-reset", reset.parse().unwrap());
    response
}

async fn handle(AxumState(ctx): AxumState<Ctx>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    with_rate_limit_headers(answer(&ctx, &method, &uri, &headers))
}

fn answer(ctx: &Ctx, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    let query: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let fault = {
        let mut state = lock(&ctx.state);
        state.log.push(SendGridRequest {
            host: ctx.host,
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or("").to_owned(),
        });
        state.faults.take()
    };
    match fault {
        Some(SendGridFault::RateLimited) => return error(StatusCode::TOO_MANY_REQUESTS, "too many requests"),
        Some(SendGridFault::Status(status)) => {
            return error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "internal server error",
            );
        }
        None => {}
    }
    if !headers.contains_key(header::ACCEPT) {
        return error(StatusCode::NOT_ACCEPTABLE, "Missing Accept header. For example: Accept: application/json");
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let state = lock(&ctx.state);
    // A key works on its own region's host only; anywhere else it is unknown.
    let Some(key) = bearer.and_then(|token| state.keys.iter().find(|k| k.key == token && k.eu == (ctx.host == "eu")))
    else {
        return error(StatusCode::UNAUTHORIZED, "The provided authorization grant is invalid, expired, or revoked");
    };
    let may = |scope: &str| key.scopes.iter().any(|granted| granted == scope);
    let forbidden = || error(StatusCode::FORBIDDEN, "access forbidden");
    if method != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    match uri.path() {
        "/v3/scopes" => (StatusCode::OK, axum::Json(json!({ "scopes": key.scopes }))).into_response(),
        "/v3/verified_senders" if !may("verified_senders.read") => forbidden(),
        "/v3/verified_senders" => {
            let number = |name: &str| query.iter().find(|(key, _)| key == name).map(|(_, value)| value.parse::<i64>());
            let limit = match number("limit") {
                None => 50,
                Some(Ok(limit)) if limit > 0 => limit as usize,
                Some(_) => return error(StatusCode::BAD_REQUEST, "limit must be a positive number"),
            };
            let after = match number("lastSeenID") {
                None => i64::MIN,
                Some(Ok(id)) => id,
                Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "lastSeenID must be a number"),
            };
            let mut senders: Vec<&Sender> = state.senders.iter().filter(|sender| sender.id > after).collect();
            senders.sort_by_key(|sender| sender.id);
            let results: Vec<Value> = senders
                .into_iter()
                .take(limit)
                .map(|sender| {
                    json!({
                        "id": sender.id, "nickname": sender.email, "from_email": sender.email, "from_name": "Acme",
                        "reply_to": sender.email, "reply_to_name": "Acme", "address": "1 Main St", "address2": "",
                        "state": "CA", "city": "San Francisco", "zip": "94105", "country": "USA",
                        "verified": sender.verified, "locked": false,
                    })
                })
                .collect();
            (StatusCode::OK, axum::Json(json!({ "results": results }))).into_response()
        }
        "/v3/verified_senders/steps_completed" if !may("verified_senders.read") => forbidden(),
        "/v3/verified_senders/steps_completed" => {
            let sender_verified = state.senders.iter().any(|sender| sender.verified);
            let results = json!({ "sender_verified": sender_verified, "domain_verified": state.domain_verified });
            (StatusCode::OK, axum::Json(json!({ "results": results }))).into_response()
        }
        "/v3/user/account" if !may("user.account.read") => forbidden(),
        "/v3/user/account" => {
            (StatusCode::OK, axum::Json(json!({ "type": "paid", "reputation": 99.5 }))).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}
