//! Twilio SendGrid: an API key, checked with `GET /v3/scopes` (the scopes of the key that
//! calls it; sending needs `mail.send`), then the sender: a Single Sender from
//! `GET /v3/verified_senders` (paged by `lastSeenID`), or else an authenticated domain
//! (`/v3/verified_senders/steps_completed`); and the plan from `GET /v3/user/account`.
//! EU regional subusers are served by another host, picked by the Region field.

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::{ConnectorModule, Services, Verify, Verifying};
use crate::error::{Error, ServiceFailure};
use crate::fields::{self, Details, FieldValues};
use crate::http::{Answer, HttpClient, TransportError};
use crate::secret::Secret;

pub(crate) struct SendGrid;

/// The scope of the Mail Send permission.
const SEND_SCOPE: &str = "mail.send";
/// Senders asked for per page of `/v3/verified_senders`.
const SENDERS_PER_PAGE: usize = 100;
/// Pages read at most: 10,000 senders, far beyond any account's.
const MAX_SENDER_PAGES: usize = 100;

#[derive(Debug, thiserror::Error)]
pub(crate) enum SendGridError {
    #[error(
        "SendGrid did not accept this API key (HTTP 401: {message}): it may be mistyped, deleted or revoked{}; copy it again, or make a new key under Settings → API Keys",
        if *.eu { "" } else { ", or belong to an EU regional subuser (choose the EU region then)" }
    )]
    AuthFailed { message: String, eu: bool },
    #[error(
        "this API key may not send mail (it lacks the Mail Send permission, mail.send); give it Mail Send access under Settings → API Keys → Edit, or use another key"
    )]
    CannotSend,
    #[error(
        "{sender} is a Single Sender that is not verified yet: open the verification email SendGrid sent to it, or resend it from Settings → Sender Authentication"
    )]
    SenderUnverified { sender: String },
    #[error(
        "{sender} is not a verified Single Sender, and the account has no authenticated domain; verify it under Settings → Sender Authentication, or use a verified address"
    )]
    SenderNotVerified { sender: String },
    #[error(
        "SendGrid refused the request (HTTP 403: {message}); the key may lack a permission, or SendGrid blocked it for too many bad requests"
    )]
    Forbidden { message: String },
    #[error("SendGrid is rate limiting requests (HTTP 429){}; try again then", reset_hint(.reset))]
    RateLimited { reset: Option<String> },
    #[error(
        "SendGrid could not be reached at {base}: {reason}; check the network connection, proxy or the configured SendGrid base URL"
    )]
    Unreachable { base: String, reason: String },
    #[error("SendGrid is failing (HTTP {status}); try again later (status.sendgrid.com)")]
    ServerError { status: u16 },
    #[error("SendGrid sent an answer Patchbay could not read ({what}); try again later")]
    UnexpectedAnswer { what: String },
}

fn reset_hint(reset: &Option<String>) -> String {
    reset.as_ref().map(|reset| format!(" until {reset}")).unwrap_or_default()
}

impl ServiceFailure for SendGridError {
    fn code(&self) -> &'static str {
        match self {
            Self::AuthFailed { .. } => "sendgrid_auth_failed",
            Self::CannotSend => "sendgrid_cannot_send",
            Self::SenderUnverified { .. } => "sendgrid_sender_unverified",
            Self::SenderNotVerified { .. } => "sendgrid_sender_not_verified",
            Self::Forbidden { .. } => "sendgrid_forbidden",
            Self::RateLimited { .. } => "sendgrid_rate_limited",
            Self::Unreachable { .. } => "sendgrid_unreachable",
            Self::ServerError { .. } | Self::UnexpectedAnswer { .. } => "sendgrid_server_error",
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::AuthFailed { .. } | Self::CannotSend => Some("api_key"),
            Self::SenderUnverified { .. } | Self::SenderNotVerified { .. } => Some("sender_email"),
            _ => None,
        }
    }

    fn service_code(&self) -> Option<String> {
        match self {
            Self::AuthFailed { .. } => Some("401".into()),
            Self::Forbidden { .. } => Some("403".into()),
            Self::RateLimited { .. } => Some("429".into()),
            Self::ServerError { status } => Some(status.to_string()),
            _ => None,
        }
    }

    fn service_message(&self) -> Option<String> {
        match self {
            Self::AuthFailed { message, .. } | Self::Forbidden { message } => Some(message.clone()),
            _ => None,
        }
    }
}

impl From<SendGridError> for Error {
    fn from(err: SendGridError) -> Self {
        Error::Service(Box::new(err))
    }
}

/// SendGrid's v3 API on its two hosts.
pub(crate) struct SendGridApi {
    pub http: HttpClient,
    pub api_base: String,
    pub eu_api_base: String,
}

#[derive(Deserialize)]
struct Scopes {
    scopes: Vec<String>,
}

#[derive(Deserialize)]
struct Senders {
    results: Vec<VerifiedSender>,
}

#[derive(Deserialize)]
struct VerifiedSender {
    id: i64,
    from_email: String,
    verified: bool,
}

#[derive(Deserialize)]
struct StepsCompleted {
    results: Steps,
}

#[derive(Deserialize)]
struct Steps {
    domain_verified: bool,
}

#[derive(Deserialize)]
struct UserAccount {
    #[serde(rename = "type")]
    account_type: String,
}

/// SendGrid's error body: `{"errors": [{"message", "field", "help"}], "id"}`.
#[derive(Deserialize)]
struct ErrorBody {
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    message: String,
}

