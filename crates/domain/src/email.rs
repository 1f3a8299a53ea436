//! Email addresses, normalised so that one person has one spelling.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A syntactically valid email address, trimmed and in lower case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Email(String);

/// The input is not an email address we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Enter a valid email address.")]
pub struct EmailError;

const MAX_LENGTH: usize = 254;
const MAX_LOCAL_LENGTH: usize = 64;
const MAX_LABEL_LENGTH: usize = 63;

impl Email {
    /// Accepts `local@domain` where the local part is a dot-atom of at most 64
    /// characters and the domain has at least two labels of letters, digits
    /// and inner hyphens. Only ASCII; quoted local parts and IP-literal domains
    /// are not accepted.
    pub fn parse(input: &str) -> Result<Email, EmailError> {
        let address = input.trim().to_ascii_lowercase();
        if address.len() > MAX_LENGTH || !address.is_ascii() {
            return Err(EmailError);
        }
        let (local, domain) = address.split_once('@').ok_or(EmailError)?;
        if is_valid_local_part(local) && is_valid_domain(domain) { Ok(Email(address)) } else { Err(EmailError) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A dot-atom (RFC 5322): atoms of letters, digits and `!#$%&'*+/=?^_`{|}~-`
/// joined by single dots. This also rules out spaces and a second `@`.
fn is_valid_local_part(local: &str) -> bool {
    local.len() <= MAX_LOCAL_LENGTH
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&byte))
        })
}

fn is_valid_domain(domain: &str) -> bool {
    let mut labels = 0;
    for label in domain.split('.') {
        let well_formed = !label.is_empty()
            && label.len() <= MAX_LABEL_LENGTH
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if !well_formed {
            return false;
        }
        labels += 1;
    }
    labels >= 2
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Email {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Email::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_trims_and_lowercases_the_whole_address() {
        let email = Email::parse("  John.Doe+Tag@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "john.doe+tag@example.com");
        assert_eq!(email.to_string(), "john.doe+tag@example.com");
    }

    #[test]
    fn parse_requires_exactly_one_at_sign() {
        assert_eq!(Email::parse("john.example.com"), Err(EmailError));
        assert_eq!(Email::parse("john@doe@example.com"), Err(EmailError));
    }

    #[test]
    fn parse_requires_a_local_part_of_at_most_64_characters() {
        assert_eq!(Email::parse("@example.com"), Err(EmailError));
        let longest = format!("{}@example.com", "a".repeat(64));
        assert!(Email::parse(&longest).is_ok());
        let too_long = format!("{}@example.com", "a".repeat(65));
        assert_eq!(Email::parse(&too_long), Err(EmailError));
    }

    #[test]
    fn parse_rejects_malformed_local_parts() {
        for bad in [
            ".john@example.com",
            "john.@example.com",
            "jo..hn@example.com",
            "jo hn@example.com",
            "jo\"hn@example.com",
            "jo,hn@example.com",
            "jöhn@example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError), "{bad:?}");
        }
    }

    #[test]
    fn parse_requires_a_dotted_domain_of_well_formed_labels() {
        for bad in [
            "john@",
            "john@localhost",
            "john@example.",
            "john@.example.com",
            "john@example..com",
            "john@-example.com",
            "john@example-.com",
            "john@exa_mple.com",
            "john@exa mple.com",
            "john@[127.0.0.1]",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError), "{bad:?}");
        }
        assert!(Email::parse("john@my-mail.example.co").is_ok());
        assert!(Email::parse("john@123.example").is_ok());
    }

    #[test]
    fn parse_limits_labels_to_63_characters() {
        let longest = format!("a@{}.com", "b".repeat(63));
        assert!(Email::parse(&longest).is_ok());
        let too_long = format!("a@{}.com", "b".repeat(64));
        assert_eq!(Email::parse(&too_long), Err(EmailError));
    }

    #[test]
    fn parse_limits_the_address_to_254_characters() {
        // 64 + 1 + 63 + 1 + 63 + 1 + 61 = 254
        let domain = format!("{}.{}.{}", "b".repeat(63), "c".repeat(63), "d".repeat(61));
        let longest = format!("{}@{domain}", "a".repeat(64));
        assert_eq!(longest.len(), 254);
        assert!(Email::parse(&longest).is_ok());
        let too_long = format!("{}@{domain}e", "a".repeat(64));
        assert_eq!(Email::parse(&too_long), Err(EmailError));
    }

    #[test]
    fn error_message_is_the_api_message() {
        assert_eq!(EmailError.to_string(), "Enter a valid email address.");
    }

    #[test]
    fn serializes_as_the_normalised_string() {
        let email = Email::parse("A@B.CO").unwrap();
        assert_eq!(crate::test_support::serialized(&email), "str:a@b.co".to_string());
    }

    #[test]
    fn deserializing_applies_the_same_rules() {
        use serde::de::IntoDeserializer;
        let ok: Result<Email, serde::de::value::Error> = Email::deserialize(" A@B.CO".into_deserializer());
        assert_eq!(ok.unwrap().as_str(), "a@b.co");
        let bad: Result<Email, serde::de::value::Error> = Email::deserialize("nope".into_deserializer());
        assert!(bad.is_err());
    }
}
