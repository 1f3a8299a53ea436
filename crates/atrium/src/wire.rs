//! The JSON of the Atrium API as serde structs (PROVIDERS.md A2–A8).
//!
//! The client reads these and the simulator in `donkies-sandbox` writes them,
//! so the two cannot drift. Reading is lenient, as the reference asks: unknown
//! fields are ignored, later additions are optional, unknown enum values are
//! kept as `Other(..)`, and a malformed optional date or number becomes `None`
//! instead of failing the whole response.
//!
//! Money is carried as [`Amount`], integer cents, never a float in memory.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The vendor media type every request sends in `Accept`.
pub const MEDIA_TYPE: &str = "application/vnd.mx.atrium.v1+json";
/// Header carrying the API key.
pub const API_KEY_HEADER: &str = "MX-API-Key";
/// Header carrying the client id.
pub const CLIENT_ID_HEADER: &str = "MX-Client-ID";
/// Default `records_per_page` when a request names none.
pub const DEFAULT_RECORDS_PER_PAGE: u32 = 25;
/// Largest `records_per_page` the server honours.
pub const MAX_RECORDS_PER_PAGE: u32 = 1000;

/// Declares a string enum whose unknown values survive as `Other(String)`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
            /// A value this client does not know.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(text) => text,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $($text => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Ok(Self::from(text.as_str()))
            }
        }
    };
}

wire_enum! {
    /// The 2016 `status` of a member (A4.1).
    MemberStatus {
        Initiated => "INITIATED",
        Requested => "REQUESTED",
        Authenticated => "AUTHENTICATED",
        Received => "RECEIVED",
        Transferred => "TRANSFERRED",
        Processed => "PROCESSED",
        Challenged => "CHALLENGED",
        Completed => "COMPLETED",
        Denied => "DENIED",
        Prevented => "PREVENTED",
        Halted => "HALTED",
        Failed => "FAILED",
    }
}

impl MemberStatus {
    /// Whether polling can stop: the aggregation ended or waits for the user.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Self::Challenged | Self::Completed | Self::Denied | Self::Prevented | Self::Halted | Self::Failed
        )
    }
}

wire_enum! {
    /// The later `connection_status` of a member (A4.2).
    ConnectionStatus {
        Created => "CREATED",
        Prevented => "PREVENTED",
        Denied => "DENIED",
        Challenged => "CHALLENGED",
        Rejected => "REJECTED",
        Locked => "LOCKED",
        Connected => "CONNECTED",
        Impeded => "IMPEDED",
        Reconnected => "RECONNECTED",
        Degraded => "DEGRADED",
        Disconnected => "DISCONNECTED",
        Discontinued => "DISCONTINUED",
        Closed => "CLOSED",
        Delayed => "DELAYED",
        Failed => "FAILED",
        Updated => "UPDATED",
        Disabled => "DISABLED",
        Imported => "IMPORTED",
        Resumed => "RESUMED",
        Expired => "EXPIRED",
        Impaired => "IMPAIRED",
        Pending => "PENDING",
    }
}

wire_enum! {
    /// The `type` of an institution credential (A3.2).
    CredentialType {
        Login => "LOGIN",
        Password => "PASSWORD",
        Text => "TEXT",
        Options => "OPTIONS",
        Hidden => "HIDDEN",
    }
}

wire_enum! {
    /// The `type` of an MFA challenge (A5).
    ChallengeType {
        Text => "TEXT",
        Options => "OPTIONS",
        ImageData => "IMAGE_DATA",
        ImageOptions => "IMAGE_OPTIONS",
        Token => "TOKEN",
    }
}

wire_enum! {
    /// The `type` of an account (A7.1).
    AccountType {
        Checking => "CHECKING",
        Savings => "SAVINGS",
        Loan => "LOAN",
        CreditCard => "CREDIT_CARD",
        LineOfCredit => "LINE_OF_CREDIT",
        Mortgage => "MORTGAGE",
        Investment => "INVESTMENT",
        Property => "PROPERTY",
        Cash => "CASH",
        Prepaid => "PREPAID",
    }
}

wire_enum! {
    /// Direction of a transaction: amounts are unsigned (A7.2).
    TransactionType {
        Debit => "DEBIT",
        Credit => "CREDIT",
    }
}

wire_enum! {
    /// Whether a transaction has posted (A7.2).
    TransactionStatus {
        Posted => "POSTED",
        Pending => "PENDING",
    }
}

/// An amount of money in integer cents. On the wire it is a JSON number with
/// up to two decimals (`28.79`); reading also accepts a decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i64);

