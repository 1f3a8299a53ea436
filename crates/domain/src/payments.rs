//! Rules of moving money through Dwolla: the vocabulary of customers, funding sources and
//! transfers, who may send to whom, what an ACH return does to a customer and their bank, and
//! the routing-number checksum.

use std::fmt;

/// Declares an enum over a closed set of Dwolla words: `parse` answers `None` for any other word.
macro_rules! closed_words {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Dwolla's word for this value, as the database stores it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The value [`Self::as_str`] spells as `text`.
            pub fn parse(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|value| value.as_str() == text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Declares an enum over an open set of Dwolla words: a word this program does not know is kept,
/// text and all, as `Other`, so it round-trips through storage unchanged.
macro_rules! open_words {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
            /// A word Dwolla sent that this program does not know.
            Other(String),
        }

        impl $name {
            /// The value Dwolla's `text` names; unknown text becomes `Other`.
            pub fn parse(text: &str) -> $name {
                match text {
                    $($word => $name::$variant,)+
                    other => $name::Other(other.to_owned()),
                }
            }

            /// Dwolla's word for this value, as the database stores it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $word,)+
                    $name::Other(text) => text,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                $name::parse(text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

closed_words! {
    /// The kind of Dwolla customer Donkies makes for a user (`type` at Dwolla).
    CustomerKind {
        Unverified => "unverified",
        ReceiveOnly => "receive-only",
        Personal => "personal",
    }
}

open_words! {
    /// A Dwolla customer's `status` (PROVIDERS B2.2).
    CustomerStatus {
        Unverified => "unverified",
        Retry => "retry",
        Document => "document",
        Verified => "verified",
        Suspended => "suspended",
        Deactivated => "deactivated",
        Kba => "kba",
    }
}

impl CustomerStatus {
    /// Suspended and deactivated customers may neither send nor receive.
    pub fn is_restricted(&self) -> bool {
        matches!(self, CustomerStatus::Suspended | CustomerStatus::Deactivated)
    }
}

closed_words! {
    /// A funding source's `status` (PROVIDERS B3.2).
    FundingSourceStatus {
        Unverified => "unverified",
        Verified => "verified",
    }
}

closed_words! {
    /// A funding source's `type`: a bank account, or a Dwolla balance.
    FundingSourceType {
        Bank => "bank",
        Balance => "balance",
    }
}

closed_words! {
    /// How a funding source is proven to be the user's: micro-deposits, or instant account
    /// verification (the user logs in to the bank through Dwolla).
    VerificationType {
        MicroDeposits => "micro-deposits",
        Iav => "iav",
    }
}

closed_words! {
    /// Where a funding source's micro-deposits stand (PROVIDERS B3.3); `max_attempts` once three
    /// verification attempts failed and the bank must be removed and added again.
    MicroDepositStatus {
        Pending => "pending",
        Processed => "processed",
        Failed => "failed",
        MaxAttempts => "max_attempts",
    }
}

closed_words! {
    /// The kind of bank account behind a bank funding source (`bankAccountType`).
    BankAccountType {
        Checking => "checking",
        Savings => "savings",
    }
}

open_words! {
    /// A transfer's `status` (PROVIDERS B4.2).
    TransferStatus {
        Pending => "pending",
        Processed => "processed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl TransferStatus {
    /// The stored words of the final statuses: `processed`, `failed`, `cancelled`, and the 2016
    /// `reclaimed` (an unclaimed transfer returned to its sender).
    pub const FINAL: [&'static str; 4] = ["processed", "failed", "cancelled", "reclaimed"];

    /// Whether the transfer will not move any more. A status this program does not know is not
    /// final: the transfer stays in flight, where the backup poll and an operator keep seeing it.
    pub fn is_final(&self) -> bool {
        Self::FINAL.contains(&self.as_str())
    }
}

/// One end of a transfer: the Donkies (master) account, or one of its Dwolla customers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferParty {
    Account,
    Customer { kind: CustomerKind, status: CustomerStatus },
}

/// What a party may do, by Dwolla's rule that every transfer needs a verified party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// The Donkies account counts as verified.
    Account,
    Verified,
    Unverified,
    ReceiveOnly,
    Restricted,
}

impl TransferParty {
    fn standing(&self) -> Standing {
        match self {
            TransferParty::Account => Standing::Account,
            TransferParty::Customer { status, .. } if status.is_restricted() => Standing::Restricted,
            TransferParty::Customer { kind: CustomerKind::ReceiveOnly, .. } => Standing::ReceiveOnly,
            TransferParty::Customer { kind: CustomerKind::Personal, status: CustomerStatus::Verified } => {
                Standing::Verified
            }
            // Unverified customers, and personal customers whose verification is still under way
            // (retry, document, kba, or a status this program does not know).
            TransferParty::Customer { .. } => Standing::Unverified,
        }
    }
}

/// Why Dwolla would refuse a transfer between two parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransferRefusal {
    #[error("The sender is suspended or deactivated at Dwolla and may not send money.")]
    SenderRestricted,
    #[error("The receiver is suspended or deactivated at Dwolla and may not receive money.")]
    ReceiverRestricted,
    #[error("A receive-only customer cannot send money.")]
    ReceiveOnlySender,
    #[error(
        "An unverified customer may send only to a verified customer or the Donkies account, \
         not to another unverified customer."
    )]
    UnverifiedToUnverified,
    #[error(
        "An unverified customer may send only to a verified customer or the Donkies account, \
         not to a receive-only customer."
    )]
    UnverifiedToReceiveOnly,
}

