//! The fields of a user's profile: phone, SSN, address parts, date of birth.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::{Serialize, Serializer};

/// Why a profile field (or a user setting) is not acceptable. The messages are
/// the ones the API shows under the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("Enter a valid 10-digit phone number.")]
    InvalidPhone,
    #[error("Enter a valid SSN in the format XXX-XX-XXXX.")]
    InvalidSsn,
    #[error("Enter a valid 5-digit postal code.")]
    InvalidPostalCode,
    #[error("Enter a valid US state code.")]
    InvalidState,
    #[error("Enter a valid date in the format YYYY-MM-DD.")]
    InvalidDate,
    #[error("Date of birth can not be in the future.")]
    DateOfBirthInFuture,
    #[error("Date of birth can not be before 1900-01-01.")]
    DateOfBirthBefore1900,
    #[error("You must be at least 18 years old.")]
    Underage,
    #[error("\"{0}\" is not a valid choice.")]
    InvalidChoice(i64),
    /// A daily or monthly collection cap outside the allowed whole-dollar range.
    #[error("Ensure this value is between {} and {}.", crate::rules::Cap::MIN_DOLLARS, crate::rules::Cap::MAX_DOLLARS)]
    CapOutOfRange,
    /// An overdraft floor outside the allowed whole-dollar range.
    #[error("Ensure this value is between 0 and {}.", crate::rules::OverdraftFloor::MAX_DOLLARS)]
    FloorOutOfRange,
}

fn all_digits(text: &str) -> bool {
    text.bytes().all(|byte| byte.is_ascii_digit())
}

/// A US phone number as its 10 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Accepts 10 digits, ignoring spaces, dashes, dots and parentheses, and
    /// an optional country code: `+1` or a leading `1` before the 10 digits.
    pub fn parse(input: &str) -> Result<Phone, ProfileError> {
        let compact: String = input.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
        let digits = match compact.strip_prefix('+') {
            Some(rest) => rest.strip_prefix('1').ok_or(ProfileError::InvalidPhone)?,
            None if compact.len() == 11 => compact.strip_prefix('1').ok_or(ProfileError::InvalidPhone)?,
            None => &compact,
        };
        if digits.len() == 10 && all_digits(digits) {
            Ok(Phone(digits.to_owned()))
        } else {
            Err(ProfileError::InvalidPhone)
        }
    }

    /// The 10 digits, `"5551234567"`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A US Social Security number as its 9 digits.
///
/// `Debug` shows only the last four digits; there is deliberately no
/// `Display` or `Serialize`: pick `masked()` for output or `digits()` for
/// (encrypted) storage.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Ssn(String);

impl Ssn {
    /// Accepts `XXX-XX-XXXX` or 9 plain digits. Rejects numbers the SSA never
    /// issues: area 000, 666 or 900–999, group 00, serial 0000.
    pub fn parse(input: &str) -> Result<Ssn, ProfileError> {
        let text = input.trim();
        let digits: String = match text.len() {
            9 => text.to_owned(),
            11 if text.as_bytes()[3] == b'-' && text.as_bytes()[6] == b'-' => text.split('-').collect(),
            _ => return Err(ProfileError::InvalidSsn),
        };
        if digits.len() != 9 || !all_digits(&digits) {
            return Err(ProfileError::InvalidSsn);
        }
        let (area, group, serial) = (&digits[..3], &digits[3..5], &digits[5..]);
        let never_issued = area == "000" || area == "666" || area.starts_with('9') || group == "00" || serial == "0000";
        if never_issued { Err(ProfileError::InvalidSsn) } else { Ok(Ssn(digits)) }
    }

    /// The 9 digits, `"123456789"`.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// `"123-45-6789"`.
    pub fn formatted(&self) -> String {
        format!("{}-{}-{}", &self.0[..3], &self.0[3..5], &self.0[5..])
    }

    /// `"***-**-6789"`, the form the API shows.
    pub fn masked(&self) -> String {
        format!("***-**-{}", self.last4())
    }

