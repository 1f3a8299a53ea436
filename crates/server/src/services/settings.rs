//! What the use cases read of the configuration, taken once from the command line's
//! [`Settings`]: nothing about listening, storage, the job worker or the providers' addresses.

use std::time::Duration;

use donkies_domain::{Cents, ExposeSecret, SecretString};
use url::Url;

use crate::config::Settings;

#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub identity: IdentitySettings,
    pub banking: BankingSettings,
    pub money: MoneySettings,
    pub payments: PaymentsSettings,
}

/// What sign-up, sign-in, sessions, passwords and the profile read.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// Where the front end serves the pages our mails link to.
    pub frontend: Frontend,
    /// The server's secret: seals stored secrets and signs the state of a social sign-in.
    pub secret_key: SecretString,
    /// How long a session token lasts.
    pub token_ttl: chrono::Duration,
    /// How long a mailed link (password reset, email change) lasts.
    pub link_ttl: chrono::Duration,
}

/// What the bank-linking use cases read.
#[derive(Debug, Clone)]
pub struct BankingSettings {
    /// Time between two polls of a member that is still syncing, and how many polls it gets.
    pub member_poll: Duration,
    pub member_poll_limit: i64,
    /// How long one sync of a member may hold the member before another may take over (and
    /// how long another waits for it).
    pub sync_lease: Duration,
    /// The key of the digests that recognise a re-linked account by its number.
    pub number_key: SecretString,
}

/// What the money loop reads.
#[derive(Debug, Clone)]
pub struct MoneySettings {
    /// The smallest collection.
    pub collection_minimum: Cents,
    /// Day of the month (UTC) of the scheduled payout.
    pub payout_day: u32,
}

/// What the payments use cases read.
#[derive(Debug, Clone)]
pub struct PaymentsSettings {
    /// Where the mails about a transfer link to.
    pub frontend: Frontend,
    /// Where collections land in Dwolla; `None`: the master Account's balance.
    pub account_funding_source: Option<String>,
    /// Signs the webhooks Dwolla sends us.
    pub webhook_secret: SecretString,
}

/// The front end's base URL.
#[derive(Debug, Clone)]
pub struct Frontend(pub Url);

impl Frontend {
    /// A front-end link: `<frontend>/<page>?id=…&token=…`.
    pub fn link(&self, page: &str, query: &[(&str, &str)]) -> String {
        let mut url = self.0.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/{page}"));
        url.query_pairs_mut().clear().extend_pairs(query);
        url.to_string()
    }
}

impl ServiceSettings {
    pub fn from_settings(settings: &Settings) -> ServiceSettings {
        let frontend = Frontend(settings.frontend_url.clone());
        ServiceSettings {
            identity: IdentitySettings {
                frontend: frontend.clone(),
                secret_key: settings.secret_key.clone(),
                token_ttl: settings.token_ttl,
                link_ttl: settings.link_ttl,
            },
            banking: BankingSettings {
                member_poll: settings.member_poll,
                member_poll_limit: settings.member_poll_limit,
                sync_lease: Duration::from_secs(120),
                number_key: SecretString::from(crate::crypto::derive_secret(
                    settings.secret_key.expose_secret(),
                    "account number digest",
                )),
            },
            money: MoneySettings { collection_minimum: settings.collection_minimum, payout_day: settings.payout_day },
            payments: PaymentsSettings {
                frontend,
                account_funding_source: settings.dwolla.account_funding_source.clone(),
                webhook_secret: settings.dwolla.webhook_secret.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontend_links_carry_id_and_token() {
        let frontend = Frontend(Url::parse("https://app.example/base/").unwrap());
        assert_eq!(
            frontend.link("confirm", &[("id", "a b"), ("token", "t")]),
            "https://app.example/base/confirm?id=a+b&token=t"
        );
    }
}
