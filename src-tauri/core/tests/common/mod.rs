// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

//! A core wired to a fresh fake Twilio, a temporary SQLite file and a mock vault that
//! the test can inspect.

use std::sync::Arc;
use std::time::Duration;

use keyring_core::{CredentialStore, Entry};
use patchbay_core::{
    Config, Connection, FieldValue, FieldValues, NewConnection, Patchbay, Secret, SecretSource, Vault, fields,
};
use patchbay_tests::fake_twilio::FakeTwilio;

pub const VAULT_SERVICE: &str = "patchbay-core-tests";

pub struct World {
    pub fake: FakeTwilio,
    pub core: Patchbay,
    pub vault_store: Arc<CredentialStore>,
    pub config: Config,
    // Kept so the data folder outlives the test.
    _dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(tune: impl FnOnce(&mut Config)) -> Self {
        Self::with_vault_store(keyring_core::mock::Store::new().unwrap(), tune)
    }

    /// A world whose vault is `vault_store` (e.g. one that waits on an unlock prompt).
    pub fn with_vault_store(vault_store: Arc<CredentialStore>, tune: impl FnOnce(&mut Config)) -> Self {
        let fake = FakeTwilio::start();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::load(Some(dir.path().to_path_buf())).unwrap();
        config.twilio.api_base = fake.api_base().to_owned();
        config.twilio.accounts_base = fake.accounts_base().to_owned();
        config.twilio.retry_backoff = Duration::from_millis(5);
        // Services a test does not tune to its fake: a closed loopback port, never the real one.
        config.slack_api_base = patchbay_tests::harness::NOWHERE.into();
        config.sendgrid_api_base = patchbay_tests::harness::NOWHERE.into();
        config.sendgrid_eu_api_base = patchbay_tests::harness::NOWHERE.into();
        config.http_loopback_only = true;
        tune(&mut config);
        let core = Patchbay::open_with_vault(
            config.clone(),
            Vault::with_store(VAULT_SERVICE, vault_store.clone(), config.vault_timeout),
        )
        .unwrap();
        Self { fake, core, vault_store, config, _dir: dir }
    }

    /// Opens the same data folder and vault again, as a restarted process would.
    pub fn reopen(&self) -> Patchbay {
        self.reopen_with(|_| {})
    }

    /// As [`World::reopen`], as another kind of process (`tune` its configuration).
    pub fn reopen_with(&self, tune: impl FnOnce(&mut Config)) -> Patchbay {
        let mut config = self.config.clone();
        tune(&mut config);
        let vault = Vault::with_store(VAULT_SERVICE, self.vault_store.clone(), config.vault_timeout);
        Patchbay::open_with_vault(config, vault).unwrap()
    }

    /// The process ends and another opens the same data folder and vault.
    pub fn restart(&mut self) {
        self.core = self.reopen();
    }

    /// What the vault holds under `user` (e.g. `connection/<id>`), read past the core.
    pub fn vault_value(&self, user: &str) -> Option<String> {
        Entry::new_in_store(&self.vault_store, VAULT_SERVICE, user).unwrap().get_password().ok()
    }

    pub fn live(&self, phone: &str) -> NewConnection {
        let seed = self.fake.seed();
        twilio("Shared", phone, &seed.live.sid, &seed.live.auth_token, false)
    }
}

pub fn twilio(folder: &str, phone: &str, sid: &str, token: &str, test: bool) -> NewConnection {
    NewConnection {
        folder: folder.into(),
        connector: "twilio".into(),
        auth_method: None,
        name: None,
        values: FieldValues::from([
            ("phone_number".into(), FieldValue::Text(phone.into())),
            ("account_sid".into(), FieldValue::Text(sid.into())),
            ("test_credentials".into(), FieldValue::Toggle(test)),
        ]),
        secret: Some(SecretSource::Value(Secret::new(token))),
    }
}

/// A Twilio connection's values, read the way the tests ask about them.
pub trait TwilioFields {
    fn phone(&self) -> Option<&str>;
    fn account_sid(&self) -> &str;
    fn test_credentials(&self) -> bool;
    fn account_name(&self) -> Option<&str>;
    fn account_type(&self) -> Option<&str>;
}

impl TwilioFields for Connection {
    fn phone(&self) -> Option<&str> {
        fields::text(&self.fields, "phone_number")
    }
    fn account_sid(&self) -> &str {
        fields::text(&self.fields, "account_sid").unwrap_or_default()
    }
    fn test_credentials(&self) -> bool {
        fields::toggle(&self.fields, "test_credentials")
    }
    fn account_name(&self) -> Option<&str> {
        self.details.get("account_name").map(String::as_str)
    }
    fn account_type(&self) -> Option<&str> {
        self.details.get("account_type").map(String::as_str)
    }
}

/// Sets a field of a request's values (None: leaves it out): text, or a toggle for
/// `true` / `false`.
pub fn set(values: &mut FieldValues, name: &str, value: Option<&str>) {
    match value {
        None => values.remove(name),
        Some(on @ ("true" | "false")) => values.insert(name.into(), FieldValue::Toggle(on == "true")),
        Some(text) => values.insert(name.into(), FieldValue::Text(text.into())),
    };
}
