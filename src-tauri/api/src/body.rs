//! The JSON of `/instances`: parsing requests into core specs, and instances into answers.

use patchbay_core::instances::{EventSettings, Instance, InstanceSettings, InstanceSpec, element_key};
use patchbay_core::{AuthRef, Secret, TokenSource};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceBody {
    element: ElementRef,
    name: String,
    folder: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    configuration: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ElementRef {
    key: String,
}

/// `PATCH /instances/{id}`: only what changes; the rest stays as it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstancePatch {
    element: Option<ElementRef>,
    name: Option<String>,
    tags: Option<Vec<String>>,
    #[serde(default)]
    configuration: Map<String, Value>,
}

pub fn parse_patch(bytes: &[u8]) -> Result<InstancePatch, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| ApiError::bad_request(format!("invalid request body: {err}")))
}

impl InstancePatch {
    /// The whole request a PUT would carry: the instance as it is, with the patch laid
    /// over it. The token and signing key stay unless the patch names new ones.
    pub fn over(self, current: &Instance) -> InstanceBody {
        let mut configuration = match instance_json(current, None).get("configuration") {
            Some(Value::Object(map)) => map.clone(),
            _ => Map::new(),
        };
        for masked in ["password", "event.notification.signature.key"] {
            configuration.remove(masked);
        }
        configuration.extend(self.configuration);
        InstanceBody {
            element: self.element.unwrap_or(ElementRef { key: element_key().to_owned() }),
            name: self.name.unwrap_or_else(|| current.connection.name.clone()),
            folder: None,
            tags: self.tags.unwrap_or_else(|| current.tags.clone()),
            configuration,
        }
    }
}

const USERNAME_SHAPE: &str = "username must be the Account SID (AC followed by 32 hex digits) or {\"asset\": \"NAME\"}";

/// The Account SID as given, or the credential asset that holds it.
#[derive(Debug)]
pub enum Username {
    Sid(String),
    Asset(String),
}

/// A parsed request whose username may still name an asset.
#[derive(Debug)]
pub struct ParsedSpec {
    pub spec: InstanceSpec,
    pub username: Username,
}

/// As for Cloud Elements' `twiliov2`: the credentials only. Without a `phone_number` the
/// instance is account-level.
const REQUIRED: [&str; 2] = ["username", "password"];
const OPTIONAL: [&str; 11] = [
    "phone_number",
    "event.poller.configuration",
    "event.poller.urls",
    "test_credentials",
    "event.notification.signature.key",
    "event.notification.enabled",
    "event.vendor.type",
    "event.notification.type",
    "event.notification.callback.url",
    "event.poller.refresh_interval",
    "filter.response.nulls",
];

pub fn parse(bytes: &[u8]) -> Result<InstanceBody, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| ApiError::bad_request(format!("invalid request body: {err}")))
}

