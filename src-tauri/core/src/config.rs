//! Where Patchbay keeps its data and how it reaches Twilio.
//!
//! Precedence: explicit value (e.g. `--data-dir`) > environment > `config.toml` in the
//! data folder > default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::destination::{Destinations, Policy, Reach, check_base_url};
use crate::error::{Error, Result};
use crate::http::HttpLimits;

pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";
pub const DEFAULT_ACCOUNTS_BASE: &str = "https://accounts.twilio.com";
pub const DEFAULT_SLACK_API_BASE: &str = "https://slack.com/api";
pub const DEFAULT_SENDGRID_API_BASE: &str = "https://api.sendgrid.com";
pub const DEFAULT_SENDGRID_EU_API_BASE: &str = "https://api.eu.sendgrid.com";
pub const CONFIG_FILE: &str = "config.toml";

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// The vault's service name; every Patchbay secret is stored under it.
    pub vault_service: String,
    /// How long one vault call may take before Patchbay answers `vault_locked`.
    pub vault_timeout: Duration,
    pub twilio: TwilioConfig,
    /// Slack's Web API base URL (`…/api`; methods are `<base>/auth.test`).
    pub slack_api_base: String,
    /// Twilio SendGrid's v3 API: the global host, and the EU host of EU regional subusers.
    pub sendgrid_api_base: String,
    pub sendgrid_eu_api_base: String,
    /// Addresses people type (the HTTP connector's Base URL, a credential store's address)
    /// may name this machine only (`PATCHBAY_HTTP_LOOPBACK_ONLY`): for locked-down
    /// machines, and for tests that must never send traffic elsewhere.
    pub http_loopback_only: bool,
    /// How long a rotation waits for Twilio to accept a promoted token.
    pub rotation_propagation_timeout: Duration,
    /// Who the core works for; `Served` (set by the API adapter) puts the addresses
    /// callers give under `serve_destinations`.
    pub reach: Reach,
    /// What `serve`'s callers may make Patchbay reach beyond public https addresses
    /// (`[serve] allow_destinations`): event callbacks always, credential stores and the
    /// HTTP connector when `reach` is `Served`.
    pub serve_destinations: Policy,
    /// How long a delivered event's payload (the SMS body) is kept.
    pub event_retention: Duration,
    /// Polls every instance this often instead of its own interval (tests, and operators
    /// who need events faster than once a minute).
    pub event_poll_interval: Option<Duration>,
    /// Limits of `patchbay serve` against slow and careless clients.
    pub serve: ServeLimits,
    /// Test builds only: abort a rotation right after this step (PATCHBAY_ROTATION_STOP_AFTER).
    #[cfg(feature = "test-hooks")]
    pub rotation_stop_after: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// A client must send a request's headers within this.
    pub header_read_timeout: Duration,
    /// …and its body within this.
    pub body_read_timeout: Duration,
    /// A request is answered (or given up with 503) within this.
    pub request_timeout: Duration,
    /// Connections open at once; further ones are closed at once.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(10),
            // Above Twilio's own timeouts and retries, so a slow Twilio is reported as such.
            request_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// Base URL of the REST API 2010-04-01 host.
    pub api_base: String,
    /// Base URL of the Accounts v1 host (auth tokens).
    pub accounts_base: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Extra attempts after a 429 / 5xx / network failure.
    pub max_retries: u32,
    pub retry_backoff: Duration,
}

impl TwilioConfig {
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            max_retries: self.max_retries,
            retry_backoff: self.retry_backoff,
        }
    }
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self {
            api_base: DEFAULT_API_BASE.into(),
            accounts_base: DEFAULT_ACCOUNTS_BASE.into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_retries: 2,
            retry_backoff: Duration::from_millis(250),
        }
    }
}

/// `config.toml` as a person writes it; every entry is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    vault_service: Option<String>,
    vault_timeout_ms: Option<u64>,
    #[serde(default)]
    events: EventsFile,
    #[serde(default)]
    serve: ServeFile,
    rotation_propagation_timeout_ms: Option<u64>,
    #[serde(default)]
    twilio: TwilioFile,
    #[serde(default)]
    slack: ServiceFile,
    #[serde(default)]
    sendgrid: SendGridFile,
    #[serde(default)]
    http: HttpFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    loopback_only: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendGridFile {
    api_base: Option<String>,
    eu_api_base: Option<String>,
}

