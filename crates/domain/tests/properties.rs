//! Property tests of the domain types: what every valid input turns into,
//! what every invalid input is refused with, and what the output looks like.

use chrono::{Datelike, NaiveDate};
use std::collections::BTreeMap;

use donkies_domain::{
    AccountFamily, Cents, DateOfBirth, DebtShares, DebtSharesError, Direction, Email, EmailError, MoneyError, Password,
    PasswordError, Phone, PostalCode, ProfileError, Share, ShareError, Ssn, TransferAmount, UsState, roundup,
    split_batch, split_by_shares, split_into, validate_shares,
};
use proptest::prelude::*;

// ---------------------------------------------------------------- money

/// The shape of `Cents`' Display, checked by hand: `-?\d+\.\d\d` with no
/// leading zeros in the dollars.
fn is_two_place_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let Some((dollars, cents)) = unsigned.split_once('.') else {
        return false;
    };
    !dollars.is_empty()
        && dollars.bytes().all(|b| b.is_ascii_digit())
        && (dollars == "0" || !dollars.starts_with('0'))
        && cents.len() == 2
        && cents.bytes().all(|b| b.is_ascii_digit())
}

proptest! {
    #[test]
    fn cents_display_parses_back_to_the_same_amount(cents in any::<i64>()) {
        let amount = Cents::new(cents);
        let text = amount.to_string();
        prop_assert!(is_two_place_decimal(&text), "{text}");
        prop_assert_eq!(text.starts_with('-'), cents < 0);
        prop_assert_eq!(Cents::parse(&text), Ok(amount));
    }

    #[test]
    fn cents_parse_reads_dollars_and_two_place_cents(
        dollars in 0_i64..1_000_000_000_000,
        cents in 0_i64..100,
        negative in any::<bool>(),
    ) {
        let sign = if negative { "-" } else { "" };
        let expected = (dollars * 100 + cents) * if negative { -1 } else { 1 };
        prop_assert_eq!(
            Cents::parse(&format!("{sign}{dollars}.{cents:02}")),
            Ok(Cents::new(expected))
        );
    }

    #[test]
    fn cents_parse_reads_one_place_as_tens_of_cents(
        dollars in 0_i64..1_000_000_000_000,
        tenths in 0_i64..10,
    ) {
        prop_assert_eq!(
            Cents::parse(&format!("{dollars}.{tenths}")),
            Ok(Cents::new(dollars * 100 + tenths * 10))
        );
        prop_assert_eq!(Cents::parse(&format!("{dollars}")), Ok(Cents::new(dollars * 100)));
    }

    #[test]
    fn cents_parse_rejects_more_than_two_places(
        dollars in 0_i64..1_000_000,
        places in "[0-9]{3,8}",
    ) {
        prop_assert_eq!(
            Cents::parse(&format!("{dollars}.{places}")),
            Err(MoneyError::TooManyDecimalPlaces)
        );
    }

    #[test]
    fn cents_parse_rejects_anything_with_a_non_numeric_character(
        before in "[0-9]{0,4}",
        junk in "[a-zA-Z+eE,_ /]",
        after in "[0-9]{0,2}",
    ) {
        // The space is only junk inside the text; surrounding spaces are trimmed.
        let text = format!("{before}{junk}{after}");
        prop_assume!(text.trim() == text);
        prop_assert!(Cents::parse(&text).is_err(), "{text:?}");
    }

    #[test]
    fn cents_parse_rejects_amounts_beyond_i64(extra in 1_i128..1_000_000_000) {
        let too_big = i128::from(i64::MAX) + extra;
        let too_small = i128::from(i64::MIN) - extra;
        for cents in [too_big, too_small] {
            let sign = if cents < 0 { "-" } else { "" };
            let magnitude = cents.unsigned_abs();
            let text = format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100);
            prop_assert_eq!(Cents::parse(&text), Err(MoneyError::Overflow));
        }
    }

    #[test]
    fn cents_checked_arithmetic_matches_i64(a in any::<i64>(), b in any::<i64>()) {
        prop_assert_eq!(
            Cents::new(a).checked_add(Cents::new(b)).map(Cents::get),
            a.checked_add(b)
        );
        prop_assert_eq!(
            Cents::new(a).checked_sub(Cents::new(b)).map(Cents::get),
            a.checked_sub(b)
        );
        prop_assert_eq!(Cents::new(a).cmp(&Cents::new(b)), a.cmp(&b));
    }

    #[test]
    fn cents_as_float_dollars_is_a_hundredth(cents in -1_000_000_000_i64..1_000_000_000) {
        let dollars = Cents::new(cents).to_f64_dollars();
        prop_assert!((dollars * 100.0 - cents as f64).abs() < 1e-6);
    }
}

// ---------------------------------------------------------------- round-up

/// The round-up of a purchase on a debit account.
fn purchase(amount: i64, even: bool) -> i64 {
    roundup(Direction::Debit, AccountFamily::Debit, Cents::new(amount), even).get()
}

fn any_family() -> impl Strategy<Value = AccountFamily> {
    prop::sample::select(AccountFamily::ALL.to_vec())
}

fn any_direction() -> impl Strategy<Value = Direction> {
    prop::sample::select(vec![Direction::Debit, Direction::Credit])
}

proptest! {
    #[test]
    fn roundup_reaches_the_next_dollar(amount in 1_i64..10_000_000_000) {
        let up = purchase(amount, false);
        prop_assert!((0..100).contains(&up));
        prop_assert_eq!((amount + up) % 100, 0);
        prop_assert_eq!(up == 0, amount % 100 == 0);
    }

    #[test]
    fn even_roundup_adds_a_full_dollar_to_whole_amounts(amount in 1_i64..10_000_000_000) {
        let up = purchase(amount, true);
        prop_assert!((1..=100).contains(&up));
        prop_assert_eq!((amount + up) % 100, 0);
        prop_assert_eq!(up == 100, amount % 100 == 0);
        if amount % 100 != 0 {
            prop_assert_eq!(up, purchase(amount, false));
        }
    }

    #[test]
    fn roundup_of_credits_and_zero_is_zero(amount in i64::MIN..=0, even in any::<bool>()) {
        prop_assert_eq!(purchase(amount, even), 0);
    }

    #[test]
    fn roundup_works_at_the_top_of_the_range(amount in (i64::MAX - 1_000)..=i64::MAX) {
        let up = purchase(amount, false);
        prop_assert_eq!((i128::from(amount) + i128::from(up)) % 100, 0);
    }

    #[test]
    fn roundup_is_a_dollar_at_most_and_only_for_purchases_on_debit_accounts(
        direction in any_direction(),
        family in any_family(),
        amount in any::<i64>(),
        even in any::<bool>(),
    ) {
        let up = roundup(direction, family, Cents::new(amount), even).get();
        prop_assert!((0..=100).contains(&up));
        if direction == Direction::Debit && family == AccountFamily::Debit && amount > 0 {
            prop_assert_eq!((i128::from(amount) + i128::from(up)) % 100, 0, "a whole dollar");
        } else {
            prop_assert_eq!(up, 0);
        }
    }
}

