//! Rules of bank linking: member statuses and how they are presented, account families,
//! transaction directions, and the round-up of a transaction.

use std::fmt;

use crate::money::{Cents, purchase_roundup};

/// A member's aggregation status as the aggregator reports it.
///
/// The aggregator may add statuses; one this program does not know is kept, text and all, as
/// [`MemberStatus::Other`], so it round-trips through storage unchanged and presents as an error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    Initiated,
    Requested,
    Authenticated,
    Received,
    Transferred,
    Processed,
    Challenged,
    Completed,
    Denied,
    Prevented,
    Halted,
    Failed,
    Other(String),
}

impl MemberStatus {
    const KNOWN: [(MemberStatus, &'static str); 12] = [
        (MemberStatus::Initiated, "INITIATED"),
        (MemberStatus::Requested, "REQUESTED"),
        (MemberStatus::Authenticated, "AUTHENTICATED"),
        (MemberStatus::Received, "RECEIVED"),
        (MemberStatus::Transferred, "TRANSFERRED"),
        (MemberStatus::Processed, "PROCESSED"),
        (MemberStatus::Challenged, "CHALLENGED"),
        (MemberStatus::Completed, "COMPLETED"),
        (MemberStatus::Denied, "DENIED"),
        (MemberStatus::Prevented, "PREVENTED"),
        (MemberStatus::Halted, "HALTED"),
        (MemberStatus::Failed, "FAILED"),
    ];

    /// The status the aggregator's text names; unknown text becomes [`MemberStatus::Other`].
    pub fn parse(text: &str) -> MemberStatus {
        Self::KNOWN
            .iter()
            .find(|(_, name)| *name == text)
            .map_or_else(|| MemberStatus::Other(text.to_owned()), |(status, _)| status.clone())
    }

    /// The aggregator's text for this status.
    pub fn as_str(&self) -> &str {
        match self {
            MemberStatus::Other(text) => text,
            known => Self::KNOWN.iter().find(|(status, _)| status == known).map_or("", |(_, name)| name),
        }
    }
}

impl From<&str> for MemberStatus {
    fn from(text: &str) -> Self {
        MemberStatus::parse(text)
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an account is to Donkies (the API's `type_ds`): purchases on `debit` accounts are
/// rounded up, `debt` accounts receive the payouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccountFamily {
    Debit,
    Debt,
    Investment,
    Other,
}

impl AccountFamily {
    pub const ALL: [AccountFamily; 4] =
        [AccountFamily::Debit, AccountFamily::Debt, AccountFamily::Investment, AccountFamily::Other];

    /// The family of an aggregator account type (`CHECKING`, `CREDIT_CARD`, … in any case).
    pub fn of_account_type(account_type: &str) -> AccountFamily {
        match account_type.to_ascii_uppercase().as_str() {
            "CHECKING" | "SAVINGS" | "CASH" | "PREPAID" => AccountFamily::Debit,
            "LOAN" | "CREDIT_CARD" | "LINE_OF_CREDIT" | "MORTGAGE" => AccountFamily::Debt,
            "INVESTMENT" | "PROPERTY" => AccountFamily::Investment,
            _ => AccountFamily::Other,
        }
    }

    /// `debit`, `debt`, `investment` or `other`, as the API and the database spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            AccountFamily::Debit => "debit",
            AccountFamily::Debt => "debt",
            AccountFamily::Investment => "investment",
            AccountFamily::Other => "other",
        }
    }

    /// The family spelled as [`AccountFamily::as_str`] spells it.
    pub fn parse(text: &str) -> Option<AccountFamily> {
        Self::ALL.into_iter().find(|family| family.as_str() == text)
    }
}

impl fmt::Display for AccountFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way a transaction moves money: out of the account (a purchase) or into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Debit,
    Credit,
}

