//! Money as whole cents, and the round-up rule.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of US money in cents. Never a float.
///
/// Renders (and serializes) as a decimal string with exactly two places,
/// the way the API shows money: `"12.30"`, `"-0.05"`, `"0.00"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cents(i64);

/// Why a decimal string is not an amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Empty, or not a plain decimal number (letters, exponents, stray signs).
    #[error("A valid number is required.")]
    Invalid,
    /// More than two digits after the decimal point.
    #[error("Ensure that there are no more than 2 decimal places.")]
    TooManyDecimalPlaces,
    /// Does not fit in 64-bit cents.
    #[error("This amount is too large.")]
    Overflow,
}

impl Cents {
    /// No money at all.
    pub const ZERO: Cents = Cents(0);

    pub const fn new(cents: i64) -> Self {
        Cents(cents)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    pub const fn checked_add(self, rhs: Cents) -> Option<Cents> {
        match self.0.checked_add(rhs.0) {
            Some(sum) => Some(Cents(sum)),
            None => None,
        }
    }

    pub const fn checked_sub(self, rhs: Cents) -> Option<Cents> {
        match self.0.checked_sub(rhs.0) {
            Some(difference) => Some(Cents(difference)),
            None => None,
        }
    }

    /// Parses a plain decimal amount of dollars: an optional `-`, at least one
    /// digit, and optionally a point followed by one or two digits
    /// (`"12"`, `"12.3"`, `"12.30"`, `"-1.05"`). Surrounding whitespace is
    /// ignored; exponents, `+`, thousands separators and bare points are not
    /// accepted.
    pub fn parse(input: &str) -> Result<Cents, MoneyError> {
        let text = input.trim();
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (unsigned, None),
        };
        if !is_digits(whole) {
            return Err(MoneyError::Invalid);
        }
        let fraction_cents: i128 = match fraction {
            None => 0,
            Some(digits) if !is_digits(digits) => return Err(MoneyError::Invalid),
            Some(digits) if digits.len() > 2 => return Err(MoneyError::TooManyDecimalPlaces),
            Some(digits) => {
                let value = digits_value(digits).ok_or(MoneyError::Overflow)?;
                // "3" after the point means 30 cents, "03" means 3.
                if digits.len() == 1 { value * 10 } else { value }
            }
        };
        let magnitude = digits_value(whole)
            .and_then(|dollars| dollars.checked_mul(100))
            .and_then(|cents| cents.checked_add(fraction_cents))
            .ok_or(MoneyError::Overflow)?;
        let signed = if negative { -magnitude } else { magnitude };
        i64::try_from(signed).map(Cents).map_err(|_| MoneyError::Overflow)
    }

    /// The amount in dollars as a float, only for the few API fields that are
    /// JSON numbers (`/v1/stat`, `total_debt`). Never compute with it.
    pub fn to_f64_dollars(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// The value of a run of ASCII digits, or `None` when it overflows.
fn digits_value(digits: &str) -> Option<i128> {
    digits.bytes().try_fold(0_i128, |value, byte| value.checked_mul(10)?.checked_add(i128::from(byte - b'0')))
}

/// Sums and differences of money are checked: an amount that does not fit in 64-bit cents (over
/// 92 quadrillion dollars) is a bug, never a silently wrapped balance. Input that could be that
/// large is parsed by [`Cents::parse`] (which refuses it) or added with [`Cents::checked_add`].
impl std::ops::Add for Cents {
    type Output = Cents;
    fn add(self, rhs: Cents) -> Cents {
        self.checked_add(rhs).unwrap_or_else(|| panic!("money overflow: {self} + {rhs}"))
    }
}

impl std::ops::Sub for Cents {
    type Output = Cents;
    fn sub(self, rhs: Cents) -> Cents {
        self.checked_sub(rhs).unwrap_or_else(|| panic!("money overflow: {self} - {rhs}"))
    }
}

impl std::ops::AddAssign for Cents {
    fn add_assign(&mut self, rhs: Cents) {
        *self = *self + rhs;
    }
}

impl std::ops::SubAssign for Cents {
    fn sub_assign(&mut self, rhs: Cents) {
        *self = *self - rhs;
    }
}

impl std::ops::Neg for Cents {
    type Output = Cents;
    fn neg(self) -> Cents {
        Cents(self.0.checked_neg().unwrap_or_else(|| panic!("money overflow: -{self}")))
    }
}

/// A whole multiple of an amount (a round-up multiplier, a count).
impl std::ops::Mul<i64> for Cents {
    type Output = Cents;
    fn mul(self, factor: i64) -> Cents {
        Cents(self.0.checked_mul(factor).unwrap_or_else(|| panic!("money overflow: {self} * {factor}")))
    }
}

impl std::iter::Sum for Cents {
    fn sum<I: Iterator<Item = Cents>>(iter: I) -> Cents {
        iter.fold(Cents::ZERO, |total, amount| total + amount)
    }
}

impl<'a> std::iter::Sum<&'a Cents> for Cents {
    fn sum<I: Iterator<Item = &'a Cents>>(iter: I) -> Cents {
        iter.copied().sum()
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        // unsigned_abs keeps i64::MIN printable.
        let magnitude = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", magnitude / 100, magnitude % 100)
    }
}

impl Serialize for Cents {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DecimalString;