/// Whether Dwolla allows `source` to send to `destination` (API.md "Who may send to whom",
/// PROVIDERS B5), checked before a transfer is created so that a refusal reaches an operator.
pub fn check_transfer(source: &TransferParty, destination: &TransferParty) -> Result<(), TransferRefusal> {
    let (from, to) = (source.standing(), destination.standing());
    if from == Standing::Restricted {
        return Err(TransferRefusal::SenderRestricted);
    }
    if to == Standing::Restricted {
        return Err(TransferRefusal::ReceiverRestricted);
    }
    match (from, to) {
        (Standing::ReceiveOnly, _) => Err(TransferRefusal::ReceiveOnlySender),
        (Standing::Unverified, Standing::Unverified) => Err(TransferRefusal::UnverifiedToUnverified),
        (Standing::Unverified, Standing::ReceiveOnly) => Err(TransferRefusal::UnverifiedToReceiveOnly),
        _ => Ok(()),
    }
}

/// What Dwolla does on an ACH return, so that our records follow (PROVIDERS B4.4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReturnConsequences {
    /// The status the customer is moved to: [`CustomerStatus::Suspended`] or
    /// [`CustomerStatus::Deactivated`], or none.
    pub customer: Option<CustomerStatus>,
    pub unverify_funding_source: bool,
    pub remove_funding_source: bool,
}

/// The consequences of the ACH return `code` (`R01` … as Dwolla's failure names it; `R1` is read
/// as `R01`). R01 and R09 change nothing; a code the table does not list removes and unverifies
/// the bank, as Dwolla does for every return but a few, and leaves the customer alone.
pub fn return_consequences(code: &str) -> ReturnConsequences {
    use CustomerStatus::{Deactivated, Suspended};
    let code = code.trim().to_ascii_uppercase();
    let code = match code.as_bytes() {
        [b'R', digit] if digit.is_ascii_digit() => format!("R0{}", char::from(*digit)),
        _ => code,
    };
    let (customer, unverify, remove) = match code.as_str() {
        "R01" | "R09" => (None, false, false),
        "R02" | "R03" | "R04" | "R08" | "R13" | "R23" => (None, true, true),
        "R05" | "R06" | "R10" | "R15" | "R16" | "R17" | "R29" | "R31" | "R38" | "R51" => (Some(Suspended), true, true),
        "R07" | "R11" => (Some(Deactivated), true, true),
        "R12" | "R20" | "R37" => (None, false, true),
        "R14" => (Some(Suspended), false, true),
        "R22" => (None, true, false),
        _ => (None, true, true),
    };
    ReturnConsequences { customer, unverify_funding_source: unverify, remove_funding_source: remove }
}