// ---------------------------------------------------------------- debt shares

/// Up to 6 debt accounts with distinct ids and any stored shares (not necessarily summing to 100).
fn debt_accounts() -> impl Strategy<Value = DebtShares> {
    prop::collection::btree_map(1_i64..1_000_000, 0_i64..=100, 0..6)
        .prop_map(|accounts| accounts.into_iter().map(|(id, share)| (id, Share::new(share).unwrap())).collect())
}

fn sums_to_100_or_is_empty(shares: &DebtShares) -> bool {
    shares.is_empty() || shares.iter().map(|(_, s)| s.get()).sum::<u32>() == 100
}

proptest! {
    #[test]
    fn rebalancing_sums_to_100_and_keeps_the_accounts(shares in debt_accounts()) {
        let balanced = shares.rebalanced();
        prop_assert!(sums_to_100_or_is_empty(&balanced));
        prop_assert!(balanced.ids().eq(shares.ids()), "same accounts, same order");
        if shares.is_balanced() {
            prop_assert_eq!(&balanced, &shares, "balanced shares are left alone");
        }
        if shares.total() == 0 && !shares.is_empty() {
            prop_assert_eq!(balanced.iter().next().map(|(_, s)| s.get()), Some(100), "all to the first");
        }
        if shares.len() == 1 {
            prop_assert_eq!(balanced.iter().next().map(|(_, s)| s.get()), Some(100));
        }
        // Proportional: an account never ends up with less than one with a smaller share.
        let before = shares.to_map();
        let after = balanced.to_map();
        for (a, sa) in &before {
            for (b, sb) in &before {
                if sa > sb && shares.total() > 0 {
                    prop_assert!(after[a] >= after[b], "{:?}", (a, b));
                }
            }
        }
    }

    #[test]
    fn carving_keeps_the_carved_share_and_the_total(
        shares in debt_accounts(),
        pick in any::<prop::sample::Index>(),
        percent in 0_i64..=100,
    ) {
        prop_assume!(!shares.is_empty());
        let id = shares.ids().nth(pick.index(shares.len())).unwrap();
        let carved = shares.carve(id, Share::new(percent).unwrap()).unwrap();
        prop_assert!(sums_to_100_or_is_empty(&carved));
        prop_assert!(carved.ids().eq(shares.ids()));
        let expected = if shares.len() == 1 { 100 } else { percent };
        prop_assert_eq!(carved.get(id).map(Share::get), Some(expected as u32));
    }

    #[test]
    fn carving_an_account_that_is_not_there_is_refused(shares in debt_accounts(), id in 1_000_000_i64..2_000_000) {
        prop_assert_eq!(shares.carve(id, Share::FULL), Err(DebtSharesError::UnknownAccount { account_id: id }));
    }

    #[test]
    fn edit_accepts_exactly_the_valid_requests(
        shares in debt_accounts(),
        requested in prop::collection::btree_map(1_i64..1_000_000, -10_i64..=110, 0..6),
        use_own_ids in any::<bool>(),
    ) {
        // Half the time ask about exactly the user's accounts, so valid requests come up often.
        let requested: BTreeMap<i64, i64> = if use_own_ids {
            shares.ids().zip(requested.values().copied().chain(std::iter::repeat(0))).collect()
        } else {
            requested
        };
        let in_range = requested.values().all(|s| (0..=100).contains(s));
        let same_ids = requested.keys().copied().eq(shares.to_map().keys().copied());
        let sum: i64 = requested.values().sum();
        let valid = in_range && same_ids && sum == 100;
        let result = shares.edit(&requested);
        prop_assert_eq!(result.is_ok(), valid, "{:?}", result);
        if let Ok(edited) = result {
            prop_assert!(edited.ids().eq(shares.ids()));
            for (id, share) in edited.iter() {
                prop_assert_eq!(i64::from(share.get()), requested[&id]);
            }
        }
    }
}

proptest! {
    #[test]
    fn edit_accepts_every_split_of_100_over_the_accounts(
        (shares, parts) in percentages().prop_flat_map(|parts| {
            let n = parts.len();
            (prop::collection::btree_set(1_i64..1_000_000, n).prop_map(|ids| {
                ids.into_iter().map(|id| (id, Share::new(0).unwrap())).collect::<DebtShares>()
            }), Just(parts))
        }),
    ) {
        let requested: BTreeMap<i64, i64> = shares.ids().zip(parts.iter().map(|&p| i64::from(p))).collect();
        let edited = shares.edit(&requested).unwrap();
        prop_assert_eq!(edited.total(), 100);
    }
}

// ---------------------------------------------------------------- shares

/// Shares of 1 to 6 parts that sum to exactly 100.
fn percentages() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(0_u32..=100, 0..6).prop_map(|mut cuts| {
        cuts.sort_unstable();
        let mut shares = Vec::with_capacity(cuts.len() + 1);
        let mut previous = 0;
        for cut in cuts {
            shares.push(cut - previous);
            previous = cut;
        }
        shares.push(100 - previous);
        shares
    })
}

fn sum(parts: &[Cents]) -> i128 {
    parts.iter().map(|part| i128::from(part.get())).sum()
}

proptest! {
    #[test]
    fn split_parts_add_up_to_the_total(total in any::<i64>(), shares in percentages()) {
        let parts = split_by_shares(Cents::new(total), &shares);
        prop_assert_eq!(parts.len(), shares.len());
        prop_assert_eq!(sum(&parts), i128::from(total));
    }

    #[test]
    fn split_parts_are_within_a_cent_of_their_exact_share(
        total in any::<i64>(),
        shares in percentages(),
    ) {
        let parts = split_by_shares(Cents::new(total), &shares);
        for (part, &share) in parts.iter().zip(&shares) {
            // |part - total * share / 100| < 1, scaled by 100 to stay exact.
            let exact_times_100 = i128::from(total) * i128::from(share);
            let error_times_100 = (i128::from(part.get()) * 100 - exact_times_100).abs();
            prop_assert!(error_times_100 < 100, "part {part:?} share {share} of {total}");
            if share == 0 {
                prop_assert_eq!(*part, Cents::ZERO);
            }
        }
    }

    #[test]
    fn split_among_equal_shares_favours_earlier_parts_by_at_most_a_cent(
        total in -1_000_000_i64..1_000_000,
        count in prop::sample::select(vec![1_usize, 2, 4, 5, 10, 20, 25, 50, 100]),
    ) {
        let share = u32::try_from(100 / count).unwrap();
        let parts = split_by_shares(Cents::new(total), &vec![share; count]);
        let magnitudes: Vec<i64> = parts.iter().map(|part| part.get().abs()).collect();
        for pair in magnitudes.windows(2) {
            // Ties go to the earlier index, so magnitudes never increase.
            prop_assert!(pair[0] >= pair[1] && pair[0] - pair[1] <= 1, "{magnitudes:?}");
        }
    }

    #[test]
    fn split_never_loses_a_cent_even_with_unvalidated_shares(
        total in any::<i64>(),
        shares in prop::collection::vec(any::<u32>(), 0..8),
    ) {
        let parts = split_by_shares(Cents::new(total), &shares);
        prop_assert_eq!(parts.len(), shares.len());
        if !shares.is_empty() {
            prop_assert_eq!(sum(&parts), i128::from(total));
        }
    }

    #[test]
    fn validate_accepts_in_range_shares_summing_to_100(shares in percentages()) {
        let shares: Vec<i64> = shares.into_iter().map(i64::from).collect();
        prop_assert_eq!(validate_shares(&shares), Ok(()));
    }

    #[test]
    fn validate_rejects_shares_not_summing_to_100(
        shares in percentages(),
        index in any::<prop::sample::Index>(),
        delta in 1_i64..=100,
    ) {
        let mut shares: Vec<i64> = shares.into_iter().map(i64::from).collect();
        let index = index.index(shares.len());
        // Moving by 1..=100 modulo 101 always lands on a different value in 0..=100.
        shares[index] = (shares[index] + delta) % 101;
        prop_assert_eq!(validate_shares(&shares), Err(ShareError::SumNot100));
    }

    #[test]
    fn validate_rejects_any_share_out_of_range(
        shares in percentages(),
        index in any::<prop::sample::Index>(),
        bad in prop_oneof![i64::MIN..0, 101_i64..=i64::MAX],
    ) {
        let mut shares: Vec<i64> = shares.into_iter().map(i64::from).collect();
        let index = index.index(shares.len());
        shares[index] = bad;
        prop_assert_eq!(validate_shares(&shares), Err(ShareError::OutOfRange));
    }
}

