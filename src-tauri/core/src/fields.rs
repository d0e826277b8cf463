//! A connection's field values: what a person typed, checked and normalised against
//! the auth method's field definitions before anything is sent to a service.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::catalog::{AuthField, AuthMethod, FieldKind};
use crate::error::{Error, Result};
use crate::secret::Secret;

/// A non-secret field's value: a toggle's state, or text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(untagged)]
#[ts(export)]
pub enum FieldValue {
    Toggle(bool),
    Text(String),
}

/// By hand rather than `untagged`, which buffers every value before trying each variant:
/// a page of search results reads these for a hundred rows.
impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FieldValue;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("text or true/false")
            }

            fn visit_bool<E>(self, value: bool) -> std::result::Result<FieldValue, E> {
                Ok(FieldValue::Toggle(value))
            }

            fn visit_str<E>(self, value: &str) -> std::result::Result<FieldValue, E> {
                Ok(FieldValue::Text(value.to_owned()))
            }

            fn visit_string<E>(self, value: String) -> std::result::Result<FieldValue, E> {
                Ok(FieldValue::Text(value))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A connection's non-secret values by field name, as its auth method defines them.
pub type FieldValues = BTreeMap<String, FieldValue>;

/// What a service said about the account when a connection was checked, by key
/// (account name, plan, workspace, scopes …): never a secret.
pub type Details = BTreeMap<String, String>;

/// The text of a field, or None when it is absent or blank.
pub fn text<'a>(values: &'a FieldValues, name: &str) -> Option<&'a str> {
    match values.get(name) {
        Some(FieldValue::Text(text)) => Some(text.as_str()).filter(|text| !text.is_empty()),
        _ => None,
    }
}

/// A toggle's state (off when absent).
pub fn toggle(values: &FieldValues, name: &str) -> bool {
    matches!(values.get(name), Some(FieldValue::Toggle(true)))
}

/// `raw` checked against the method's fields, normalised (text trimmed, phones in E.164,
/// toggles as booleans); blank optional fields are left out. Secrets never come here.
pub fn check(method: &'static AuthMethod, raw: &FieldValues) -> Result<FieldValues> {
    if let Some(unknown) = raw.keys().find(|name| !method.fields.iter().any(|field| &field.name == *name)) {
        let known: Vec<&str> =
            method.fields.iter().filter(|f| f.kind != FieldKind::Secret).map(|f| f.name.as_str()).collect();
        return Err(Error::invalid(
            "fields",
            format!("{} has no field '{unknown}'; its fields are: {}", method.label, known.join(", ")),
        ));
    }
    let mut values = FieldValues::new();
    for field in &method.fields {
        let value = raw.get(&field.name);
        let name = field.name.as_str();
        match field.kind {
            FieldKind::Secret if value.is_some() => {
                // Kept out of the values, which are stored in the database.
                return Err(Error::invalid(
                    name,
                    format!("the {} is a secret: give it as the secret, not as a field", field.label),
                ));
            }
            FieldKind::Secret => {}
            FieldKind::Toggle => {
                let on = match value {
                    None => false,
                    Some(FieldValue::Toggle(on)) => *on,
                    Some(FieldValue::Text(text)) => match text.trim() {
                        "true" => true,
                        "false" | "" => false,
                        _ => return Err(Error::invalid(name, format!("{} must be true or false", field.label))),
                    },
                };
                values.insert(field.name.clone(), FieldValue::Toggle(on));
            }
            _ => {
                let text = match value {
                    None => "",
                    Some(FieldValue::Text(text)) => text.trim(),
                    Some(FieldValue::Toggle(_)) => {
                        return Err(Error::invalid(name, format!("the {} must be text", field.label)));
                    }
                };
                // A choice left out is its first option.
                let text = match (text, field.options.first()) {
                    ("", Some(default)) if field.kind == FieldKind::Choice => default.value.as_str(),
                    (text, _) => text,
                };
                if text.is_empty() {
                    if field.required {
                        return Err(Error::invalid(name, format!("enter the {}", field.label)));
                    }
                    continue;
                }
                let text = match field.kind {
                    FieldKind::Phone => normalize_phone(field, text)?,
                    FieldKind::Choice => choose(field, text)?,
                    _ => text.to_owned(),
                };
                check_format(field, &text, &field.label)?;
                values.insert(field.name.clone(), FieldValue::Text(text));
            }
        }
    }
    Ok(values)
}

/// One of the field's options, by value or label (any case).
fn choose(field: &'static AuthField, text: &str) -> Result<String> {
    let found = field
        .options
        .iter()
        .find(|option| option.value.eq_ignore_ascii_case(text) || option.label.eq_ignore_ascii_case(text));
    found.map(|option| option.value.clone()).ok_or_else(|| {
        let values: Vec<&str> = field.options.iter().map(|option| option.value.as_str()).collect();
        Error::invalid(&field.name, format!("the {} must be one of: {}", field.label, values.join(", ")))
    })
}

/// Checks a secret's format; `source` says where it came from ("Auth Token", "value of
/// credential asset 'x'"). The value is never echoed.
pub fn check_secret(field: &'static AuthField, secret: &Secret, source: &str) -> Result<()> {
    if secret.is_empty() {
        return Err(Error::invalid(&field.name, format!("the {source} is empty")));
    }
    check_format(field, secret.expose(), source)
}

