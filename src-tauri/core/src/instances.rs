//! Instances: connections provisioned by scripts through the HTTP API (`POST /instances`),
//! with tags, an instance token (only its SHA-256 is kept) and event settings. A
//! connection added in the window or the CLI is an instance too, without a token.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Patchbay;
use crate::catalog::{self, AuthField, Feature, FieldKind};
use crate::connections::{Connection, ConnectionChanges, ConnectionQuery, MAX_PAGE_SIZE, NewConnection, SecretSource};
use crate::connectors::TwilioAccount;
use crate::destination::Destinations;
use crate::error::{Error, Result};
use crate::fields::{self, FieldValues};
use crate::secret::Secret;
use crate::vault::VaultKey;

pub use crate::catalog::connector_of_element;

/// How the instance hears about new inbound messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSettings {
    pub enabled: bool,
    /// `polling`: the only kind a desktop can do (Twilio cannot call back into it).
    pub vendor_type: String,
    /// `webhook`: Patchbay POSTs each event to `callback_url`.
    pub notification_type: String,
    pub callback_url: Option<String>,
    pub refresh_minutes: u32,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            vendor_type: "polling".into(),
            notification_type: "webhook".into(),
            callback_url: None,
            refresh_minutes: 15,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSettings {
    pub events: EventSettings,
    /// Leave null-valued fields out of this instance's responses.
    pub filter_nulls: bool,
    /// Whether events are signed (the key itself is in the vault).
    #[serde(default)]
    pub signing_key: bool,
    /// `event.poller.configuration` as connector platforms send it (what their poller
    /// reads); kept and returned. Patchbay's poller reads inbound messages by `DateSent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poller_configuration: Option<serde_json::Value>,
    /// `event.poller.urls`, likewise kept and returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poller_urls: Option<String>,
}

impl Default for InstanceSettings {
    fn default() -> Self {
        Self {
            events: EventSettings::default(),
            filter_nulls: true,
            signing_key: false,
            poller_configuration: None,
            poller_urls: None,
        }
    }
}

impl InstanceSettings {
    /// The rules of event configuration, each reported against its configuration key.
    pub fn check(&self, callbacks: &Destinations) -> Result<()> {
        let events = &self.events;
        if events.vendor_type == "webhook" {
            return Err(Error::invalid(
                "event.vendor.type",
                "event.vendor.type 'webhook' is not possible: Twilio cannot call back into a desktop; use 'polling'",
            ));
        }
        if events.vendor_type != "polling" {
            return Err(Error::invalid("event.vendor.type", "event.vendor.type must be 'polling'"));
        }
        if events.notification_type != "webhook" {
            return Err(Error::invalid("event.notification.type", "event.notification.type must be 'webhook'"));
        }
        if events.refresh_minutes < 1 {
            return Err(Error::invalid(
                "event.poller.refresh_interval",
                "event.poller.refresh_interval is at least 1 minute",
            ));
        }
        match (&events.callback_url, events.enabled) {
            (None, true) => Err(Error::invalid(
                "event.notification.callback.url",
                "event.notification.callback.url is required when event.notification.enabled is true",
            )),
            (Some(url), _) => check_callback_url(url, callbacks),
            (None, false) => Ok(()),
        }
    }
}

/// Events carry message bodies: `https`, to an address that is neither internal nor
/// (unless allowed) this machine's. Delivery checks the resolved addresses again.
fn check_callback_url(raw: &str, callbacks: &Destinations) -> Result<()> {
    let field = "event.notification.callback.url";
    callbacks
        .check_url(raw)
        .map(drop)
        .map_err(|refusal| Error::invalid(field, format!("{field} is refused: {refusal}")))
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub connection: Connection,
    pub tags: Vec<String>,
    pub settings: InstanceSettings,
    /// Where polling for its events stands, while events are on.
    pub poller: Option<PollerStatus>,
}

/// The last poll of an instance's events: when it last worked, when it was last tried,
/// and what went wrong then, if anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollerStatus {
    pub last_polled_at: Option<String>,
    pub last_attempt_at: Option<String>,
    pub last_error_code: Option<String>,
    pub last_error_message: Option<String>,
}

/// What `POST /instances` and `PUT /instances/{id}` carry, already parsed.
#[derive(Debug)]
pub struct InstanceSpec {
    pub folder: String,
    pub name: String,
    pub tags: Vec<String>,
    /// The connector's key in the catalog.
    pub connector: String,
    /// None: the connector's recommended auth method (on PUT: the instance's).
    pub auth_method: Option<String>,
    /// The non-secret fields, by field name.
    pub values: FieldValues,
    /// `None` on PUT: keep the current secret.
    pub secret: Option<SecretSource>,
    pub settings: InstanceSettings,
    /// `event.notification.signature.key`: events are signed with it (HMAC-SHA256).
    pub signature_key: Option<Secret>,
}