        impl Visitor<'_> for DecimalString {
            type Value = Cents;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string with at most two places, like \"12.30\"")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Cents, E> {
                Cents::parse(value).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(DecimalString)
    }
}

/// The round-up of one purchase: what it takes to reach the next whole dollar.
///
/// `amount` is the purchase amount in cents. A whole-dollar purchase rounds
/// up by nothing, or by a full dollar when the user chose `even_roundup`.
/// Zero and negative amounts (refunds, credits) round up by nothing. Which
/// transactions are purchases is [`crate::roundup`]'s business.
pub(crate) fn purchase_roundup(amount: Cents, even_roundup: bool) -> Cents {
    if amount.0 <= 0 {
        return Cents::ZERO;
    }
    match amount.0 % 100 {
        0 if even_roundup => Cents(100),
        0 => Cents::ZERO,
        cents_past_dollar => Cents(100 - cents_past_dollar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_always_shows_two_decimal_places() {
        assert_eq!(Cents::new(1230).to_string(), "12.30");
        assert_eq!(Cents::new(-5).to_string(), "-0.05");
        assert_eq!(Cents::new(0).to_string(), "0.00");
        assert_eq!(Cents::new(7).to_string(), "0.07");
        assert_eq!(Cents::new(-100).to_string(), "-1.00");
        assert_eq!(Cents::new(i64::MIN).to_string(), "-92233720368547758.08");
        assert_eq!(Cents::new(i64::MAX).to_string(), "92233720368547758.07");
    }

    #[test]
    fn parse_accepts_zero_one_or_two_decimal_places() {
        assert_eq!(Cents::parse("12"), Ok(Cents::new(1200)));
        assert_eq!(Cents::parse("12.3"), Ok(Cents::new(1230)));
        assert_eq!(Cents::parse("12.30"), Ok(Cents::new(1230)));
        assert_eq!(Cents::parse("-1.05"), Ok(Cents::new(-105)));
        assert_eq!(Cents::parse("0.03"), Ok(Cents::new(3)));
        assert_eq!(Cents::parse("-0.5"), Ok(Cents::new(-50)));
        assert_eq!(Cents::parse(" 4.20 "), Ok(Cents::new(420)));
    }

    #[test]
    fn parse_reaches_both_ends_of_the_range() {
        assert_eq!(Cents::parse("-92233720368547758.08"), Ok(Cents::new(i64::MIN)));
        assert_eq!(Cents::parse("92233720368547758.07"), Ok(Cents::new(i64::MAX)));
    }

    #[test]
    fn parse_rejects_what_is_not_a_plain_decimal() {
        for bad in ["", " ", "abc", "1e3", "+1", "1.", ".5", "-", "--1", "1,000", "1.2.3", "1 2", "0x10", "1.-2", "١٢"]
        {
            assert_eq!(Cents::parse(bad), Err(MoneyError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn parse_rejects_a_third_decimal_place() {
        assert_eq!(Cents::parse("1.234"), Err(MoneyError::TooManyDecimalPlaces));
        assert_eq!(Cents::parse("1.000"), Err(MoneyError::TooManyDecimalPlaces));
    }

    #[test]
    fn parse_rejects_amounts_beyond_i64_cents() {
        assert_eq!(Cents::parse("92233720368547758.08"), Err(MoneyError::Overflow));
        assert_eq!(Cents::parse("-92233720368547758.09"), Err(MoneyError::Overflow));
        assert_eq!(Cents::parse("99999999999999999999999999999999999999999999"), Err(MoneyError::Overflow));
    }

    #[test]
    fn checked_arithmetic_reports_overflow() {
        assert_eq!(Cents::new(150).checked_add(Cents::new(-200)), Some(Cents::new(-50)));
        assert_eq!(Cents::new(i64::MAX).checked_add(Cents::new(1)), None);
        assert_eq!(Cents::new(150).checked_sub(Cents::new(200)), Some(Cents::new(-50)));
        assert_eq!(Cents::new(i64::MIN).checked_sub(Cents::new(1)), None);
    }

    #[test]
    fn zero_is_the_default() {
        assert_eq!(Cents::default(), Cents::ZERO);
        assert_eq!(Cents::ZERO.get(), 0);
    }

    #[test]
    fn dollars_as_float_for_json_numbers() {
        assert_eq!(Cents::new(1230).to_f64_dollars(), 12.3);
        assert_eq!(Cents::new(-5).to_f64_dollars(), -0.05);
    }

    #[test]
    fn error_messages_are_the_api_messages() {
        assert_eq!(MoneyError::Invalid.to_string(), "A valid number is required.");
        assert_eq!(
            MoneyError::TooManyDecimalPlaces.to_string(),
            "Ensure that there are no more than 2 decimal places."
        );
    }

    #[test]
    fn arithmetic_is_exact_and_overflow_is_refused_not_wrapped() {
        let amounts = [Cents::new(1230), Cents::new(-5), Cents::new(75)];
        assert_eq!(amounts.iter().sum::<Cents>(), Cents::new(1300));
        assert_eq!(amounts.into_iter().sum::<Cents>(), Cents::new(1300));
        let mut total = Cents::new(100) - Cents::new(250);
        assert_eq!(total, Cents::new(-150));
        total += Cents::new(200);
        total -= Cents::new(1);
        assert_eq!((total, -total, total * 3), (Cents::new(49), Cents::new(-49), Cents::new(147)));
        let max = Cents::new(i64::MAX);
        assert_eq!(max.checked_add(Cents::new(1)), None);
        for overflow in [
            std::panic::catch_unwind(|| max + Cents::new(1)),
            std::panic::catch_unwind(|| Cents::new(i64::MIN) - Cents::new(1)),
            std::panic::catch_unwind(|| max * 2),
            std::panic::catch_unwind(|| [max, Cents::new(1)].into_iter().sum::<Cents>()),
        ] {
            assert!(overflow.is_err(), "an overflow must not wrap");
        }
    }

    #[test]
    fn serializes_as_a_decimal_string() {
        use crate::test_support::serialized;
        assert_eq!(serialized(&Cents::new(1230)), "str:12.30");
        assert_eq!(serialized(&Cents::new(-5)), "str:-0.05");
    }

    #[test]
    fn deserializes_from_a_decimal_string_only() {
        use serde::de::IntoDeserializer;
        use serde::de::value::Error;
        let parsed: Result<Cents, Error> = Cents::deserialize("12.3".into_deserializer());
        assert_eq!(parsed, Ok(Cents::new(1230)));
        let too_precise: Result<Cents, Error> = Cents::deserialize("1.234".into_deserializer());
        assert!(too_precise.is_err());
        let number: Result<Cents, Error> = Cents::deserialize(12_i64.into_deserializer());
        assert!(number.is_err());
    }

    #[test]
    fn roundup_reaches_the_next_whole_dollar() {
        assert_eq!(purchase_roundup(Cents::new(1230), false), Cents::new(70));
        assert_eq!(purchase_roundup(Cents::new(1), false), Cents::new(99));
        assert_eq!(purchase_roundup(Cents::new(199), true), Cents::new(1));
    }

    #[test]
    fn roundup_of_a_whole_dollar_is_zero_unless_even_roundup() {
        assert_eq!(purchase_roundup(Cents::new(500), false), Cents::ZERO);
        assert_eq!(purchase_roundup(Cents::new(500), true), Cents::new(100));
    }

    #[test]
    fn roundup_ignores_zero_and_negative_amounts() {
        assert_eq!(purchase_roundup(Cents::ZERO, true), Cents::ZERO);
        assert_eq!(purchase_roundup(Cents::new(-1230), false), Cents::ZERO);
        assert_eq!(purchase_roundup(Cents::new(-500), true), Cents::ZERO);
    }
}
