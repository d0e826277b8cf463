//! How Patchbay calls a service's HTTP API: one pooled client per service, its timeouts,
//! retries that respect what may be repeated, `Retry-After`, a cap on answer sizes, and
//! no redirects (one could carry the credentials to another host). Each service's
//! client reads the answer and names the failures in its own words.

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

/// Answers larger than this are refused unread: Patchbay asks for small resources only.
const MAX_BODY_BYTES: usize = 1 << 20;
/// A server's Retry-After is waited out up to this long; a longer one is reported instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Extra attempts after a 429 / 5xx / network failure.
    pub max_retries: u32,
    pub retry_backoff: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_retries: 2,
            retry_backoff: Duration::from_millis(250),
        }
    }
}

/// Why no answer came: never a secret, never reqwest's text (it repeats the URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Unreachable(&'static str),
    #[error("an answer larger than {} KiB", MAX_BODY_BYTES / 1024)]
    TooLarge,
}

/// A whole answer, whatever its status.
pub struct Answer {
    pub status: StatusCode,
    /// `Retry-After` in seconds, when the server sent one.
    pub retry_after: Option<Duration>,
    pub headers: reqwest::header::HeaderMap,
    /// May hold a secret (Twilio's Account resource carries the token): zeroed on drop.
    pub body: Zeroizing<Vec<u8>>,
    /// How many times the request was sent.
    pub attempts: u32,
}

impl Answer {
    /// The body as `T`, or a description of why it is not (for "unexpected answer" errors).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.body).map_err(|err| {
            format!(
                "HTTP {} with a body that is not the expected JSON (line {}, column {})",
                self.status.as_u16(),
                err.line(),
                err.column()
            )
        })
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

pub struct HttpClient {
    /// Built on first use: it loads the system's root certificates, start-up work that
    /// the window and most commands never need.
    http: OnceLock<reqwest::Client>,
    limits: HttpLimits,
}

impl HttpClient {
    pub fn new(limits: HttpLimits) -> Self {
        Self { http: OnceLock::new(), limits }
    }

    fn http(&self) -> Result<&reqwest::Client, TransportError> {
        if let Some(http) = self.http.get() {
            return Ok(http);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.limits.connect_timeout)
            .timeout(self.limits.request_timeout)
            .user_agent(concat!("patchbay/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| TransportError::Unreachable("the HTTP client could not start"))?;
        Ok(self.http.get_or_init(|| http))
    }

    /// Sends `method url` built by `build` (auth, query, body), with retries:
    /// - a 429 was not processed: repeated after its Retry-After (when that is at most
    ///   [`MAX_RETRY_AFTER`]) or the backoff;
    /// - a 5xx or a dropped connection may mean it was processed: repeated only when
    ///   `repeatable` (no side effect), after the backoff.
    ///
    /// The last answer comes back whatever its status, for the service to read.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        repeatable: bool,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Answer, TransportError> {
        let attempts = self.limits.max_retries + 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = match build(self.http()?.request(method.clone(), url)).send().await {
                Ok(response) => read_answer(response, attempt).await,
                Err(err) => Err(TransportError::Unreachable(describe_transport(&err))),
            };
            let wait = match &outcome {
                Ok(answer) if answer.status == StatusCode::TOO_MANY_REQUESTS => match answer.retry_after {
                    Some(asked) if asked > MAX_RETRY_AFTER => return outcome,
                    asked => asked,
                },
                Ok(answer) if answer.status.is_server_error() && repeatable => None,
                Err(TransportError::Unreachable(_)) if repeatable => None,
                _ => return outcome,
            };
            if attempt >= attempts {
                return outcome;
            }
            let backoff = self.limits.retry_backoff * 2_u32.saturating_pow(attempt - 1);
            tokio::time::sleep(wait.unwrap_or(backoff)).await;
        }
    }
}

async fn read_answer(mut response: Response, attempts: u32) -> Result<Answer, TransportError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
        .map(Duration::from_secs);
    if response.content_length().is_some_and(|length| length as usize > MAX_BODY_BYTES) {
        return Err(TransportError::TooLarge);
    }
    let headers = std::mem::take(response.headers_mut());
    let mut body = Zeroizing::new(Vec::new());
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(TransportError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(err) => return Err(TransportError::Unreachable(describe_transport(&err))),
        }
    }
    Ok(Answer { status, retry_after, headers, body, attempts })
}

/// A short, secret-free description: reqwest's own text repeats the URL and the chain.
fn describe_transport(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "no answer in time"
    } else if err.is_connect() {
        "the connection was refused or failed"
    } else {
        "the connection was dropped before the answer was complete"
    }
}