// ---------------------------------------------------------------- split against its reference

/// The split written the plain way, as it was before it was made fast: u128 floors, then the
/// leftover cents one each to the largest remainders in a stable sort (earlier index first on a
/// tie). The fast split must give exactly these parts.
fn reference_split(total: i64, shares: &[u32]) -> Vec<i64> {
    let denominator: u128 = shares.iter().map(|&share| u128::from(share)).sum();
    if denominator == 0 {
        return (0..shares.len()).map(|index| if index == 0 { total } else { 0 }).collect();
    }
    let magnitude = u128::from(total.unsigned_abs());
    let mut parts: Vec<u128> = shares.iter().map(|&share| magnitude * u128::from(share) / denominator).collect();
    let remainder = |index: usize| magnitude * u128::from(shares[index]) % denominator;
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(remainder(index)));
    let leftover = magnitude - parts.iter().sum::<u128>();
    for &index in order.iter().take(usize::try_from(leftover).unwrap()) {
        parts[index] += 1;
    }
    let sign = if total < 0 { -1 } else { 1 };
    parts.into_iter().map(|part| i64::try_from(sign * i128::try_from(part).unwrap()).unwrap()).collect()
}

/// 1 to 10 shares that sum to exactly 100.
fn one_to_ten_percentages() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(0_u32..=100, 0..10).prop_map(|mut cuts| {
        cuts.sort_unstable();
        let mut shares: Vec<u32> =
            cuts.iter().scan(0, |previous, &cut| Some(cut - std::mem::replace(previous, cut))).collect();
        shares.push(100 - cuts.last().copied().unwrap_or(0));
        shares
    })
}

/// Shares as stored data might hold them: small percentages, zeros, and values whose sum runs
/// past u32 (which the split handles the slow way).
fn unvalidated_shares() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(prop_oneof![0_u32..=100, Just(0_u32), any::<u32>()], 0..12)
}

fn values(parts: &[Cents]) -> Vec<i64> {
    parts.iter().map(|part| part.get()).collect()
}

proptest! {
    #[test]
    fn split_of_up_to_ten_billion_dollars_is_exact_within_a_cent_and_as_the_reference(
        total in 0_i64..=1_000_000_000_000,
        shares in one_to_ten_percentages(),
    ) {
        let parts = split_by_shares(Cents::new(total), &shares);
        prop_assert_eq!(sum(&parts), i128::from(total));
        for (part, &share) in parts.iter().zip(&shares) {
            // |part − total × share / 100| ≤ 1 cent, scaled by 100 to stay in integers.
            let error_times_100 = (i128::from(part.get()) * 100 - i128::from(total) * i128::from(share)).abs();
            prop_assert!(error_times_100 <= 100, "part {part:?} share {share} of {total}");
        }
        prop_assert_eq!(values(&parts), reference_split(total, &shares));
    }

    #[test]
    fn split_is_the_reference_split_for_any_total_and_any_shares(
        total in prop_oneof![any::<i64>(), -100_000_i64..100_000, Just(i64::MIN), Just(i64::MAX)],
        shares in prop_oneof![one_to_ten_percentages(), unvalidated_shares()],
    ) {
        prop_assert_eq!(values(&split_by_shares(Cents::new(total), &shares)), reference_split(total, &shares));
    }

    #[test]
    fn split_into_clears_the_buffer_and_gives_the_same_parts(
        total in any::<i64>(),
        shares in prop_oneof![one_to_ten_percentages(), unvalidated_shares()],
        stale in prop::collection::vec(any::<i64>(), 0..8),
    ) {
        let mut buffer: Vec<Cents> = stale.into_iter().map(Cents::new).collect();
        split_into(Cents::new(total), &shares, &mut buffer);
        prop_assert_eq!(values(&buffer), reference_split(total, &shares));
    }
}

// ---------------------------------------------------------------- the batch split against split_by_shares

/// `K` shares summing to 100, cut from the first `K − 1` of `cuts` (each in 0..=100).
fn shares_from_cuts<const K: usize>(cuts: &[u32]) -> [u32; K] {
    let mut cuts = cuts[..K - 1].to_vec();
    cuts.sort_unstable();
    let mut shares = [0; K];
    let mut previous = 0;
    for (share, &cut) in shares.iter_mut().zip(&cuts) {
        *share = cut - previous;
        previous = cut;
    }
    shares[K - 1] = 100 - previous;
    shares
}

/// One user of a batch: a total, and either shares summing to 100 (cut from `cuts`) or the
/// first `K` of `raw` as they come.
type BatchUser = (i64, Vec<u32>, Vec<u32>, bool);

/// Splits `users`, all with `K` shares, in one batch (into a buffer of stale values), and checks
/// every user's parts against split_by_shares.
fn batch_is_split_by_shares<const K: usize>(users: &[BatchUser]) -> Result<(), TestCaseError> {
    let totals: Vec<Cents> = users.iter().map(|&(total, ..)| Cents::new(total)).collect();
    let shares: Vec<[u32; K]> = users
        .iter()
        .map(
            |(_, cuts, raw, percentages)| {
                if *percentages { shares_from_cuts(cuts) } else { <[u32; K]>::try_from(&raw[..K]).unwrap() }
            },
        )
        .collect();
    let mut parts = vec![[Cents::new(-7); K]; users.len()];
    split_batch(&totals, &shares, &mut parts);
    for ((&total, shares), parts) in totals.iter().zip(&shares).zip(&parts) {
        prop_assert_eq!(parts.to_vec(), split_by_shares(total, shares), "{} by {:?}", total, shares);
    }
    Ok(())
}

