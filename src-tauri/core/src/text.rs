//! Text folding shared by every search: case- and accent-insensitive matching.

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

/// "Fínance  SMS" → "finance  sms": decomposed, marks dropped, lower-cased.
pub fn fold(text: &str) -> String {
    text.nfd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn folds_case_and_accents() {
        assert_eq!(super::fold("Télécom ÅB"), "telecom ab");
    }
}
