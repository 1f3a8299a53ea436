//! The institutions the simulator offers (PROVIDERS.md A6.1, Decisions).
//!
//! `mxbank` and `chase` keep the credential guids of the real 2016 fixtures;
//! the others get guids derived from their code, stable across runs. Every
//! institution behaves like mxbank (A6.2); `churnbank` also churns its
//! history on each aggregation.

use donkies_atrium::wire::{Credential, CredentialType, Institution};

use super::guid::stable_guid;

pub const MXBANK_CODE: &str = "mxbank";
/// The LOGIN credential guid of mxbank.
pub const MXBANK_LOGIN_GUID: &str = "CRD-9f61fb4c-912c-bd1e-b175-ccc7f0275cc1";
/// The PASSWORD credential guid of mxbank.
pub const MXBANK_PASSWORD_GUID: &str = "CRD-e3d7ea81-aac7-05e9-fbdd-4b493c6e474d";

/// An institution like mxbank whose history moves by itself: each
/// aggregation is a new simulated day (see `ledger`).
pub const CHURNBANK_CODE: &str = "churnbank";
/// The LOGIN credential guid of churnbank.
pub const CHURNBANK_LOGIN_GUID: &str = "CRD-3c1d5e7a-0b2f-4c6d-8e9a-1f3b5d7c9e01";
/// The PASSWORD credential guid of churnbank.
pub const CHURNBANK_PASSWORD_GUID: &str = "CRD-3c1d5e7a-0b2f-4c6d-8e9a-1f3b5d7c9e02";

const CHASE_LOGIN_GUID: &str = "CRD-598ec8d4-6200-8cda-345d-3dbb5fc17716";
const CHASE_PASSWORD_GUID: &str = "CRD-27d0edb8-1d50-5b90-bcbc-be270ca42b9f";

const MXBANK_LOGO: &str = "https://content.moneydesktop.com/storage/MD_Assets/Ipad%20Logos";
const MXBANK_LOGO_ID: &str = "INS-1572a04c-912b-59bf-5841-332c7dfafaef";

/// One institution with the credentials it asks for.
#[derive(Debug, Clone)]
pub(crate) struct CatalogEntry {
    pub institution: Institution,
    pub credentials: Vec<Credential>,
}

impl CatalogEntry {
    /// The guid of the first credential of `kind`.
    pub fn credential_guid(&self, kind: &CredentialType) -> Option<&str> {
        self.credentials.iter().find(|c| &c.credential_type == kind).map(|c| c.guid.as_str())
    }
}

/// (code, name, url, an optional third credential label)
const BANKS: &[(&str, &str, &str, Option<&str>)] = &[
    ("chase", "Chase Bank", "https://www.chase.com", None),
    ("wells_fargo", "Wells Fargo", "https://www.wellsfargo.com", None),
    ("bank_of_america", "Bank of America", "https://www.bankofamerica.com", None),
    ("citibank", "Citibank", "https://online.citi.com", None),
    ("us_bank", "U.S. Bank", "https://www.usbank.com", None),
    ("pnc", "PNC Bank", "https://www.pnc.com", None),
    ("capital_one", "Capital One", "https://www.capitalone.com", None),
    ("td_bank", "TD Bank", "https://www.td.com/us", None),
    ("bbt", "BB&T", "https://www.bbt.com", None),
    ("suntrust", "SunTrust", "https://www.suntrust.com", None),
    ("fifth_third", "Fifth Third Bank", "https://www.53.com", None),
    ("regions", "Regions Bank", "https://www.regions.com", None),
    ("citizens", "Citizens Bank", "https://www.citizensbank.com", None),
    ("keybank", "KeyBank", "https://www.key.com", None),
    ("huntington", "Huntington Bank", "https://www.huntington.com", None),
    ("ally", "Ally Bank", "https://www.ally.com", None),
    ("discover", "Discover", "https://www.discover.com", None),
    ("american_express", "American Express", "https://www.americanexpress.com", None),
    ("usaa", "USAA", "https://www.usaa.com", Some("PIN")),
    ("navy_federal", "Navy Federal Credit Union", "https://www.navyfederal.org", Some("Access Number")),
    ("schwab", "Charles Schwab", "https://www.schwab.com", None),
    ("sallie_mae", "Sallie Mae", "https://www.salliemae.com", None),
    ("navient", "Navient", "https://www.navient.com", None),
    ("great_lakes", "Great Lakes Educational Loan Services", "https://mygreatlakes.org", None),
    ("synchrony", "Synchrony Bank", "https://www.synchronybank.com", None),
];

