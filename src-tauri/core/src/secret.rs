//! The one type that holds a secret value (Auth Token, credential asset value).
//!
//! It redacts itself in `Debug`/`Display`, is zeroed on drop, and deliberately does not
//! implement `Serialize`: a secret cannot reach JSON, a log or an IPC answer by accident.
//! Only the vault and the Twilio client (inside this crate) read the value.

use std::fmt;

use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// Reads a secret the way a person pipes or types it: surrounding whitespace
    /// (the trailing newline of `echo` or a terminal) is not part of it.
    pub fn from_reader(mut reader: impl std::io::Read) -> std::io::Result<Self> {
        let mut raw = Zeroizing::new(String::new());
        reader.read_to_string(&mut raw)?;
        Ok(Self::new(raw.trim()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// The value, for the few places a secret is handed to the person it belongs to on
    /// purpose: the instance token in the answer to `POST /instances`, and
    /// `patchbay api credentials`. Anywhere else is a leak.
    pub fn reveal_to_owner(&self) -> &str {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert!(!format!("{:?}", Some(&secret)).contains("0123"));
    }

    #[test]
    fn reading_trims_the_newline_a_terminal_adds() {
        let secret = Secret::from_reader("  abc\n".as_bytes()).unwrap();
        assert_eq!(secret.expose(), "abc");
    }
}
