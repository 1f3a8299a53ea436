//! The ledger's store against its model: random sequences of round-ups, collections (started,
//! posted, voided), payouts and refunds applied both to the domain's in-memory [`Balances`] and
//! to the real store on SQLite. They must agree on every outcome and every balance, `check`
//! must find nothing, and no cent may appear or vanish.

use std::collections::BTreeMap;

use donkies_domain::{Balance, Balances, Cents, LedgerAccount, Movement};
use donkies_store::ledger;
use donkies_store::testing::TestDb;
use proptest::prelude::*;

fn movement() -> impl Strategy<Value = Movement> {
    let user = 1_i64..3;
    let id = 0_i64..5;
    let amount = (1_i64..1_500).prop_map(Cents::new);
    prop_oneof![
        3 => (user.clone(), id.clone(), amount.clone())
            .prop_map(|(user_id, transaction_id, amount)| Movement::RoundUp { user_id, roundup_id: transaction_id, amount }),
        2 => (user.clone(), id.clone(), amount.clone())
            .prop_map(|(user_id, collection_id, amount)| Movement::CollectStart { user_id, collection_id, amount }),
        2 => id.clone().prop_map(|collection_id| Movement::CollectPost { collection_id }),
        1 => id.clone().prop_map(|collection_id| Movement::CollectVoid { collection_id }),
        2 => (user.clone(), id.clone(), 0_i64..2, amount.clone()).prop_map(
            |(user_id, part_id, debt_account_id, amount)| Movement::PayoutStart { user_id, part_id, debt_account_id, amount }
        ),
        2 => id.clone().prop_map(|part_id| Movement::PayoutPost { part_id }),
        1 => id.clone().prop_map(|part_id| Movement::PayoutVoid { part_id }),
        1 => (user, id.clone(), amount)
            .prop_map(|(user_id, refund_id, amount)| Movement::RefundStart { user_id, refund_id, amount }),
        1 => id.clone().prop_map(|refund_id| Movement::RefundPost { refund_id }),
        1 => id.prop_map(|refund_id| Movement::RefundVoid { refund_id }),
    ]
}

/// Balances that are not all zero: an account touched and emptied again reads as untouched.
fn nonzero(balances: impl IntoIterator<Item = (LedgerAccount, Balance)>) -> BTreeMap<LedgerAccount, Balance> {
    balances.into_iter().filter(|(_, b)| *b != Balance::default()).collect()
}

async fn run(movements: &[Movement]) -> Result<(), TestCaseError> {
    let t = TestDb::sqlite().await;
    let mut model = Balances::new();
    for movement in movements {
        let expected = model.record(movement);
        let mut tx = t.db.begin().await.unwrap();
        let got = ledger::record(&mut tx, movement).await;
        match (&expected, &got) {
            (Ok(want), Ok(have)) => {
                prop_assert_eq!(want, have, "{:?}", movement);
                tx.commit().await.unwrap();
            }
            (Err(want), Err(ledger::LedgerError::Refused(have))) => prop_assert_eq!(want, have, "{:?}", movement),
            _ => prop_assert!(false, "{movement:?}: model {expected:?}, store {got:?}"),
        }
    }
    let stored = ledger::balances(&t.db).await.unwrap();
    prop_assert_eq!(nonzero(stored.clone()), nonzero(model.accounts()));
    prop_assert_eq!(stored.values().map(|b| b.posted.get()).sum::<i64>(), 0, "no cent appears or vanishes");
    prop_assert_eq!(ledger::check(&t.db).await.unwrap(), vec![]);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn ledger_store_agrees_with_its_model_on_any_sequence(movements in proptest::collection::vec(movement(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(&movements))?;
    }
}
