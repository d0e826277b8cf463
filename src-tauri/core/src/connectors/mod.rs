//! The connectors' behaviour: one module each, behind one trait. A connector is its
//! definition (`connectors/<key>.json`, read by the catalog) and its module here, listed
//! once in [`MODULES`]; nothing else in the core or the adapters names a connector.

mod twilio;

use std::future::Future;
use std::pin::Pin;

use crate::catalog::AuthMethod;
use crate::error::Result;
use crate::fields::{Details, FieldValues};
use crate::secret::Secret;
use crate::twilio::TwilioClient;

pub(crate) use twilio::TwilioAccount;

/// Every connector, in catalog order.
pub(crate) static MODULES: &[&dyn ConnectorModule] = &[&twilio::Twilio];

/// The module of the connector with this key.
pub(crate) fn module(key: &str) -> Option<&'static dyn ConnectorModule> {
    MODULES.iter().copied().find(|module| module.key() == key)
}

/// What connectors reach their services with: one client per service, each with its
/// configured base URL, timeouts and retries.
pub struct Services {
    pub twilio: TwilioClient,
}

/// What to verify: the values already checked against the auth method's fields.
pub struct Verify<'a> {
    pub method: &'static AuthMethod,
    pub values: &'a FieldValues,
    /// The method's secret, when it has a secret field.
    pub secret: Option<&'a Secret>,
}

pub type Verifying<'a> = Pin<Box<dyn Future<Output = Result<Details>> + Send + 'a>>;

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

    /// The name of a connection nobody named (numbered by the caller when taken).
    fn default_name(&self, values: &FieldValues) -> String;
}