/// A service's section: where its API is (timeouts and retries are `[twilio]`'s).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    api_base: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsFile {
    allow_loopback_callbacks: Option<bool>,
    retention_hours: Option<u64>,
    poll_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeFile {
    header_read_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    allow_destinations: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TwilioFile {
    api_base: Option<String>,
    accounts_base: Option<String>,
    connect_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    max_retries: Option<u32>,
    retry_backoff_ms: Option<u64>,
}

impl Config {
    /// Resolves the configuration from `data_dir` (or `PATCHBAY_DATA_DIR`, or the
    /// platform's app-data folder), its `config.toml` and `PATCHBAY_*` variables.
    pub fn load(data_dir: Option<PathBuf>) -> Result<Self> {
        Self::load_with(data_dir, |name| std::env::var(name).ok())
    }

    fn load_with(data_dir: Option<PathBuf>, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let data_dir = match data_dir.or_else(|| env("PATCHBAY_DATA_DIR").map(PathBuf::from)) {
            Some(dir) => dir,
            None => default_data_dir()?,
        };
        let file = read_config_file(&data_dir)?;
        let serve_destinations = serve_destinations(&env, &file)?;
        let defaults = TwilioConfig::default();
        let serve_defaults = ServeLimits::default();
        let millis = |var: &str, file_value: Option<u64>, default: Duration| -> Result<Duration> {
            match env(var) {
                Some(raw) => raw
                    .parse()
                    .map(Duration::from_millis)
                    .map_err(|_| Error::invalid("config", format!("{var} must be a whole number of milliseconds"))),
                None => Ok(file_value.map(Duration::from_millis).unwrap_or(default)),
            }
        };
        let twilio = TwilioConfig {
            api_base: env("PATCHBAY_TWILIO_API_BASE").or(file.twilio.api_base).unwrap_or(defaults.api_base),
            accounts_base: env("PATCHBAY_TWILIO_ACCOUNTS_BASE")
                .or(file.twilio.accounts_base)
                .unwrap_or(defaults.accounts_base),
            connect_timeout: millis(
                "PATCHBAY_TWILIO_CONNECT_TIMEOUT_MS",
                file.twilio.connect_timeout_ms,
                defaults.connect_timeout,
            )?,
            request_timeout: millis(
                "PATCHBAY_TWILIO_REQUEST_TIMEOUT_MS",
                file.twilio.request_timeout_ms,
                defaults.request_timeout,
            )?,
            max_retries: match env("PATCHBAY_TWILIO_MAX_RETRIES") {
                Some(raw) => raw
                    .parse()
                    .map_err(|_| Error::invalid("config", "PATCHBAY_TWILIO_MAX_RETRIES must be a whole number"))?,
                None => file.twilio.max_retries.unwrap_or(defaults.max_retries),
            },
            retry_backoff: millis(
                "PATCHBAY_TWILIO_RETRY_BACKOFF_MS",
                file.twilio.retry_backoff_ms,
                defaults.retry_backoff,
            )?,
        };
        let base =
            |var: &str, file_value: Option<String>, default: &str| env(var).or(file_value).unwrap_or(default.into());
        let slack_api_base = base("PATCHBAY_SLACK_API_BASE", file.slack.api_base, DEFAULT_SLACK_API_BASE);
        let sendgrid_api_base = base("PATCHBAY_SENDGRID_API_BASE", file.sendgrid.api_base, DEFAULT_SENDGRID_API_BASE);
        let sendgrid_eu_api_base =
            base("PATCHBAY_SENDGRID_EU_API_BASE", file.sendgrid.eu_api_base, DEFAULT_SENDGRID_EU_API_BASE);
        // Every request to these carries credentials.
        for (service, name, base) in [
            ("Twilio", "api_base", &twilio.api_base),
            ("Twilio", "accounts_base", &twilio.accounts_base),
            ("Slack", "api_base", &slack_api_base),
            ("SendGrid", "api_base", &sendgrid_api_base),
            ("SendGrid", "eu_api_base", &sendgrid_eu_api_base),
        ] {
            check_base_url(base)
                .map_err(|refusal| Error::invalid("config", refusal.explain(&format!("{service} {name}"), base)))?;
        }
        Ok(Self {
            data_dir,
            vault_service: env("PATCHBAY_VAULT_SERVICE").or(file.vault_service).unwrap_or_else(|| "patchbay".into()),
            vault_timeout: millis("PATCHBAY_VAULT_TIMEOUT_MS", file.vault_timeout_ms, crate::vault::DEFAULT_TIMEOUT)?,
            twilio,
            slack_api_base,
            sendgrid_api_base,
            sendgrid_eu_api_base,
            http_loopback_only: match env("PATCHBAY_HTTP_LOOPBACK_ONLY") {
                Some(raw) => matches!(raw.as_str(), "1" | "true" | "yes"),
                None => file.http.loopback_only.unwrap_or(false),
            },
            rotation_propagation_timeout: millis(
                "PATCHBAY_ROTATION_PROPAGATION_TIMEOUT_MS",
                file.rotation_propagation_timeout_ms,
                Duration::from_secs(60),
            )?,
            reach: Reach::Desk,
            serve_destinations,
            event_retention: match env("PATCHBAY_EVENT_RETENTION_HOURS") {
                Some(raw) => raw.parse().map(|hours: u64| Duration::from_secs(hours * 3600)).map_err(|_| {
                    Error::invalid("config", "PATCHBAY_EVENT_RETENTION_HOURS must be a whole number of hours")
                })?,
                None => Duration::from_secs(file.events.retention_hours.unwrap_or(72) * 3600),
            },
            event_poll_interval: match env("PATCHBAY_EVENT_POLL_INTERVAL_MS") {
                Some(_) => Some(millis("PATCHBAY_EVENT_POLL_INTERVAL_MS", None, Duration::ZERO)?),
                None => file.events.poll_interval_ms.map(Duration::from_millis),
            },
            serve: ServeLimits {
                header_read_timeout: millis(
                    "PATCHBAY_SERVE_HEADER_READ_TIMEOUT_MS",
                    file.serve.header_read_timeout_ms,
                    serve_defaults.header_read_timeout,
                )?,
                body_read_timeout: millis(
                    "PATCHBAY_SERVE_BODY_READ_TIMEOUT_MS",
                    file.serve.body_read_timeout_ms,
                    serve_defaults.body_read_timeout,
                )?,
                request_timeout: millis(
                    "PATCHBAY_SERVE_REQUEST_TIMEOUT_MS",
                    file.serve.request_timeout_ms,
                    serve_defaults.request_timeout,
                )?,
                max_connections: file.serve.max_connections.unwrap_or(serve_defaults.max_connections),
            },
            #[cfg(feature = "test-hooks")]
            rotation_stop_after: env("PATCHBAY_ROTATION_STOP_AFTER").and_then(|step| step.parse().ok()),
        })
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("patchbay.sqlite3")
    }

    /// What the HTTP connector and credential stores may reach.
    pub fn destinations(&self) -> Destinations {
        Destinations::new(self.reach, &self.serve_destinations, self.http_loopback_only)
    }

    /// What addresses a person gave at their desk may reach, whoever uses them later.
    pub fn desk_destinations(&self) -> Destinations {
        Destinations::new(Reach::Desk, &self.serve_destinations, self.http_loopback_only)
    }

    /// What event callbacks may reach: they only ever come through the API.
    pub fn callback_destinations(&self) -> Destinations {
        Destinations::callbacks(&self.serve_destinations)
    }
}

/// `PATCHBAY_SERVE_ALLOW_DESTINATIONS` (comma-separated) or `[serve] allow_destinations`,
/// plus `loopback` under its old name, `allow_loopback_callbacks`.
fn serve_destinations(env: &impl Fn(&str) -> Option<String>, file: &ConfigFile) -> Result<Policy> {
    let listed = match env("PATCHBAY_SERVE_ALLOW_DESTINATIONS") {
        Some(raw) => Policy::parse(raw.split(',')),
        None => Policy::parse(file.serve.allow_destinations.iter().flatten().map(String::as_str)),
    }
    .map_err(|err| Error::invalid("config", format!("allow_destinations: {err}")))?;
    let loopback_callbacks = match env("PATCHBAY_ALLOW_LOOPBACK_CALLBACKS") {
        Some(raw) => matches!(raw.as_str(), "1" | "true" | "yes"),
        None => file.events.allow_loopback_callbacks.unwrap_or(false),
    };
    Ok(if loopback_callbacks { listed.allowing_loopback() } else { listed })
}

fn default_data_dir() -> Result<PathBuf> {
    directories::ProjectDirs::from("dev", "Patchbay", "Patchbay")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .ok_or_else(|| Error::invalid("data_dir", "no home folder found; pass --data-dir or set PATCHBAY_DATA_DIR"))
}

fn read_config_file(data_dir: &Path) -> Result<ConfigFile> {
    let path = data_dir.join(CONFIG_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|err| Error::invalid("config", format!("{} is not valid: {}", path.display(), err.message()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(err) => Err(Error::invalid("config", format!("cannot read {}: {err}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "[twilio]\napi_base = \"http://file\"\naccounts_base = \"https://file-accounts\"\nmax_retries = 5\n",
        )
        .unwrap();
        let env = |name: &str| (name == "PATCHBAY_TWILIO_API_BASE").then(|| "https://env".to_string());
        let config = Config::load_with(Some(dir.path().into()), env).unwrap();
        assert_eq!(config.twilio.api_base, "https://env");
        assert_eq!(config.twilio.accounts_base, "https://file-accounts");
        assert_eq!(config.twilio.max_retries, 5);
        assert_eq!(config.twilio.request_timeout, Duration::from_secs(10));
    }

    #[test]
    fn plain_http_twilio_bases_are_refused_except_on_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let base =
            |value: &'static str| move |name: &str| (name == "PATCHBAY_TWILIO_API_BASE").then(|| value.to_string());
        let err = Config::load_with(Some(dir.path().into()), base("http://api.twilio.com")).unwrap_err();
        assert!(err.to_string().contains("https"), "{err}");
        assert!(Config::load_with(Some(dir.path().into()), base("http://127.0.0.1:4010")).is_ok());
    }

    #[test]
    fn serve_destinations_come_from_the_list_the_environment_and_the_old_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "[serve]\nallow_destinations = [\"10.20.0.0/16\"]\n").unwrap();
        let load = |vars: &'static [(&'static str, &'static str)]| {
            Config::load_with(Some(dir.path().into()), move |name| {
                vars.iter().find(|(var, _)| *var == name).map(|(_, value)| value.to_string())
            })
        };
        let from_file = load(&[]).unwrap();
        assert_eq!(from_file.serve_destinations, Policy::parse(["10.20.0.0/16"]).unwrap());
        assert_eq!(from_file.reach, Reach::Desk, "only the API adapter says it is serve");
        let from_env = load(&[("PATCHBAY_SERVE_ALLOW_DESTINATIONS", "loopback, vault.corp.example")]).unwrap();
        assert_eq!(from_env.serve_destinations, Policy::parse(["loopback", "vault.corp.example"]).unwrap());
        let old_name = load(&[("PATCHBAY_ALLOW_LOOPBACK_CALLBACKS", "1")]).unwrap();
        assert_eq!(old_name.serve_destinations, Policy::parse(["10.20.0.0/16", "loopback"]).unwrap());
        let err = load(&[("PATCHBAY_SERVE_ALLOW_DESTINATIONS", "*.example")]).unwrap_err();
        assert!(err.to_string().contains("'*.example' is not a destination"), "{err}");
    }

    #[test]
    fn unknown_config_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "[twilio]\napi_bsae = \"x\"\n").unwrap();
        let err = Config::load_with(Some(dir.path().into()), |_| None).unwrap_err();
        assert_eq!(err.code(), "invalid_input");
    }
}
