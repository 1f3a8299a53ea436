//! Domain values in columns: decoding the stored text or integer into a domain type happens
//! here and only here, at the store's edge. The domain crate knows nothing of sqlx.

use donkies_domain::{
    AccountFamily, BankAccountType, Cents, CustomerKind, CustomerStatus, Direction, FundingSourceStatus,
    FundingSourceType, MemberStatus, MicroDepositStatus, Share, TransferAmount, TransferStatus, VerificationType,
};
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Type};

/// A column holding a `T`; rows name it in `#[sqlx(try_from = "Col<T>")]`.
pub(crate) struct Col<T>(pub T);

/// A domain type and the raw column type it is stored as.
pub(crate) trait Stored: Sized {
    type Raw;
    fn from_raw(raw: Self::Raw) -> Result<Self, String>;
}

impl<'r, DB: Database, T: Stored> Decode<'r, DB> for Col<T>
where
    T::Raw: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let raw = T::Raw::decode(value)?;
        Ok(Col(T::from_raw(raw)?))
    }
}

impl<DB: Database, T: Stored> Type<DB> for Col<T>
where
    T::Raw: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        T::Raw::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        T::Raw::compatible(ty)
    }
}

impl<T: Stored> Stored for Option<T> {
    type Raw = Option<T::Raw>;
    fn from_raw(raw: Self::Raw) -> Result<Self, String> {
        raw.map(T::from_raw).transpose()
    }
}

impl Stored for Cents {
    type Raw = i64;
    fn from_raw(raw: i64) -> Result<Self, String> {
        Ok(Cents::new(raw))
    }
}

impl Stored for Share {
    type Raw = i64;
    fn from_raw(raw: i64) -> Result<Self, String> {
        Share::new(raw).map_err(|_| format!("transfer share {raw} is not 0-100"))
    }
}

impl Stored for TransferAmount {
    type Raw = i64;
    fn from_raw(raw: i64) -> Result<Self, String> {
        TransferAmount::parse(raw).map_err(|_| format!("minimum transfer amount {raw} is not a choice"))
    }
}

impl Stored for AccountFamily {
    type Raw = String;
    fn from_raw(raw: String) -> Result<Self, String> {
        AccountFamily::parse(&raw).ok_or_else(|| format!("{raw:?} is not an account family"))
    }
}

impl Stored for Direction {
    type Raw = String;
    fn from_raw(raw: String) -> Result<Self, String> {
        Direction::parse(&raw).ok_or_else(|| format!("{raw:?} is not a transaction direction"))
    }
}

/// Columns holding one of a closed set of words: any other stored word is refused.
macro_rules! closed_word_column {
    ($($t:ty => $what:literal),* $(,)?) => {$(
        impl Stored for $t {
            type Raw = String;
            fn from_raw(raw: String) -> Result<Self, String> {
                <$t>::parse(&raw).ok_or_else(|| format!(concat!("{:?} is not ", $what), raw))
            }
        }
    )*};
}

closed_word_column!(
    CustomerKind => "a customer kind",
    FundingSourceStatus => "a funding-source status",
    FundingSourceType => "a funding-source type",
    VerificationType => "a verification type",
    MicroDepositStatus => "a micro-deposit status",
    BankAccountType => "a bank account type",
);

/// Columns holding an open set of words: unknown words are kept as they are.
macro_rules! open_word_column {
    ($($t:ty),* $(,)?) => {$(
        impl Stored for $t {
            type Raw = String;
            fn from_raw(raw: String) -> Result<Self, String> {
                Ok(<$t>::parse(&raw))
            }
        }
    )*};
}

open_word_column!(MemberStatus, CustomerStatus, TransferStatus);

/// `#[sqlx(try_from)]` converts the decoded column into the field's type.
macro_rules! unwrap_column {
    ($($t:ty),* $(,)?) => {$(
        impl From<Col<$t>> for $t {
            fn from(column: Col<$t>) -> $t {
                column.0
            }
        }
    )*};
}

unwrap_column!(
    Cents,
    Option<Cents>,
    Share,
    TransferAmount,
    AccountFamily,
    Direction,
    MemberStatus,
    CustomerKind,
    CustomerStatus,
    Option<CustomerStatus>,
    FundingSourceStatus,
    FundingSourceType,
    VerificationType,
    MicroDepositStatus,
    Option<MicroDepositStatus>,
    BankAccountType,
    TransferStatus,
);