impl Direction {
    /// `DEBIT` or `CREDIT`, as the aggregator and the database spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Debit => "DEBIT",
            Direction::Credit => "CREDIT",
        }
    }

    /// The direction spelled `DEBIT` or `CREDIT` (any case).
    pub fn parse(text: &str) -> Option<Direction> {
        match text.to_ascii_uppercase().as_str() {
            "DEBIT" => Some(Direction::Debit),
            "CREDIT" => Some(Direction::Credit),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The round-up a transaction gives: only a purchase (a debit) on a debit account rounds up,
/// to the next whole dollar — by nothing for a whole-dollar amount, or by a full dollar when
/// the user chose `even_roundup`. Everything else (credits, debt and other accounts, zero and
/// negative amounts) gives nothing.
pub fn roundup(direction: Direction, family: AccountFamily, amount: Cents, even_roundup: bool) -> Cents {
    match (direction, family) {
        (Direction::Debit, AccountFamily::Debit) => purchase_roundup(amount, even_roundup),
        _ => Cents::ZERO,
    }
}

/// How the API presents a member's aggregation status to front ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberPresentation {
    pub member_status: &'static str,
    pub name: &'static str,
    pub message: &'static str,
    pub is_completed: bool,
}

/// The presentation of an aggregator status. `gave_up` marks polling that hit its limit (or a
/// HALTED member out of retries).
pub fn present_member(status: &MemberStatus, gave_up: bool) -> MemberPresentation {
    const PROCESSING: MemberPresentation = MemberPresentation {
        member_status: "PROCESSING",
        name: "PROCESSING",
        message: "Processing...",
        is_completed: false,
    };
    const OTHER: MemberPresentation =
        MemberPresentation { member_status: "OTHER_ERROR", name: "ERROR", message: "Other error.", is_completed: true };
    if gave_up {
        return OTHER;
    }
    match status {
        MemberStatus::Initiated
        | MemberStatus::Requested
        | MemberStatus::Authenticated
        | MemberStatus::Received
        | MemberStatus::Transferred
        | MemberStatus::Processed
        | MemberStatus::Halted => PROCESSING,
        MemberStatus::Challenged => MemberPresentation {
            member_status: "CHALLENGED",
            name: "CHALLENGED",
            message: "Please provide additional info.",
            is_completed: true,
        },
        MemberStatus::Denied => MemberPresentation {
            member_status: "WRONG_CREDENTIALS",
            name: "ERROR",
            message: "Incorrect credentials.",
            is_completed: true,
        },
        MemberStatus::Completed => MemberPresentation {
            member_status: "SUCCESS",
            name: "SUCCESS",
            message: "Bank account has been created!",
            is_completed: true,
        },
        MemberStatus::Prevented | MemberStatus::Failed | MemberStatus::Other(_) => OTHER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_families_of_aggregator_types() {
        assert_eq!(AccountFamily::of_account_type("CHECKING"), AccountFamily::Debit);
        assert_eq!(AccountFamily::of_account_type("prepaid"), AccountFamily::Debit);
        assert_eq!(AccountFamily::of_account_type("CREDIT_CARD"), AccountFamily::Debt);
        assert_eq!(AccountFamily::of_account_type("MORTGAGE"), AccountFamily::Debt);
        assert_eq!(AccountFamily::of_account_type("PROPERTY"), AccountFamily::Investment);
        assert_eq!(AccountFamily::of_account_type("INSURANCE"), AccountFamily::Other);
    }

    #[test]
    fn families_and_directions_read_back_what_they_write() {
        for family in AccountFamily::ALL {
            assert_eq!(AccountFamily::parse(family.as_str()), Some(family));
        }
        assert_eq!(AccountFamily::parse("checking"), None);
        for direction in [Direction::Debit, Direction::Credit] {
            assert_eq!(Direction::parse(direction.as_str()), Some(direction));
        }
        assert_eq!(Direction::parse("credit"), Some(Direction::Credit));
        assert_eq!(Direction::parse("REFUND"), None);
    }

    #[test]
    fn member_statuses_keep_unknown_text() {
        for (status, name) in MemberStatus::KNOWN {
            assert_eq!(MemberStatus::parse(name), status);
            assert_eq!(status.as_str(), name);
        }
        let unknown = MemberStatus::parse("RECONNECTED");
        assert_eq!(unknown, MemberStatus::Other("RECONNECTED".into()));
        assert_eq!(unknown.to_string(), "RECONNECTED");
    }

    #[test]
    fn member_presentation_follows_the_table() {
        let present = |text: &str, gave_up| present_member(&MemberStatus::parse(text), gave_up);
        assert_eq!(present("COMPLETED", false).member_status, "SUCCESS");
        assert_eq!(present("DENIED", false).message, "Incorrect credentials.");
        assert!(!present("HALTED", false).is_completed);
        assert_eq!(present("HALTED", true).member_status, "OTHER_ERROR");
        assert_eq!(present("PREVENTED", false).member_status, "OTHER_ERROR");
        assert_eq!(present("SOMETHING_NEW", false).member_status, "OTHER_ERROR");
        assert_eq!(present("REQUESTED", true).name, "ERROR");
        assert!(present("CHALLENGED", false).is_completed);
    }

    #[test]
    fn only_purchases_on_debit_accounts_round_up() {
        let amount = Cents::new(1230);
        assert_eq!(roundup(Direction::Debit, AccountFamily::Debit, amount, false), Cents::new(70));
        assert_eq!(roundup(Direction::Credit, AccountFamily::Debit, amount, false), Cents::ZERO);
        assert_eq!(roundup(Direction::Debit, AccountFamily::Debt, amount, false), Cents::ZERO);
        assert_eq!(roundup(Direction::Debit, AccountFamily::Investment, amount, true), Cents::ZERO);
        assert_eq!(roundup(Direction::Debit, AccountFamily::Debit, Cents::new(500), true), Cents::new(100));
    }
}
