//! The connector catalog. A connector's definition is data (`connectors/<key>.json`):
//! the window builds its forms from these field definitions and the core checks input
//! against the same patterns, so a rule is written once. Its behaviour is one Rust
//! module (`crate::connectors`), which also hands the catalog its definition.

use std::sync::{LazyLock, OnceLock};

use regex::Regex;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::text::fold;

#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct Connector {
    pub key: String,
    pub name: String,
    pub category: String,
    pub description: String,
    /// Other words people search for it by (products, channels, former names).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Its key in the provisioning API (`POST /instances` → `element.key`), as in Cloud Elements.
    pub element_key: String,
    /// What connecting permits, shown on the form before Connect.
    pub permissions: String,
    /// The ways to authenticate it offers, the recommended first; the form lets people pick.
    pub auth_methods: Vec<AuthMethod>,
    /// What the Connections table shows of its connections, besides name and status.
    pub columns: Vec<SummaryColumn>,
}

/// A column of the Connections table: a field's value, or what the service said
/// about the account when the connection was last checked (`details`).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SummaryColumn {
    /// A field's `name`, or a key of the connection's `details`.
    pub key: String,
    pub label: String,
    /// What to show when the connection has no such value (an optional field left empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub empty: Option<String>,
}

/// One way to authenticate a connector, with the fields it asks for.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct AuthMethod {
    pub key: String,
    pub label: String,
    pub description: String,
    /// What connections made this way support beyond Connect and Test.
    #[serde(default)]
    pub features: Vec<Feature>,
    pub fields: Vec<AuthField>,
}

impl AuthMethod {
    /// The method's secret field; a method has one at most (the catalog tests hold to it).
    pub fn secret_field(&self) -> Option<&AuthField> {
        self.fields.iter().find(|field| field.kind == FieldKind::Secret)
    }

    pub fn offers(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }
}

/// A capability only some connectors' auth methods have; the window and the CLI offer it
/// only where the definition says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum Feature {
    /// The secret can be rotated from Patchbay (Twilio's secondary token + promote).
    TokenRotation,
    /// API instances can poll the service for message events.
    MessageEvents,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct AuthField {
    pub name: String,
    pub label: String,
    pub kind: FieldKind,
    pub required: bool,
    /// Anchored regular expression the (normalised) value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub pattern: Option<String>,
    /// How to describe the expected format to a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub format_hint: Option<String>,
    pub help: String,
    /// A `choice` field's options, the first being the default (empty for other kinds).
    #[serde(default)]
    pub options: Vec<FieldOption>,
    /// Its entry in the provisioning API's `configuration`, where that differs from
    /// `name` (Cloud Elements calls Twilio's Account SID `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub configuration_key: Option<String>,
    /// Whether the provisioning API may give this non-secret field as a credential asset
    /// (`{"asset": NAME}`). Its value then becomes the field's, stored and shown like
    /// any: only for an identifier whose pattern no secret matches (an Account SID).
    #[serde(default)]
    pub from_asset: bool,
    #[serde(skip)]
    #[ts(skip)]
    compiled_pattern: OnceLock<Option<Regex>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct FieldOption {
    pub value: String,
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum FieldKind {
    Text,
    Email,
    Url,
    Phone,
    Secret,
    Toggle,
    /// One of `options`.
    Choice,
}

impl AuthField {
    /// Its entry in the provisioning API's `configuration`.
    pub fn configuration_key(&self) -> &str {
        self.configuration_key.as_deref().unwrap_or(&self.name)
    }

    /// Whether `value` has the declared format (true when the field declares none).
    pub fn accepts(&self, value: &str) -> bool {
        let compiled = self.compiled_pattern.get_or_init(|| self.pattern.as_deref().and_then(|p| Regex::new(p).ok()));
        compiled.as_ref().is_none_or(|re| re.is_match(value))
    }
}

static CATALOG: LazyLock<Vec<Connector>> = LazyLock::new(|| {
    crate::connectors::MODULES
        .iter()
        .map(|module| {
            serde_json::from_str(module.definition()).expect("connector definitions are checked by the catalog tests")
        })
        .collect()
});

pub fn connector(key: &str) -> Option<&'static Connector> {
    CATALOG.iter().find(|connector| connector.key == key)
}

/// The connector whose provisioning API key (`element.key`, as in Cloud Elements) is `key`.
pub fn connector_of_element(key: &str) -> Option<&'static Connector> {
    CATALOG.iter().find(|connector| connector.element_key == key)
}

impl Connector {
    /// The field whose URL its connections send their secret to, when they name their
    /// own address (any `url` field: the HTTP connector's Base URL). Then a credential
    /// asset is allowed per origin, not per connector, so a new definition with a URL
    /// field can never send an asset to whatever host a connection names.
    pub fn address_field(&self) -> Option<&str> {
        let fields = self.auth_methods.iter().flat_map(|method| &method.fields);
        fields.filter(|field| field.kind == FieldKind::Url).map(|field| field.name.as_str()).next()
    }

    pub fn auth_method(&self, key: &str) -> Option<&AuthMethod> {
        self.auth_methods.iter().find(|method| method.key == key)
    }

