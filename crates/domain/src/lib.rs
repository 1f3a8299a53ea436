//! Pure domain types and rules of Donkies: money in cents, round-ups, share
//! splits, the profile fields a user may enter, the rules of payments and of the ledger.
//! No I/O.
//!
//! Every type here is built by a `parse` (or `new`) that checks its input, so
//! holding one is proof that the value is acceptable.

pub mod bank_sync;
mod banking;
mod debt_shares;
mod email;
pub mod ledger;
mod money;
mod password;
mod payments;
mod profile;
mod projection;
mod rules;
mod settings;
mod share;

pub use banking::{AccountFamily, Direction, MemberPresentation, MemberStatus, present_member, roundup};
pub use debt_shares::{DebtShares, DebtSharesError};
pub use email::{Email, EmailError};
pub use ledger::{
    Balance, Balances, Entry, EntryKind, LedgerAccount, LedgerRefusal, Movement, PendingState, Posted, Recorded, Step,
};
pub use money::{Cents, MoneyError};
pub use password::{Password, PasswordError};
pub use payments::{
    BankAccountType, CustomerKind, CustomerStatus, FundingSourceStatus, FundingSourceType, MicroDepositStatus,
    ReturnConsequences, TransferParty, TransferRefusal, TransferStatus, VerificationType, check_transfer,
    return_consequences, valid_routing_number,
};
pub use profile::{DateOfBirth, Phone, PostalCode, ProfileError, Ssn, UsState};
pub use projection::{MAX_PAYOFF_MONTHS, PayoffMonth, PayoffSchedule, Projection, payoff_schedule, project_payoff};
pub use rules::{Cap, CollectionHold, KnownBalance, Multiplier, OverdraftFloor, RoundUpRules};
/// Keys, tokens and account numbers: `Debug` shows `[REDACTED]`, there is no `Display`, and the
/// value is read with `expose_secret` only where it leaves the process or is compared.
pub use secrecy::{ExposeSecret, SecretString};
pub use settings::TransferAmount;
pub use share::{Share, ShareError, split_batch, split_by_shares, split_into, validate_shares};

#[cfg(test)]
mod test_support;
