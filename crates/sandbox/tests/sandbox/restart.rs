//! Simulators started on a data directory, stopped and started again on it,
//! still know what they were told: over real HTTP, with the production
//! clients.

use donkies_dwolla::ExposeSecret;
use std::time::Duration;

use donkies_atrium::wire::{CredentialValue, MemberStatus, NewMember, NewUser};
use donkies_atrium::{Aggregator, AtriumClient, AtriumConfig, PageRequest};
use donkies_dwolla::wire::{FundingSourceStatus, FundingSourceType, NewCustomer, TransferStatus};
use donkies_dwolla::{Cents, DwollaClient, DwollaConfig, PaymentRail, TransferRequest};
use donkies_sandbox::atrium::{MXBANK_CODE, MXBANK_LOGIN_GUID, MXBANK_PASSWORD_GUID, MXBANK_USERNAME};
use donkies_sandbox::{
    AtriumSim, AtriumSimConfig, DwollaSim, DwollaSimConfig, SANDBOX_API_KEY, SANDBOX_CLIENT_ID, SANDBOX_DB_FILE,
    SANDBOX_DWOLLA_KEY, SANDBOX_DWOLLA_SECRET,
};

use crate::helpers::{DataDir, loopback};

async fn dwolla_on(dir: Option<&DataDir>) -> (DwollaSim, DwollaClient) {
    let config = DwollaSimConfig { data: dir.map(|d| d.0.clone()), ..Default::default() };
    let sim = DwollaSim::start(loopback(), config).await.unwrap();
    let client =
        DwollaClient::new(DwollaConfig::new(sim.base_url(), SANDBOX_DWOLLA_KEY, SANDBOX_DWOLLA_SECRET)).unwrap();
    (sim, client)
}

/// A customer with a bank verified through IAV; answers the bank's id.
async fn customer_with_verified_bank(sim: &DwollaSim, client: &DwollaClient, email: &str) -> (String, String) {
    let customer = client.create_customer(&NewCustomer::unverified("Jane", "Doe", email), email).await.unwrap();
    let token = client.iav_token(&customer).await.unwrap();
    let url = sim.base_url().join(&format!("__sim/iav/{}", token.expose_secret())).unwrap();
    let done: serde_json::Value = reqwest::Client::new().post(url).send().await.unwrap().json().await.unwrap();
    let href = done["_links"]["funding-source"]["href"].as_str().unwrap();
    (customer, href.rsplit('/').next().unwrap().to_owned())
}