impl Amount {
    pub const fn from_cents(cents: i64) -> Self {
        Self(cents)
    }

    pub const fn cents(self) -> i64 {
        self.0
    }

    fn from_f64(value: f64) -> Option<Self> {
        let cents = (value * 100.0).round();
        // i64 range with room to spare; beyond 2^53 cents f64 is not exact anyway.
        (cents.is_finite() && cents.abs() < 9.0e15).then_some(Self(cents as i64))
    }

    fn parse_decimal(text: &str) -> Option<Self> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || !all_digits(fraction) || fraction.len() > 2 {
            return None;
        }
        let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
        let fraction: i64 = match fraction.len() {
            0 => 0,
            1 => fraction.parse::<i64>().ok()? * 10,
            _ => fraction.parse().ok()?,
        };
        let cents = whole.checked_mul(100)?.checked_add(fraction)?;
        Some(Self(if negative { -cents } else { cents }))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The nearest double to n/100 prints back as the shortest decimal, "28.79".
        serializer.serialize_f64(self.0 as f64 / 100.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AmountVisitor;

        impl serde::de::Visitor<'_> for AmountVisitor {
            type Value = Amount;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount as a number or decimal string")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Amount, E> {
                v.checked_mul(100).map(Amount).ok_or_else(|| E::custom("amount out of range"))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Amount, E> {
                i64::try_from(v)
                    .ok()
                    .and_then(|v| v.checked_mul(100))
                    .map(Amount)
                    .ok_or_else(|| E::custom("amount out of range"))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Amount, E> {
                Amount::from_f64(v).ok_or_else(|| E::custom("amount out of range"))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Amount, E> {
                Amount::parse_decimal(v).ok_or_else(|| E::custom("not a decimal amount"))
            }
        }

        deserializer.deserialize_any(AmountVisitor)
    }
}

/// Lenient readers and Atrium-shaped writers for optional fields.
pub mod lenient {
    use super::*;
    use serde_json::Value;

    /// `_at` fields: written as `2016-11-11T21:31:35+00:00`, read from any
    /// RFC 3339 form; anything unreadable becomes `None`.
    pub mod datetime {
        use super::*;

        pub fn serialize<S: Serializer>(value: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(at) => serializer.serialize_str(&at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
            Ok(match Value::deserialize(deserializer)? {
                Value::String(text) => parse(&text),
                _ => None,
            })
        }

        pub(crate) fn parse(text: &str) -> Option<DateTime<Utc>> {
            if let Ok(at) = DateTime::parse_from_rfc3339(text) {
                return Some(at.with_timezone(&Utc));
            }
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").ok().map(|naive| naive.and_utc())
        }
    }

    /// `_on` fields: `YYYY-MM-DD`; anything unreadable becomes `None`.
    pub mod date {
        use super::*;

        pub fn serialize<S: Serializer>(value: &Option<NaiveDate>, serializer: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(date) => serializer.serialize_str(&date.format("%Y-%m-%d").to_string()),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<NaiveDate>, D::Error> {
            Ok(match Value::deserialize(deserializer)? {
                Value::String(text) => {
                    let day = text.get(..10).unwrap_or(&text);
                    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
                }
                _ => None,
            })
        }
    }

    /// Integers that some clients modelled as strings (`day_payment_is_due`).
    pub mod int {
        use super::*;

        pub fn serialize<S: Serializer>(value: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(n) => serializer.serialize_i64(*n),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
            Ok(match Value::deserialize(deserializer)? {
                Value::Number(n) => n.as_i64(),
                Value::String(text) => text.trim().parse().ok(),
                _ => None,
            })
        }
    }

    /// Optional amounts; anything unreadable becomes `None`.
    pub mod amount {
        use super::*;

        pub fn serialize<S: Serializer>(value: &Option<Amount>, serializer: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(amount) => amount.serialize(serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Amount>, D::Error> {
            let value = Value::deserialize(deserializer)?;
            Ok(match value {
                Value::Null => None,
                other => Amount::deserialize(other).ok(),
            })
        }
    }

    /// Optional floats (rates); anything unreadable becomes `None`.
    pub mod float {
        use super::*;

        pub fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(n) => serializer.serialize_f64(*n),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
            Ok(match Value::deserialize(deserializer)? {
                Value::Number(n) => n.as_f64(),
                Value::String(text) => text.trim().parse().ok(),
                _ => None,
            })
        }
    }
}

// ---------------------------------------------------------------------------
// Paging and errors

/// The `pagination` object of every list (A2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pagination {
    #[serde(default = "one")]
    pub current_page: u32,
    #[serde(default = "default_per_page")]
    pub per_page: u32,
    #[serde(default)]
    pub total_entries: u64,
    #[serde(default = "one")]
    pub total_pages: u32,
}

fn one() -> u32 {
    1
}

fn default_per_page() -> u32 {
    DEFAULT_RECORDS_PER_PAGE
}

/// Query of a plain paged list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_per_page: Option<u32>,
}

/// Query of `GET /institutions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_per_page: Option<u32>,
}

/// Query of the transaction lists (`YYYY-MM-DD` dates, A3.5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_per_page: Option<u32>,
}

