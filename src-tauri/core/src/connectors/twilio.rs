//! Twilio: connections by Auth Token, validated as Twilio treats live and test credentials
//! (`crate::twilio::verify`), or by API key, as Twilio treats Main and Standard keys
//! (`crate::twilio::verify_api_key`).

use super::{ConnectorModule, Services, Verify, Verifying};
use crate::connections::{self, Stored};
use crate::error::{Error, Result};
use crate::fields::{self, Details, FieldValues};
use crate::twilio::Credentials;

pub(crate) struct Twilio;

/// The Twilio account a connection's values name: what rotation and events work with.
pub(crate) struct TwilioAccount<'a> {
    pub sid: &'a str,
    /// None for an account-level connection (every number of the account).
    pub phone: Option<&'a str>,
    pub test_credentials: bool,
}

impl<'a> TwilioAccount<'a> {
    pub fn of(values: &'a FieldValues) -> Self {
        Self {
            sid: fields::text(values, "account_sid").unwrap_or_default(),
            phone: fields::text(values, "phone_number"),
            test_credentials: fields::toggle(values, "test_credentials"),
        }
    }
}

impl TwilioAccount<'_> {
    /// The account's connections with its live Auth Token, by name: those a rotation
    /// of that token updates.
    pub fn live_auth_token_connections(db: &rusqlite::Connection, account_sid: &str) -> Result<Vec<Stored>> {
        let rows = connections::with_field(db, "twilio", AUTH_TOKEN, "account_sid", account_sid)?;
        Ok(rows.into_iter().filter(|stored| !TwilioAccount::of(&stored.fields).test_credentials).collect())
    }
}

/// The auth method whose secret is the account's Auth Token.
const AUTH_TOKEN: &str = "auth_token";

impl ConnectorModule for Twilio {
    fn key(&self) -> &'static str {
        "twilio"
    }

    fn definition(&self) -> &'static str {
        include_str!("../../connectors/twilio.json")
    }

    fn verify<'a>(&'a self, services: &'a Services, request: Verify<'a>) -> Verifying<'a> {
        Box::pin(async move {
            let account = TwilioAccount::of(request.values);
            let secret = request.secret()?;
            let verified = match request.method.key.as_str() {
                AUTH_TOKEN => {
                    let credentials = Credentials::auth_token(account.sid, secret);
                    crate::twilio::verify(&services.twilio, credentials, account.phone, account.test_credentials)
                        .await?
                }
                _ => {
                    let key_sid = fields::text(request.values, "api_key_sid").unwrap_or_default();
                    let credentials = Credentials::api_key(account.sid, key_sid, secret);
                    crate::twilio::verify_api_key(&services.twilio, credentials, account.phone).await?
                }
            };
            let mut details = Details::new();
            details.extend(verified.friendly_name.map(|name| ("account_name".to_owned(), name)));
            details.extend(verified.account_type.map(|kind| ("account_type".to_owned(), kind)));
            details.extend(verified.api_key_type.map(|kind| ("api_key_type".to_owned(), kind.to_owned())));
            Ok::<_, Error>(details)
        })
    }

    fn default_name(&self, values: &FieldValues, _details: &Details) -> String {
        let account = TwilioAccount::of(values);
        format!("Twilio {}", account.phone.unwrap_or(account.sid))
    }
}
