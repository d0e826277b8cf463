//! The error every core call returns, and the serializable body that reaches people.
//!
//! Each error has a stable `code` (the same in the CLI, the window and the HTTP API),
//! a message a person can act on, and where it applies the form `field` it concerns and
//! the code Twilio answered with. Messages never contain a secret: no variant holds one.

use serde::Serialize;
use ts_rs::TS;

use crate::assets::DestinationRefused;
use crate::credential_stores::CredentialStoreError;
use crate::folders::FolderContents;
use crate::rotation::RotationRecord;
use crate::store::StoreError;
use crate::twilio::ConnectError;
use crate::vault::VaultError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    InvalidInput { field: &'static str, message: String },
    #[error("folder '{0}' does not exist")]
    FolderNotFound(String),
    #[error("folder '{path}' is not empty: it holds {contents}; delete it recursively to remove everything inside")]
    FolderNotEmpty { path: String, contents: FolderContents },
    #[error("{what} '{name}' already exists in {place}; choose another name")]
    NameTaken { what: &'static str, name: String, place: String },
    #[error("no credential asset '{name}' is visible from folder '{folder}'; create it first or check the name")]
    AssetNotFound { name: String, folder: String },
    #[error(
        "the credential asset connection '{connection}' used was deleted; edit the connection to choose another asset or enter its secret"
    )]
    AssetDeleted { connection: String },
    #[error(
        "credential asset '{name}' is used by {}: {}; delete or change those connections first, or delete with --force",
        plural(connections.len(), "connection"),
        connections.join(", ")
    )]
    AssetInUse { name: String, connections: Vec<String> },
    #[error(transparent)]
    AssetDestinationRefused(Box<DestinationRefused>),
    #[error("no {what} with id '{id}'")]
    NotFound { what: &'static str, id: String },
    #[error("no credential store '{0}' is registered (or it was just removed); `patchbay store list` shows them")]
    StoreNotFound(String),
    #[error(
        "the new Auth Token is already promoted at Twilio, so the rotation can no longer be cancelled; `patchbay credential rotate --resume` finishes storing it everywhere"
    )]
    RotationPromoted,
    /// A cancel lost against a run that finished the rotation: it is done, with this record.
    #[error(
        "the rotation of {} completed before it could be cancelled, so it cannot be cancelled any more: {}",
        .0.subject,
        .0.outcome.as_deref().unwrap_or("done")
    )]
    RotationCompleted(Box<RotationRecord>),
    /// The person stopped it (Cancel, Ctrl-C); the message says what was left as it was.
    #[error("{0}")]
    Cancelled(String),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// What a connector's service answered or failed with, in that connector's words.
    #[error("{0}")]
    Service(Box<dyn ServiceFailure>),
    #[error(transparent)]
    CredentialStore(#[from] CredentialStoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A connector's error: each connector module has its own enum and says, per variant,
/// its stable code, the form field it concerns and what the service itself said.
pub trait ServiceFailure: std::error::Error + Send + Sync + 'static {
    fn code(&self) -> &'static str;
    fn field(&self) -> Option<&'static str> {
        None
    }
    /// The service's own code for the failure (Slack's `invalid_auth`, an HTTP status).
    fn service_code(&self) -> Option<String> {
        None
    }
    /// The service's own words, when it said something.
    fn service_message(&self) -> Option<String> {
        None
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        Self::Store(err.into())
    }
}

impl Error {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput { field, message: message.into() }
    }

    /// The stable machine-readable code; README lists them all.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "invalid_input",
            Self::FolderNotFound(_) => "folder_not_found",
            Self::FolderNotEmpty { .. } => "folder_not_empty",
            Self::NameTaken { .. } => "name_taken",
            Self::AssetNotFound { .. } | Self::AssetDeleted { .. } => "asset_not_found",
            Self::AssetInUse { .. } => "asset_in_use",
            Self::AssetDestinationRefused(_) => "asset_destination_refused",
            Self::NotFound { .. } | Self::StoreNotFound(_) => "not_found",
            Self::RotationPromoted => "rotation_promoted",
            Self::RotationCompleted(_) => "rotation_completed",
            Self::Cancelled(_) => "cancelled",
            Self::Connect(err) => err.code(),
            Self::Service(err) => err.code(),
            Self::CredentialStore(err) => err.code(),
            Self::Vault(err) => err.code(),
            Self::Store(_) => "store_failed",
        }
    }

    /// The form field the error is about, when it is about one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidInput { field, .. } => Some(field),
            Self::AssetNotFound { .. } | Self::AssetDeleted { .. } => Some("auth_token"),
            Self::Connect(err) => err.field(),
            Self::Service(err) => err.field(),
            Self::CredentialStore(err) => err.field(),
            _ => None,
        }
    }

    pub fn twilio_code(&self) -> Option<u32> {
        match self {
            Self::Connect(err) => err.twilio_code(),
            _ => None,
        }
    }

    /// What Twilio itself said, when it said something.
    pub fn provider_message(&self) -> Option<String> {
        match self {
            Self::Connect(err) => err.provider_message(),
            _ => None,
        }
    }

    /// Another service's own code and words (Twilio's are `twilio_code` / `twilio_message`).
    fn service_said(&self) -> (Option<String>, Option<String>) {
        match self {
            Self::Service(err) => (err.service_code(), err.service_message()),
            _ => (None, None),
        }
    }

    pub fn to_body(&self) -> ErrorBody {
        let (service_code, service_message) = self.service_said();
        ErrorBody {
            service_code,
            service_message,
            code: self.code().to_owned(),
            message: self.to_string(),
            field: self.field().map(str::to_owned),
            twilio_code: self.twilio_code(),
            twilio_message: self.provider_message(),
        }
    }
}

/// What the CLI prints with `--json`, the window receives and the HTTP API answers.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub twilio_code: Option<u32>,
    /// Twilio's own words (its error body's `message`), whenever it answered with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub twilio_message: Option<String>,
    /// Another service's own code for the failure (Slack's `invalid_auth`, an HTTP status).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub service_code: Option<String>,
    /// Another service's own words, whenever it answered with some.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub service_message: Option<String>,
}

pub(crate) fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}