/// The error body: `{"error": {"message": "…"}}` (Decisions; A8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorMessage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    pub message: String,
}

impl ErrorBody {
    pub fn new(message: impl Into<String>) -> Self {
        Self { error: ErrorMessage { message: message.into() } }
    }
}

// ---------------------------------------------------------------------------
// Users (A3.1)

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub guid: String,
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub is_disabled: bool,
    #[serde(default)]
    pub metadata: Option<String>,
}

/// Body of `POST /users` and `PUT /users/{guid}` inside `{"user": …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// Free text; MX suggests a JSON document in a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_disabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUserBody {
    pub user: NewUser,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserBody {
    pub user: User,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersBody {
    #[serde(default)]
    pub users: Vec<User>,
    pub pagination: Pagination,
}

// ---------------------------------------------------------------------------
// Institutions and credentials (A3.2)

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Institution {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium_logo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub small_logo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports_account_identification: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports_account_statement: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports_account_verification: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports_transaction_history: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionBody {
    pub institution: Institution,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionsBody {
    #[serde(default)]
    pub institutions: Vec<Institution>,
    pub pagination: Pagination,
}

/// A field an institution asks for at login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub guid: String,
    #[serde(default)]
    pub field_name: Option<String>,
    #[serde(default)]
    pub label: String,
    #[serde(rename = "type")]
    pub credential_type: CredentialType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_order: Option<u32>,
}

/// `{"credentials": […]}`, without pagination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsBody {
    #[serde(default)]
    pub credentials: Vec<Credential>,
}

// ---------------------------------------------------------------------------
// Members (A3.3, A4)

/// A value typed by the user for one credential. Its `Debug` hides the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialValue {
    pub guid: String,
    pub value: String,
}

impl CredentialValue {
    pub fn new(guid: impl Into<String>, value: impl Into<String>) -> Self {
        Self { guid: guid.into(), value: value.into() }
    }
}

impl fmt::Debug for CredentialValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialValue").field("guid", &self.guid).field("value", &"***").finish()
    }
}

/// Answer to one MFA challenge: its guid and the text or option value.
/// Its `Debug` hides the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeAnswer {
    pub guid: String,
    pub value: String,
}

impl ChallengeAnswer {
    pub fn new(guid: impl Into<String>, value: impl Into<String>) -> Self {
        Self { guid: guid.into(), value: value.into() }
    }
}

impl fmt::Debug for ChallengeAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChallengeAnswer").field("guid", &self.guid).field("value", &"***").finish()
    }
}

/// Body of `POST /users/{u}/members` inside `{"member": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMember {
    pub institution_code: String,
    pub credentials: Vec<CredentialValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMemberBody {
    pub member: NewMember,
}

/// Body of `PUT /users/{u}/members/{m}`; new credentials start an aggregation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<CredentialValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
}

