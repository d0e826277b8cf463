//! The JSON of `/instances`: parsing requests into core specs, and instances into answers.

use patchbay_core::catalog::{AuthField, Feature, FieldKind};
use patchbay_core::instances::{EventSettings, Instance, InstanceSettings, InstanceSpec, connector_of_element};
use patchbay_core::{AuthRef, FieldValue, FieldValues, Secret, SecretSource};
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
    from_json(bytes)
}

/// A request body as `T`. A refusal names where in the body and what was expected,
/// never the value sent: serde's own words repeat it (`invalid type: string "<secret>"`).
pub fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(bytes)).map_err(|err| {
        let place = match err.path().to_string() {
            path if path == "." => String::new(),
            path => format!(" at '{path}'"),
        };
        ApiError::bad_request(format!("invalid request body{place}: {}", shape_of(err.inner())))
    })
}

/// What is wrong with a body's shape, in serde's words less any value they quote.
fn shape_of(err: &serde_json::Error) -> String {
    let position = format!(" (line {}, column {})", err.line(), err.column());
    if !err.is_data() {
        // Syntax and end-of-input messages name a position, never the input.
        let text = err.to_string();
        return text.split(" at line ").next().unwrap_or(&text).to_owned() + &position;
    }
    let text = err.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text);
    // The expectation comes from Patchbay's types; what precedes it is the sender's.
    let expected = text.rfind(", expected ").map(|at| &text[at + 2..]);
    let kind = ["invalid type", "invalid value", "invalid length", "unknown variant", "unknown field", "missing field"]
        .into_iter()
        .find(|kind| text.starts_with(kind));
    match (kind, expected) {
        // A field's name is not a value: saying which one is what helps.
        (Some(kind @ ("unknown field" | "missing field")), _) => {
            let name = text.split('`').nth(1).unwrap_or_default();
            match expected {
                Some(expected) => format!("{kind} `{name}`, {expected}"),
                None => format!("{kind} `{name}`"),
            }
        }
        (Some(kind), Some(expected)) => format!("{kind}, {expected}"),
        (Some(kind), None) => kind.to_owned(),
        (None, _) => "a value of the wrong shape".to_owned(),
    }
}

impl InstancePatch {
    /// The whole request a PUT would carry: the instance as it is, with the patch laid
    /// over it. The token and signing key stay unless the patch names new ones.
    pub fn over(self, current: &Instance) -> InstanceBody {
        let mut configuration = match instance_json(current, None).get("configuration") {
            Some(Value::Object(map)) => map.clone(),
            _ => Map::new(),
        };
        // Masked values are not the values: a secret not sent again stays as it is.
        configuration.retain(|_, value| value != "********" && asset_name(value).is_none());
        configuration.extend(self.configuration);
        let element_key = instance_json(current, None)["element"]["key"].as_str().unwrap_or_default().to_owned();
        InstanceBody {
            element: self.element.unwrap_or(ElementRef { key: element_key }),
            name: self.name.unwrap_or_else(|| current.connection.name.clone()),
            folder: None,
            tags: self.tags.unwrap_or_else(|| current.tags.clone()),
            configuration,
        }
    }
}