fn batch_is_split_by_shares_for(count: usize, users: &[BatchUser]) -> Result<(), TestCaseError> {
    match count {
        1 => batch_is_split_by_shares::<1>(users),
        2 => batch_is_split_by_shares::<2>(users),
        3 => batch_is_split_by_shares::<3>(users),
        4 => batch_is_split_by_shares::<4>(users),
        _ => batch_is_split_by_shares::<5>(users),
    }
}

proptest! {
    // Up to 300 users, so that a batch spans more than one of the chunks it works in.
    #[test]
    fn split_batch_is_split_by_shares_for_every_user(
        count in 1_usize..=5,
        users in prop::collection::vec(
            (0_i64..=1_000_000_000_000, prop::collection::vec(0_u32..=100, 4), Just(Vec::new()), Just(true)),
            0..300,
        ),
    ) {
        batch_is_split_by_shares_for(count, &users)?;
    }

    // Totals that fit in i32 (within ±$21 million, the usual case), which the batch splits in
    // narrower arithmetic, up to both ends.
    #[test]
    fn split_batch_is_split_by_shares_for_totals_within_i32(
        count in 1_usize..=5,
        users in prop::collection::vec(
            (
                prop_oneof![
                    i64::from(i32::MIN)..=i64::from(i32::MAX),
                    -100_000_i64..100_000,
                    Just(i64::from(i32::MIN)),
                    Just(i64::from(i32::MAX)),
                ],
                prop::collection::vec(0_u32..=100, 4),
                prop::collection::vec(prop_oneof![0_u32..=100, any::<u32>()], 5),
                prop::bool::weighted(0.95),
            ),
            0..300,
        ),
    ) {
        batch_is_split_by_shares_for(count, &users)?;
    }

    #[test]
    fn split_batch_is_split_by_shares_for_any_total_and_any_shares(
        count in 1_usize..=5,
        users in prop::collection::vec(
            (
                prop_oneof![any::<i64>(), -100_000_i64..100_000, Just(i64::MIN), Just(i64::MAX)],
                prop::collection::vec(0_u32..=100, 4),
                prop::collection::vec(prop_oneof![0_u32..=100, Just(0_u32), any::<u32>()], 5),
                prop::bool::weighted(0.8),
            ),
            0..300,
        ),
    ) {
        batch_is_split_by_shares_for(count, &users)?;
    }
}

// ---------------------------------------------------------------- email

fn local_part() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,10}", 1..4).prop_map(|atoms| atoms.join("."))
}

fn domain() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9]([A-Za-z0-9-]{0,8}[A-Za-z0-9])?", 2..4).prop_map(|labels| labels.join("."))
}

proptest! {
    #[test]
    fn email_accepts_valid_addresses_in_lower_case(
        local in local_part(),
        domain in domain(),
        padding in "[ \t\n]{0,2}",
    ) {
        let address = format!("{local}@{domain}");
        let email = Email::parse(&format!("{padding}{address}{padding}")).unwrap();
        prop_assert_eq!(email.as_str(), address.to_ascii_lowercase());
        prop_assert_eq!(email.to_string(), email.as_str());
        prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
        prop_assert_eq!(Email::parse(&address.to_ascii_uppercase()), Ok(email));
    }

    #[test]
    fn email_rejects_a_second_at_sign(local in local_part(), domain in domain()) {
        prop_assert_eq!(Email::parse(&format!("{local}@x@{domain}")), Err(EmailError));
        prop_assert_eq!(Email::parse(&format!("{local}{domain}")), Err(EmailError));
    }

    #[test]
    fn email_rejects_inner_whitespace(
        local in local_part(),
        domain in domain(),
        space in "[ \t]",
        at_local in any::<bool>(),
    ) {
        let address = if at_local {
            format!("{local}{space}x@{domain}")
        } else {
            format!("{local}@x{space}{domain}")
        };
        prop_assert_eq!(Email::parse(&address), Err(EmailError));
    }

    #[test]
    fn email_rejects_a_domain_without_a_dot(local in local_part(), label in "[a-z0-9]{1,20}") {
        prop_assert_eq!(Email::parse(&format!("{local}@{label}")), Err(EmailError));
    }

    #[test]
    fn email_rejects_labels_with_outer_hyphens_or_other_characters(
        local in local_part(),
        label in "[a-z0-9]{1,5}",
        bad in prop_oneof![
            Just("-{}".to_string()),
            Just("{}-".to_string()),
            Just("{}_x".to_string()),
            Just("{}!".to_string()),
        ],
    ) {
        let bad_label = bad.replace("{}", &label);
        prop_assert_eq!(
            Email::parse(&format!("{local}@{bad_label}.com")),
            Err(EmailError)
        );
    }

    #[test]
    fn email_rejects_local_parts_over_64(extra in 1_usize..50, domain in domain()) {
        let local = "a".repeat(64 + extra);
        prop_assert_eq!(Email::parse(&format!("{local}@{domain}")), Err(EmailError));
    }
}

// ---------------------------------------------------------------- password

proptest! {
    #[test]
    fn password_accepts_8_to_128_characters_as_typed(text in "\\PC{8,128}") {
        let password = Password::parse(&text).unwrap();
        prop_assert_eq!(password.expose(), text.as_str());
        prop_assert_eq!(format!("{password:?}"), "Password(***)");
    }

    #[test]
    fn password_rejects_fewer_than_8_characters(text in "\\PC{0,7}") {
        prop_assert_eq!(Password::parse(&text), Err(PasswordError::TooShort));
    }

    #[test]
    fn password_rejects_more_than_128_characters(text in "\\PC{129,200}") {
        prop_assert_eq!(Password::parse(&text), Err(PasswordError::TooLong));
    }
}

// ---------------------------------------------------------------- phone

fn separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", " ", "-", ".", "(", ")"])
}

proptest! {
    #[test]
    fn phone_keeps_the_10_digits_whatever_the_punctuation(
        digits in "[0-9]{10}",
        separators in prop::collection::vec(separator(), 11),
        prefix in prop::sample::select(vec!["", "+1", "1", "+1 ", "1-", "+1("]),
    ) {
        let mut text = prefix.to_string();
        for (digit, separator) in digits.chars().zip(&separators) {
            text.push_str(separator);
            text.push(digit);
        }
        text.push_str(separators[10]);
        let phone = Phone::parse(&text).unwrap();
        prop_assert_eq!(phone.as_str(), digits.as_str());
        prop_assert_eq!(phone.to_string(), digits);
    }

    #[test]
    fn phone_rejects_other_digit_counts(digits in "[0-9]{0,20}") {
        let eleven_with_country_code = digits.len() == 11 && digits.starts_with('1');
        prop_assume!(digits.len() != 10 && !eleven_with_country_code);
        prop_assert_eq!(Phone::parse(&digits), Err(ProfileError::InvalidPhone));
        prop_assert_eq!(Phone::parse(&format!("+1{digits}")), Err(ProfileError::InvalidPhone));
    }

    #[test]
    fn phone_rejects_letters_and_other_symbols(
        digits in "[0-9]{10}",
        position in 0_usize..=10,
        junk in "[a-zA-Z/_#*,]",
    ) {
        let mut text = digits;
        text.insert_str(position, &junk);
        prop_assert_eq!(Phone::parse(&text), Err(ProfileError::InvalidPhone));
    }
}

