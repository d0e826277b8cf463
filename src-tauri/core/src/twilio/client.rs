//! Twilio's REST API over one pooled HTTP client. Every request goes to one of two
//! configurable base URLs (REST API 2010-04-01 and Accounts v1), so tests and staging
//! can point Patchbay at another server.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;

use crate::config::TwilioConfig;
use crate::http::{Answer, HttpClient, TransportError};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    #[error(
        "Twilio is rate limiting requests (HTTP 429) and still was after {attempts} attempts; wait a minute and try again"
    )]
    RateLimited { attempts: u32 },
    #[error(
        "Twilio could not be reached at {base}: {reason}; check the network connection, proxy or the configured Twilio base URL"
    )]
    Unreachable { base: String, reason: String },
    #[error(
        "Twilio is failing (HTTP {status}) and still was after {attempts} attempts; try again later (status.twilio.com)"
    )]
    ServerError { status: u16, attempts: u32 },
    #[error("Twilio sent an answer Patchbay could not read ({what}); try again later")]
    UnexpectedAnswer { what: String },
    #[error("Twilio refused the request: {} (HTTP {}{})", .0.message, .0.status, .0.code.map(|c| format!(", code {c}")).unwrap_or_default())]
    Rejected(ApiError),
}

impl TwilioError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "twilio_rate_limited",
            Self::Unreachable { .. } => "twilio_unreachable",
            Self::ServerError { .. } | Self::UnexpectedAnswer { .. } => "twilio_server_error",
            Self::Rejected(_) => "twilio_rejected",
        }
    }

    pub fn twilio_code(&self) -> Option<u32> {
        match self {
            Self::Rejected(api) => api.code,
            Self::RateLimited { .. } => Some(20429),
            _ => None,
        }
    }
}

/// Twilio's error body: `{"code", "message", "more_info", "status"}` (extra keys tolerated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: Option<u32>,
    pub message: String,
}

/// Who a request authenticates as: the account's Auth Token, or an API key of the
/// account (HTTP Basic with the key's SID; the Account SID stays in the path).
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub account_sid: &'a str,
    /// The API key's SID (`SK…`); None with the Auth Token.
    pub api_key_sid: Option<&'a str>,
    /// The Auth Token, or the API key's secret.
    pub secret: &'a Secret,
}

impl<'a> Credentials<'a> {
    pub fn auth_token(account_sid: &'a str, auth_token: &'a Secret) -> Self {
        Self { account_sid, api_key_sid: None, secret: auth_token }
    }

    pub fn api_key(account_sid: &'a str, api_key_sid: &'a str, secret: &'a Secret) -> Self {
        Self { account_sid, api_key_sid: Some(api_key_sid), secret }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Active,
    Suspended,
    Closed,
}

/// The parts of Twilio's Account resource Patchbay keeps. The resource also carries
/// `auth_token`; it is never deserialised, and the raw body is zeroed after parsing.
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub sid: String,
    pub friendly_name: Option<String>,
    pub status: AccountStatus,
    #[serde(rename = "type")]
    pub account_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AccountPage {
    accounts: Vec<Account>,
}

#[derive(Debug, Deserialize)]
struct IncomingPhoneNumberPage {
    incoming_phone_numbers: Vec<IncomingPhoneNumber>,
}

#[derive(Debug, Deserialize)]
struct IncomingPhoneNumber {
    phone_number: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub sid: String,
    pub status: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    /// RFC 2822, e.g. `Thu, 30 Jul 2015 20:00:00 +0000`.
    #[serde(default)]
    pub date_sent: Option<String>,
    #[serde(default)]
    pub direction: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessagePage {
    messages: Vec<Message>,
    next_page_uri: Option<String>,
}

/// Pages followed at most per listing: a poll that finds more waits for the next one.
const MAX_PAGES: usize = 20;

/// Accounts v1 `SecondaryAuthToken` / `AuthTokenPromotion`: the token is the one
/// field Patchbay reads, straight into a [`Secret`].
#[derive(Deserialize)]
struct AuthTokenResource {
    #[serde(alias = "secondary_auth_token")]
    auth_token: Secret,
}

#[derive(Clone, Copy)]
enum Host {
    Api,
    Accounts,
}

pub struct TwilioClient {
    http: HttpClient,
    config: TwilioConfig,
}

impl TwilioClient {
    pub fn new(config: TwilioConfig) -> Self {
        Self { http: HttpClient::new(config.limits()), config }
    }

    /// The REST API base URL requests go to, for messages that name it.
    pub fn api_base(&self) -> &str {
        &self.config.api_base
    }

