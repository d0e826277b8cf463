//! Slack: a bot token, checked with `auth.test` (read-only, "no scope required"), which
//! names the workspace and the bot user; the token's scopes come in the `x-oauth-scopes`
//! header, and posting needs `chat:write`. Slack answers errors as HTTP 200 with
//! `ok: false`; only 429 (with `Retry-After`) is a meaningful status.

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::{ConnectorModule, Services, Verify, Verifying};
use crate::error::{Error, ServiceFailure};
use crate::fields::{Details, FieldValues};
use crate::http::{HttpClient, TransportError};
use crate::secret::Secret;

pub(crate) struct Slack;

/// The scope posting messages needs (it replaced `chat:write:bot` for Slack apps).
const POSTING_SCOPE: &str = "chat:write";

#[derive(Debug, thiserror::Error)]
pub(crate) enum SlackError {
    #[error(
        "Slack did not accept this bot token (invalid_auth); copy the Bot User OAuth Token (xoxb-…) again from your app's OAuth & Permissions page"
    )]
    InvalidAuth,
    #[error(
        "Slack says this bot token was revoked (token_revoked): the app was removed from the workspace or its token revoked; reinstall the app and copy its new Bot User OAuth Token"
    )]
    TokenRevoked,
    #[error(
        "this bot token has expired (token_expired): the app uses token rotation, whose tokens last 12 hours; copy a fresh token, or turn rotation off in the app's OAuth & Permissions for a lasting one"
    )]
    TokenExpired,
    #[error(
        "Slack says the bot's user or workspace was deleted (account_inactive); install the app in an active workspace and use that token"
    )]
    AccountInactive,
    #[error(
        "the bot token lacks the chat:write scope that posting messages needs (it has: {granted}); add chat:write under OAuth & Permissions → Bot Token Scopes, reinstall the app, and copy the new token"
    )]
    MissingScope { granted: String },
    #[error("Slack is rate limiting requests (HTTP 429){}; try again then", retry_hint(*.wait_seconds))]
    RateLimited { wait_seconds: Option<u64> },
    #[error("Slack refused the request ({error}){}", refusal_hint(.error))]
    Refused { error: String },
    #[error(
        "Slack could not be reached at {base}: {reason}; check the network connection, proxy or the configured Slack API base URL"
    )]
    Unreachable { base: String, reason: String },
    #[error("Slack is failing (HTTP {status}); try again later (slack-status.com)")]
    ServerError { status: u16 },
    #[error("Slack sent an answer Patchbay could not read ({what}); try again later")]
    UnexpectedAnswer { what: String },
}

fn retry_hint(wait_seconds: Option<u64>) -> String {
    wait_seconds.map(|seconds| format!(" and asks to wait {seconds} s")).unwrap_or_default()
}

/// What the person can do about Slack's other refusals (Slack's descriptions, shortened).
fn refusal_hint(error: &str) -> &'static str {
    match error {
        "org_login_required" | "team_added_to_org" => {
            ": the workspace is moving into an Enterprise organization; try again once that is done"
        }
        "accesslimited" => ": this network may not use Slack's API; ask your Slack admin or try from another network",
        "ekm_access_denied" => ": the workspace's administrators have suspended this; ask them",
        "not_allowed_token_type" => {
            ": Slack does not take this kind of token here; use the Bot User OAuth Token (xoxb-…)"
        }
        _ => "",
    }
}

impl ServiceFailure for SlackError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidAuth => "slack_invalid_auth",
            Self::TokenRevoked => "slack_token_revoked",
            Self::TokenExpired => "slack_token_expired",
            Self::AccountInactive => "slack_account_inactive",
            Self::MissingScope { .. } => "slack_missing_scope",
            Self::RateLimited { .. } => "slack_rate_limited",
            Self::Refused { .. } => "slack_refused",
            Self::Unreachable { .. } => "slack_unreachable",
            Self::ServerError { .. } | Self::UnexpectedAnswer { .. } => "slack_server_error",
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidAuth | Self::TokenRevoked | Self::TokenExpired | Self::MissingScope { .. } => {
                Some("bot_token")
            }
            _ => None,
        }
    }

    fn service_code(&self) -> Option<String> {
        let code = match self {
            Self::InvalidAuth => "invalid_auth",
            Self::TokenRevoked => "token_revoked",
            Self::TokenExpired => "token_expired",
            Self::AccountInactive => "account_inactive",
            Self::MissingScope { .. } => "missing_scope",
            Self::RateLimited { .. } => "ratelimited",
            Self::Refused { error } => error,
            Self::ServerError { status } => return Some(status.to_string()),
            _ => return None,
        };
        Some(code.to_owned())
    }
}