// ---------------------------------------------------------------- SSN

fn issued_ssn() -> impl Strategy<Value = (u32, u32, u32)> {
    ((1_u32..900).prop_filter("666 is never issued", |area| *area != 666), 1_u32..100, 1_u32..10_000)
}

proptest! {
    #[test]
    fn ssn_accepts_issued_numbers_dashed_or_plain((area, group, serial) in issued_ssn()) {
        let dashed = format!("{area:03}-{group:02}-{serial:04}");
        let plain = format!("{area:03}{group:02}{serial:04}");
        let ssn = Ssn::parse(&dashed).unwrap();
        prop_assert_eq!(Ssn::parse(&plain), Ok(ssn.clone()));
        prop_assert_eq!(ssn.digits(), plain.as_str());
        prop_assert_eq!(ssn.formatted(), dashed);
        let last4 = format!("{serial:04}");
        prop_assert_eq!(ssn.last4(), last4.as_str());
        prop_assert_eq!(ssn.masked(), format!("***-**-{last4}"));
        let debug = format!("{ssn:?}");
        prop_assert_eq!(&debug, &format!("Ssn(***-**-{last4})"));
        prop_assert!(!debug.contains(&plain[..5]));
    }

    #[test]
    fn ssn_rejects_never_issued_parts(
        (area, group, serial) in issued_ssn(),
        bad_area in prop_oneof![Just(0_u32), Just(666), 900_u32..1000],
        which in 0_usize..3,
    ) {
        let (area, group, serial) = match which {
            0 => (bad_area, group, serial),
            1 => (area, 0, serial),
            _ => (area, group, 0),
        };
        prop_assert_eq!(
            Ssn::parse(&format!("{area:03}-{group:02}-{serial:04}")),
            Err(ProfileError::InvalidSsn)
        );
        prop_assert_eq!(
            Ssn::parse(&format!("{area:03}{group:02}{serial:04}")),
            Err(ProfileError::InvalidSsn)
        );
    }

    #[test]
    fn ssn_rejects_wrong_digit_counts(digits in "[1-8][0-9]{0,12}") {
        prop_assume!(digits.len() != 9);
        prop_assert_eq!(Ssn::parse(&digits), Err(ProfileError::InvalidSsn));
    }
}

// ---------------------------------------------------------------- postal code

proptest! {
    #[test]
    fn postal_code_accepts_five_digits(code in "[0-9]{5}") {
        let postal = PostalCode::parse(&code).unwrap();
        prop_assert_eq!(postal.as_str(), code.as_str());
        prop_assert_eq!(postal.to_string(), code);
    }

    #[test]
    fn postal_code_rejects_other_lengths(code in "[0-9]{0,12}") {
        prop_assume!(code.len() != 5);
        prop_assert_eq!(PostalCode::parse(&code), Err(ProfileError::InvalidPostalCode));
    }

    #[test]
    fn postal_code_rejects_non_digits(code in "[0-9]{5}", position in 0_usize..5, junk in "[^0-9 \t\n]") {
        let mut text = code;
        text.replace_range(position..=position, &junk);
        prop_assert_eq!(PostalCode::parse(&text), Err(ProfileError::InvalidPostalCode));
    }
}

// ---------------------------------------------------------------- state

proptest! {
    #[test]
    fn state_accepts_every_code_in_any_case(
        code in prop::sample::select(UsState::CODES.to_vec()),
        lower in prop::array::uniform2(any::<bool>()),
    ) {
        let typed: String = code
            .chars()
            .zip(lower)
            .map(|(c, lower)| if lower { c.to_ascii_lowercase() } else { c })
            .collect();
        let state = UsState::parse(&typed).unwrap();
        prop_assert_eq!(state.as_str(), code);
        prop_assert_eq!(state.to_string(), code);
    }

    #[test]
    fn state_rejects_codes_outside_the_list(code in "[A-Za-z]{1,3}") {
        let known = UsState::CODES.iter().any(|known| known.eq_ignore_ascii_case(&code));
        prop_assume!(!known);
        prop_assert_eq!(UsState::parse(&code), Err(ProfileError::InvalidState));
    }
}

// ---------------------------------------------------------------- date of birth

fn any_date() -> impl Strategy<Value = NaiveDate> {
    let from = NaiveDate::from_ymd_opt(1850, 1, 1).unwrap().num_days_from_ce();
    let to = NaiveDate::from_ymd_opt(2150, 12, 31).unwrap().num_days_from_ce();
    (from..=to).prop_map(|days| NaiveDate::from_num_days_from_ce_opt(days).unwrap())
}

/// Completed years of age, counted the way people do: the age goes up on the
/// birthday, and on Mar 1 for a leap-day birthday in other years.
fn age_on(born: NaiveDate, today: NaiveDate) -> i32 {
    let before_birthday = (today.month(), today.day()) < (born.month(), born.day());
    today.year() - born.year() - i32::from(before_birthday)
}

proptest! {
    #[test]
    fn date_of_birth_follows_the_age_rules(born in any_date(), today in any_date()) {
        let expected = if born > today {
            Err(ProfileError::DateOfBirthInFuture)
        } else if born < NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() {
            Err(ProfileError::DateOfBirthBefore1900)
        } else if age_on(born, today) < 18 {
            Err(ProfileError::Underage)
        } else {
            Ok(born)
        };
        let text = born.format("%Y-%m-%d").to_string();
        let parsed = DateOfBirth::parse(&text, today);
        prop_assert_eq!(parsed.map(|dob| dob.date()), expected);
        if let Ok(dob) = parsed {
            prop_assert_eq!(dob.to_string(), text);
            prop_assert_eq!(DateOfBirth::new(dob.date(), today), Ok(dob));
        }
    }

    #[test]
    fn date_of_birth_is_accepted_from_the_18th_birthday_on(
        born in any_date(),
        days_later in 0_i64..400,
    ) {
        prop_assume!(born.year() >= 1900);
        let birthday = NaiveDate::from_ymd_opt(born.year() + 18, born.month(), born.day())
            .unwrap_or_else(|| NaiveDate::from_ymd_opt(born.year() + 18, 3, 1).unwrap());
        let text = born.format("%Y-%m-%d").to_string();
        let day_before = birthday.pred_opt().unwrap();
        prop_assert_eq!(DateOfBirth::parse(&text, day_before), Err(ProfileError::Underage));
        let later = birthday + chrono::Days::new(days_later.unsigned_abs());
        prop_assert!(DateOfBirth::parse(&text, later).is_ok());
    }

    #[test]
    fn leap_day_births_come_of_age_on_march_first(leap_year in (475_i32..525).prop_map(|n| n * 4)) {
        prop_assume!(leap_year % 100 != 0 || leap_year % 400 == 0);
        let born = NaiveDate::from_ymd_opt(leap_year, 2, 29).unwrap();
        let text = born.format("%Y-%m-%d").to_string();
        let eighteen = leap_year + 18;
        let feb_28 = NaiveDate::from_ymd_opt(eighteen, 2, 28).unwrap();
        let mar_1 = NaiveDate::from_ymd_opt(eighteen, 3, 1).unwrap();
        prop_assert_eq!(age_on(born, feb_28), 17);
        prop_assert_eq!(DateOfBirth::parse(&text, feb_28), Err(ProfileError::Underage));
        prop_assert_eq!(DateOfBirth::parse(&text, mar_1).map(|dob| dob.date()), Ok(born));
    }

    #[test]
    fn date_of_birth_rejects_other_shapes(
        born in any_date(),
        shape in prop::sample::select(vec!["%Y/%m/%d", "%d-%m-%Y", "%Y%m%d", "%Y-%-m-%-d", "%m/%d/%Y"]),
    ) {
        // "%Y-%-m-%-d" coincides with the real format when month and day have two digits.
        prop_assume!(shape != "%Y-%-m-%-d" || born.month() < 10 || born.day() < 10);
        let today = NaiveDate::from_ymd_opt(2200, 1, 1).unwrap();
        let text = born.format(shape).to_string();
        prop_assert_eq!(DateOfBirth::parse(&text, today), Err(ProfileError::InvalidDate));
    }
}

