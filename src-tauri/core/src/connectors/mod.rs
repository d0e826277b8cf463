//! The connectors' behaviour: one module each, behind one trait. A connector is its
//! definition (`connectors/<key>.json`, read by the catalog) and its module here, listed
//! once in [`MODULES`]; nothing else in the core or the adapters names a connector.

mod http;
mod sendgrid;
mod slack;
mod twilio;

use std::future::Future;
use std::pin::Pin;

use crate::catalog::AuthMethod;
use crate::config::Config;
use crate::credential_stores::CredentialStore;
use crate::error::Result;
use crate::fields::{Details, FieldValues};
use crate::http::HttpClient;
use crate::secret::Secret;
use crate::twilio::TwilioClient;

use sendgrid::SendGridApi;
use slack::SlackApi;
pub(crate) use twilio::TwilioAccount;

/// Every connector, in catalog order.
pub(crate) static MODULES: &[&dyn ConnectorModule] =
    &[&twilio::Twilio, &sendgrid::SendGrid, &slack::Slack, &http::Http];

/// The module of a catalog connector (the catalog is built from `MODULES`, so every
/// connector it knows has one; callers look the key up in the catalog first).
pub(crate) fn module(key: &str) -> &'static dyn ConnectorModule {
    MODULES.iter().copied().find(|module| module.key() == key).expect("every catalog connector has its module")
}

/// What connectors reach their services with: one client per service, each with its
/// configured base URL, timeouts and retries. The operator's base URLs (Twilio, Slack,
/// SendGrid) are reached as configured; addresses people give are checked.
pub(crate) struct Services {
    pub twilio: TwilioClient,
    pub slack: SlackApi,
    pub sendgrid: SendGridApi,
    /// For the generic HTTP connector: the URL the connection names, where
    /// `Config::destinations` allows.
    pub http: HttpClient,
    /// For credential stores (Vault, OpenBao) registered by `serve`'s callers, under the
    /// same rule; and for those a person registered at their desk, under the desk's.
    stores_from_api: HttpClient,
    stores_from_desk: HttpClient,
}

impl Services {
    pub fn new(config: &Config) -> Self {
        // Every service gets the timeouts and retries configured under [twilio].
        let limits = config.twilio.limits();
        Self {
            twilio: TwilioClient::new(config.twilio.clone()),
            slack: SlackApi { http: HttpClient::new(limits), api_base: config.slack_api_base.clone() },
            sendgrid: SendGridApi {
                http: HttpClient::new(limits),
                api_base: config.sendgrid_api_base.clone(),
                eu_api_base: config.sendgrid_eu_api_base.clone(),
            },
            http: HttpClient::checked(limits, config.destinations()),
            stores_from_api: HttpClient::checked(limits, config.destinations()),
            stores_from_desk: HttpClient::checked(limits, config.desk_destinations()),
        }
    }

    /// The client that reaches `store`: an address a `serve` caller gave is held to
    /// serve's rule each time; one a person gave, to the desk's.
    pub fn store_client(&self, store: &CredentialStore) -> &HttpClient {
        if store.registered_by_api { &self.stores_from_api } else { &self.stores_from_desk }
    }
}

/// What to verify: the values already checked against the auth method's fields.
pub(crate) struct Verify<'a> {
    pub method: &'static AuthMethod,
    pub values: &'a FieldValues,
    /// The method's secret, when it has a secret field.
    pub secret: Option<&'a Secret>,
}

impl<'a> Verify<'a> {
    /// The secret, which the core resolves before `verify` for every method that has one.
    pub fn secret(&self) -> Result<&'a Secret> {
        self.secret.ok_or_else(|| {
            let field = self.method.secret_field().expect("asked only of methods with a secret");
            crate::Error::invalid(&field.name, format!("enter the {}", field.label))
        })
    }
}

pub(crate) type Verifying<'a> = Pin<Box<dyn Future<Output = Result<Details>> + Send + 'a>>;

pub(crate) trait ConnectorModule: Sync {
    /// Its key in the catalog (`key` of its definition).
    fn key(&self) -> &'static str;

    /// Its definition, `connectors/<key>.json`.
    fn definition(&self) -> &'static str;

    /// Rules beyond each field's own format, such as one field depending on another.
    fn check(&self, _method: &AuthMethod, _values: &FieldValues) -> Result<()> {
        Ok(())
    }

    /// Asks the service whether the values and the secret work, with no side effect
    /// the service does not allow for free; returns what it said about the account.
    fn verify<'a>(&'a self, services: &'a Services, request: Verify<'a>) -> Verifying<'a>;

    /// The name of a connection nobody named, from its values and what the service
    /// said (numbered by the caller when taken).
    fn default_name(&self, values: &FieldValues, details: &Details) -> String;
}
