//! Twilio: Auth Token connections, validated as Twilio treats live and test credentials
//! (`crate::twilio::verify`).

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
            let auth_token = request.secret.ok_or_else(|| Error::invalid("auth_token", "enter the Auth Token"))?;
            let credentials = Credentials { account_sid: account.sid, auth_token };
            let verified =
                crate::twilio::verify(&services.twilio, credentials, account.phone, account.test_credentials).await?;
            let mut details = Details::new();
            details.extend(verified.friendly_name.map(|name| ("account_name".to_owned(), name)));
            details.extend(verified.account_type.map(|kind| ("account_type".to_owned(), kind)));
            Ok::<_, Error>(details)
        })
    }

    fn default_name(&self, values: &FieldValues, _details: &Details) -> String {
        let account = TwilioAccount::of(values);
        format!("Twilio {}", account.phone.unwrap_or(account.sid))
    }
}