    /// `GET /2010-04-01/Accounts/{Sid}.json`: read-only, and tells live credentials
    /// (200), test credentials (403 / 20008) and wrong ones (401 / 20003) apart.
    pub async fn fetch_account(&self, credentials: Credentials<'_>) -> Result<Account, TwilioError> {
        let path = format!("/2010-04-01/Accounts/{}.json", credentials.account_sid);
        self.call(Host::Api, Method::GET, &path, credentials, |request| request).await?.json().map_err(unexpected)
    }

    /// `GET /2010-04-01/Accounts.json`: the accounts the credentials belong to (their own
    /// first, then its subaccounts), whatever Account SID the caller has in mind.
    pub async fn own_accounts(&self, credentials: Credentials<'_>) -> Result<Vec<Account>, TwilioError> {
        let page: AccountPage = self
            .call(Host::Api, Method::GET, "/2010-04-01/Accounts.json", credentials, |request| {
                request.query(&[("PageSize", "20")])
            })
            .await?
            .json()
            .map_err(unexpected)?;
        Ok(page.accounts)
    }

    /// Whether the account's phone numbers can be read (the first page of one): what a
    /// Standard API key may read, unlike the Account itself.
    pub async fn can_read_phone_numbers(&self, credentials: Credentials<'_>) -> Result<(), TwilioError> {
        let path = format!("/2010-04-01/Accounts/{}/IncomingPhoneNumbers.json", credentials.account_sid);
        self.call(Host::Api, Method::GET, &path, credentials, |request| request.query(&[("PageSize", "1")])).await?;
        Ok(())
    }

    /// Whether the account owns `phone_number` (E.164), by Twilio's exact-match filter.
    pub async fn owns_phone_number(
        &self,
        credentials: Credentials<'_>,
        phone_number: &str,
    ) -> Result<bool, TwilioError> {
        let path = format!("/2010-04-01/Accounts/{}/IncomingPhoneNumbers.json", credentials.account_sid);
        let page: IncomingPhoneNumberPage = self
            .call(Host::Api, Method::GET, &path, credentials, |request| {
                request.query(&[("PhoneNumber", phone_number), ("PageSize", "20")])
            })
            .await?
            .json()
            .map_err(unexpected)?;
        Ok(page.incoming_phone_numbers.iter().any(|number| number.phone_number.as_deref() == Some(phone_number)))
    }

    /// `POST …/Messages.json`. Patchbay only sends this with test credentials, which
    /// Twilio never delivers or charges.
    pub async fn create_message(
        &self,
        credentials: Credentials<'_>,
        from: &str,
        to: &str,
        body: &str,
    ) -> Result<Message, TwilioError> {
        let path = format!("/2010-04-01/Accounts/{}/Messages.json", credentials.account_sid);
        self.call(Host::Api, Method::POST, &path, credentials, |request| {
            request.form(&[("From", from), ("To", to), ("Body", body)])
        })
        .await?
        .json()
        .map_err(unexpected)
    }

    /// Messages sent to `to` (every message of the account with `None`) on or after the
    /// day `sent_since` (`YYYY-MM-DD`; Twilio's `DateSent>` filter is inclusive and
    /// day-granular), newest first, across pages.
    pub async fn list_messages_to(
        &self,
        credentials: Credentials<'_>,
        to: Option<&str>,
        sent_since: &str,
    ) -> Result<Vec<Message>, TwilioError> {
        let first = format!("/2010-04-01/Accounts/{}/Messages.json", credentials.account_sid);
        let page: MessagePage = self
            .call(Host::Api, Method::GET, &first, credentials, |request| {
                let request = request.query(&[("DateSent>", sent_since), ("PageSize", "100")]);
                match to {
                    Some(to) => request.query(&[("To", to)]),
                    None => request,
                }
            })
            .await?
            .json()
            .map_err(unexpected)?;
        let mut messages = page.messages;
        let mut next = page.next_page_uri;
        for _ in 1..MAX_PAGES {
            let Some(uri) = next.take() else { break };
            // Twilio's paging URIs are paths on the same host that repeat the filters;
            // anything else would send the credentials somewhere else.
            let path = paging_path(&uri, &first)?;
            let page: MessagePage = self
                .call(Host::Api, Method::GET, path, credentials, |request| request)
                .await?
                .json()
                .map_err(unexpected)?;
            messages.extend(page.messages);
            next = page.next_page_uri;
        }
        Ok(messages)
    }

    /// `POST /v1/AuthTokens/Secondary`: a second token that works beside the primary.
    pub async fn create_secondary_auth_token(&self, credentials: Credentials<'_>) -> Result<Secret, TwilioError> {
        let created: AuthTokenResource = self
            .call(Host::Accounts, Method::POST, "/v1/AuthTokens/Secondary", credentials, |r| r)
            .await?
            .json()
            .map_err(unexpected)?;
        Ok(created.auth_token)
    }

