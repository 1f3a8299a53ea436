//! Names of the unique constraints, the same on both engines.
//!
//! PostgreSQL names a violated constraint (`users_email_key`), SQLite names its columns
//! (`UNIQUE constraint failed: users.email`). A [`crate::StoreError::Conflict`] carries one name
//! for both: the table and its columns joined by `_`. Ask with
//! [`crate::StoreError::on_constraint`].

pub const USERS_EMAIL: &str = "users_email";
pub const USERS_IDENTIFIER: &str = "users_identifier";
pub const USERS_ENCRYPTED_ID: &str = "users_encrypted_id";
pub const INSTITUTIONS_CODE: &str = "institutions_code";
/// One live member per user and institution.
pub const MEMBERS_USER_INSTITUTION: &str = "members_user_id_institution_id";
pub const MEMBERS_IDENTIFIER: &str = "members_identifier";
pub const ACCOUNTS_UID: &str = "accounts_uid";
pub const ACCOUNTS_USER_GUID: &str = "accounts_user_id_guid";
pub const TRANSACTIONS_USER_GUID: &str = "transactions_user_id_guid";
/// A provider account belongs to one user.
pub const SOCIAL_IDENTITIES_PROVIDER_USER: &str = "social_identities_provider_provider_user_id";
pub const OAUTH_REQUESTS_TOKEN: &str = "oauth_requests_token";
pub const AUTH_TOKENS_TOKEN_HASH: &str = "auth_tokens_token_hash";
pub const ACTION_TOKENS_TOKEN_HASH: &str = "action_tokens_token_hash";
/// One Dwolla customer per user.
pub const CUSTOMERS_USER_ID: &str = "customers_user_id";
pub const CUSTOMERS_DWOLLA_ID: &str = "customers_dwolla_id";
/// One funding source per account that is not removed.
pub const FUNDING_SOURCES_ACCOUNT_ID: &str = "funding_sources_account_id";
pub const FUNDING_SOURCES_DWOLLA_ID: &str = "funding_sources_dwolla_id";
/// One transfer per caller's record (`collection:123`): what makes a movement idempotent.
pub const TRANSFERS_REFERENCE: &str = "transfers_reference";
pub const TRANSFERS_IDEMPOTENCY_KEY: &str = "transfers_idempotency_key";
pub const TRANSFERS_DWOLLA_ID: &str = "transfers_dwolla_id";
pub const DWOLLA_EVENTS_EVENT_ID: &str = "dwolla_events_event_id";
/// One payout per user and payout day.
pub const PAYOUTS_USER_PERIOD: &str = "payouts_user_id_period";

/// PostgreSQL names that do not follow `<table>_<columns>_key`: primary keys and named indexes.
const POSTGRES_NAMES: &[(&str, &str)] = &[
    ("members_user_institution", MEMBERS_USER_INSTITUTION),
    ("auth_tokens_pkey", AUTH_TOKENS_TOKEN_HASH),
    ("action_tokens_pkey", ACTION_TOKENS_TOKEN_HASH),
    ("oauth_requests_pkey", OAUTH_REQUESTS_TOKEN),
    ("job_slots_pkey", "job_slots_name_slot"),
    ("institution_credentials_pkey", "institution_credentials_institution_id_guid"),
    ("challenges_pkey", "challenges_member_id_guid"),
    ("dwolla_events_pkey", DWOLLA_EVENTS_EVENT_ID),
];

/// The engine-independent name of a violated unique constraint, from what the driver reports:
/// PostgreSQL's constraint name, or SQLite's message listing `table.column`s.
pub(crate) fn normalise(constraint: Option<&str>, message: &str) -> String {
    if let Some(name) = constraint {
        if let Some((_, stable)) = POSTGRES_NAMES.iter().find(|(pg, _)| *pg == name) {
            return (*stable).to_owned();
        }
        if let Some(table) = name.strip_suffix("_pkey") {
            // Every other table's primary key is its `id`.
            return format!("{table}_id");
        }
        return name.strip_suffix("_key").unwrap_or(name).to_owned();
    }
    let Some(columns) = message.strip_prefix("UNIQUE constraint failed: ") else {
        return message.to_owned();
    };
    let mut table = "";
    let mut parts = Vec::new();
    for qualified in columns.split(',').map(str::trim) {
        let (t, column) = qualified.split_once('.').unwrap_or(("", qualified));
        table = t;
        parts.push(column);
    }
    format!("{table}_{}", parts.join("_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_engines_name_a_constraint_alike() {
        let cases = [
            (Some("users_email_key"), "UNIQUE constraint failed: users.email", USERS_EMAIL),
            (
                Some("members_user_institution"),
                "UNIQUE constraint failed: members.user_id, members.institution_id",
                MEMBERS_USER_INSTITUTION,
            ),
            (Some("oauth_requests_pkey"), "UNIQUE constraint failed: oauth_requests.token", OAUTH_REQUESTS_TOKEN),
            (Some("users_pkey"), "UNIQUE constraint failed: users.id", "users_id"),
            (
                Some("accounts_user_id_guid_key"),
                "UNIQUE constraint failed: accounts.user_id, accounts.guid",
                ACCOUNTS_USER_GUID,
            ),
            (
                Some("funding_sources_account_id"),
                "UNIQUE constraint failed: funding_sources.account_id",
                FUNDING_SOURCES_ACCOUNT_ID,
            ),
            (Some("transfers_reference_key"), "UNIQUE constraint failed: transfers.reference", TRANSFERS_REFERENCE),
            (Some("customers_user_id_key"), "UNIQUE constraint failed: customers.user_id", CUSTOMERS_USER_ID),
            (Some("dwolla_events_pkey"), "UNIQUE constraint failed: dwolla_events.event_id", DWOLLA_EVENTS_EVENT_ID),
        ];
        for (pg, sqlite, stable) in cases {
            assert_eq!(normalise(pg, "duplicate key value violates unique constraint"), stable);
            assert_eq!(normalise(None, sqlite), stable);
        }
    }
}