// ---------------------------------------------------------------- transfer amount

proptest! {
    #[test]
    fn transfer_amount_accepts_only_the_choices(dollars in prop_oneof![
        prop::sample::select(TransferAmount::CHOICES.to_vec()),
        -200_i64..200,
        any::<i64>(),
    ]) {
        let parsed = TransferAmount::parse(dollars);
        if TransferAmount::CHOICES.contains(&dollars) {
            prop_assert_eq!(parsed.map(TransferAmount::get), Ok(dollars));
        } else {
            prop_assert_eq!(parsed, Err(ProfileError::InvalidChoice(dollars)));
            let message = format!("\"{dollars}\" is not a valid choice.");
            prop_assert_eq!(parsed.unwrap_err().to_string(), message);
        }
    }
}

// ---------------------------------------------------------------- ledger

mod ledger {
    use std::collections::BTreeMap;

    use donkies_domain::{
        Balances, Cents, Entry, EntryKind, LedgerAccount, LedgerRefusal, Movement, PendingState, Recorded,
    };
    use proptest::prelude::*;

    /// A few users and a few ids, so that random movements replay, collide and resolve what
    /// earlier ones began.
    fn movement() -> impl Strategy<Value = Movement> {
        let user = 1_i64..4;
        let id = 0_i64..6;
        let amount = (1_i64..2_000).prop_map(Cents::new);
        prop_oneof![
            3 => (user.clone(), id.clone(), amount.clone())
                .prop_map(|(user_id, transaction_id, amount)| Movement::RoundUp { user_id, roundup_id: transaction_id, amount }),
            1 => (user.clone(), id.clone(), amount.clone()).prop_map(|(user_id, contribution_id, amount)| {
                Movement::Contribution { user_id, contribution_id, amount }
            }),
            2 => (user.clone(), id.clone(), amount.clone())
                .prop_map(|(user_id, collection_id, amount)| Movement::CollectStart { user_id, collection_id, amount }),
            2 => id.clone().prop_map(|collection_id| Movement::CollectPost { collection_id }),
            1 => id.clone().prop_map(|collection_id| Movement::CollectVoid { collection_id }),
            2 => (user.clone(), id.clone(), 0_i64..3, amount.clone()).prop_map(
                |(user_id, part_id, debt_account_id, amount)| Movement::PayoutStart {
                    user_id,
                    part_id,
                    debt_account_id,
                    amount,
                }
            ),
            2 => id.clone().prop_map(|part_id| Movement::PayoutPost { part_id }),
            1 => id.clone().prop_map(|part_id| Movement::PayoutVoid { part_id }),
            1 => (user, id.clone(), amount)
                .prop_map(|(user_id, refund_id, amount)| Movement::RefundStart { user_id, refund_id, amount }),
            1 => id.clone().prop_map(|refund_id| Movement::RefundPost { refund_id }),
            1 => id.prop_map(|refund_id| Movement::RefundVoid { refund_id }),
        ]
    }

    fn account() -> impl Strategy<Value = LedgerAccount> {
        let id = 0_i64..i64::MAX;
        prop_oneof![
            Just(LedgerAccount::RoundUpSource),
            Just(LedgerAccount::ContributionSource),
            id.clone().prop_map(|user_id| LedgerAccount::RoundUpsPending { user_id }),
            id.clone().prop_map(|user_id| LedgerAccount::InCollection { user_id }),
            id.clone().prop_map(|user_id| LedgerAccount::Held { user_id }),
            (id.clone(), id.clone())
                .prop_map(|(user_id, account_id)| LedgerAccount::PaidToDebt { user_id, account_id }),
            id.prop_map(|user_id| LedgerAccount::Refunded { user_id }),
        ]
    }

    fn snapshot(ledger: &Balances) -> Vec<(LedgerAccount, donkies_domain::Balance)> {
        ledger.accounts().collect()
    }

    /// The key of the pending entry a resolving movement names.
    fn resolves(movement: &Movement) -> Option<(String, PendingState)> {
        use donkies_domain::ledger::keys;
        match *movement {
            Movement::CollectPost { collection_id } => Some((keys::collect(collection_id), PendingState::Posted)),
            Movement::CollectVoid { collection_id } => Some((keys::collect(collection_id), PendingState::Voided)),
            Movement::PayoutPost { part_id } => Some((keys::payout(part_id), PendingState::Posted)),
            Movement::PayoutVoid { part_id } => Some((keys::payout(part_id), PendingState::Voided)),
            Movement::RefundPost { refund_id } => Some((keys::refund(refund_id), PendingState::Posted)),
            Movement::RefundVoid { refund_id } => Some((keys::refund(refund_id), PendingState::Voided)),
            _ => None,
        }
    }

