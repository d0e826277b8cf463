//! HTTP (generic): any REST service. Connect sends `GET <base URL><test path>` with the
//! chosen authentication and wants a 2xx. The base URL must be https, except to this
//! machine (loopback), as for every service Patchbay calls with credentials, and for
//! `serve`'s callers it must be a destination `[serve] allow_destinations` allows (see
//! `destination.rs`); redirects are not followed (they would carry the credentials
//! elsewhere).

use reqwest::{Method, RequestBuilder};

use super::{ConnectorModule, Services, Verify, Verifying};
use crate::catalog::AuthMethod;
use crate::destination::{Refusal, check_base_url};
use crate::error::{Error, Result, ServiceFailure};
use crate::fields::{self, Details, FieldValues};
use crate::http::CheckedError;

pub(crate) struct Http;

#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("{url} refused the credentials (HTTP {status}{}); check them, and that they are meant for this URL", reason_text(.reason))]
    Unauthorized { url: String, status: u16, reason: Option<String> },
    #[error("{url} answered HTTP {status}{} instead of a 2xx; check the test request path", reason_text(.reason))]
    Status { url: String, status: u16, reason: Option<String> },
    /// Where it points is not repeated: a `Location` may carry a token.
    #[error(
        "{url} answered with a redirect (HTTP {status}); Patchbay does not follow redirects, which would carry the credentials along: use the final URL"
    )]
    Redirect { url: String, status: u16 },
    #[error("{url} could not be reached: {reason}; check the URL, the network connection or proxy")]
    Unreachable { url: String, reason: String },
}

fn reason_text(reason: &Option<String>) -> String {
    reason.as_ref().map(|reason| format!(" {reason}")).unwrap_or_default()
}

impl ServiceFailure for HttpError {
    fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "http_unauthorized",
            Self::Status { .. } => "http_status",
            Self::Redirect { .. } => "http_redirect",
            Self::Unreachable { .. } => "http_unreachable",
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::Status { .. } => Some("test_path"),
            Self::Redirect { .. } | Self::Unreachable { .. } => Some("base_url"),
            Self::Unauthorized { .. } => None,
        }
    }

    fn service_code(&self) -> Option<String> {
        match self {
            Self::Unauthorized { status, .. } | Self::Status { status, .. } | Self::Redirect { status, .. } => {
                Some(status.to_string())
            }
            Self::Unreachable { .. } => None,
        }
    }
}

impl From<HttpError> for Error {
    fn from(err: HttpError) -> Self {
        Error::Service(Box::new(err))
    }
}

/// `<base URL><test path>`, without a doubled slash.
fn test_url(values: &FieldValues) -> String {
    let base = fields::text(values, "base_url").unwrap_or_default().trim_end_matches('/');
    format!("{base}{}", fields::text(values, "test_path").unwrap_or("/"))
}

impl ConnectorModule for Http {
    fn key(&self) -> &'static str {
        "http"
    }

    fn definition(&self) -> &'static str {
        include_str!("../../connectors/http.json")
    }

    /// https only, except to this machine: checked before anything is sent.
    fn check(&self, _method: &AuthMethod, values: &FieldValues) -> Result<()> {
        let base = fields::text(values, "base_url").unwrap_or_default();
        check_base_url(base).map(|_| ()).map_err(|refusal| {
            let hint = match refusal {
                Refusal::Credentials => "; choose Basic authentication and enter them there",
                _ => "",
            };
            Error::invalid("base_url", format!("{}{hint}", refusal.explain("Base URL", base)))
        })
    }

    fn verify<'a>(&'a self, services: &'a Services, request: Verify<'a>) -> Verifying<'a> {
        Box::pin(async move {
            let url = test_url(request.values);
            let secret = match request.method.secret_field() {
                Some(_) => Some(request.secret()?),
                None => None,
            };
            let authenticate = |builder: RequestBuilder| match (request.method.key.as_str(), secret) {
                ("basic", Some(password)) => builder
                    .basic_auth(fields::text(request.values, "username").unwrap_or_default(), Some(password.expose())),
                ("bearer", Some(token)) => builder.bearer_auth(token.expose()),
                ("api_key_header", Some(key)) => {
                    builder.header(fields::text(request.values, "header_name").unwrap_or_default(), key.expose())
                }
                _ => builder,
            };
            // The client checks the destination before sending, and before a name is looked up.
            let answer =
                services.http.send_checked(Method::GET, &url, true, authenticate).await.map_err(|err| match err {
                    CheckedError::Refused(refusal) => Error::invalid("base_url", refusal.explain("Base URL", &url)),
                    CheckedError::Transport(err) => {
                        HttpError::Unreachable { url: url.clone(), reason: err.to_string() }.into()
                    }
                })?;
            let status = answer.status;
            let reason = status.canonical_reason().map(str::to_owned);
            let code = status.as_u16();
            if status.is_success() {
                return Ok(Details::from([("status".to_owned(), format!("{code}{}", reason_text(&reason)))]));
            }
            Err(match code {
                401 | 403 => HttpError::Unauthorized { url, status: code, reason },
                300..=399 => HttpError::Redirect { url, status: code },
                _ => HttpError::Status { url, status: code, reason },
            }
            .into())
        })
    }

    fn default_name(&self, values: &FieldValues, _details: &Details) -> String {
        let base = fields::text(values, "base_url").unwrap_or_default();
        let host = url::Url::parse(base).ok().and_then(|url| url.host_str().map(str::to_owned));
        format!("HTTP {}", host.unwrap_or_else(|| base.to_owned()))
    }
}