/// A parsed request whose non-secret fields may still name credential assets.
#[derive(Debug)]
pub struct ParsedSpec {
    pub spec: InstanceSpec,
    /// Fields given as `{"asset": NAME}` (Twilio's Account SID in an asset), to be read
    /// from the asset: (field, the asset's name).
    pub from_assets: Vec<(&'static AuthField, String)>,
}

/// Entries every element takes besides its auth method's fields: the auth method, and
/// the settings of events (where the method offers them) and of responses.
const COMMON: [&str; 10] = [
    AUTH_METHOD,
    "event.poller.configuration",
    "event.poller.urls",
    "event.notification.signature.key",
    "event.notification.enabled",
    "event.vendor.type",
    "event.notification.type",
    "event.notification.callback.url",
    "event.poller.refresh_interval",
    "filter.response.nulls",
];

/// Which of the element's auth methods (`auth_methods[].key`); the recommended one when absent.
const AUTH_METHOD: &str = "authentication.type";

pub fn parse(bytes: &[u8]) -> Result<InstanceBody, ApiError> {
    from_json(bytes)
}

/// The element keys there are, for messages.
fn element_keys() -> String {
    patchbay_core::catalog::search("").iter().map(|c| c.element_key.as_str()).collect::<Vec<_>>().join(", ")
}

impl InstanceBody {
    /// The core's view of the request. On PUT (`keep_secret`) a missing secret keeps the
    /// instance's current one; `current_method` is then the instance's auth method.
    pub fn into_spec(self, keep_secret: bool, current_method: Option<&str>) -> Result<ParsedSpec, ApiError> {
        let connector = connector_of_element(&self.element.key).ok_or_else(|| {
            ApiError::bad_request(format!("unknown element key '{}'; known keys: {}", self.element.key, element_keys()))
        })?;
        let config = self.configuration;
        let method_key = text(&config, AUTH_METHOD)?;
        let method = connector
            .auth_method_or_default(method_key.as_deref().or(current_method))
            .map_err(|err| ApiError::bad_request(format!("{AUTH_METHOD}: {err}")))?;
        let known: Vec<&str> =
            method.fields.iter().map(|field| field.configuration_key()).chain(COMMON.iter().copied()).collect();
        if let Some(unknown) = config.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(ApiError::bad_request(format!(
                "unknown configuration entry '{unknown}'; known entries: {}",
                known.join(", ")
            )));
        }
        let missing: Vec<&str> = method
            .fields
            .iter()
            .filter(|field| field.required && !(keep_secret && field.kind == FieldKind::Secret))
            .map(|field| field.configuration_key())
            .filter(|key| not_set(config.get(*key)))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::bad_request(format!("missing required configuration: {}", missing.join(", "))));
        }
        let mut values = FieldValues::new();
        let mut secret = None;
        let mut from_assets = Vec::new();
        for field in &method.fields {
            let key = field.configuration_key();
            let value = config.get(key);
            if not_set(value) {
                continue;
            }
            let shape = || format!("{key} must be the {} or {{\"asset\": \"NAME\"}}", field.label);
            match (field.kind, value) {
                (FieldKind::Secret, Some(Value::String(typed))) => {
                    secret = Some(SecretSource::Value(Secret::new(typed.clone())))
                }
                (FieldKind::Secret, Some(value)) => {
                    secret = Some(SecretSource::Asset(asset_name(value).ok_or_else(|| ApiError::bad_request(shape()))?))
                }
                (FieldKind::Toggle, _) => {
                    values.insert(field.name.clone(), FieldValue::Toggle(boolean(&config, key)?.unwrap_or(false)));
                }
                (_, Some(Value::String(typed))) => {
                    values.insert(field.name.clone(), FieldValue::Text(typed.clone()));
                }
                (_, Some(value)) => {
                    from_assets.push((field, asset_name(value).ok_or_else(|| ApiError::bad_request(shape()))?));
                }
                (_, None) => {}
            }
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
        let spec = InstanceSpec {
            folder: self.folder.unwrap_or_else(|| "Shared".into()),
            name: self.name,
            tags: self.tags,
            connector: connector.key.clone(),
            auth_method: Some(method.key.clone()),
            values,
            secret,
            settings: InstanceSettings {
                events,
                filter_nulls: boolean(&config, "filter.response.nulls")?.unwrap_or(true),
                signing_key: false,
                poller_configuration: poller_configuration(&config)?,
                poller_urls: text(&config, "event.poller.urls")?,
            },
            signature_key: text(&config, "event.notification.signature.key")?.map(Secret::new),
        };
        Ok(ParsedSpec { spec, from_assets })
    }
}

