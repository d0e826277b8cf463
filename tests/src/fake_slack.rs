//! A fake Slack Web API on loopback, as `shared/slack/` documents it: `<base>/auth.test`
//! by GET or POST, the token as `Authorization: Bearer` or a `token` form field (never a
//! query string: apps made since 2021 may not), every answer HTTP 200 with `ok`, the
//! granted scopes in `x-oauth-scopes`, and 429 with `Retry-After` when rate limited.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::loopback::{Faults, LoopbackServer};

/// A bot token's state, as Slack would answer `auth.test` for it.
#[derive(Debug, Clone, Serialize)]
pub struct SlackBot {
    pub token: String,
    pub team: String,
    pub team_id: String,
    pub user: String,
    pub user_id: String,
    pub bot_id: String,
    pub scopes: Vec<String>,
    /// `ok`, or the `error` auth.test answers for it (`token_revoked`, `token_expired`, `account_inactive`).
    pub answer: String,
}

/// The seeded tokens, by what a test wants of them.
#[derive(Debug, Clone, Serialize)]
pub struct SlackSeed {
    /// Works, with `chat:write`.
    pub bot: SlackBot,
    /// Works, without `chat:write`.
    pub read_only: SlackBot,
    pub revoked: SlackBot,
    pub expired: SlackBot,
    pub inactive: SlackBot,
}

/// What the next requests meet instead of their answer.
#[derive(Debug, Clone, Copy)]
pub enum SlackFault {
    /// 429 with this `Retry-After` (seconds).
    RateLimited(u64),
    /// This HTTP status, as a failing Slack edge answers.
    Status(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackRequest {
    pub method: String,
    pub path: String,
    /// Where the token came from: `header`, `form`, `query` or `none`.
    pub token_from: &'static str,
}

#[derive(Default)]
struct State {
    bots: Vec<SlackBot>,
    faults: Faults<SlackFault>,
    log: Vec<SlackRequest>,
}

pub struct FakeSlack {
    base: String,
    seed: SlackSeed,
    state: Arc<Mutex<State>>,
    _server: LoopbackServer,
}

fn bot(team: &str, scopes: &[&str], answer: &str) -> SlackBot {
    let digits = crate::fake_twilio::unique_suffix();
    let id = |prefix: &str, length: usize| format!("{prefix}{}", digits[..length].to_uppercase());
    SlackBot {
        token: format!("xoxb-{}-{}-{}", &digits[..11], &digits[11..24], &digits[..24]),
        team: team.into(),
        team_id: id("T", 10),
        user: "patchbay".into(),
        user_id: id("U", 10),
        bot_id: id("B", 10),
        scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
        answer: answer.into(),
    }
}

impl FakeSlack {
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap())
    }

    pub fn start_on(address: std::net::SocketAddr) -> Self {
        let seed = SlackSeed {
            bot: bot("Acme Robots", &["chat:write", "channels:read", "users:read"], "ok"),
            read_only: bot("Acme Robots", &["channels:read"], "ok"),
            revoked: bot("Acme Robots", &["chat:write"], "token_revoked"),
            expired: bot("Acme Robots", &["chat:write"], "token_expired"),
            inactive: bot("Old Workspace", &["chat:write"], "account_inactive"),
        };
        let bots = vec![
            seed.bot.clone(),
            seed.read_only.clone(),
            seed.revoked.clone(),
            seed.expired.clone(),
            seed.inactive.clone(),
        ];
        let state = Arc::new(Mutex::new(State { bots, ..State::default() }));
        let router = Router::new().fallback(handle).with_state(state.clone());
        let server = LoopbackServer::start(vec![(address, router)]);
        Self { base: format!("{}/api", server.base(0)), seed, state, _server: server }
    }

    /// Stands in for `https://slack.com/api`.
    pub fn api_base(&self) -> &str {
        &self.base
    }

    pub fn seed(&self) -> SlackSeed {
        self.seed.clone()
    }

    /// The next `times` requests meet `fault`.
    pub fn inject(&self, fault: SlackFault, times: u32) {
        self.state().faults.push(fault, times);
    }

    pub fn requests(&self) -> Vec<SlackRequest> {
        self.state().log.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Slack's failure: HTTP 200, `ok: false` and a short code.
fn failure(error: &str) -> Response {
    (StatusCode::OK, axum::Json(json!({ "ok": false, "error": error }))).into_response()
}

async fn handle(
    AxumState(state): AxumState<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    let form_token = (method == Method::POST && is_form)
        .then(|| form_urlencoded::parse(&body).find(|(key, _)| key == "token").map(|(_, value)| value.into_owned()))
        .flatten();
    let query_token =
        uri.query().is_some_and(|query| form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == "token"));
    let token_from = match (&bearer, &form_token, query_token) {
        (Some(_), _, _) => "header",
        (None, Some(_), _) => "form",
        (None, None, true) => "query",
        _ => "none",
    };
    let fault = {
        let mut state = lock(&state);
        state.log.push(SlackRequest { method: method.to_string(), path: uri.path().to_owned(), token_from });
        state.faults.take()
    };
    match fault {
        Some(SlackFault::RateLimited(seconds)) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, seconds.to_string())],
                axum::Json(json!({ "ok": false, "error": "ratelimited" })),
            )
                .into_response();
        }
        Some(SlackFault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, "upstream error").into_response();
        }
        None => {}
    }
    if uri.path() != "/api/auth.test" {
        return failure("unknown_method");
    }
    if method != Method::GET && method != Method::POST {
        return failure("invalid_post_type");
    }
    let Some(token) = bearer.or(form_token) else {
        // A token only in the query string: refused for apps made since 2021.
        return failure(if query_token { "invalid_auth" } else { "not_authed" });
    };
    let Some(bot) = lock(&state).bots.iter().find(|bot| bot.token == token).cloned() else {
        return failure("invalid_auth");
    };
    if bot.answer != "ok" {
        return failure(&bot.answer);
    }
    let answer: Value = json!({
        "ok": true,
        "url": format!("https://{}.slack.com/", bot.team.to_lowercase().replace(' ', "-")),
        "team": bot.team,
        "user": bot.user,
        "team_id": bot.team_id,
        "user_id": bot.user_id,
        "bot_id": bot.bot_id,
        "is_enterprise_install": false,
    });
    (
        StatusCode::OK,
        [("x-oauth-scopes", bot.scopes.join(",")), ("x-accepted-oauth-scopes", String::new())],
        axum::Json(answer),
    )
        .into_response()
}
