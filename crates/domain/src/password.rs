//! A password as typed by the user, before hashing. It never prints.

use std::fmt;

/// A plaintext password of acceptable length. `Debug` shows `Password(***)`;
/// there is deliberately no `Display` or `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

/// Why a password is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("Ensure this field has at least 8 characters.")]
    TooShort,
    #[error("Ensure this field has no more than 128 characters.")]
    TooLong,
}

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    /// Accepts 8 to 128 characters (counted as chars, not bytes). The
    /// password is taken as typed: it is not trimmed.
    pub fn parse(input: &str) -> Result<Password, PasswordError> {
        let length = input.chars().count();
        if length < Self::MIN_CHARS {
            Err(PasswordError::TooShort)
        } else if length > Self::MAX_CHARS {
            Err(PasswordError::TooLong)
        } else {
            Ok(Password(input.to_owned()))
        }
    }

    /// The plaintext, for hashing or verifying only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_requires_at_least_8_characters() {
        assert_eq!(Password::parse("1234567"), Err(PasswordError::TooShort));
        assert_eq!(Password::parse(""), Err(PasswordError::TooShort));
        assert_eq!(Password::parse("12345678").unwrap().expose(), "12345678");
    }

    #[test]
    fn parse_allows_at_most_128_characters() {
        assert!(Password::parse(&"x".repeat(128)).is_ok());
        assert_eq!(Password::parse(&"x".repeat(129)), Err(PasswordError::TooLong));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // Seven two-byte characters: 14 bytes but only 7 characters.
        assert_eq!(Password::parse("ééééééé"), Err(PasswordError::TooShort));
        assert!(Password::parse("éééééééé").is_ok());
        // 128 four-byte characters: 512 bytes but only 128 characters.
        assert!(Password::parse(&"🔑".repeat(128)).is_ok());
    }

    #[test]
    fn parse_keeps_surrounding_spaces() {
        assert_eq!(Password::parse("  secret  ").unwrap().expose(), "  secret  ");
    }

    #[test]
    fn debug_never_shows_the_value() {
        let password = Password::parse("hunter2hunter2").unwrap();
        assert_eq!(format!("{password:?}"), "Password(***)");
        assert_eq!(format!("{password:#?}"), "Password(***)");
    }

    #[test]
    fn error_messages_are_the_api_messages() {
        assert_eq!(PasswordError::TooShort.to_string(), "Ensure this field has at least 8 characters.");
        assert_eq!(PasswordError::TooLong.to_string(), "Ensure this field has no more than 128 characters.");
    }
}