impl From<SlackError> for Error {
    fn from(err: SlackError) -> Self {
        Error::Service(Box::new(err))
    }
}

/// `auth.test`'s answer: `ok` and, on success, who the token is.
#[derive(Deserialize)]
struct AuthTest {
    ok: bool,
    error: Option<String>,
    team: Option<String>,
    team_id: Option<String>,
    user: Option<String>,
    url: Option<String>,
}

/// Slack's Web API at its configured base URL.
pub(crate) struct SlackApi {
    pub http: HttpClient,
    pub api_base: String,
}

impl SlackApi {
    /// `POST <base>/auth.test` with the token as a Bearer header (Slack's SDKs do the
    /// same); returns the answer and the scopes granted.
    async fn auth_test(&self, token: &Secret) -> Result<(AuthTest, Vec<String>), SlackError> {
        let url = format!("{}/auth.test", self.api_base.trim_end_matches('/'));
        let answer =
            self.http.send(Method::POST, &url, true, |request| request.bearer_auth(token.expose())).await.map_err(
                |err| match err {
                    TransportError::Unreachable(reason) => {
                        SlackError::Unreachable { base: self.api_base.clone(), reason: reason.to_owned() }
                    }
                    TransportError::TooLarge => SlackError::UnexpectedAnswer { what: err.to_string() },
                },
            )?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => {
                return Err(SlackError::RateLimited { wait_seconds: answer.retry_after.map(|wait| wait.as_secs()) });
            }
            status if status.is_server_error() => return Err(SlackError::ServerError { status: status.as_u16() }),
            status => {
                return Err(SlackError::UnexpectedAnswer { what: format!("HTTP {}", status.as_u16()) });
            }
        }
        let scopes = answer
            .header("x-oauth-scopes")
            .map(|header| header.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let parsed: AuthTest = answer.json().map_err(|what| SlackError::UnexpectedAnswer { what })?;
        Ok((parsed, scopes))
    }
}

impl ConnectorModule for Slack {
    fn key(&self) -> &'static str {
        "slack"
    }

    fn definition(&self) -> &'static str {
        include_str!("../../connectors/slack.json")
    }

    fn verify<'a>(&'a self, services: &'a Services, request: Verify<'a>) -> Verifying<'a> {
        Box::pin(async move {
            let token = request.secret()?;
            let (answer, mut scopes) = services.slack.auth_test(token).await?;
            if !answer.ok {
                return Err(match answer.error.as_deref().unwrap_or("unknown_error") {
                    "invalid_auth" | "not_authed" => SlackError::InvalidAuth,
                    "token_revoked" => SlackError::TokenRevoked,
                    "token_expired" => SlackError::TokenExpired,
                    "account_inactive" => SlackError::AccountInactive,
                    "ratelimited" => SlackError::RateLimited { wait_seconds: None },
                    other => SlackError::Refused { error: other.to_owned() },
                }
                .into());
            }
            scopes.sort();
            if !scopes.iter().any(|scope| scope == POSTING_SCOPE) {
                let granted = if scopes.is_empty() { "no scopes".to_owned() } else { scopes.join(", ") };
                return Err(SlackError::MissingScope { granted }.into());
            }
            let details = [
                ("workspace", answer.team),
                ("workspace_id", answer.team_id),
                ("workspace_url", answer.url),
                ("bot_user", answer.user),
                ("scopes", Some(scopes.join(", "))),
            ];
            Ok(details.into_iter().filter_map(|(key, value)| Some((key.to_owned(), value?))).collect())
        })
    }

    fn default_name(&self, _values: &FieldValues, details: &Details) -> String {
        match details.get("workspace") {
            Some(workspace) => format!("Slack {workspace}"),
            None => "Slack".to_owned(),
        }
    }
}
