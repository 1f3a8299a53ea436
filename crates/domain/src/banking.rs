//! Rules of bank linking: account families, member status presentation, debt share carving.

use crate::money::Cents;
use crate::share::split_by_shares;

/// The family of an aggregator account type: `debit`, `debt`, `investment` or `other`.
pub fn type_ds(account_type: &str) -> &'static str {
    match account_type.to_ascii_uppercase().as_str() {
        "CHECKING" | "SAVINGS" | "CASH" | "PREPAID" => "debit",
        "LOAN" | "CREDIT_CARD" | "LINE_OF_CREDIT" | "MORTGAGE" => "debt",
        "INVESTMENT" | "PROPERTY" => "investment",
        _ => "other",
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
pub fn present_member(status: &str, gave_up: bool) -> MemberPresentation {
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
        "INITIATED" | "REQUESTED" | "AUTHENTICATED" | "RECEIVED" | "TRANSFERRED" | "PROCESSED" | "HALTED" => PROCESSING,
        "CHALLENGED" => MemberPresentation {
            member_status: "CHALLENGED",
            name: "CHALLENGED",
            message: "Please provide additional info.",
            is_completed: true,
        },
        "DENIED" => MemberPresentation {
            member_status: "WRONG_CREDENTIALS",
            name: "ERROR",
            message: "Incorrect credentials.",
            is_completed: true,
        },
        "COMPLETED" => MemberPresentation {
            member_status: "SUCCESS",
            name: "SUCCESS",
            message: "Bank account has been created!",
            is_completed: true,
        },
        _ => OTHER,
    }
}

/// Give the account at `index` the share `new_share` (0–100) and rescale the others in
/// proportion to their current shares (equally when they have none), so the total stays
/// exactly 100. With a single account, it gets 100.
pub fn carve_share(current: &[u32], index: usize, new_share: u32) -> Vec<u32> {
    if current.is_empty() || index >= current.len() {
        return current.to_vec();
    }
    if current.len() == 1 {
        return vec![100];
    }
    let new_share = new_share.min(100);
    let others: Vec<u32> = current.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, s)| *s).collect();
    let weights: Vec<u32> = if others.iter().all(|s| *s == 0) { vec![1; others.len()] } else { others };
    let mut rest = split_by_shares(Cents::new(i64::from(100 - new_share)), &weights).into_iter();
    (0..current.len()).map(|i| if i == index { new_share } else { rest.next().map_or(0, |c| c.get() as u32) }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_families() {
        assert_eq!(type_ds("CHECKING"), "debit");
        assert_eq!(type_ds("prepaid"), "debit");
        assert_eq!(type_ds("CREDIT_CARD"), "debt");
        assert_eq!(type_ds("MORTGAGE"), "debt");
        assert_eq!(type_ds("PROPERTY"), "investment");
        assert_eq!(type_ds("INSURANCE"), "other");
    }

    #[test]
    fn member_presentation_follows_the_table() {
        assert_eq!(present_member("COMPLETED", false).member_status, "SUCCESS");
        assert_eq!(present_member("DENIED", false).message, "Incorrect credentials.");
        assert!(!present_member("HALTED", false).is_completed);
        assert_eq!(present_member("HALTED", true).member_status, "OTHER_ERROR");
        assert_eq!(present_member("PREVENTED", false).member_status, "OTHER_ERROR");
        assert_eq!(present_member("REQUESTED", true).name, "ERROR");
        assert!(present_member("CHALLENGED", false).is_completed);
    }

    #[test]
    fn carving_keeps_the_total() {
        assert_eq!(carve_share(&[100, 0], 1, 30), vec![70, 30]);
        assert_eq!(carve_share(&[50, 50, 0], 2, 40), vec![30, 30, 40]);
        assert_eq!(carve_share(&[100], 0, 30), vec![100]);
        assert_eq!(carve_share(&[0, 0, 100], 2, 100), vec![0, 0, 100]);
        assert_eq!(carve_share(&[0, 0, 100], 2, 0), vec![50, 50, 0]);
    }
}