impl InstanceBody {
    /// The core's view of the request. On PUT (`keep_token`) a missing password keeps the
    /// instance's current token.
    pub fn into_spec(self, keep_token: bool) -> Result<ParsedSpec, ApiError> {
        if self.element.key != element_key() {
            return Err(ApiError::bad_request(format!(
                "unknown element key '{}'; known keys: {}",
                self.element.key,
                element_key()
            )));
        }
        let config = self.configuration;
        if let Some(unknown) =
            config.keys().find(|key| !REQUIRED.contains(&key.as_str()) && !OPTIONAL.contains(&key.as_str()))
        {
            return Err(ApiError::bad_request(format!(
                "unknown configuration entry '{unknown}'; known entries: {}",
                REQUIRED.iter().chain(OPTIONAL.iter()).copied().collect::<Vec<_>>().join(", ")
            )));
        }
        let missing: Vec<&str> = REQUIRED
            .iter()
            .copied()
            .filter(|key| !(keep_token && *key == "password"))
            .filter(|key| not_set(config.get(*key)))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::bad_request(format!("missing required configuration: {}", missing.join(", "))));
        }
        let defaults = EventSettings::default();
        let events = EventSettings {
            enabled: boolean(&config, "event.notification.enabled")?.unwrap_or(false),
            vendor_type: text(&config, "event.vendor.type")?.unwrap_or(defaults.vendor_type),
            notification_type: text(&config, "event.notification.type")?.unwrap_or(defaults.notification_type),
            callback_url: text(&config, "event.notification.callback.url")?,
            refresh_minutes: match config.get("event.poller.refresh_interval") {
                value if not_set(value) => defaults.refresh_minutes,
                Some(value) => value
                    .as_u64()
                    .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request("event.poller.refresh_interval must be a whole number of minutes")
                    })?,
                None => defaults.refresh_minutes,
            },
        };
        let auth_token = match config.get("password") {
            value if not_set(value) => None,
            Some(Value::String(token)) => Some(TokenSource::Value(Secret::new(token.clone()))),
            Some(Value::Object(asset)) => match (asset.len(), asset.get("asset")) {
                (1, Some(Value::String(name))) => Some(TokenSource::Asset(name.clone())),
                _ => return Err(ApiError::bad_request("password must be the Auth Token or {\"asset\": \"NAME\"}")),
            },
            _ => return Err(ApiError::bad_request("password must be the Auth Token or {\"asset\": \"NAME\"}")),
        };
        let username = match config.get("username") {
            Some(Value::String(sid)) => Username::Sid(sid.clone()),
            Some(Value::Object(asset)) => match (asset.len(), asset.get("asset")) {
                (1, Some(Value::String(name))) => Username::Asset(name.clone()),
                _ => return Err(ApiError::bad_request(USERNAME_SHAPE)),
            },
            _ => return Err(ApiError::bad_request(USERNAME_SHAPE)),
        };
        let spec = InstanceSpec {
            folder: self.folder.unwrap_or_else(|| "Shared".into()),
            name: self.name,
            tags: self.tags,
            phone_number: text(&config, "phone_number")?,
            account_sid: String::new(),
            test_credentials: boolean(&config, "test_credentials")?.unwrap_or(false),
            auth_token,
            settings: InstanceSettings {
                events,
                filter_nulls: boolean(&config, "filter.response.nulls")?.unwrap_or(true),
                signing_key: false,
                poller_configuration: poller_configuration(&config)?,
                poller_urls: text(&config, "event.poller.urls")?,
            },
            signature_key: text(&config, "event.notification.signature.key")?.map(Secret::new),
        };
        Ok(ParsedSpec { spec, username })
    }
}

/// Connector platforms' clients send every configuration value as a string, and `""`
/// for "not set" (Cloud Elements' churros `provisioner.js` sends
/// `"event.notification.signature.key": ""`); null and absent mean the same.
fn not_set(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.is_empty(),
        Some(_) => false,
    }
}

fn text(config: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match config.get(key) {
        value if not_set(value) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        _ => Err(ApiError::bad_request(format!("{key} must be a string"))),
    }
}

/// `true` / `false`, as JSON or as the strings `"true"` / `"false"`.
fn boolean(config: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match config.get(key) {
        value if not_set(value) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(Value::String(text)) if text == "true" => Ok(Some(true)),
        Some(Value::String(text)) if text == "false" => Ok(Some(false)),
        _ => Err(ApiError::bad_request(format!("{key} must be true or false"))),
    }
}

/// `event.poller.configuration`: a JSON object, or the same as a JSON string.
fn poller_configuration(config: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    let key = "event.poller.configuration";
    match config.get(key) {
        value if not_set(value) => Ok(None),
        Some(Value::Object(object)) => Ok(Some(Value::Object(object.clone()))),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(object @ Value::Object(_)) => Ok(Some(object)),
            _ => Err(ApiError::bad_request(format!("{key} must be a JSON object, or a string holding one"))),
        },
        _ => Err(ApiError::bad_request(format!("{key} must be a JSON object, or a string holding one"))),
    }
}