impl MemberUpdate {
    pub fn credentials(credentials: Vec<CredentialValue>) -> Self {
        Self { credentials: Some(credentials), ..Self::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberUpdateBody {
    pub member: MemberUpdate,
}

/// Body of `PUT …/resume` inside `{"member": …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeMember {
    #[serde(default)]
    pub challenges: Vec<ChallengeAnswer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeMemberBody {
    pub member: ResumeMember,
}

/// A user's login at one institution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub guid: String,
    pub user_guid: String,
    pub institution_code: String,
    #[serde(default)]
    pub name: Option<String>,
    pub status: MemberStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_status: Option<ConnectionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_being_aggregated: Option<bool>,
    #[serde(default, with = "lenient::datetime")]
    pub aggregated_at: Option<DateTime<Utc>>,
    #[serde(default, with = "lenient::datetime")]
    pub successfully_aggregated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberBody {
    pub member: Member,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersBody {
    #[serde(default)]
    pub members: Vec<Member>,
    pub pagination: Pagination,
}

/// `GET …/status`: where an aggregation stands, with the challenges while
/// the member is CHALLENGED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberConnectionStatus {
    pub guid: String,
    pub status: MemberStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_status: Option<ConnectionStatus>,
    #[serde(default, with = "lenient::datetime")]
    pub aggregated_at: Option<DateTime<Utc>>,
    #[serde(default, with = "lenient::datetime")]
    pub successfully_aggregated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_authenticated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_being_aggregated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_processed_accounts: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_processed_transactions: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub challenges: Vec<Challenge>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatusBody {
    pub member: MemberConnectionStatus,
}

// ---------------------------------------------------------------------------
// Challenges (A5)

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub guid: String,
    #[serde(default)]
    pub label: String,
    #[serde(rename = "type")]
    pub challenge_type: ChallengeType,
    #[serde(default)]
    pub field_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<ChallengeOption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_data: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_options: Vec<ImageOption>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeOption {
    #[serde(default)]
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageOption {
    #[serde(default)]
    pub label: String,
    pub value: String,
    #[serde(default)]
    pub data_uri: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengesBody {
    #[serde(default)]
    pub challenges: Vec<Challenge>,
}

// ---------------------------------------------------------------------------
// Accounts (A7.1)

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub guid: String,
    #[serde(default)]
    pub member_guid: Option<String>,
    #[serde(default)]
    pub user_guid: Option<String>,
    #[serde(default)]
    pub institution_code: Option<String>,
    #[serde(default)]
    pub name: String,
    /// A later addition to the Atrium account; stable across re-links of
    /// the same login, unlike the guid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_number: Option<String>,
    #[serde(rename = "type")]
    pub account_type: AccountType,
    #[serde(default)]
    pub subtype: Option<String>,
    #[serde(default, with = "lenient::amount")]
    pub balance: Option<Amount>,
    #[serde(default, with = "lenient::amount")]
    pub available_balance: Option<Amount>,
    #[serde(default, with = "lenient::amount")]
    pub available_credit: Option<Amount>,
    #[serde(default, with = "lenient::amount")]
    pub credit_limit: Option<Amount>,
    #[serde(default, with = "lenient::float")]
    pub apr: Option<f64>,
    #[serde(default, with = "lenient::float")]
    pub apy: Option<f64>,
    #[serde(default, with = "lenient::float")]
    pub interest_rate: Option<f64>,
    #[serde(default, with = "lenient::int")]
    pub day_payment_is_due: Option<i64>,
    #[serde(default, with = "lenient::amount")]
    pub last_payment: Option<Amount>,
    #[serde(default, with = "lenient::datetime")]
    pub last_payment_at: Option<DateTime<Utc>>,
    #[serde(default, with = "lenient::datetime")]
    pub payment_due_at: Option<DateTime<Utc>>,
    #[serde(default, with = "lenient::date")]
    pub matures_on: Option<NaiveDate>,
    #[serde(default, with = "lenient::date")]
    pub started_on: Option<NaiveDate>,
    #[serde(default, with = "lenient::amount")]
    pub minimum_balance: Option<Amount>,
    #[serde(default, with = "lenient::amount")]
    pub minimum_payment: Option<Amount>,
    #[serde(default, with = "lenient::amount")]
    pub original_balance: Option<Amount>,
    #[serde(default, with = "lenient::amount")]
    pub payoff_balance: Option<Amount>,
    #[serde(default, with = "lenient::amount")]
    pub total_account_value: Option<Amount>,
    #[serde(default)]
    pub is_closed: bool,
    #[serde(default, with = "lenient::datetime")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, with = "lenient::datetime")]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountBody {
    pub account: Account,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountsBody {
    #[serde(default)]
    pub accounts: Vec<Account>,
    pub pagination: Pagination,
}

// ---------------------------------------------------------------------------
// Transactions (A7.2)

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    pub guid: String,
    #[serde(default)]
    pub account_guid: Option<String>,
    #[serde(default)]
    pub member_guid: Option<String>,
    #[serde(default)]
    pub user_guid: Option<String>,
    /// Unsigned; the direction is `transaction_type`.
    pub amount: Amount,
    #[serde(rename = "type")]
    pub transaction_type: TransactionType,
    #[serde(default = "posted")]
    pub status: TransactionStatus,
    pub date: NaiveDate,
    #[serde(default, with = "lenient::datetime")]
    pub transacted_at: Option<DateTime<Utc>>,
    #[serde(default, with = "lenient::datetime")]
    pub posted_at: Option<DateTime<Utc>>,
    #[serde(default, with = "lenient::datetime")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, with = "lenient::datetime")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub original_description: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub top_level_category: Option<String>,
    #[serde(default)]
    pub is_bill_pay: bool,
    #[serde(default)]
    pub is_direct_deposit: bool,
    #[serde(default)]
    pub is_expense: bool,
    #[serde(default)]
    pub is_fee: bool,
    #[serde(default)]
    pub is_income: bool,
    #[serde(default)]
    pub is_overdraft_fee: bool,
    #[serde(default)]
    pub is_payroll_advance: bool,
    #[serde(default, with = "lenient::int")]
    pub check_number: Option<i64>,
    #[serde(default, with = "lenient::int")]
    pub merchant_category_code: Option<i64>,
    #[serde(default, with = "lenient::float")]
    pub latitude: Option<f64>,
    #[serde(default, with = "lenient::float")]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub memo: Option<String>,
}

fn posted() -> TransactionStatus {
    TransactionStatus::Posted
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionBody {
    pub transaction: Transaction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionsBody {
    #[serde(default)]
    pub transactions: Vec<Transaction>,
    pub pagination: Pagination,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amount_reads_numbers_and_strings_as_cents() {
        let read = |v: serde_json::Value| serde_json::from_value::<Amount>(v).unwrap().cents();
        assert_eq!(read(json!(28.79)), 2879);
        assert_eq!(read(json!(1000.0)), 100_000);
        assert_eq!(read(json!(12)), 1200);
        assert_eq!(read(json!("0.1")), 10);
        assert_eq!(read(json!("-4.05")), -405);
        assert!(serde_json::from_value::<Amount>(json!("1.234")).is_err());
    }

    #[test]
    fn amount_writes_a_json_number_with_cents() {
        assert_eq!(serde_json::to_string(&Amount::from_cents(2879)).unwrap(), "28.79");
        assert_eq!(serde_json::to_string(&Amount::from_cents(100_000)).unwrap(), "1000.0");
        assert_eq!(Amount::from_cents(-5).to_string(), "-0.05");
    }

    #[test]
    fn unknown_enum_values_survive_a_round_trip() {
        let status: MemberStatus = serde_json::from_value(json!("RECONNECTING")).unwrap();
        assert_eq!(status, MemberStatus::Other("RECONNECTING".into()));
        assert_eq!(serde_json::to_value(&status).unwrap(), json!("RECONNECTING"));
    }

    #[test]
    fn datetimes_are_written_with_an_explicit_offset() {
        let member: Member = serde_json::from_value(json!({
            "guid": "MBR-1", "user_guid": "USR-1", "institution_code": "mxbank",
            "status": "INITIATED", "aggregated_at": "2016-11-11T17:12:36Z",
            "successfully_aggregated_at": "not a date", "extra": 1
        }))
        .unwrap();
        assert!(member.successfully_aggregated_at.is_none());
        let written = serde_json::to_value(&member).unwrap();
        assert_eq!(written["aggregated_at"], json!("2016-11-11T17:12:36+00:00"));
        assert_eq!(written["identifier"], json!(null));
    }

    #[test]
    fn the_2016_real_transaction_payload_parses() {
        let transaction: Transaction = serde_json::from_value(json!({
            "guid": "TRN-1", "account_guid": "ACT-1", "member_guid": "MBR-1",
            "user_guid": "USR-1", "amount": 28.79, "type": "DEBIT", "status": "POSTED",
            "date": "2016-11-11", "transacted_at": "2016-11-11T12:00:00+00:00",
            "posted_at": "2016-11-11T12:00:00+00:00", "description": "Pyrefunc Disc Filter",
            "original_description": "Pyrefunc Disc Filter", "category": "Uncategorized",
            "top_level_category": "Uncategorized", "is_expense": true, "is_income": false,
            "check_number": null, "latitude": null, "longitude": null, "memo": null
        }))
        .unwrap();
        assert_eq!(transaction.amount.cents(), 2879);
        assert_eq!(transaction.transaction_type, TransactionType::Debit);
    }

    #[test]
    fn credential_values_hide_in_debug() {
        let value = CredentialValue::new("CRD-1", "secret-password");
        assert!(!format!("{value:?}").contains("secret-password"));
        let answer = ChallengeAnswer::new("CRD-2", "correct");
        assert!(!format!("{answer:?}").contains("correct"));
    }
}