fn check_format(field: &'static AuthField, value: &str, what: &str) -> Result<()> {
    if field.accepts(value) {
        return Ok(());
    }
    let hint = field.format_hint.as_deref().unwrap_or("in the expected format");
    Err(Error::invalid(&field.name, format!("the {what} must be {hint}")))
}

/// E.164 from what people type: spaces, dashes, dots and brackets go; a leading `+`
/// is required (a national number is ambiguous). The country code must exist and the
/// number's length fit that country (libphonenumber's metadata, via `phonenumber`).
/// Whether the number is in service is the service's to say: any possible length passes.
pub fn normalize_phone(field: &'static AuthField, raw: &str) -> Result<String> {
    let phone: String = raw.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}')).collect();
    if !phone.starts_with('+') {
        return Err(Error::invalid(
            &field.name,
            "the phone number must start with + and the country code, e.g. +15551230001",
        ));
    }
    check_format(field, &phone, "phone number")?;
    check_phone_length(field, &phone)?;
    Ok(phone)
}

fn check_phone_length(field: &'static AuthField, phone: &str) -> Result<()> {
    use phonenumber::ParseError;
    let invalid = |why: String| Error::invalid(&field.name, why);
    let parsed = phonenumber::parse(None, phone).map_err(|err| match err {
        ParseError::InvalidCountryCode => {
            invalid(format!("{phone} does not start with a country code that exists; check the digits after +"))
        }
        ParseError::TooLong => invalid(format!("{phone} is too long for a phone number")),
        _ => invalid(format!("{phone} is too short for a phone number")),
    })?;
    let code = parsed.code().value();
    let national = parsed.national().to_string().len() as u16;
    let countries = phonenumber::metadata::DATABASE.by_code(&code).unwrap_or_default();
    let fits = countries.iter().any(|country| {
        // The metadata keeps the lengths per kind of number (fixed line, mobile, toll free …).
        let kinds = country.descriptors();
        [kinds.fixed_line(), kinds.mobile(), kinds.toll_free(), kinds.premium_rate(), kinds.shared_cost()]
            .into_iter()
            .chain([kinds.personal_number(), kinds.voip(), kinds.pager(), kinds.uan(), kinds.voicemail()])
            .flatten()
            .chain([kinds.general()])
            .any(|kind| kind.possible_length().contains(&national))
    });
    if !fits {
        let country = countries.first().map(|country| country.id()).unwrap_or("its country");
        return Err(invalid(format!(
            "{phone} has {national} digits after the country code +{code}, which no number in {country} has; check for a missing or extra digit"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    fn twilio() -> &'static AuthMethod {
        catalog::connector("twilio").unwrap().auth_method("auth_token").unwrap()
    }

    fn text_value(value: &str) -> FieldValue {
        FieldValue::Text(value.into())
    }

    #[test]
    fn phone_numbers_are_normalised_to_e164() {
        let phone = catalog::field("twilio", "auth_token", "phone_number");
        assert_eq!(normalize_phone(phone, " +1 (555) 123-0001 ").unwrap(), "+15551230001");
        assert_eq!(normalize_phone(phone, "+1.555.123.0001").unwrap(), "+15551230001");
        assert_eq!(normalize_phone(phone, "+44 20 7183 8750").unwrap(), "+442071838750");
        for bad in [
            "5551230001",
            "+",
            "+0123456789",
            "+1555abc0001",
            "+1234567890123456",
            "+99912345678",
            "+1555123000",
            "+4420718387501234",
        ] {
            let err = normalize_phone(phone, bad).unwrap_err();
            assert_eq!((err.code(), err.field()), ("invalid_input", Some("phone_number")), "{bad}");
        }
    }

    #[test]
    fn values_are_checked_normalised_and_blank_optionals_dropped() {
        let sid = format!("AC{}", "0a".repeat(16));
        let raw = FieldValues::from([
            ("account_sid".into(), text_value(&format!(" {sid} "))),
            ("phone_number".into(), text_value("")),
            ("test_credentials".into(), text_value("true")),
        ]);
        let values = check(twilio(), &raw).unwrap();
        assert_eq!(text(&values, "account_sid"), Some(sid.as_str()));
        assert!(!values.contains_key("phone_number"));
        assert!(toggle(&values, "test_credentials"));

        let missing = check(twilio(), &FieldValues::new()).unwrap_err();
        assert_eq!(missing.field(), Some("account_sid"));
        let unknown = check(twilio(), &FieldValues::from([("colour".into(), text_value("red"))])).unwrap_err();
        assert!(unknown.to_string().contains("no field 'colour'"), "{unknown}");
        let short = check(twilio(), &FieldValues::from([("account_sid".into(), text_value("AC123"))])).unwrap_err();
        assert_eq!(short.field(), Some("account_sid"));
    }

    #[test]
    fn a_secret_is_never_taken_as_a_value_nor_echoed() {
        let raw = FieldValues::from([
            ("account_sid".into(), text_value(&format!("AC{}", "0a".repeat(16)))),
            ("auth_token".into(), text_value("0f".repeat(16).as_str())),
        ]);
        assert_eq!(check(twilio(), &raw).unwrap_err().field(), Some("auth_token"));
        let token_field = twilio().secret_field().unwrap();
        let err = check_secret(token_field, &Secret::new("not-a-token-but-a-secret"), "Auth Token").unwrap_err();
        assert_eq!(err.field(), Some("auth_token"));
        assert!(!err.to_string().contains("not-a-token"));
    }
}