/// An instance as the API shows it: secrets masked, the token only when just made.
pub fn instance_json(instance: &Instance, token: Option<&Secret>) -> Value {
    let connection = &instance.connection;
    let events = &instance.settings.events;
    let password = match &connection.auth {
        AuthRef::Own => json!("********"),
        AuthRef::Asset { name, .. } => json!({ "asset": name }),
        AuthRef::MissingAsset => Value::Null,
    };
    let mut answer = json!({
        "id": connection.id,
        "name": connection.name,
        "element": { "key": element_key(), "name": "Twilio" },
        "folder": connection.folder,
        "tags": instance.tags,
        "configuration": {
            "username": connection.account_sid,
            "password": password,
            "phone_number": connection.phone_number,
            "test_credentials": connection.test_credentials,
            "event.notification.enabled": events.enabled,
            "event.vendor.type": events.vendor_type,
            "event.notification.type": events.notification_type,
            "event.notification.callback.url": events.callback_url,
            "event.poller.refresh_interval": events.refresh_minutes,
            "event.notification.signature.key": if instance.settings.signing_key { json!("********") } else { Value::Null },
            "filter.response.nulls": instance.settings.filter_nulls,
            "event.poller.configuration": instance.settings.poller_configuration,
            "event.poller.urls": instance.settings.poller_urls,
        },
        "valid": matches!(connection.status, patchbay_core::ConnectionStatus::Connected),
        "disabled": false,
        "accountName": connection.account_friendly_name,
        "createdDate": connection.created_at,
        "updatedDate": connection.updated_at,
    });
    if let Some(poller) = &instance.poller {
        answer["eventPoller"] = json!({
            "lastPolledAt": poller.last_polled_at,
            "lastAttemptAt": poller.last_attempt_at,
            "lastError": poller.last_error_code.as_ref().map(|code| json!({
                "code": code, "message": poller.last_error_message,
            })),
        });
    }
    if let Some(token) = token {
        answer["token"] = json!(token.reveal_to_owner());
    }
    if instance.settings.filter_nulls {
        drop_nulls(&mut answer);
    }
    answer
}

fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(configuration: Value) -> InstanceBody {
        parse(
            json!({"element": {"key": "twiliov2"}, "name": "Finance SMS", "configuration": configuration})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn missing_configuration_is_named_entry_by_entry() {
        let err = body(json!({"password": "x"})).into_spec(false).unwrap_err();
        assert_eq!(err.message, "missing required configuration: username");
        assert!(
            body(json!({"username": "AC1"})).into_spec(true).is_ok(),
            "PUT keeps the token; no number is account-level"
        );
    }

    #[test]
    fn unknown_fields_and_elements_are_refused_clearly() {
        let err = body(json!({"username": "AC1", "password": "x", "phone_number": "+1", "colour": "red"}))
            .into_spec(false)
            .unwrap_err();
        assert!(err.message.starts_with("unknown configuration entry 'colour'"));
        let err =
            parse(br#"{"element": {"key": "twiliov2"}, "name": "x", "configuration": {}, "extra": 1}"#).err().unwrap();
        assert!(err.message.contains("unknown field `extra`"));
        let err = parse(br#"{"element": {"key": "slack"}, "name": "x", "configuration": {}}"#)
            .unwrap()
            .into_spec(false)
            .unwrap_err();
        assert_eq!(err.message, "unknown element key 'slack'; known keys: twiliov2");
    }

    #[test]
    fn username_and_password_may_name_credential_assets() {
        let parsed = body(json!({"username": {"asset": "sid"}, "password": {"asset": "token"}, "phone_number": "+1"}))
            .into_spec(false)
            .unwrap();
        assert!(matches!(parsed.username, Username::Asset(name) if name == "sid"));
        let spec = parsed.spec;
        assert!(matches!(spec.auth_token, Some(TokenSource::Asset(name)) if name == "token"));
        assert_eq!(spec.folder, "Shared");
        assert!(spec.settings.filter_nulls);
    }
}