    /// The method named, or the recommended one for `None`; an unknown key is refused
    /// with the ones there are.
    pub fn auth_method_or_default(&self, key: Option<&str>) -> crate::Result<&AuthMethod> {
        let Some(key) = key.map(str::trim).filter(|key| !key.is_empty()) else { return Ok(&self.auth_methods[0]) };
        self.auth_method(key).ok_or_else(|| {
            let known: Vec<&str> = self.auth_methods.iter().map(|method| method.key.as_str()).collect();
            crate::Error::invalid(
                "auth_method",
                format!("{} has no auth method '{key}'; it offers: {}", self.name, known.join(", ")),
            )
        })
    }
}

/// The connector with this key, or an error that lists the ones there are.
pub fn require(key: &str) -> crate::Result<&'static Connector> {
    connector(key.trim()).ok_or_else(|| {
        let known: Vec<&str> = CATALOG.iter().map(|connector| connector.key.as_str()).collect();
        crate::Error::invalid(
            "connector",
            format!("no connector '{}'; the catalog has: {}", key.trim(), known.join(", ")),
        )
    })
}

/// A field by its connector, method and name, for tests that check a definition's formats.
#[cfg(test)]
pub(crate) fn field(connector_key: &str, method_key: &str, field_name: &str) -> &'static AuthField {
    connector(connector_key)
        .and_then(|connector| connector.auth_method(method_key))
        .and_then(|method| method.fields.iter().find(|field| field.name == field_name))
        .expect("the core only asks for fields its connectors declare")
}

/// Connectors matching `query` in name, key, category, keywords or description, best match first;
/// all of them, by name, for an empty query.
pub fn search(query: &str) -> Vec<&'static Connector> {
    let query = fold(query.trim());
    let mut ranked: Vec<(u8, &Connector)> =
        CATALOG.iter().filter_map(|connector| rank(connector, &query).map(|rank| (rank, connector))).collect();
    ranked.sort_by(|(a_rank, a), (b_rank, b)| a_rank.cmp(b_rank).then_with(|| a.name.cmp(&b.name)));
    ranked.into_iter().map(|(_, connector)| connector).collect()
}

/// Lower is better; `None` when nothing matches.
fn rank(connector: &Connector, query: &str) -> Option<u8> {
    if query.is_empty() {
        return Some(0);
    }
    let name = fold(&connector.name);
    let key = fold(&connector.key);
    if name == query || key == query {
        Some(0)
    } else if name.starts_with(query) || key.starts_with(query) {
        Some(1)
    } else if name.split_whitespace().any(|word| word.starts_with(query)) {
        Some(2)
    } else if name.contains(query) || key.contains(query) {
        Some(3)
    } else if fold(&connector.category).contains(query) {
        Some(4)
    } else if connector.keywords.iter().any(|keyword| fold(keyword).contains(query)) {
        Some(5)
    } else if fold(&connector.description).contains(query) {
        Some(6)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_definition_parses_and_every_pattern_compiles() {
        let mut element_keys = std::collections::HashSet::new();
        for connector in CATALOG.iter() {
            assert!(element_keys.insert(&connector.element_key), "{}: element key taken", connector.key);
            assert!(!connector.auth_methods.is_empty(), "{} offers a way to authenticate", connector.key);
            assert_eq!(
                crate::connectors::module(&connector.key).key(),
                connector.key,
                "the definition's key is its module's"
            );
            for method in &connector.auth_methods {
                let secrets = method.fields.iter().filter(|field| field.kind == FieldKind::Secret).count();
                assert!(secrets <= 1, "{}.{}: one secret field at most", connector.key, method.key);
                for field in &method.fields {
                    assert!(
                        !field.from_asset || (field.kind != FieldKind::Secret && field.pattern.is_some()),
                        "{}.{}: a field given by asset is an identifier with a pattern",
                        connector.key,
                        field.name
                    );
                    let choice = field.kind == FieldKind::Choice;
                    assert_eq!(
                        choice,
                        !field.options.is_empty(),
                        "{}.{}: options go with choice",
                        connector.key,
                        field.name
                    );
                }
                for field in &method.fields {
                    if let Some(pattern) = &field.pattern {
                        Regex::new(pattern)
                            .unwrap_or_else(|err| panic!("{}.{}.{}: {err}", connector.key, method.key, field.name));
                    }
                }
            }
        }
        assert!(connector("twilio").is_some());
    }

    #[test]
    fn search_matches_name_key_category_keywords_and_description_ignoring_case_and_accents() {
        for query in ["twi", "TWILIO", "Twílio", "communication", "sms", "  SMS ", "whatsapp", "Voice"] {
            assert_eq!(search(query).first().map(|c| c.key.as_str()), Some("twilio"), "query {query:?}");
        }
        assert!(search("salesforce").is_empty());
        assert_eq!(search("").len(), CATALOG.len());
    }

    #[test]
    fn twilio_fields_check_the_documented_formats() {
        let sid = field("twilio", "auth_token", "account_sid");
        assert!(sid.accepts(&format!("AC{}", "a".repeat(32))));
        assert!(!sid.accepts(&format!("AC{}", "a".repeat(31))));
        assert!(!sid.accepts(&format!("SK{}", "a".repeat(32))));
        let token = field("twilio", "auth_token", "auth_token");
        assert!(token.accepts(&"0f".repeat(16)));
        assert!(!token.accepts(&"zz".repeat(16)));
    }
}