    proptest! {
        #[test]
        fn ledger_account_codes_parse_back(account in account()) {
            prop_assert_eq!(LedgerAccount::parse(&account.code()), Some(account));
        }

        #[test]
        fn ledger_entries_exist_only_where_their_kind_allows(
            kind in proptest::sample::select(EntryKind::ALL),
            debit in account(),
            credit in account(),
            cents in -5_i64..5,
        ) {
            let built = Entry::new("key", kind, debit, credit, Cents::new(cents));
            let legal = kind.allows(debit, credit) && cents > 0;
            prop_assert_eq!(built.is_ok(), legal, "{:?}", built);
            if let Ok(entry) = built {
                prop_assert_ne!(entry.debit(), entry.credit());
                prop_assert!(entry.user_id().is_some(), "every entry moves one user's money");
                let users = [entry.debit().user_id(), entry.credit().user_id()];
                prop_assert!(users.iter().flatten().all(|u| Some(*u) == entry.user_id()));
            }
        }

        #[test]
        fn ledger_any_sequence_of_movements_conserves_money_and_keeps_users_above_zero(
            movements in proptest::collection::vec(movement(), 0..80),
        ) {
            let mut ledger = Balances::new();
            let mut brought_in: BTreeMap<i64, i64> = BTreeMap::new();
            let mut resolved: BTreeMap<String, PendingState> = BTreeMap::new();
            for movement in &movements {
                let before = snapshot(&ledger);
                let outcome = ledger.record(movement);
                match &outcome {
                    Err(_) => prop_assert_eq!(&snapshot(&ledger), &before, "a refusal changes nothing"),
                    Ok(Recorded::AlreadyRecorded) => prop_assert_eq!(&snapshot(&ledger), &before, "a replay changes nothing"),
                    Ok(Recorded::New) => {
                        if let Movement::RoundUp { user_id, amount, .. } | Movement::Contribution { user_id, amount, .. } = movement {
                            *brought_in.entry(*user_id).or_default() += amount.get();
                        }
                    }
                }
                if let Some((key, to)) = resolves(movement) {
                    match (resolved.get(&key), &outcome) {
                        (None, Ok(_)) => { resolved.insert(key.clone(), to); }
                        (Some(first), Ok(_)) => prop_assert_eq!(*first, to, "only the same resolution replays"),
                        (Some(first), Err(refusal)) => prop_assert_eq!(
                            refusal, &LedgerRefusal::AlreadyResolved { state: *first }
                        ),
                        (None, Err(_)) => {}
                    }
                    if let Some(first) = resolved.get(&key) {
                        prop_assert_eq!(ledger.pending_state(&key), Some(*first), "resolved at most once");
                    }
                }

                prop_assert_eq!(ledger.total_posted(), Some(Cents::ZERO));
                let (mut debits, mut credits) = (0_i64, 0_i64);
                for (account, balance) in ledger.accounts() {
                    prop_assert!(balance.pending_debits >= Cents::ZERO && balance.pending_credits >= Cents::ZERO);
                    debits += balance.pending_debits.get();
                    credits += balance.pending_credits.get();
                    if !account.may_go_negative() {
                        prop_assert!(balance.posted >= Cents::ZERO, "{account}: {balance:?}");
                        prop_assert!(balance.available().unwrap() >= Cents::ZERO, "{account}: {balance:?}");
                    }
                }
                prop_assert_eq!(debits, credits, "what is pending leaves one account for another");
            }
            // Per user: what came in is wherever it is now, posted, in one of their accounts.
            let mut held_by_user: BTreeMap<i64, i64> = BTreeMap::new();
            for (account, balance) in ledger.accounts() {
                if let Some(user_id) = account.user_id() {
                    *held_by_user.entry(user_id).or_default() += balance.posted.get();
                }
            }
            held_by_user.retain(|_, cents| *cents != 0);
            brought_in.retain(|_, cents| *cents != 0);
            prop_assert_eq!(held_by_user, brought_in);
        }
    }
}

// ---------------------------------------------------------------- round-up rules

mod rules {
    use donkies_domain::{AccountFamily, Cap, Cents, Direction, Multiplier, RoundUpRules, roundup};
    use proptest::prelude::*;

    /// Caps low enough that they often bind.
    fn cap() -> impl Strategy<Value = Option<Cap>> {
        prop::option::of((Cap::MIN_DOLLARS..=300).prop_map(|dollars| Cap::parse_dollars(dollars).unwrap()))
    }

    fn any_rules() -> impl Strategy<Value = RoundUpRules> {
        (any::<bool>(), any::<bool>(), prop::sample::select(Multiplier::CHOICES.to_vec()), cap(), cap()).prop_map(
            |(even_roundup, paused, multiplier, daily_cap, monthly_cap)| RoundUpRules {
                even_roundup,
                paused,
                multiplier: Multiplier::parse(multiplier).unwrap(),
                daily_cap,
                monthly_cap,
            },
        )
    }

    /// Pending round-ups and contributions, each above zero.
    fn items() -> impl Strategy<Value = Vec<Cents>> {
        prop::collection::vec(prop_oneof![1_i64..=1_000, 1_i64..=20_000].prop_map(Cents::new), 0..40)
    }

    /// Already collected: often nothing, sometimes past a cap.
    fn collected() -> impl Strategy<Value = Cents> {
        prop_oneof![Just(0_i64), 0_i64..=40_000].prop_map(Cents::new)
    }

    fn minimum() -> impl Strategy<Value = Cents> {
        prop_oneof![Just(500_i64), 0_i64..=3_000].prop_map(Cents::new)
    }

    /// What may still be collected under a cap; `i128::MAX` for no cap.
    fn room(cap: Option<Cap>, collected: Cents) -> i128 {
        cap.map_or(i128::MAX, |cap| (i128::from(cap.cents().get()) - i128::from(collected.get())).max(0))
    }

    fn total(items: &[Cents], taken: &[usize]) -> i128 {
        taken.iter().map(|&index| i128::from(items[index].get())).sum()
    }

    proptest! {
        #[test]
        fn collection_takes_in_order_and_never_more_than_either_room(
            rules in any_rules(),
            items in items(),
            today in collected(),
            month in collected(),
            minimum in minimum(),
        ) {
            let taken = rules.select_for_collection(&items, today, month, minimum);
            prop_assert!(taken.windows(2).all(|pair| pair[0] < pair[1]), "in order, each once: {taken:?}");
            prop_assert!(taken.iter().all(|&index| index < items.len()));
            let taken_total = total(&items, &taken);
            prop_assert!(taken_total <= room(rules.daily_cap, today), "{taken_total} over the daily room");
            prop_assert!(taken_total <= room(rules.monthly_cap, month), "{taken_total} over the monthly room");
        }

        #[test]
        fn collection_skips_only_what_no_longer_fits(
            rules in any_rules(),
            items in items(),
            today in collected(),
            month in collected(),
        ) {
            let taken = rules.select_for_collection(&items, today, month, Cents::ZERO);
            let mut daily = room(rules.daily_cap, today);
            let mut monthly = room(rules.monthly_cap, month);
            for (index, item) in items.iter().enumerate() {
                let amount = i128::from(item.get());
                if taken.contains(&index) {
                    daily -= amount;
                    monthly -= amount;
                } else {
                    prop_assert!(amount > daily.min(monthly), "item {index} ({item}) fitted but was skipped");
                }
            }
        }

        #[test]
        fn collection_takes_nothing_when_the_taken_total_would_be_below_the_minimum(
            rules in any_rules(),
            items in items(),
            today in collected(),
            month in collected(),
            minimum in minimum(),
        ) {
            let fitting = rules.select_for_collection(&items, today, month, Cents::ZERO);
            let taken = rules.select_for_collection(&items, today, month, minimum);
            if total(&items, &fitting) >= i128::from(minimum.get()) {
                prop_assert_eq!(taken, fitting);
            } else {
                prop_assert!(taken.is_empty(), "{taken:?} below the minimum {minimum}");
            }
        }

        #[test]
        fn collection_without_caps_takes_everything_once_the_minimum_is_reached(
            rules in any_rules(),
            items in items(),
            today in collected(),
            month in collected(),
            minimum in minimum(),
        ) {
            let uncapped = RoundUpRules { daily_cap: None, monthly_cap: None, ..rules };
            let taken = uncapped.select_for_collection(&items, today, month, minimum);
            let everything: Vec<usize> = (0..items.len()).collect();
            if total(&items, &everything) >= i128::from(minimum.get()) {
                prop_assert_eq!(taken, everything);
            } else {
                prop_assert!(taken.is_empty());
            }
        }

        #[test]
        fn roundup_under_rules_is_the_multiplied_spare_change_and_nothing_while_paused(
            rules in any_rules(),
            direction in prop::sample::select(vec![Direction::Debit, Direction::Credit]),
            family in prop::sample::select(AccountFamily::ALL.to_vec()),
            amount in prop_oneof![any::<i64>(), 1_i64..100_000, (1_i64..1_000).prop_map(|dollars| dollars * 100)],
        ) {
            let up = rules.roundup(direction, family, Cents::new(amount)).get();
            if rules.paused {
                prop_assert_eq!(up, 0);
            } else {
                let spare_change = roundup(direction, family, Cents::new(amount), rules.even_roundup).get();
                prop_assert_eq!(up, spare_change * rules.multiplier.get());
            }
            // $0.99 × 10 at most, or a whole dollar × 10 with even round-up: always under the
            // smallest cap.
            let largest = if rules.even_roundup { 1_000 } else { 990 };
            prop_assert!((0..=largest).contains(&up), "{up}");
            prop_assert!(up <= Cap::parse_dollars(Cap::MIN_DOLLARS).unwrap().cents().get());
        }
    }
}