/// Whether `text` is an ABA routing number: nine digits whose weighted sum (weights 3, 7, 1
/// repeating) is a multiple of ten.
pub fn valid_routing_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 9 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 =
        bytes.iter().zip([3, 7, 1].iter().cycle()).map(|(digit, weight)| u32::from(digit - b'0') * weight).sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(kind: CustomerKind, status: CustomerStatus) -> TransferParty {
        TransferParty::Customer { kind, status }
    }

    /// Every kind of party the matrix distinguishes, named for failure messages.
    fn parties() -> Vec<(&'static str, TransferParty)> {
        use CustomerKind::*;
        vec![
            ("account", TransferParty::Account),
            ("verified", customer(Personal, CustomerStatus::Verified)),
            ("unverified", customer(Unverified, CustomerStatus::Unverified)),
            ("personal unverified", customer(Personal, CustomerStatus::Unverified)),
            ("personal retry", customer(Personal, CustomerStatus::Retry)),
            ("personal document", customer(Personal, CustomerStatus::Document)),
            ("personal kba", customer(Personal, CustomerStatus::Kba)),
            ("receive-only", customer(ReceiveOnly, CustomerStatus::Unverified)),
            ("suspended", customer(Personal, CustomerStatus::Suspended)),
            ("deactivated", customer(Unverified, CustomerStatus::Deactivated)),
        ]
    }

    /// The matrix as API.md and PROVIDERS B5 state it, one class a row.
    fn expected(source: &str, destination: &str) -> Result<(), TransferRefusal> {
        let class = |name: &str| match name {
            "account" => "account",
            "verified" => "verified",
            "receive-only" => "receive-only",
            "suspended" | "deactivated" => "restricted",
            _ => "unverified",
        };
        match (class(source), class(destination)) {
            ("restricted", _) => Err(TransferRefusal::SenderRestricted),
            (_, "restricted") => Err(TransferRefusal::ReceiverRestricted),
            ("receive-only", _) => Err(TransferRefusal::ReceiveOnlySender),
            ("unverified", "unverified") => Err(TransferRefusal::UnverifiedToUnverified),
            ("unverified", "receive-only") => Err(TransferRefusal::UnverifiedToReceiveOnly),
            ("account" | "verified", _) | ("unverified", "verified" | "account") => Ok(()),
            pair => panic!("the matrix has no row for {pair:?}"),
        }
    }

    #[test]
    fn every_pair_of_parties_follows_the_permission_matrix() {
        let mut pairs = 0;
        for (source_name, source) in parties() {
            for (destination_name, destination) in parties() {
                assert_eq!(
                    check_transfer(&source, &destination),
                    expected(source_name, destination_name),
                    "{source_name} → {destination_name}"
                );
                pairs += 1;
            }
        }
        assert_eq!(pairs, 100);
    }

    #[test]
    fn the_account_sends_to_every_customer_that_may_receive_and_to_itself() {
        let account = TransferParty::Account;
        for destination in [
            TransferParty::Account,
            customer(CustomerKind::Unverified, CustomerStatus::Unverified),
            customer(CustomerKind::Personal, CustomerStatus::Verified),
            customer(CustomerKind::ReceiveOnly, CustomerStatus::Unverified),
        ] {
            assert_eq!(check_transfer(&account, &destination), Ok(()), "{destination:?}");
        }
    }

    #[test]
    fn a_verified_status_on_an_unverified_kind_does_not_make_a_verified_sender() {
        let odd = customer(CustomerKind::Unverified, CustomerStatus::Verified);
        let unverified = customer(CustomerKind::Unverified, CustomerStatus::Unverified);
        assert_eq!(check_transfer(&odd, &unverified), Err(TransferRefusal::UnverifiedToUnverified));
    }

    #[test]
    fn an_unknown_customer_status_counts_as_unverified() {
        let unknown = customer(CustomerKind::Personal, CustomerStatus::parse("under-review"));
        let unverified = customer(CustomerKind::Unverified, CustomerStatus::Unverified);
        assert_eq!(check_transfer(&unknown, &unverified), Err(TransferRefusal::UnverifiedToUnverified));
        assert_eq!(check_transfer(&unknown, &TransferParty::Account), Ok(()));
    }

    #[test]
    fn a_restricted_sender_is_named_before_a_restricted_receiver() {
        let suspended = customer(CustomerKind::Personal, CustomerStatus::Suspended);
        assert_eq!(check_transfer(&suspended, &suspended), Err(TransferRefusal::SenderRestricted));
    }

    #[test]
    fn refusals_read_as_sentences_for_an_operator() {
        for refusal in [
            TransferRefusal::SenderRestricted,
            TransferRefusal::ReceiverRestricted,
            TransferRefusal::ReceiveOnlySender,
            TransferRefusal::UnverifiedToUnverified,
            TransferRefusal::UnverifiedToReceiveOnly,
        ] {
            let text = refusal.to_string();
            assert!(text.starts_with(char::is_uppercase) && text.ends_with('.'), "{text}");
        }
    }

    fn consequences(customer: Option<CustomerStatus>, unverify: bool, remove: bool) -> ReturnConsequences {
        ReturnConsequences { customer, unverify_funding_source: unverify, remove_funding_source: remove }
    }

    #[test]
    fn ach_returns_follow_dwollas_table() {
        let cases = [
            ("R01", consequences(None, false, false)),
            ("R02", consequences(None, true, true)),
            ("R03", consequences(None, true, true)),
            ("R05", consequences(Some(CustomerStatus::Suspended), true, true)),
            ("R07", consequences(Some(CustomerStatus::Deactivated), true, true)),
            ("R09", consequences(None, false, false)),
            ("R14", consequences(Some(CustomerStatus::Suspended), false, true)),
            ("R20", consequences(None, false, true)),
            ("R22", consequences(None, true, false)),
        ];
        for (code, expected) in cases {
            assert_eq!(return_consequences(code), expected, "{code}");
        }
    }

    #[test]
    fn an_unknown_return_code_removes_and_unverifies_the_bank_but_spares_the_customer() {
        assert_eq!(return_consequences("R99"), consequences(None, true, true));
        assert_eq!(return_consequences(""), consequences(None, true, true));
    }

    #[test]
    fn return_codes_are_read_in_any_case_and_without_the_leading_zero() {
        assert_eq!(return_consequences(" r01 "), consequences(None, false, false));
        assert_eq!(return_consequences("R1"), consequences(None, false, false));
        assert_eq!(return_consequences("R7"), return_consequences("R07"));
    }

    #[test]
    fn the_sandbox_routing_number_is_valid_and_a_near_miss_is_not() {
        assert!(valid_routing_number("222222226"));
        assert!(!valid_routing_number("222222225"));
        assert!(!valid_routing_number("22222222"));
        assert!(!valid_routing_number("2222222260"));
        assert!(!valid_routing_number("22222222a"));
        assert!(!valid_routing_number("-22222226"));
        // Real banks' numbers.
        assert!(valid_routing_number("021000021"));
        assert!(valid_routing_number("011000015"));
    }

    #[test]
    fn closed_vocabularies_round_trip_and_refuse_other_words() {
        for kind in CustomerKind::ALL {
            assert_eq!(CustomerKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(CustomerKind::parse("receive-only"), Some(CustomerKind::ReceiveOnly));
        assert_eq!(CustomerKind::parse("business"), None);
        assert_eq!(MicroDepositStatus::parse("max_attempts"), Some(MicroDepositStatus::MaxAttempts));
        for status in MicroDepositStatus::ALL {
            assert_eq!(MicroDepositStatus::parse(status.as_str()), Some(*status));
        }
        for status in FundingSourceStatus::ALL {
            assert_eq!(FundingSourceStatus::parse(status.as_str()), Some(*status));
        }
        for kind in BankAccountType::ALL {
            assert_eq!(BankAccountType::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(BankAccountType::parse("loan"), None);
        assert_eq!(VerificationType::parse("micro-deposits"), Some(VerificationType::MicroDeposits));
        assert_eq!(FundingSourceType::parse("balance"), Some(FundingSourceType::Balance));
        assert_eq!(FundingSourceStatus::parse("Verified"), None);
    }

    #[test]
    fn open_vocabularies_keep_unknown_words() {
        for word in ["unverified", "retry", "document", "verified", "suspended", "deactivated", "kba"] {
            let status = CustomerStatus::parse(word);
            assert!(!matches!(status, CustomerStatus::Other(_)), "{word}");
            assert_eq!(status.as_str(), word);
        }
        assert_eq!(CustomerStatus::parse("frozen"), CustomerStatus::Other("frozen".to_owned()));
        assert_eq!(CustomerStatus::parse("frozen").as_str(), "frozen");
        assert_eq!(TransferStatus::parse("reclaimed").as_str(), "reclaimed");
    }

    #[test]
    fn only_resolved_transfers_are_final() {
        assert!(!TransferStatus::Pending.is_final());
        assert!(TransferStatus::Processed.is_final());
        assert!(TransferStatus::Failed.is_final());
        assert!(TransferStatus::Cancelled.is_final());
        assert!(TransferStatus::parse("reclaimed").is_final());
        assert!(!TransferStatus::parse("on-hold").is_final());
    }
}