    /// `DELETE /v1/AuthTokens/Secondary`: whether there was one (204) or not (404). The
    /// only way Twilio's API tells that a secondary exists.
    pub async fn delete_secondary_auth_token(&self, credentials: Credentials<'_>) -> Result<bool, TwilioError> {
        match self.call(Host::Accounts, Method::DELETE, "/v1/AuthTokens/Secondary", credentials, |r| r).await {
            Ok(_) => Ok(true),
            Err(TwilioError::Rejected(api)) if api.status == 404 => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// `POST /v1/AuthTokens/Promote`: the secondary becomes primary, the old primary
    /// stops working at once. Returns the new primary.
    pub async fn promote_secondary_auth_token(&self, credentials: Credentials<'_>) -> Result<Secret, TwilioError> {
        let promoted: AuthTokenResource = self
            .call(Host::Accounts, Method::POST, "/v1/AuthTokens/Promote", credentials, |r| r)
            .await?
            .json()
            .map_err(unexpected)?;
        Ok(promoted.auth_token)
    }

    /// Sends with retries; a 2xx answer comes back for the caller to read.
    async fn call(
        &self,
        host: Host,
        method: Method,
        path: &str,
        credentials: Credentials<'_>,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Answer, TwilioError> {
        let base = match host {
            Host::Api => &self.config.api_base,
            Host::Accounts => &self.config.accounts_base,
        };
        let url = format!("{}{path}", base.trim_end_matches('/'));
        // Twilio's GET and DELETE have no side effects, so they alone are repeated after a 5xx.
        let repeatable = method == Method::GET || method == Method::DELETE;
        let answer = self
            .http
            .send(method, &url, repeatable, |request| {
                let user = credentials.api_key_sid.unwrap_or(credentials.account_sid);
                build(request).basic_auth(user, Some(credentials.secret.expose()))
            })
            .await
            .map_err(|err| match err {
                TransportError::Unreachable(reason) => {
                    TwilioError::Unreachable { base: base.clone(), reason: reason.to_owned() }
                }
                TransportError::TooLarge => TwilioError::UnexpectedAnswer { what: err.to_string() },
            })?;
        let status = answer.status;
        if status.is_success() {
            return Ok(answer);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(TwilioError::RateLimited { attempts: answer.attempts });
        }
        if status.is_server_error() {
            return Err(TwilioError::ServerError { status: status.as_u16(), attempts: answer.attempts });
        }
        Err(TwilioError::Rejected(parse_api_error(status, &answer.body)))
    }
}

fn unexpected(what: String) -> TwilioError {
    TwilioError::UnexpectedAnswer { what }
}

/// `next_page_uri` as a path on the configured host, under the listed resource.
fn paging_path<'a>(uri: &'a str, resource: &str) -> Result<&'a str, TwilioError> {
    let (path, _query) = uri.split_once('?').unwrap_or((uri, ""));
    if path == resource && !uri.contains(['@', '\\', '#']) && !uri.contains("//") {
        Ok(uri)
    } else {
        Err(TwilioError::UnexpectedAnswer { what: "a next_page_uri that is not a page of the same list".into() })
    }
}

fn parse_api_error(status: StatusCode, body: &[u8]) -> ApiError {
    #[derive(Deserialize)]
    struct Body {
        code: Option<u32>,
        message: Option<String>,
    }
    let parsed: Option<Body> = serde_json::from_slice(body).ok();
    let code = parsed.as_ref().and_then(|b| b.code);
    let message =
        parsed.and_then(|b| b.message).unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    ApiError { status: status.as_u16(), code, message }
}

#[cfg(test)]
mod tests {
    use super::paging_path;

    #[test]
    fn paging_links_stay_on_the_same_list() {
        let list = "/2010-04-01/Accounts/AC1/Messages.json";
        let next = "/2010-04-01/Accounts/AC1/Messages.json?To=%2B1555&PageSize=100&Page=1&PageToken=PASM1";
        assert_eq!(paging_path(next, list).unwrap(), next);
        for hostile in [
            "https://attacker.example/2010-04-01/Accounts/AC1/Messages.json",
            "//attacker.example/2010-04-01/Accounts/AC1/Messages.json",
            "@attacker.example/2010-04-01/Accounts/AC1/Messages.json",
            "/2010-04-01/Accounts/AC2/Messages.json?Page=1",
            "/2010-04-01/Accounts/AC1/Messages.json/../../../x",
            "/2010-04-01/Accounts/AC1/Messages.json?x=@attacker.example",
        ] {
            assert!(paging_path(hostile, list).is_err(), "{hostile}");
        }
    }
}
