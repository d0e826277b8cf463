//! The OS vault (Secret Service on Linux, Keychain on macOS, Credential Manager on
//! Windows) through keyring-core. The only place a secret is written or read back.

use std::sync::{Arc, OnceLock};

use keyring_core::{CredentialStore, Entry};

use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "the OS vault is not available ({reason}); on Linux start a Secret Service such as gnome-keyring or KeePassXC"
    )]
    Unavailable { reason: String },
    #[error("the OS vault is locked or refused access; unlock your keyring (login keyring) and try again")]
    Locked,
    #[error("the secret '{0}' is missing from the OS vault; enter it again")]
    Missing(String),
    #[error("the OS vault failed: {0}")]
    Failed(String),
}

impl VaultError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } | Self::Failed(_) => "vault_unavailable",
            Self::Locked => "vault_locked",
            Self::Missing(_) => "vault_secret_missing",
        }
    }

    fn from_keyring(err: keyring_core::Error, key: &VaultKey) -> Self {
        use keyring_core::Error as K;
        // Only the variant and the platform's reason are kept: BadEncoding and
        // BadDataFormat carry the stored bytes, which must never reach a message.
        match err {
            K::NoEntry => Self::Missing(key.describe()),
            K::NoStorageAccess(_) => Self::Locked,
            K::PlatformFailure(reason) => Self::Unavailable { reason: reason.to_string() },
            K::NoDefaultStore => Self::Unavailable { reason: "no credential store".into() },
            K::BadEncoding(_) | K::BadDataFormat(..) => {
                Self::Failed(format!("the stored value of {} is unreadable", key.describe()))
            }
            other => Self::Failed(variant_name(&other)),
        }
    }
}

fn variant_name(err: &keyring_core::Error) -> String {
    use keyring_core::Error as K;
    match err {
        K::BadStoreFormat(reason) => format!("bad store format: {reason}"),
        K::TooLong(name, limit) => format!("{name} longer than {limit}"),
        K::Invalid(name, reason) => format!("invalid {name}: {reason}"),
        K::Ambiguous(_) => "several entries match".into(),
        K::NotSupportedByStore(what) => format!("not supported by the store: {what}"),
        _ => "unexpected vault error".into(),
    }
}

/// Where one secret lives in the vault: `service` is Patchbay's, `user` names the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultKey {
    Connection(String),
    Asset(String),
    /// The HTTP API's platform secrets (`user`, `organization`).
    Platform(&'static str),
    /// The key that signs an instance's events.
    EventSigningKey(String),
    /// A rotation's new token until it replaces the old one everywhere.
    RotationPending(String),
}

impl VaultKey {
    /// The key a `user` string (as a rotation records its targets) stands for.
    pub(crate) fn from_user(user: &str) -> Option<Self> {
        match user.split_once('/')? {
            ("connection", id) => Some(Self::Connection(id.to_owned())),
            ("asset", id) => Some(Self::Asset(id.to_owned())),
            _ => None,
        }
    }
}

impl VaultKey {
    pub(crate) fn user(&self) -> String {
        match self {
            Self::Connection(id) => format!("connection/{id}"),
            Self::Asset(id) => format!("asset/{id}"),
            Self::Platform(name) => format!("api/{name}"),
            Self::EventSigningKey(id) => format!("event-key/{id}"),
            Self::RotationPending(id) => format!("rotation/{id}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Connection(id) => format!("of connection {id}"),
            Self::Asset(id) => format!("of credential asset {id}"),
            Self::Platform(name) => format!("API {name} secret"),
            Self::EventSigningKey(id) => format!("event signing key of {id}"),
            Self::RotationPending(id) => format!("new token of rotation {id}"),
        }
    }
}

/// Opens the platform store on first use, so commands that never touch a secret
/// (listing folders, searching the catalog) neither wait for nor need the vault.
pub struct Vault {
    service: String,
    store: OnceLock<Result<Arc<CredentialStore>, String>>,
}

impl Vault {
    pub fn platform(service: impl Into<String>) -> Self {
        Self { service: service.into(), store: OnceLock::new() }
    }

    /// A vault over a given store, e.g. keyring-core's mock store in unit tests.
    pub fn with_store(service: impl Into<String>, store: Arc<CredentialStore>) -> Self {
        let vault = Self::platform(service);
        let _ = vault.store.set(Ok(store));
        vault
    }

    pub(crate) fn put(&self, key: &VaultKey, secret: &Secret) -> Result<(), VaultError> {
        self.entry(key)?.set_password(secret.expose()).map_err(|err| VaultError::from_keyring(err, key))
    }

    pub(crate) fn get(&self, key: &VaultKey) -> Result<Secret, VaultError> {
        self.entry(key)?.get_password().map(Secret::new).map_err(|err| VaultError::from_keyring(err, key))
    }

    /// Deleting what is already gone succeeds: repair and retries rely on it.
    pub(crate) fn delete(&self, key: &VaultKey) -> Result<(), VaultError> {
        match self.entry(key)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(err) => Err(VaultError::from_keyring(err, key)),
        }
    }

    fn entry(&self, key: &VaultKey) -> Result<Entry, VaultError> {
        let store = self
            .store
            .get_or_init(|| open_platform_store().map_err(|err| VaultError::from_keyring(err, key).to_string()))
            .as_ref()
            .map_err(|reason| VaultError::Unavailable { reason: reason.clone() })?;
        Entry::new_in_store(store, &self.service, &key.user()).map_err(|err| VaultError::from_keyring(err, key))
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
fn open_platform_store() -> keyring_core::Result<Arc<CredentialStore>> {
    Ok(zbus_secret_service_keyring_store::Store::new()?)
}

#[cfg(target_os = "macos")]
fn open_platform_store() -> keyring_core::Result<Arc<CredentialStore>> {
    Ok(apple_native_keyring_store::keychain::Store::new()?)
}

#[cfg(target_os = "windows")]
fn open_platform_store() -> keyring_core::Result<Arc<CredentialStore>> {
    Ok(windows_native_keyring_store::Store::new()?)
}

#[cfg(test)]
pub(crate) fn mock_vault() -> Vault {
    Vault::with_store("patchbay-test", keyring_core::mock::Store::new().expect("mock store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete_round_trip() {
        let vault = mock_vault();
        let key = VaultKey::Asset("a1".into());
        vault.put(&key, &Secret::new("s3cret")).unwrap();
        assert_eq!(vault.get(&key).unwrap().expose(), "s3cret");
        vault.delete(&key).unwrap();
        assert!(matches!(vault.get(&key), Err(VaultError::Missing(_))));
        vault.delete(&key).expect("deleting twice is fine");
    }
}
