//! User settings with a fixed set of allowed values.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::profile::ProfileError;

/// The smallest monthly collected total, in whole dollars, that triggers a
/// payout to the user (`minimum_transfer_amount`). One of
/// [`TransferAmount::CHOICES`]; 5 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransferAmount(i64);

impl TransferAmount {
    /// The allowed amounts in dollars, as listed by `/v1/settings`.
    pub const CHOICES: [i64; 5] = [5, 10, 20, 50, 100];

    pub fn parse(dollars: i64) -> Result<TransferAmount, ProfileError> {
        if Self::CHOICES.contains(&dollars) {
            Ok(TransferAmount(dollars))
        } else {
            Err(ProfileError::InvalidChoice(dollars))
        }
    }

    /// Whole dollars.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl Default for TransferAmount {
    fn default() -> Self {
        TransferAmount(Self::CHOICES[0])
    }
}

impl fmt::Display for TransferAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A JSON number, as the API shows it.
impl Serialize for TransferAmount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_the_listed_choices() {
        for dollars in [5, 10, 20, 50, 100] {
            assert_eq!(TransferAmount::parse(dollars).unwrap().get(), dollars);
        }
        for dollars in [0, 1, 4, 6, 15, 25, 99, 101, 500, -5, i64::MIN, i64::MAX] {
            assert_eq!(TransferAmount::parse(dollars), Err(ProfileError::InvalidChoice(dollars)));
        }
    }

    #[test]
    fn default_is_five_dollars() {
        assert_eq!(TransferAmount::default().get(), 5);
    }

    #[test]
    fn invalid_choice_message_quotes_the_value() {
        let error = TransferAmount::parse(7).unwrap_err();
        assert_eq!(error.to_string(), "\"7\" is not a valid choice.");
    }

    #[test]
    fn serializes_as_a_number() {
        let amount = TransferAmount::parse(20).unwrap();
        assert_eq!(crate::test_support::serialized(&amount), "i64:20");
    }
}
