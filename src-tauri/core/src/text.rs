//! Text rules shared by every name and every search: case- and accent-insensitive
//! matching, and what a name may contain.

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// "Fínance  SMS" → "finance  sms": decomposed, marks dropped, lower-cased.
pub fn fold(text: &str) -> String {
    text.nfd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase).collect()
}

/// What makes two names the same name: Unicode case (`CAFÉ` = `Café`) and letters that
/// look alike (Cyrillic `а` = Latin `a`), by Unicode's confusable skeleton (UTS #39).
pub fn name_key(name: &str) -> String {
    let lower: String = name.nfc().flat_map(char::to_lowercase).collect();
    unicode_security::skeleton(&lower).collect::<String>().to_lowercase()
}

/// Why a character may not stand in a name, if it may not: invisible or direction
/// changing characters (zero-width space, BOM, right-to-left override) and every space
/// but the plain one make two names that read the same, or one that reads as another.
pub fn forbidden_in_name(c: char) -> Option<&'static str> {
    match c.general_category() {
        GeneralCategory::Control => Some("control characters"),
        GeneralCategory::Format => {
            Some("invisible formatting characters (such as zero-width spaces or direction marks)")
        }
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => Some("line breaks"),
        GeneralCategory::SpaceSeparator if c != ' ' => Some("spaces other than the plain space"),
        GeneralCategory::Surrogate | GeneralCategory::PrivateUse | GeneralCategory::Unassigned => {
            Some("unassigned or private-use characters")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_and_accents() {
        assert_eq!(fold("Télécom ÅB"), "telecom ab");
    }

    #[test]
    fn names_that_read_the_same_share_a_key() {
        assert_eq!(name_key("CAFÉ"), name_key("Café"));
        assert_eq!(name_key("Cafe\u{301}"), name_key("Café"), "composed and decomposed");
        assert_eq!(name_key("Finаnce"), name_key("Finance"), "Cyrillic а");
        assert_ne!(name_key("Finance"), name_key("Finances"));
    }

    #[test]
    fn invisible_and_odd_spaces_are_named() {
        for c in ['\u{202E}', '\u{200B}', '\u{FEFF}', '\u{2028}', '\u{A0}', '\u{7}'] {
            assert!(forbidden_in_name(c).is_some(), "{:?}", c);
        }
        for c in ['a', ' ', 'é', '-', '日'] {
            assert!(forbidden_in_name(c).is_none(), "{c}");
        }
    }
}