#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub folder: Option<String>,
    /// Only this connector's instances (by catalog key).
    pub connector: Option<String>,
    /// Instances carrying every one of these tags.
    pub tags: Vec<String>,
}

/// The two secrets of the API's `Authorization: User …, Organization …` header.
pub struct ApiCredentials {
    pub user: Secret,
    pub organization: Secret,
}

fn random_token() -> Secret {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn hash(token: &Secret) -> String {
    Sha256::digest(token.expose().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Tags are shown and matched like names, so they follow the same rule: no control,
/// invisible or direction-changing characters (a NUL, a newline, U+202E).
fn check_tags(tags: &[String]) -> Result<()> {
    for tag in tags {
        if let Some(why) = tag.chars().find_map(crate::text::forbidden_in_name) {
            return Err(Error::invalid("tags", format!("a tag must not contain {why}")));
        }
    }
    Ok(())
}

/// Compares two secrets in time independent of where they differ.
pub fn secrets_equal(a: &Secret, b: &Secret) -> bool {
    a.expose().as_bytes().ct_eq(b.expose().as_bytes()).into()
}

impl Patchbay {
    /// Connect through the API: the same validation as the window, then the instance's
    /// metadata. Returns the instance token, the only time it exists outside a hash.
    pub async fn provision_instance(&self, mut spec: InstanceSpec) -> Result<(Instance, Secret)> {
        check_tags(&spec.tags)?;
        events_need_live_credentials(&spec)?;
        spec.settings.check(&self.config.callback_destinations())?;
        spec.settings.signing_key = spec.signature_key.is_some();
        let connection = self
            .add_connection(NewConnection {
                folder: spec.folder,
                connector: spec.connector,
                auth_method: spec.auth_method,
                name: Some(spec.name),
                values: spec.values,
                secret: spec.secret,
            })
            .await?;
        let token = random_token();
        let saved = rows::insert(&self.store.conn(), &connection.id, &spec.tags, &hash(&token), &spec.settings);
        if let Err(err) = saved {
            self.delete_connection(&connection.id).await?;
            return Err(err);
        }
        self.apply_event_settings(&connection.id, &spec.settings, spec.signature_key.as_ref()).await?;
        Ok((self.with_metadata(connection)?, token))
    }

    /// Up to `page_size` instances (connections) by name, filtered by folder and tags,
    /// starting at position `from` of the folder's connections; and where the next page
    /// starts, if there is one.
    pub fn instances(
        &self,
        filter: &InstanceFilter,
        from: u32,
        page_size: u32,
    ) -> Result<(Vec<Instance>, Option<u32>)> {
        let mut found = Vec::new();
        let mut position = from;
        loop {
            let query = ConnectionQuery {
                folder: filter.folder.clone(),
                limit: Some(MAX_PAGE_SIZE),
                offset: position,
                ..Default::default()
            };
            let page = self.list_connections(&query)?;
            let fetched = page.items.len() as u32;
            for connection in page.items {
                position += 1;
                let instance = self.with_metadata(connection)?;
                let connector_matches =
                    filter.connector.as_ref().is_none_or(|key| *key == instance.connection.connector);
                if connector_matches && filter.tags.iter().all(|tag| instance.tags.contains(tag)) {
                    found.push(instance);
                    if found.len() as u32 == page_size {
                        return Ok((found, (position < page.total).then_some(position)));
                    }
                }
            }
            if fetched == 0 || position >= page.total {
                return Ok((found, None));
            }
        }
    }

    pub fn instance(&self, id: &str) -> Result<Instance> {
        self.with_metadata(self.connection(id)?)
    }

    /// PUT: name, tags and settings change in place; changed credentials or phone are
    /// validated with Twilio first, like Connect.
    pub async fn replace_instance(&self, id: &str, mut spec: InstanceSpec) -> Result<Instance> {
        let current = self.connection(id)?;
        if current.connector != spec.connector {
            return Err(Error::invalid("element", "an instance keeps its element; provision a new instance instead"));
        }
        spec.auth_method.get_or_insert_with(|| current.auth_method.clone());
        check_tags(&spec.tags)?;
        events_need_live_credentials(&spec)?;
        spec.settings.check(&self.config.callback_destinations())?;
        let had_key = self.instance(id)?.settings.signing_key;
        spec.settings.signing_key = spec.signature_key.is_some() || had_key;
        let method = catalog::require(&current.connector)?.auth_method_or_default(Some(&current.auth_method))?;
        let credentials_change = spec.secret.is_some() || fields::check(method, &spec.values)? != current.fields;
        if credentials_change {
            let changes = ConnectionChanges {
                name: spec.name,
                auth_method: spec.auth_method,
                values: spec.values,
                secret: spec.secret,
            };
            self.update_connection(id, changes).await?;
        } else {
            self.rename_connection(id, &spec.name)?;
        }
        rows::upsert_metadata(&self.store.conn(), &current.id, &spec.tags, &spec.settings)?;
        self.apply_event_settings(&current.id, &spec.settings, spec.signature_key.as_ref()).await?;
        self.instance(id)
    }

    /// Starts the event cursor when events are on, and keeps a new signing key.
    async fn apply_event_settings(
        &self,
        id: &str,
        settings: &InstanceSettings,
        signature_key: Option<&Secret>,
    ) -> Result<()> {
        if let Some(key) = signature_key {
            self.vault.put(&VaultKey::EventSigningKey(id.to_owned()), key).await?;
        }
        if settings.events.enabled { self.start_events(id) } else { self.stop_events(id) }
    }

    /// The value of a credential asset visible from `folder`, for callers that give a
    /// non-secret field (Twilio's Account SID) by asset; returned as text, so only when
    /// it has the field's format. `entry` names the field in the caller's words. The
    /// value then goes where a connection of `connector` with `values` sends its
    /// fields, so the asset must already be allowed there.
    pub async fn field_from_asset(
        &self,
        folder: &str,
        name: &str,
        field: &'static AuthField,
        entry: &'static str,
        connector: &str,
        values: &crate::FieldValues,
    ) -> Result<String> {
        if !field.from_asset {
            // Its value would be stored and shown as the field's: a secret read back.
            return Err(Error::invalid(
                entry,
                format!("{entry} cannot be given as a credential asset; write its value, or give the secret by asset"),
            ));
        }
        let destination = crate::Destination::of(&crate::catalog::require(connector)?.key, values);
        let asset_id = {
            let conn = self.store.conn();
            let folder_id = crate::folders::resolve(&conn, folder)?;
            let asset_id = crate::assets::resolve_visible(&conn, folder_id, name.trim())?;
            crate::assets::sending(&conn, &asset_id, &destination, self.config.reach, false)?;
            asset_id
        };
        let value = self.asset_value(&asset_id).await?;
        let text = value.expose().trim();
        if field.kind == FieldKind::Secret || !field.accepts(text) {
            let hint = field.format_hint.as_deref().unwrap_or("in its format");
            return Err(Error::invalid(
                entry,
                format!("credential asset '{}' does not hold a valid {}: it must be {hint}", name.trim(), field.label),
            ));
        }
        Ok(text.to_owned())
    }

    /// Whether `token` is this instance's token (constant-time on the hashes).
    pub fn instance_token_matches(&self, id: &str, token: &Secret) -> Result<bool> {
        let stored = rows::token_hash(&self.store.conn(), id)?;
        Ok(stored.is_some_and(|stored| !stored.is_empty() && stored.as_bytes().ct_eq(hash(token).as_bytes()).into()))
    }

    /// The API's platform secrets, made on first use and kept in the vault; `rotate`
    /// replaces both. One process at a time reads, makes or replaces them (a lock in the
    /// data folder), so processes asking together all get the pair that works.
    pub async fn api_credentials(&self, rotate: bool) -> Result<ApiCredentials> {
        let _alone = crate::owner::WorkLock::take(&self.config.data_dir, "api-credentials").await?;
        let mut pair = Vec::with_capacity(2);
        for name in ["user", "organization"] {
            let key = VaultKey::Platform(name);
            let secret = match self.vault.get(&key).await {
                Ok(secret) if !rotate => secret,
                Ok(_) | Err(crate::vault::VaultError::Missing(_)) => {
                    let fresh = random_token();
                    self.vault.put(&key, &fresh).await?;
                    fresh
                }
                Err(err) => return Err(err.into()),
            };
            pair.push(secret);
        }
        let organization = pair.pop().expect("two secrets");
        let user = pair.pop().expect("two secrets");
        Ok(ApiCredentials { user, organization })
    }

    fn with_metadata(&self, connection: Connection) -> Result<Instance> {
        let conn = self.store.conn();
        let row = rows::metadata(&conn, &connection.id)?;
        let poller = crate::events::poller_status(&conn, &connection.id)?;
        let (tags, settings) = match row {
            Some((tags, settings)) => {
                (serde_json::from_str(&tags).unwrap_or_default(), serde_json::from_str(&settings).unwrap_or_default())
            }
            None => (Vec::new(), InstanceSettings::default()),
        };
        Ok(Instance { connection, tags, settings, poller })
    }
}

/// Events are offered where the auth method says so (Twilio's Auth Token). Test
/// Credentials cannot list Messages (Twilio answers 403 / 20008), so events, which are
/// read from that list, would fail at every poll: refused up front instead.
fn events_need_live_credentials(spec: &InstanceSpec) -> Result<()> {
    if !spec.settings.events.enabled {
        return Ok(());
    }
    let field = "event.notification.enabled";
    let connector = catalog::require(&spec.connector)?;
    let method = connector.auth_method_or_default(spec.auth_method.as_deref())?;
    if !method.offers(Feature::MessageEvents) {
        return Err(Error::invalid(
            field,
            format!("{} with {} has no events to poll; turn {field} off", connector.name, method.label),
        ));
    }
    if TwilioAccount::of(&fields::check(method, &spec.values)?).test_credentials {
        return Err(Error::invalid(
            field,
            format!(
                "{field} needs live credentials: Twilio does not let Test Credentials read messages (403, code 20008); turn events off or use the live Account SID and Auth Token"
            ),
        ));
    }
    Ok(())
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

/// The instances table: what the provisioning API keeps beside a connection.
mod rows {
    use rusqlite::{Connection, OptionalExtension, params};

    use super::{InstanceSettings, json};
    use crate::error::Result;

    pub(super) fn insert(
        db: &Connection,
        connection_id: &str,
        tags: &[String],
        token_hash: &str,
        settings: &InstanceSettings,
    ) -> Result<()> {
        db.execute(
            "INSERT INTO instances (connection_id, tags, token_hash, settings) VALUES (?1, ?2, ?3, ?4)",
            params![connection_id, json(&tags), token_hash, json(settings)],
        )?;
        Ok(())
    }

    /// Tags and settings of an instance; a connection made outside the API becomes one
    /// (without a token of its own).
    pub(super) fn upsert_metadata(
        db: &Connection,
        connection_id: &str,
        tags: &[String],
        settings: &InstanceSettings,
    ) -> Result<()> {
        db.execute(
            "INSERT INTO instances (connection_id, tags, token_hash, settings) VALUES (?1, ?2, '', ?3)
                 ON CONFLICT (connection_id) DO UPDATE SET tags = excluded.tags, settings = excluded.settings",
            params![connection_id, json(&tags), json(settings)],
        )?;
        Ok(())
    }

    pub(super) fn token_hash(db: &Connection, connection_id: &str) -> Result<Option<String>> {
        Ok(db
            .query_row("SELECT token_hash FROM instances WHERE connection_id = ?1", [connection_id], |row| row.get(0))
            .optional()?)
    }

    /// Tags and settings, both JSON.
    pub(super) fn metadata(db: &Connection, connection_id: &str) -> Result<Option<(String, String)>> {
        Ok(db
            .query_row("SELECT tags, settings FROM instances WHERE connection_id = ?1", [connection_id], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Policy;

    fn events(enabled: bool, url: Option<&str>) -> InstanceSettings {
        InstanceSettings {
            events: EventSettings { enabled, callback_url: url.map(str::to_owned), ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn tags_follow_the_rules_of_names() {
        assert!(check_tags(&["prod".into(), "team a".into()]).is_ok());
        for bad in ["Pay\u{202E}fdp", "nul\0", "two\nlines"] {
            assert_eq!(check_tags(&[bad.into()]).unwrap_err().field(), Some("tags"), "{bad:?}");
        }
    }

    #[test]
    fn event_settings_follow_the_rules() {
        let local = &Destinations::callbacks(&Policy::default().allowing_loopback());
        assert!(events(false, None).check(local).is_ok());
        assert_eq!(events(true, None).check(local).unwrap_err().field(), Some("event.notification.callback.url"));
        assert!(events(true, Some("https://hooks.example.com/twilio")).check(local).is_ok());
        assert!(events(true, Some("http://127.0.0.1:8080/events")).check(local).is_ok());
        assert!(events(true, Some("http://localhost/events")).check(local).is_ok());
        assert!(events(true, Some("http://hooks.example.com/events")).check(local).is_err());
        let strict = &Destinations::callbacks(&Policy::default());
        let refused = events(true, Some("http://127.0.0.1:8080/events")).check(strict).unwrap_err();
        assert!(refused.to_string().contains("loopback"), "{refused}");
        assert!(events(true, Some("https://169.254.169.254/latest")).check(local).is_err());
        let mut webhook = events(false, None);
        webhook.events.vendor_type = "webhook".into();
        assert!(webhook.check(local).unwrap_err().to_string().contains("cannot call back into a desktop"));
        let mut zero = events(false, None);
        zero.events.refresh_minutes = 0;
        assert_eq!(zero.check(local).unwrap_err().field(), Some("event.poller.refresh_interval"));
    }

    #[test]
    fn tokens_are_compared_by_value_in_constant_time() {
        let token = random_token();
        assert_eq!(token.expose().len(), 64);
        assert!(secrets_equal(&token, &Secret::new(token.expose())));
        assert!(!secrets_equal(&token, &random_token()));
        assert_eq!(hash(&Secret::new("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