/// `NAME` of `{"asset": "NAME"}`.
fn asset_name(value: &Value) -> Option<String> {
    match value {
        Value::Object(asset) if asset.len() == 1 => asset.get("asset")?.as_str().map(str::to_owned),
        _ => None,
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
    let connector = patchbay_core::catalog::connector(&connection.connector);
    let method = connector.and_then(|connector| connector.auth_method(&connection.auth_method));
    let mut configuration = Map::new();
    if let Some(method) = method {
        configuration.insert(AUTH_METHOD.into(), json!(method.key));
        for field in &method.fields {
            let value = match field.kind {
                FieldKind::Secret => match &connection.auth {
                    AuthRef::Own => json!("********"),
                    AuthRef::Asset { name, .. } => json!({ "asset": name }),
                    AuthRef::MissingAsset => Value::Null,
                },
                _ => serde_json::to_value(connection.fields.get(&field.name)).expect("field values serialise"),
            };
            configuration.insert(field.configuration_key().into(), value);
        }
        if method.offers(Feature::MessageEvents) {
            configuration.extend([
                ("event.notification.enabled".into(), json!(events.enabled)),
                ("event.vendor.type".into(), json!(events.vendor_type)),
                ("event.notification.type".into(), json!(events.notification_type)),
                ("event.notification.callback.url".into(), json!(events.callback_url)),
                ("event.poller.refresh_interval".into(), json!(events.refresh_minutes)),
                (
                    "event.notification.signature.key".into(),
                    if instance.settings.signing_key { json!("********") } else { Value::Null },
                ),
                ("event.poller.configuration".into(), json!(instance.settings.poller_configuration)),
                ("event.poller.urls".into(), json!(instance.settings.poller_urls)),
            ]);
        }
    }
    configuration.insert("filter.response.nulls".into(), json!(instance.settings.filter_nulls));
    let mut answer = json!({
        "id": connection.id,
        "name": connection.name,
        "element": {
            "key": connector.map(|c| c.element_key.as_str()),
            "name": connector.map(|c| c.name.as_str()),
        },
        "folder": connection.folder,
        "tags": instance.tags,
        "configuration": configuration,
        "valid": matches!(connection.status, patchbay_core::ConnectionStatus::Connected),
        "disabled": false,
        "accountName": connection.details.get("account_name"),
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
    fn a_refused_shape_names_the_place_and_the_type_never_the_value() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Login {
            secret_id: u32,
            mode: Mode,
        }
        #[derive(Debug, Deserialize)]
        enum Mode {
            Strict,
        }
        for sent in [
            json!({"secret_id": "s3cret-approle-id", "mode": "Strict"}),
            json!({"secret_id": 1, "mode": "s3cret-approle-id"}),
            json!({"secret_id": [1, "s3cret-approle-id"], "mode": "Strict"}),
        ] {
            let refused = from_json::<Login>(sent.to_string().as_bytes()).unwrap_err();
            assert!(!refused.message.contains("s3cret"), "{}", refused.message);
            assert!(refused.message.contains("expected"), "{}", refused.message);
        }
        let refused = from_json::<Login>(br#"{"secret_id": "s3cret", "mode": "Strict"}"#).unwrap_err();
        assert!(refused.message.contains("at 'secret_id'") && refused.message.contains("u32"), "{}", refused.message);
    }

    #[test]
    fn missing_configuration_is_named_entry_by_entry() {
        let err = body(json!({"password": "x"})).into_spec(false, None).unwrap_err();
        assert_eq!(err.message, "missing required configuration: username");
        assert!(
            body(json!({"username": "AC1"})).into_spec(true, None).is_ok(),
            "PUT keeps the token; no number is account-level"
        );
    }

    #[test]
    fn unknown_fields_and_elements_are_refused_clearly() {
        let err = body(json!({"username": "AC1", "password": "x", "phone_number": "+1", "colour": "red"}))
            .into_spec(false, None)
            .unwrap_err();
        assert!(err.message.starts_with("unknown configuration entry 'colour'"));
        let err =
            parse(br#"{"element": {"key": "twiliov2"}, "name": "x", "configuration": {}, "extra": 1}"#).err().unwrap();
        assert!(err.message.contains("unknown field `extra`"));
        let err = parse(br#"{"element": {"key": "salesforce"}, "name": "x", "configuration": {}}"#)
            .unwrap()
            .into_spec(false, None)
            .unwrap_err();
        assert_eq!(err.message, "unknown element key 'salesforce'; known keys: http, slack, twiliov2, sendgrid");
        let err = body(json!({"authentication.type": "oauth", "username": "AC1", "password": "x"}))
            .into_spec(false, None)
            .unwrap_err();
        assert!(err.message.contains("no auth method 'oauth'"), "{}", err.message);
    }

    #[test]
    fn username_and_password_may_name_credential_assets() {
        let parsed = body(json!({"username": {"asset": "sid"}, "password": {"asset": "token"}, "phone_number": "+1"}))
            .into_spec(false, None)
            .unwrap();
        assert!(
            matches!(parsed.from_assets.as_slice(), [(field, name)] if field.name == "account_sid" && name == "sid")
        );
        let spec = parsed.spec;
        assert!(matches!(spec.secret, Some(SecretSource::Asset(name)) if name == "token"));
        assert_eq!(spec.values.get("phone_number"), Some(&FieldValue::Text("+1".into())));
        assert_eq!(spec.folder, "Shared");
        assert!(spec.settings.filter_nulls);
    }
}
