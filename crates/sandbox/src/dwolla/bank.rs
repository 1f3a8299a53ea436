//! Bank facts of the sandbox: the ABA routing-number checksum and the ACH
//! return codes with their consequences (B4.4, B6.2).

use donkies_dwolla::wire::CustomerStatus;

/// Whether `routing` is nine digits whose weighted sum 3-7-1 is a multiple
/// of ten, as every ABA routing number is.
pub(crate) fn is_routing_number(routing: &str) -> bool {
    let digits: Vec<u32> = routing.chars().filter_map(|c| c.to_digit(10)).collect();
    if routing.len() != 9 || digits.len() != 9 {
        return false;
    }
    let weighted: u32 = digits.iter().zip([3, 7, 1].iter().cycle()).map(|(digit, weight)| digit * weight).sum();
    weighted.is_multiple_of(10)
}

/// An ACH return code and what it does to the bank and its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReturnCodeRule {
    pub code: &'static str,
    pub description: &'static str,
    pub unverifies: bool,
    pub removes: bool,
    /// The status the customer is put in, when the return says so.
    pub customer: Option<CustomerStatus>,
}

const fn rule(
    code: &'static str,
    description: &'static str,
    unverifies: bool,
    removes: bool,
    customer: Option<CustomerStatus>,
) -> ReturnCodeRule {
    ReturnCodeRule { code, description, unverifies, removes, customer }
}

const SUSPEND: Option<CustomerStatus> = Some(CustomerStatus::Suspended);
const DEACTIVATE: Option<CustomerStatus> = Some(CustomerStatus::Deactivated);

/// The current Dwolla table (DWP transfer-failures). R20 follows the table
/// row (removed) where the docs contradict themselves.
const RETURN_CODES: &[ReturnCodeRule] = &[
    rule("R01", "Insufficient Funds", false, false, None),
    rule("R02", "Bank Account Closed", true, true, None),
    rule("R03", "No Account/Unable to Locate Account", true, true, None),
    rule("R04", "Invalid Bank Account Number Structure", true, true, None),
    rule("R05", "Unauthorized debit to consumer account", true, true, SUSPEND),
    rule("R06", "Returned per ODFI request", true, true, SUSPEND),
    rule("R07", "Authorization Revoked by Customer", true, true, DEACTIVATE),
    rule("R08", "Payment Stopped", true, true, None),
    rule("R09", "Uncollected Funds", false, false, None),
    rule("R10", "Customer Advises Unauthorized", true, true, SUSPEND),
    rule("R11", "Entry not in accordance with authorization", true, true, DEACTIVATE),
    rule("R12", "Branch Sold to Another DFI", false, true, None),
    rule("R13", "Invalid ACH Routing Number", true, true, None),
    rule("R14", "Representative Payee Deceased", false, true, SUSPEND),
    rule("R15", "Beneficiary or Account Holder Deceased", true, true, SUSPEND),
    rule("R16", "Bank Account Frozen", true, true, SUSPEND),
    rule("R17", "File Record Edit Criteria", true, true, SUSPEND),
    rule("R20", "Non-Transaction Account", false, true, None),
    rule("R22", "Invalid Individual ID Number", true, false, None),
    rule("R23", "Credit Entry Refused by Receiver", true, true, None),
    rule("R29", "Corporate Customer Advises Not Authorized", true, true, SUSPEND),
    rule("R31", "Permissible Return Entry", true, true, SUSPEND),
    rule("R37", "Source Document Presented for Payment", false, true, None),
    rule("R38", "Stop Payment on Source Document", true, true, SUSPEND),
    rule("R51", "Item related to RCK entry is ineligible", true, true, SUSPEND),
];

/// A rule is stored by its code.
impl serde::Serialize for &'static ReturnCodeRule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

impl<'de> serde::Deserialize<'de> for &'static ReturnCodeRule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        return_code(&code).ok_or_else(|| serde::de::Error::custom(format!("unknown return code {code}")))
    }
}

pub(crate) fn return_code(code: &str) -> Option<&'static ReturnCodeRule> {
    RETURN_CODES.iter().find(|rule| rule.code.eq_ignore_ascii_case(code))
}

/// The return a funding-source name forces (B6.2): `R03` fails at the
/// first simulation, `R03-late` after it settled (`late` is true).
pub(crate) fn sentinel(name: &str) -> Option<(&'static ReturnCodeRule, bool)> {
    let name = name.trim();
    let (code, late) = match name.len().checked_sub(5).map(|at| name.split_at(at)) {
        Some((code, suffix)) if suffix.eq_ignore_ascii_case("-late") => (code, true),
        _ => (name, false),
    };
    return_code(code).map(|rule| (rule, late))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_numbers_need_nine_digits_and_the_checksum() {
        assert!(is_routing_number("222222226"));
        assert!(is_routing_number("021000021"));
        assert!(!is_routing_number("222222222"));
        assert!(!is_routing_number("22222222"));
        assert!(!is_routing_number("22222222a"));
    }

    #[test]
    fn funding_source_names_force_returns_now_or_late() {
        assert_eq!(sentinel("R01").map(|(rule, late)| (rule.code, late)), Some(("R01", false)));
        assert_eq!(sentinel("r03-late").map(|(rule, late)| (rule.code, late)), Some(("R03", true)));
        assert!(sentinel("My checking").is_none());
        assert!(sentinel("R99").is_none());
    }
}
