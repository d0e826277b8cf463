//! How Patchbay calls a service's HTTP API: one pooled client per service, its timeouts,
//! retries that respect what may be repeated, `Retry-After`, a cap on answer sizes, and
//! no redirects (one could carry the credentials to another host). A client for
//! addresses people give (the HTTP connector, credential stores) checks every one
//! against its [`Destinations`], before sending and on each resolved address. Each
//! service's client reads the answer and names the failures in its own words.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::destination::{CheckedResolver, Destinations, Refusal};

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

/// Why a checked client got no answer: the destination was refused (nothing was sent
/// to it), or the transport failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckedError {
    #[error("{0}")]
    Refused(Refusal),
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// The one reason `serve`'s callers get when nothing answered: which failure it was
/// (refused, reset, timed out) would tell them what listens there.
const UNREACHABLE_FOR_CALLERS: &str = "no connection, or no answer in time";

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
    limits: HttpLimits,
    /// None: an operator-configured service (Twilio, Slack, SendGrid), reached as the
    /// system reaches it.
    destinations: Option<Destinations>,
    /// Built on first use: it loads the system's root certificates, start-up work that
    /// the window and most commands never need. With the system's proxy, if any.
    proxied: OnceLock<reqwest::Client>,
    /// Without a proxy (which would resolve names past the checks), through the
    /// [`CheckedResolver`]: this machine always, and every address for `serve`'s callers.
    direct: OnceLock<reqwest::Client>,
}

impl HttpClient {
    pub fn new(limits: HttpLimits) -> Self {
        Self { limits, destinations: None, proxied: OnceLock::new(), direct: OnceLock::new() }
    }

    /// A client for addresses people give, which may reach `destinations` only.
    pub fn checked(limits: HttpLimits, destinations: Destinations) -> Self {
        Self { destinations: Some(destinations), ..Self::new(limits) }
    }

    /// The client for `url`, after checking it may be reached at all.
    fn http(&self, url: &str) -> Result<&reqwest::Client, CheckedError> {
        let direct = match &self.destinations {
            Some(destinations) => {
                destinations.goes_direct(&destinations.check_url(url).map_err(CheckedError::Refused)?)
            }
            None => false,
        };
        let cell = if direct { &self.direct } else { &self.proxied };
        if let Some(http) = cell.get() {
            return Ok(http);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.limits.connect_timeout)
            .timeout(self.limits.request_timeout)
            .user_agent(concat!("patchbay/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if let (true, Some(destinations)) = (direct, &self.destinations) {
            builder = builder.no_proxy().dns_resolver(Arc::new(CheckedResolver(destinations.clone())));
        }
        let http = builder.build().map_err(|_| TransportError::Unreachable("the HTTP client could not start"))?;
        Ok(cell.get_or_init(|| http))
    }

    /// A failed request in words that tell `serve`'s callers nothing about the network.
    fn failure(&self, err: &reqwest::Error) -> CheckedError {
        if let Some(refusal) = Refusal::behind(err) {
            return CheckedError::Refused(refusal.clone());
        }
        CheckedError::Transport(TransportError::Unreachable(match &self.destinations {
            Some(destinations) if destinations.is_served() => UNREACHABLE_FOR_CALLERS,
            _ => describe_transport(err),
        }))
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
        self.send_checked(method, url, repeatable, build).await.map_err(|err| match err {
            CheckedError::Transport(err) => err,
            // Only a client made with `checked` refuses; its callers use `send_checked`.
            CheckedError::Refused(_) => TransportError::Unreachable("the destination is not allowed"),
        })
    }

    /// [`send`](Self::send) for a client made with [`checked`](Self::checked): a refused
    /// destination comes back as such.
    pub async fn send_checked(
        &self,
        method: Method,
        url: &str,
        repeatable: bool,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Answer, CheckedError> {
        let attempts = self.limits.max_retries + 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = match build(self.http(url)?.request(method.clone(), url)).send().await {
                Ok(response) => self.read_answer(response, attempt).await,
                Err(err) => Err(self.failure(&err)),
            };
            let wait = match &outcome {
                Ok(answer) if answer.status == StatusCode::TOO_MANY_REQUESTS => match answer.retry_after {
                    Some(asked) if asked > MAX_RETRY_AFTER => return outcome,
                    asked => asked,
                },
                Ok(answer) if answer.status.is_server_error() && repeatable => None,
                Err(CheckedError::Transport(TransportError::Unreachable(_))) if repeatable => None,
                _ => return outcome,
            };
            if attempt >= attempts {
                return outcome;
            }
            let backoff = self.limits.retry_backoff * 2_u32.saturating_pow(attempt - 1);
            tokio::time::sleep(wait.unwrap_or(backoff)).await;
        }
    }

    async fn read_answer(&self, mut response: Response, attempts: u32) -> Result<Answer, CheckedError> {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse().ok())
            .map(Duration::from_secs);
        if response.content_length().is_some_and(|length| length as usize > MAX_BODY_BYTES) {
            return Err(TransportError::TooLarge.into());
        }
        let headers = std::mem::take(response.headers_mut());
        let mut body = Zeroizing::new(Vec::new());
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(TransportError::TooLarge.into());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) => return Err(self.failure(&err)),
            }
        }
        Ok(Answer { status, retry_after, headers, body, attempts })
    }
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

#[cfg(test)]
mod tests {
    use patchbay_tests::loopback::CountingListener;

    use super::*;
    use crate::destination::{Policy, Reach};

    fn client(reach: Reach, allowed: &[&str]) -> HttpClient {
        let limits = HttpLimits { max_retries: 0, ..HttpLimits::default() };
        HttpClient::checked(limits, Destinations::new(reach, &Policy::parse(allowed.iter().copied()).unwrap(), false))
    }

    async fn get(client: &HttpClient, url: &str) -> Result<Answer, CheckedError> {
        client.send_checked(Method::GET, url, true, |request| request).await
    }

    #[tokio::test]
    async fn serve_callers_reach_this_machine_only_when_it_is_allowed() {
        let listener = CountingListener::start();
        let port = listener.port;
        let strict = client(Reach::Served, &[]);
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            format!("http://foo.localhost:{port}/"),
            format!("http://localhost.:{port}/"),
        ] {
            let refused = get(&strict, &url).await.err();
            assert!(matches!(refused, Some(CheckedError::Refused(Refusal::SpecialPurpose(_)))), "{url}: {refused:?}");
        }
        assert_eq!(listener.accepted(), 0, "refused before any connection");
        let allowed = client(Reach::Served, &["loopback"]);
        assert_eq!(get(&allowed, &format!("http://foo.localhost:{port}/")).await.unwrap().status, StatusCode::OK);
        let desk = client(Reach::Desk, &[]);
        assert_eq!(get(&desk, &format!("http://a.b.localhost:{port}/")).await.unwrap().status, StatusCode::OK);
        assert_eq!(listener.accepted(), 2);
    }

    #[tokio::test]
    async fn serve_callers_get_one_word_for_every_failure() {
        let closed = "http://127.0.0.1:9/";
        let served = get(&client(Reach::Served, &["loopback"]), closed).await.err();
        assert_eq!(served, Some(TransportError::Unreachable(UNREACHABLE_FOR_CALLERS).into()));
        let desk = get(&client(Reach::Desk, &[]), closed).await.err();
        assert_eq!(desk, Some(TransportError::Unreachable("the connection was refused or failed").into()));
    }
}