// ---------------------------------------------------------------- payoff projection

mod projection {
    use donkies_domain::{Cents, MAX_PAYOFF_MONTHS, PayoffMonth, payoff_schedule, project_payoff};
    use proptest::prelude::*;

    /// Up to $10 million; at 12 % (1 % a month) the ones ending in 50 cents owe exactly half a
    /// cent of interest in their first month.
    fn balance() -> impl Strategy<Value = Cents> {
        prop_oneof![
            1_i64..=1_000_000_000,
            1_i64..=2_000_000,
            (0_i64..10_000_000).prop_map(|dollars| dollars * 100 + 50),
            -1_000_i64..=0,
        ]
        .prop_map(Cents::new)
    }

    /// 0 % to 36 % APR, in basis points.
    fn apr() -> impl Strategy<Value = u32> {
        prop_oneof![Just(0_u32), Just(1_200_u32), 0_u32..=3_600]
    }

    fn payment() -> impl Strategy<Value = Cents> {
        prop_oneof![Just(0_i64), 1_i64..=5_000, 1_i64..=200_000, 1_i64..=20_000_000].prop_map(Cents::new)
    }

    /// `balance × apr / 12`, rounded half up, written another way than the domain writes it.
    fn interest_by_hand(balance: i64, apr: u32) -> i128 {
        let twice = 2 * i128::from(balance) * i128::from(apr);
        (twice + 120_000) / 240_000
    }

    proptest! {
        #[test]
        fn paying_more_each_month_never_takes_longer_or_costs_more_interest(
            balance in balance(),
            apr in apr(),
            minimum in payment(),
            roundup in payment(),
        ) {
            let projection = project_payoff(balance, apr, minimum, roundup);
            if let Some(months_without) = projection.months_without {
                prop_assert!(projection.months_with.is_some(), "{projection:?}");
                let months_with = projection.months_with.unwrap();
                let interest_with = projection.interest_with.unwrap();
                let interest_without = projection.interest_without.unwrap();
                prop_assert!(months_with <= months_without, "{projection:?}");
                prop_assert!(interest_with <= interest_without, "{projection:?}");
                prop_assert_eq!(projection.months_saved, Some(months_without - months_with));
                prop_assert_eq!(
                    projection.interest_saved,
                    Some(Cents::new(interest_without.get() - interest_with.get()))
                );
            } else {
                prop_assert_eq!((projection.months_saved, projection.interest_saved), (None, None));
            }
            prop_assert_eq!(projection.months_with.is_some(), projection.interest_with.is_some());
            prop_assert_eq!(projection.months_without.is_some(), projection.interest_without.is_some());
        }

        #[test]
        fn a_zero_round_up_projects_the_same_payoff_with_and_without(
            balance in balance(),
            apr in apr(),
            minimum in payment(),
        ) {
            let projection = project_payoff(balance, apr, minimum, Cents::ZERO);
            prop_assert_eq!(projection.months_with, projection.months_without);
            prop_assert_eq!(projection.interest_with, projection.interest_without);
            if projection.months_without.is_some() {
                prop_assert_eq!(projection.months_saved, Some(0));
                prop_assert_eq!(projection.interest_saved, Some(Cents::ZERO));
            }
        }

        #[test]
        fn the_schedule_pays_exactly_the_balance_plus_the_interest(
            balance in balance(),
            apr in apr(),
            monthly in payment(),
        ) {
            let horizon = usize::try_from(MAX_PAYOFF_MONTHS).unwrap();
            let months: Vec<PayoffMonth> = payoff_schedule(balance, apr, monthly).take(horizon + 1).collect();
            let mut owed = balance.get();
            for (number, month) in months.iter().enumerate() {
                prop_assert_eq!(i128::from(month.interest.get()), interest_by_hand(owed, apr), "month {}", number);
                prop_assert_eq!(month.balance_after.get(), owed + month.interest.get() - month.payment.get());
                prop_assert!(month.balance_after >= Cents::ZERO);
                if month.balance_after > Cents::ZERO {
                    prop_assert_eq!(month.payment, monthly, "only the last month pays less");
                }
                owed = month.balance_after.get();
            }
            let paid: i128 = months.iter().map(|month| i128::from(month.payment.get())).sum();
            let interest: i128 = months.iter().map(|month| i128::from(month.interest.get())).sum();
            let paid_off = owed <= 0;
            if paid_off && balance > Cents::ZERO {
                prop_assert_eq!(paid, i128::from(balance.get()) + interest, "every cent paid is balance or interest");
            }
            if !paid_off && months.len() <= horizon {
                // It stopped early: the next payment would not beat the interest.
                prop_assert!(i128::from(monthly.get()) <= interest_by_hand(owed, apr));
            }

            let projection = project_payoff(balance, apr, monthly, Cents::ZERO);
            if paid_off && months.len() <= horizon {
                prop_assert_eq!(projection.months_without, Some(u32::try_from(months.len()).unwrap()));
                prop_assert_eq!(projection.interest_without.map(|cents| i128::from(cents.get())), Some(interest));
            } else {
                prop_assert_eq!(projection.months_without, None);
                prop_assert_eq!(projection.interest_without, None);
            }
        }
    }
}