#[tokio::test]
async fn dwolla_started_again_on_its_data_knows_customers_banks_and_transfers() {
    let dir = DataDir::new();
    let (sim, client) = dwolla_on(Some(&dir)).await;
    let account = client.account_id().await.unwrap();
    let balance = client.account_funding_sources(&account).await.unwrap();
    let balance = balance.iter().find(|s| s.source_type == FundingSourceType::Balance).unwrap().id.clone();
    let (customer, bank) = customer_with_verified_bank(&sim, &client, "jane@example.com").await;
    let collection = TransferRequest::between(&bank, &balance, Cents::new(1_234));
    let transfer = client.create_transfer(&collection, "collect-1").await.unwrap();
    // Kept before the answer: a second simulator on the data, while the first still runs (as
    // after a crash that gave it no time to save), knows the transfer.
    let (twin, twin_client) = dwolla_on(Some(&dir)).await;
    assert_eq!(twin_client.transfer(&transfer).await.unwrap().status, TransferStatus::Pending);
    twin.shutdown().await.unwrap();
    sim.shutdown().await.unwrap();
    assert!(dir.0.join(SANDBOX_DB_FILE).exists(), "the state is kept in the data directory");

    let (sim, client) = dwolla_on(Some(&dir)).await;
    assert_eq!(client.account_id().await.unwrap(), account, "the same master Account");
    assert_eq!(client.customer(&customer).await.unwrap().email, "jane@example.com");
    assert_eq!(client.funding_source(&bank).await.unwrap().status, FundingSourceStatus::Verified);
    assert_eq!(client.transfer(&transfer).await.unwrap().status, TransferStatus::Pending);
    // A retry of the same request is answered as before, not made twice.
    assert_eq!(client.create_transfer(&collection, "collect-1").await.unwrap(), transfer);
    // The pending transfer is processed after the restart, and the bank takes new ones.
    sim.handle().simulate();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(client.transfer(&transfer).await.unwrap().status, TransferStatus::Processed);
    let next = client.create_transfer(&collection, "collect-2").await.unwrap();
    assert_ne!(next, transfer);
    assert_eq!(client.transfer(&next).await.unwrap().status, TransferStatus::Pending);
    sim.shutdown().await.unwrap();

    // What the second run did is kept too.
    let (sim, client) = dwolla_on(Some(&dir)).await;
    assert_eq!(client.transfer(&transfer).await.unwrap().status, TransferStatus::Processed);
    assert_eq!(client.transfer(&next).await.unwrap().status, TransferStatus::Pending);
    let (_, other_bank) = customer_with_verified_bank(&sim, &client, "john@example.com").await;
    assert_ne!(other_bank, bank);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn dwolla_without_data_forgets_on_restart() {
    let (sim, client) = dwolla_on(None).await;
    let (customer, _) = customer_with_verified_bank(&sim, &client, "jane@example.com").await;
    sim.shutdown().await.unwrap();
    let (sim, client) = dwolla_on(None).await;
    assert!(client.customer(&customer).await.is_err());
    sim.shutdown().await.unwrap();
}

async fn atrium_on(dir: &DataDir) -> (AtriumSim, AtriumClient) {
    let config = AtriumSimConfig { step: Duration::from_millis(10), data: Some(dir.0.clone()), ..Default::default() };
    let sim = AtriumSim::start(loopback(), config).await.unwrap();
    let client = AtriumClient::new(AtriumConfig::new(sim.base_url(), SANDBOX_CLIENT_ID, SANDBOX_API_KEY)).unwrap();
    (sim, client)
}

async fn wait_completed(client: &AtriumClient, user: &str, member: &str) {
    for _ in 0..200 {
        let status = client.read_member_status(user, member).await.unwrap();
        if status.status == MemberStatus::Completed && status.is_being_aggregated == Some(false) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("member {member} did not complete");
}

#[tokio::test]
async fn atrium_started_again_on_its_data_knows_users_and_members() {
    let dir = DataDir::new();
    let (sim, client) = atrium_on(&dir).await;
    let identifier = Some("user-1".to_owned());
    let user = client.create_user(&NewUser { identifier: identifier.clone(), ..Default::default() }).await.unwrap();
    let credentials = vec![
        CredentialValue::new(MXBANK_LOGIN_GUID, MXBANK_USERNAME),
        CredentialValue::new(MXBANK_PASSWORD_GUID, "password"),
    ];
    let new = NewMember { institution_code: MXBANK_CODE.into(), credentials, identifier: None, metadata: None };
    let member = client.create_member(&user.guid, &new).await.unwrap();
    wait_completed(&client, &user.guid, &member.guid).await;
    let page = PageRequest::new(1, 100);
    let accounts = client.list_member_accounts(&user.guid, &member.guid, page).await.unwrap().items;
    // A second member still aggregating when the simulator stops.
    let mut busy = new.clone();
    busy.credentials[1] = CredentialValue::new(MXBANK_PASSWORD_GUID, "other password");
    let running = client.create_member(&user.guid, &busy).await.unwrap();
    let (twin, twin_client) = atrium_on(&dir).await;
    assert_eq!(twin_client.read_member(&user.guid, &running.guid).await.unwrap().guid, running.guid, "kept at once");
    twin.shutdown().await.unwrap();
    sim.shutdown().await.unwrap();

    let (sim, client) = atrium_on(&dir).await;
    assert_eq!(client.read_user(&user.guid).await.unwrap().identifier, identifier);
    assert_eq!(client.read_member(&user.guid, &member.guid).await.unwrap().status, MemberStatus::Completed);
    let again = client.list_member_accounts(&user.guid, &member.guid, page).await.unwrap().items;
    assert_eq!(again, accounts, "the same accounts");
    // The member started before the restart goes on to completion, and a linked one re-syncs.
    wait_completed(&client, &user.guid, &running.guid).await;
    client.aggregate_member(&user.guid, &member.guid).await.unwrap();
    wait_completed(&client, &user.guid, &member.guid).await;
    // The identifier stays taken; new guids do not repeat old ones.
    let taken = client.create_user(&NewUser { identifier: identifier.clone(), ..Default::default() }).await;
    assert!(taken.is_err(), "{taken:?}");
    let other = client.create_user(&NewUser { identifier: Some("user-2".into()), ..Default::default() }).await.unwrap();
    assert_ne!(other.guid, user.guid);

    // A reset forgets everything, on disk too.
    let reset = reqwest::Client::new().post(sim.base_url().join("__sim/reset").unwrap()).send().await.unwrap();
    assert!(reset.status().is_success());
    sim.shutdown().await.unwrap();
    let (sim, client) = atrium_on(&dir).await;
    assert!(client.read_user(&user.guid).await.is_err());
    sim.shutdown().await.unwrap();
}