fn credential(guid: String, field_name: &str, label: &str, kind: CredentialType, order: u32) -> Credential {
    Credential {
        guid,
        field_name: Some(field_name.to_owned()),
        label: label.to_owned(),
        credential_type: kind,
        display_order: Some(order),
    }
}

fn plain_institution(code: &str, name: &str, url: &str) -> Institution {
    Institution {
        code: code.to_owned(),
        name: name.to_owned(),
        url: Some(url.to_owned()),
        medium_logo_url: None,
        small_logo_url: None,
        supports_account_identification: None,
        supports_account_statement: None,
        supports_account_verification: None,
        supports_transaction_history: None,
    }
}

pub(crate) fn catalog() -> Vec<CatalogEntry> {
    let mut entries = Vec::with_capacity(BANKS.len() + 2);
    entries.push(CatalogEntry {
        institution: Institution {
            medium_logo_url: Some(format!("{MXBANK_LOGO}/100x100/{MXBANK_LOGO_ID}_100x100.png")),
            small_logo_url: Some(format!("{MXBANK_LOGO}/50x50/{MXBANK_LOGO_ID}_50x50.png")),
            supports_account_identification: Some(false),
            supports_account_statement: Some(false),
            supports_account_verification: Some(true),
            supports_transaction_history: Some(false),
            ..plain_institution(MXBANK_CODE, "MX Bank", "https://www.mx.com")
        },
        credentials: vec![
            credential(MXBANK_LOGIN_GUID.into(), "LOGIN", "Username", CredentialType::Login, 1),
            credential(MXBANK_PASSWORD_GUID.into(), "PASSWORD", "Password", CredentialType::Password, 2),
        ],
    });
    entries.push(CatalogEntry {
        institution: plain_institution(CHURNBANK_CODE, "Churn Bank", "https://churnbank.example.com"),
        credentials: vec![
            credential(CHURNBANK_LOGIN_GUID.into(), "LOGIN", "Username", CredentialType::Login, 1),
            credential(CHURNBANK_PASSWORD_GUID.into(), "PASSWORD", "Password", CredentialType::Password, 2),
        ],
    });
    for &(code, name, url, third) in BANKS {
        let (login, password) = if code == "chase" {
            (CHASE_LOGIN_GUID.to_owned(), CHASE_PASSWORD_GUID.to_owned())
        } else {
            (stable_guid("CRD", &[code, "LOGIN"]), stable_guid("CRD", &[code, "PASSWORD"]))
        };
        let mut credentials = vec![
            credential(login, "LOGIN", "Username", CredentialType::Login, 1),
            credential(password, "PASSWORD", "Password", CredentialType::Password, 2),
        ];
        if let Some(label) = third {
            let field_name = label.to_uppercase().replace(' ', "_");
            credentials.push(credential(
                stable_guid("CRD", &[code, &field_name]),
                &field_name,
                label,
                CredentialType::Password,
                3,
            ));
        }
        entries.push(CatalogEntry { institution: plain_institution(code, name, url), credentials });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_has_mxbank_first_and_at_least_twenty_institutions() {
        let entries = catalog();
        assert!(entries.len() >= 20);
        assert_eq!(entries[0].institution.code, MXBANK_CODE);
        assert_eq!(entries[0].credential_guid(&CredentialType::Password), Some(MXBANK_PASSWORD_GUID));
        let mut codes: Vec<_> = entries.iter().map(|e| &e.institution.code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), entries.len());
        assert!(entries.iter().any(|e| e.credentials.len() == 3));
    }
}