    /// `"6789"`.
    pub fn last4(&self) -> &str {
        &self.0[5..]
    }
}

impl fmt::Debug for Ssn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ssn({})", self.masked())
    }
}

/// A 5-digit US ZIP code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PostalCode(String);

impl PostalCode {
    /// Accepts exactly 5 digits (surrounding whitespace is ignored); ZIP+4 is
    /// not accepted.
    pub fn parse(input: &str) -> Result<PostalCode, ProfileError> {
        let text = input.trim();
        if text.len() == 5 && all_digits(text) {
            Ok(PostalCode(text.to_owned()))
        } else {
            Err(ProfileError::InvalidPostalCode)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PostalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for PostalCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A USPS state code: the 50 states, DC, and the inhabited territories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsState(&'static str);

impl UsState {
    /// Every accepted code, upper case.
    pub const CODES: [&'static str; 56] = [
        "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA",
        "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK",
        "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", // the 50 states
        "DC", // the federal district
        "PR", "GU", "VI", "AS", "MP", // territories
    ];

    /// Accepts a two-letter code in any case (surrounding whitespace is
    /// ignored).
    pub fn parse(input: &str) -> Result<UsState, ProfileError> {
        let code = input.trim();
        Self::CODES
            .iter()
            .find(|known| known.eq_ignore_ascii_case(code))
            .map(|&known| UsState(known))
            .ok_or(ProfileError::InvalidState)
    }

    /// The upper-case code, `"NY"`.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for UsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for UsState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

/// The birth date of an adult: on or after 1900-01-01, not in the future, and
/// at least 18 years before the day it was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateOfBirth(NaiveDate);

impl DateOfBirth {
    pub const ADULT_AGE: i32 = 18;

    /// Parses `YYYY-MM-DD` (exactly that shape, zero-padded) and checks the
    /// date against `today`.
    pub fn parse(input: &str, today: NaiveDate) -> Result<DateOfBirth, ProfileError> {
        Self::new(parse_iso_date(input.trim())?, today)
    }

    /// Checks an already-parsed date against `today`.
    pub fn new(date: NaiveDate, today: NaiveDate) -> Result<DateOfBirth, ProfileError> {
        if date > today {
            return Err(ProfileError::DateOfBirthInFuture);
        }
        if date < earliest_date_of_birth() {
            return Err(ProfileError::DateOfBirthBefore1900);
        }
        if adulthood_begins(date) > today {
            return Err(ProfileError::Underage);
        }
        Ok(DateOfBirth(date))
    }

    pub fn date(&self) -> NaiveDate {
        self.0
    }
}

fn earliest_date_of_birth() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// The 18th birthday; someone born on Feb 29 comes of age on Mar 1 when that
/// year is not a leap year.
fn adulthood_begins(born: NaiveDate) -> NaiveDate {
    let year = born.year() + DateOfBirth::ADULT_AGE;
    NaiveDate::from_ymd_opt(year, born.month(), born.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, 3, 1))
        .unwrap_or(NaiveDate::MAX)
}

/// Strict `YYYY-MM-DD`: chrono's `%Y-%m-%d` would also take `2000-1-5` and
/// signed or longer years.
fn parse_iso_date(text: &str) -> Result<NaiveDate, ProfileError> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && [&text[..4], &text[5..7], &text[8..]].iter().all(|part| all_digits(part));
    if !shaped {
        return Err(ProfileError::InvalidDate);
    }
    let number = |part: &str| part.parse::<u32>().map_err(|_| ProfileError::InvalidDate);
    let year = i32::try_from(number(&text[..4])?).map_err(|_| ProfileError::InvalidDate)?;
    NaiveDate::from_ymd_opt(year, number(&text[5..7])?, number(&text[8..])?).ok_or(ProfileError::InvalidDate)
}

impl fmt::Display for DateOfBirth {
    /// `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl Serialize for DateOfBirth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn phone_strips_punctuation_and_keeps_10_digits() {
        for input in [
            "5551234567",
            "555 123 4567",
            "555-123-4567",
            "555.123.4567",
            "(555) 123-4567",
            "+1 (555) 123-4567",
            "+15551234567",
            "15551234567",
            "1-555-123-4567",
        ] {
            assert_eq!(Phone::parse(input).unwrap().as_str(), "5551234567", "{input:?}");
        }
    }

    #[test]
    fn phone_rejects_wrong_lengths_and_foreign_codes() {
        for bad in [
            "",
            "555123456",
            "55512345678",
            "25551234567",
            "+25551234567",
            "+5551234567",
            "+1555123456",
            "+155512345678",
            "555123456a",
            "555/123/4567",
            "555_123_4567",
            "555+1234567",
            "٥٥٥١٢٣٤٥٦٧",
        ] {
            assert_eq!(Phone::parse(bad), Err(ProfileError::InvalidPhone), "{bad:?}");
        }
    }

    #[test]
    fn ssn_accepts_dashed_or_plain_digits() {
        let dashed = Ssn::parse("123-45-6789").unwrap();
        let plain = Ssn::parse("123456789").unwrap();
        assert_eq!(dashed, plain);
        assert_eq!(dashed.digits(), "123456789");
        assert_eq!(dashed.formatted(), "123-45-6789");
        assert_eq!(dashed.masked(), "***-**-6789");
        assert_eq!(dashed.last4(), "6789");
    }

    #[test]
    fn ssn_rejects_other_shapes() {
        for bad in [
            "",
            "12345678",
            "1234567890",
            "123-456-789",
            "12-345-6789",
            "123 45 6789",
            "123-45-678a",
            "123--456789",
            "12345-6789",
            "+23456789",
        ] {
            assert_eq!(Ssn::parse(bad), Err(ProfileError::InvalidSsn), "{bad:?}");
        }
    }

    #[test]
    fn ssn_rejects_never_issued_numbers() {
        for bad in ["000-45-6789", "666-45-6789", "900-45-6789", "999-45-6789", "123-00-6789", "123-45-0000"] {
            assert_eq!(Ssn::parse(bad), Err(ProfileError::InvalidSsn), "{bad:?}");
        }
        for good in ["001-01-0001", "665-99-9999", "667-01-0001", "899-99-9999"] {
            assert!(Ssn::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn ssn_debug_shows_only_the_last_four() {
        let ssn = Ssn::parse("123-45-6789").unwrap();
        let debug = format!("{ssn:?}");
        assert_eq!(debug, "Ssn(***-**-6789)");
        assert!(!debug.contains("12345"));
    }

    #[test]
    fn postal_code_is_exactly_five_digits() {
        assert_eq!(PostalCode::parse("02134").unwrap().as_str(), "02134");
        assert_eq!(PostalCode::parse(" 02134 ").unwrap().as_str(), "02134");
        for bad in ["", "2134", "021345", "0213a", "02134-1234", "0 134"] {
            assert_eq!(PostalCode::parse(bad), Err(ProfileError::InvalidPostalCode), "{bad:?}");
        }
    }

    #[test]
    fn state_is_case_insensitive_and_stored_upper_case() {
        assert_eq!(UsState::parse("ny").unwrap().as_str(), "NY");
        assert_eq!(UsState::parse("Dc").unwrap().as_str(), "DC");
        assert_eq!(UsState::parse("pr").unwrap().to_string(), "PR");
    }

    #[test]
    fn state_rejects_unknown_codes() {
        for bad in ["", "N", "NYC", "XX", "ZZ", "UK", "N Y"] {
            assert_eq!(UsState::parse(bad), Err(ProfileError::InvalidState), "{bad:?}");
        }
    }

    #[test]
    fn state_codes_are_the_50_states_dc_and_territories() {
        let mut codes = UsState::CODES.to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 56);
    }

    #[test]
    fn date_of_birth_requires_the_iso_format() {
        let today = day("2024-06-15");
        for bad in [
            "",
            "1990-1-05",
            "1990-01-5",
            "90-01-05",
            "01/05/1990",
            "1990/01/05",
            "1990/01-05",
            "1990-01/05",
            "1990-01005",
            "+1990-01-05",
            "19900-01-05",
            "1990-13-05",
            "1990-02-30",
            "1990-00-10",
            "1990-01-00",
            "1990-01-05T00:00:00",
            "1990-01-+5",
        ] {
            assert_eq!(DateOfBirth::parse(bad, today), Err(ProfileError::InvalidDate), "{bad:?}");
        }
        assert_eq!(DateOfBirth::parse("1990-01-05", today).unwrap().date(), day("1990-01-05"));
    }

    #[test]
    fn date_of_birth_must_be_at_least_18_years_ago() {
        let today = day("2024-06-15");
        assert!(DateOfBirth::parse("2006-06-15", today).is_ok());
        assert_eq!(DateOfBirth::parse("2006-06-16", today), Err(ProfileError::Underage));
        assert_eq!(DateOfBirth::parse("2024-06-15", today), Err(ProfileError::Underage));
    }

    #[test]
    fn leap_day_birthday_comes_of_age_on_march_first() {
        let born = "2004-02-29";
        assert_eq!(DateOfBirth::parse(born, day("2022-02-28")), Err(ProfileError::Underage));
        assert!(DateOfBirth::parse(born, day("2022-03-01")).is_ok());
        // A leap-day birth never has its 18th birthday in a leap year.
        let born = "1996-02-29";
        assert_eq!(DateOfBirth::parse(born, day("2014-02-28")), Err(ProfileError::Underage));
        assert!(DateOfBirth::parse(born, day("2014-03-01")).is_ok());
    }

    #[test]
    fn date_of_birth_cannot_be_in_the_future() {
        let today = day("2024-06-15");
        assert_eq!(DateOfBirth::parse("2024-06-16", today), Err(ProfileError::DateOfBirthInFuture));
    }

    #[test]
    fn date_of_birth_cannot_be_before_1900() {
        let today = day("2024-06-15");
        assert!(DateOfBirth::parse("1900-01-01", today).is_ok());
        assert_eq!(DateOfBirth::parse("1899-12-31", today), Err(ProfileError::DateOfBirthBefore1900));
    }

    #[test]
    fn date_of_birth_displays_as_iso_date() {
        let dob = DateOfBirth::parse("1990-01-05", day("2024-06-15")).unwrap();
        assert_eq!(dob.to_string(), "1990-01-05");
        assert_eq!(crate::test_support::serialized(&dob), "str:1990-01-05");
    }

    #[test]
    fn profile_fields_serialize_as_strings() {
        use crate::test_support::serialized;
        assert_eq!(serialized(&Phone::parse("(555) 123-4567").unwrap()), "str:5551234567");
        assert_eq!(serialized(&PostalCode::parse("02134").unwrap()), "str:02134");
        assert_eq!(serialized(&UsState::parse("ny").unwrap()), "str:NY");
    }

    #[test]
    fn error_messages_are_the_api_messages() {
        assert_eq!(ProfileError::InvalidPhone.to_string(), "Enter a valid 10-digit phone number.");
        assert_eq!(ProfileError::InvalidSsn.to_string(), "Enter a valid SSN in the format XXX-XX-XXXX.");
        assert_eq!(ProfileError::InvalidPostalCode.to_string(), "Enter a valid 5-digit postal code.");
        assert_eq!(ProfileError::InvalidState.to_string(), "Enter a valid US state code.");
        assert_eq!(ProfileError::InvalidDate.to_string(), "Enter a valid date in the format YYYY-MM-DD.");
        assert_eq!(ProfileError::Underage.to_string(), "You must be at least 18 years old.");
        assert_eq!(ProfileError::InvalidChoice(7).to_string(), "\"7\" is not a valid choice.");
    }
}
