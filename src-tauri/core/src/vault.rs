//! The OS vault (Secret Service on Linux, Keychain on macOS, Credential Manager on
//! Windows) through keyring-core. The only place a secret is written or read back.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

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
    #[error(
        "the OS vault did not answer within {seconds} s: it is probably locked; unlock your keyring (login keyring) and try again"
    )]
    NoAnswer { seconds: f32 },
    #[error(
        "the OS vault is still waiting for an earlier request to be answered: it is probably locked; unlock your keyring (login keyring) and try again"
    )]
    StillWaiting,
    #[error("the secret '{0}' is missing from the OS vault; enter it again")]
    Missing(String),
    #[error("the OS vault failed: {0}")]
    Failed(String),
}

impl VaultError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } | Self::Failed(_) => "vault_unavailable",
            Self::Locked | Self::NoAnswer { .. } | Self::StillWaiting => "vault_locked",
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
    /// A credential store's own token, or its AppRole secret ID.
    CredentialStore(String),
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
            Self::CredentialStore(id) => format!("store/{id}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Connection(id) => format!("of connection {id}"),
            Self::Asset(id) => format!("of credential asset {id}"),
            Self::Platform(name) => format!("API {name} secret"),
            Self::EventSigningKey(id) => format!("event signing key of {id}"),
            Self::RotationPending(id) => format!("new token of rotation {id}"),
            Self::CredentialStore(id) => format!("credentials of credential store {id}"),
        }
    }
}

/// Opens the platform store on first use, so commands that never touch a secret
/// (listing folders, searching the catalog) neither wait for nor need the vault.
///
/// Every call runs on a blocking thread, never on the async threads and never while the
/// store's lock is held, and gives up after `timeout`: a locked keyring waiting on an
/// unlock prompt nobody sees (a server, a script) must not freeze the process. While a
/// call that gave up is still waiting, further calls fail at once with the same answer.
pub struct Vault {
    service: String,
    store: Arc<OnceLock<Result<Arc<CredentialStore>, String>>>,
    timeout: Duration,
    waiting: Arc<AtomicUsize>,
}

/// How long a vault call may take before Patchbay answers `vault_locked`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl Vault {
    pub fn platform(service: impl Into<String>, timeout: Duration) -> Self {
        Self { service: service.into(), store: Arc::default(), timeout, waiting: Arc::default() }
    }

    /// A vault over a given store, e.g. keyring-core's mock store in unit tests.
    pub fn with_store(service: impl Into<String>, store: Arc<CredentialStore>, timeout: Duration) -> Self {
        let vault = Self::platform(service, timeout);
        let _ = vault.store.set(Ok(store));
        vault
    }

    /// Stores the secret. If Patchbay stops waiting for the vault, the write is undone
    /// as soon as the vault answers: a caller told "not saved" finds nothing saved.
    pub(crate) async fn put(&self, key: &VaultKey, secret: &Secret) -> Result<(), VaultError> {
        let secret = secret.clone();
        let undo = |entry: &Entry| {
            let _ = entry.delete_credential();
        };
        self.call(key, move |entry| entry.set_password(secret.expose()), undo).await
    }

    pub(crate) async fn get(&self, key: &VaultKey) -> Result<Secret, VaultError> {
        self.call(key, |entry| entry.get_password().map(Secret::new), |_| {}).await
    }

    /// Deleting what is already gone succeeds: repair and retries rely on it.
    pub(crate) async fn delete(&self, key: &VaultKey) -> Result<(), VaultError> {
        let delete = |entry: &Entry| match entry.delete_credential() {
            Err(keyring_core::Error::NoEntry) => Ok(()),
            other => other,
        };
        self.call(key, delete, |_| {}).await
    }

    /// Runs `op` on a blocking thread. If it does not answer in time the caller is told
    /// so, and when it finally does, `undo` reverses it.
    async fn call<T: Send + 'static>(
        &self,
        key: &VaultKey,
        op: impl FnOnce(&Entry) -> keyring_core::Result<T> + Send + 'static,
        undo: impl FnOnce(&Entry) + Send + 'static,
    ) -> Result<T, VaultError> {
        let seconds = self.timeout.as_secs_f32();
        if self.waiting.load(Ordering::SeqCst) > 0 {
            return Err(VaultError::StillWaiting);
        }
        let fate = Arc::new(AtomicU8::new(RUNNING));
        let (store, service, user, described, call_fate) =
            (Arc::clone(&self.store), self.service.clone(), key.user(), key.clone(), Arc::clone(&fate));
        let mut call = tokio::task::spawn_blocking(move || {
            let store = store
                .get_or_init(|| {
                    open_platform_store().map_err(|err| VaultError::from_keyring(err, &described).to_string())
                })
                .as_ref()
                .map_err(|reason| VaultError::Unavailable { reason: reason.clone() })?;
            let entry =
                Entry::new_in_store(store, &service, &user).map_err(|err| VaultError::from_keyring(err, &described))?;
            let answer = op(&entry);
            if call_fate.compare_exchange(RUNNING, ANSWERED, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                undo(&entry);
            }
            answer.map_err(|err| VaultError::from_keyring(err, &described))
        });
        // Whoever stops waiting first, the timeout below or a caller that drops this
        // future (a cancelled Connect), abandons the call: it is then undone when done.
        let abandon = Abandon(&fate);
        let answer = match tokio::time::timeout(self.timeout, &mut call).await {
            Ok(answer) => answer,
            // It answered just as the wait ended: its answer stands.
            Err(_) if !abandon.now() => call.await,
            Err(_) => {
                // The call keeps waiting on its thread; until it returns, so does the vault.
                let waiting = Arc::clone(&self.waiting);
                waiting.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let _ = call.await;
                    waiting.fetch_sub(1, Ordering::SeqCst);
                });
                return Err(VaultError::NoAnswer { seconds });
            }
        };
        answer.unwrap_or_else(|_| Err(VaultError::Failed("the vault call did not finish".into())))
    }
}

const RUNNING: u8 = 0;
const ANSWERED: u8 = 1;
const ABANDONED: u8 = 2;

/// Marks a vault call abandoned unless it has answered.
struct Abandon<'a>(&'a AtomicU8);

impl Abandon<'_> {
    /// Abandons the call now; false if it had already answered.
    fn now(&self) -> bool {
        self.0.compare_exchange(RUNNING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        self.now();
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
    Vault::with_store("patchbay-test", keyring_core::mock::Store::new().expect("mock store"), DEFAULT_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_delete_round_trip() {
        let vault = mock_vault();
        let key = VaultKey::Asset("a1".into());
        vault.put(&key, &Secret::new("s3cret")).await.unwrap();
        assert_eq!(vault.get(&key).await.unwrap().expose(), "s3cret");
        vault.delete(&key).await.unwrap();
        assert!(matches!(vault.get(&key).await, Err(VaultError::Missing(_))));
        vault.delete(&key).await.expect("deleting twice is fine");
    }
}