/// How one host of the API is asked, with one key.
struct Session<'a> {
    api: &'a SendGridApi,
    base: &'a str,
    key: &'a Secret,
    eu: bool,
}

impl Session<'_> {
    /// `GET <base><path>`: the answer, whatever its status.
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Answer, SendGridError> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        self.api
            .http
            .send(Method::GET, &url, true, |request| {
                request.bearer_auth(self.key.expose()).header("Accept", "application/json").query(query)
            })
            .await
            .map_err(|err| match err {
                TransportError::Unreachable(reason) => {
                    SendGridError::Unreachable { base: self.base.to_owned(), reason: reason.to_owned() }
                }
                TransportError::TooLarge => SendGridError::UnexpectedAnswer { what: err.to_string() },
            })
    }

    /// `GET` and read a 200 as `T`; every other status as SendGrid means it.
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, SendGridError> {
        let answer = self.get(path, query).await?;
        let message = || {
            answer
                .json::<ErrorBody>()
                .ok()
                .and_then(|body| body.errors.into_iter().next())
                .map_or_else(|| "no message".to_owned(), |item| item.message)
        };
        match answer.status {
            StatusCode::OK => answer.json().map_err(|what| SendGridError::UnexpectedAnswer { what }),
            StatusCode::UNAUTHORIZED => Err(SendGridError::AuthFailed { message: message(), eu: self.eu }),
            StatusCode::FORBIDDEN => Err(SendGridError::Forbidden { message: message() }),
            StatusCode::TOO_MANY_REQUESTS => {
                Err(SendGridError::RateLimited { reset: answer.header("x-ratelimit-reset").and_then(reset_time) })
            }
            status if status.is_server_error() => Err(SendGridError::ServerError { status: status.as_u16() }),
            status => Err(SendGridError::UnexpectedAnswer { what: format!("HTTP {}: {}", status.as_u16(), message()) }),
        }
    }

    /// Whether `sender` is a Single Sender: `Some(verified)`, or None when it is not one.
    async fn single_sender(&self, sender: &str) -> Result<Option<bool>, SendGridError> {
        let mut last_seen: Option<i64> = None;
        for _ in 0..MAX_SENDER_PAGES {
            let mut query = vec![("limit", SENDERS_PER_PAGE.to_string())];
            query.extend(last_seen.map(|id| ("lastSeenID", id.to_string())));
            let page: Senders = self.read("/v3/verified_senders", &query).await?;
            // Whether SendGrid compares addresses without case is not documented; people expect it.
            if let Some(found) = page.results.iter().find(|s| s.from_email.eq_ignore_ascii_case(sender)) {
                return Ok(Some(found.verified));
            }
            // No next link: a short page is the last one.
            if page.results.len() < SENDERS_PER_PAGE {
                break;
            }
            last_seen = page.results.iter().map(|s| s.id).max();
        }
        Ok(None)
    }
}

/// `X-RateLimit-Reset`: a Unix time in SendGrid's docs, seconds to wait in one of its specs.
fn reset_time(raw: &str) -> Option<String> {
    let value: i64 = raw.trim().parse().ok()?;
    if value > 1_000_000_000 {
        chrono::DateTime::from_timestamp(value, 0).map(|at| at.format("%H:%M:%S UTC").to_string())
    } else {
        Some(format!("{value} s from now"))
    }
}

impl ConnectorModule for SendGrid {
    fn key(&self) -> &'static str {
        "sendgrid"
    }

    fn definition(&self) -> &'static str {
        include_str!("../../connectors/sendgrid.json")
    }

    fn verify<'a>(&'a self, services: &'a Services, request: Verify<'a>) -> Verifying<'a> {
        Box::pin(async move {
            let api = &services.sendgrid;
            let eu = fields::text(request.values, "region") == Some("eu");
            let base = if eu { &api.eu_api_base } else { &api.api_base };
            let session = Session { api, base, key: request.secret()?, eu };
            let sender = fields::text(request.values, "sender_email").unwrap_or_default();

            let scopes: Scopes = session.read("/v3/scopes", &[]).await?;
            if !scopes.scopes.iter().any(|scope| scope == SEND_SCOPE) {
                return Err(SendGridError::CannotSend.into());
            }
            // A Mail Send-only key may not read senders: say so rather than refuse it.
            let sender_status = match session.single_sender(sender).await {
                Ok(Some(true)) => "verified Single Sender".to_owned(),
                Ok(Some(false)) => return Err(SendGridError::SenderUnverified { sender: sender.to_owned() }.into()),
                Ok(None) => {
                    let steps: StepsCompleted = session.read("/v3/verified_senders/steps_completed", &[]).await?;
                    if !steps.results.domain_verified {
                        return Err(SendGridError::SenderNotVerified { sender: sender.to_owned() }.into());
                    }
                    "authenticated domain (this address is not a Single Sender)".to_owned()
                }
                Err(SendGridError::Forbidden { .. }) => "not checked: the key may not read senders".to_owned(),
                Err(err) => return Err(err.into()),
            };
            let mut details = Details::from([("sender_status".to_owned(), sender_status)]);
            // The plan needs a permission SendGrid does not name; without it the plan is unknown.
            match session.read::<UserAccount>("/v3/user/account", &[]).await {
                Ok(account) => {
                    details.insert("account_type".into(), account.account_type);
                }
                Err(SendGridError::Forbidden { .. }) => {}
                Err(err) => return Err(err.into()),
            }
            Ok(details)
        })
    }

    fn default_name(&self, values: &FieldValues, _details: &Details) -> String {
        format!("Twilio SendGrid {}", fields::text(values, "sender_email").unwrap_or_default())
    }
}
