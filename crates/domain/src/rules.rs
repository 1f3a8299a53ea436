//! The user's round-up rules in one place: even round-up, pause, multiplier, the daily and
//! monthly caps on what one collection may take from the user's bank, and the overdraft guard
//! that keeps a collection from taking the bank account below the user's floor.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Serialize, Serializer};

use crate::banking::{AccountFamily, Direction, roundup};
use crate::money::Cents;
use crate::profile::ProfileError;

/// The round-up multiplier a user chooses: one of [`Multiplier::CHOICES`], 1 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Multiplier(i64);

impl Multiplier {
    /// The allowed multipliers, as listed by `/v1/settings`.
    pub const CHOICES: [i64; 5] = [1, 2, 3, 5, 10];

    pub fn parse(n: i64) -> Result<Multiplier, ProfileError> {
        if Self::CHOICES.contains(&n) { Ok(Multiplier(n)) } else { Err(ProfileError::InvalidChoice(n)) }
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl Default for Multiplier {
    /// Plain round-ups: the spare change itself.
    fn default() -> Self {
        Multiplier(1)
    }
}

impl fmt::Display for Multiplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A JSON number, as the API shows it.
impl Serialize for Multiplier {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

/// A cap, in whole dollars, on what is collected from the user's bank per UTC day or per UTC
/// month.
///
/// The smallest cap is ten dollars so that the largest single round-up (a whole-dollar purchase
/// with even round-up at the 10× multiplier, $10.00) always fits under an untouched cap; a
/// smaller one could hold a round-up back forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cap(i64);

impl Cap {
    pub const MIN_DOLLARS: i64 = 10;
    pub const MAX_DOLLARS: i64 = 100_000;

    pub fn parse_dollars(dollars: i64) -> Result<Cap, ProfileError> {
        if (Self::MIN_DOLLARS..=Self::MAX_DOLLARS).contains(&dollars) {
            Ok(Cap(dollars))
        } else {
            Err(ProfileError::CapOutOfRange)
        }
    }

    pub const fn dollars(self) -> i64 {
        self.0
    }

    /// Never overflows: the largest cap is ten million cents.
    pub const fn cents(self) -> Cents {
        Cents::new(self.0 * 100)
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A JSON number of whole dollars, as the API shows it.
impl Serialize for Cap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

/// The available balance, in whole dollars, that a collection must leave in the round-up
/// source account: from 0 to 10000, 100 unless the user chose otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OverdraftFloor(i64);

impl OverdraftFloor {
    pub const MAX_DOLLARS: i64 = 10_000;
    pub const DEFAULT: OverdraftFloor = OverdraftFloor(100);
    pub const HIGHEST: OverdraftFloor = OverdraftFloor(Self::MAX_DOLLARS);

    pub fn parse_dollars(dollars: i64) -> Result<OverdraftFloor, ProfileError> {
        if (0..=Self::MAX_DOLLARS).contains(&dollars) {
            Ok(OverdraftFloor(dollars))
        } else {
            Err(ProfileError::FloorOutOfRange)
        }
    }

    pub const fn dollars(self) -> i64 {
        self.0
    }

    /// Never overflows: the highest floor is one million cents.
    pub const fn cents(self) -> Cents {
        Cents::new(self.0 * 100)
    }
}

impl Default for OverdraftFloor {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What we last heard from the bank about the round-up source account: its available balance
/// and when a sync stored it (either may be unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KnownBalance {
    pub available: Option<Cents>,
    pub seen_at: Option<DateTime<Utc>>,
}

/// Why a collection waits although enough round-ups wait: the source account's balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionHold {
    /// The balance is older than [`CollectionHold::FRESH_FOR`], or unknown.
    StaleBalance { seen_at: Option<DateTime<Utc>> },
    /// The collection would leave less than the floor available.
    LowBalance { available: Cents, floor: Cents },
}

impl CollectionHold {
    /// How long a balance is trusted after a sync stored it.
    pub const FRESH_FOR: TimeDelta = TimeDelta::hours(72);

    /// Whether collecting `amount` from the source account now must wait. A balance of unknown
    /// age or amount is stale; a stale balance wins over a low one, since its amount is not
    /// to be trusted.
    pub fn of(balance: KnownBalance, amount: Cents, floor: OverdraftFloor, now: DateTime<Utc>) -> Option<Self> {
        let (Some(available), Some(seen_at)) = (balance.available, balance.seen_at) else {
            return Some(CollectionHold::StaleBalance { seen_at: balance.seen_at });
        };
        if now - seen_at > Self::FRESH_FOR {
            return Some(CollectionHold::StaleBalance { seen_at: Some(seen_at) });
        }
        // i128: a bank may report any balance, and the subtraction must not wrap.
        let left = i128::from(available.get()) - i128::from(amount.get());
        if left < i128::from(floor.cents().get()) {
            return Some(CollectionHold::LowBalance { available, floor: floor.cents() });
        }
        None
    }

    /// The API's name: `low_balance` or `stale_balance`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CollectionHold::StaleBalance { .. } => "stale_balance",
            CollectionHold::LowBalance { .. } => "low_balance",
        }
    }
}

/// What an operator reads: `low balance: 12.00 available, floor 100.00`.
impl fmt::Display for CollectionHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollectionHold::LowBalance { available, floor } => {
                write!(f, "low balance: {available} available, floor {floor}")
            }
            CollectionHold::StaleBalance { seen_at: Some(t) } => {
                write!(f, "stale balance: last seen {}", t.format("%Y-%m-%dT%H:%M:%S"))
            }
            CollectionHold::StaleBalance { seen_at: None } => f.write_str("stale balance: never seen"),
        }
    }
}

/// Everything that decides a user's round-ups and collections (DESIGN.md: round-ups are
/// computed in one place, from the transaction and these settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundUpRules {
    /// A whole-dollar purchase rounds up by a full dollar instead of by nothing.
    pub even_roundup: bool,
    /// No new round-ups while paused.
    pub paused: bool,
    pub multiplier: Multiplier,
    /// At most this much collected per UTC day; `None` is no cap.
    pub daily_cap: Option<Cap>,
    /// At most this much collected per UTC month; `None` is no cap.
    pub monthly_cap: Option<Cap>,
}

impl RoundUpRules {
    /// The round-up one transaction gives under these rules: the spare change of a purchase on a
    /// debit account ([`crate::roundup`]) times the multiplier, and nothing while paused.
    pub fn roundup(&self, direction: Direction, family: AccountFamily, amount: Cents) -> Cents {
        if self.paused {
            return Cents::ZERO;
        }
        let spare_change = roundup(direction, family, amount, self.even_roundup);
        // At most a dollar times ten: far from overflowing.
        spare_change * self.multiplier.get()
    }

    /// Which of the user's pending items (round-ups and contributions, oldest first) one
    /// collection takes, as indices into `items` in order.
    ///
    /// Walking the items in order, one is taken when it still fits under both the daily room (the
    /// daily cap less what was already collected today, never below zero) and the monthly room
    /// (likewise); one that does not fit is skipped, since a later, smaller one may still fit.
    /// Items are never split: a round-up is collected whole or waits for the next collection.
    /// When the taken items add up to less than `minimum` nothing is taken, because a transfer
    /// that small costs more than it moves. Items of zero or less are never taken: there is
    /// nothing to collect in them. Pausing stops new round-ups, not the collection of those
    /// already made, so `paused` plays no part here.
    pub fn select_for_collection(
        &self,
        items: &[Cents],
        collected_today: Cents,
        collected_this_month: Cents,
        minimum: Cents,
    ) -> Vec<usize> {
        self.select_offsetting(items, collected_today, collected_this_month, minimum, Cents::ZERO)
    }

    /// [`Self::select_for_collection`] for a collection that leaves `offset` of what it takes in
    /// the user's bank (corrections taken back): the transfer moves the taken items less
    /// `offset`, so the caps and the minimum apply to that. Nothing is taken while what fits
    /// less `offset` is below `minimum`.
    pub fn select_offsetting(
        &self,
        items: &[Cents],
        collected_today: Cents,
        collected_this_month: Cents,
        minimum: Cents,
        offset: Cents,
    ) -> Vec<usize> {
        let offset = i128::from(offset.get().max(0));
        let mut daily_room = Room::left_under(self.daily_cap, collected_today).widened(offset);
        let mut monthly_room = Room::left_under(self.monthly_cap, collected_this_month).widened(offset);
        let mut taken = Vec::new();
        // i128 because many large items could overflow i64 cents together.
        let mut taken_total: i128 = 0;
        for (index, item) in items.iter().enumerate() {
            let amount = i128::from(item.get());
            if amount > 0 && daily_room.fits(amount) && monthly_room.fits(amount) {
                daily_room.use_up(amount);
                monthly_room.use_up(amount);
                taken_total += amount;
                taken.push(index);
            }
        }
        if taken_total - offset < i128::from(minimum.get()) || taken_total <= offset {
            taken.clear();
        }
        taken
    }
}

/// What may still be collected in one period: `None` when the period has no cap.
#[derive(Debug, Clone, Copy)]
struct Room(Option<i128>);

impl Room {
    fn left_under(cap: Option<Cap>, already_collected: Cents) -> Room {
        Room(cap.map(|cap| (i128::from(cap.cents().get()) - i128::from(already_collected.get())).max(0)))
    }

    fn widened(self, by: i128) -> Room {
        Room(self.0.map(|room| room + by))
    }

    fn fits(self, amount: i128) -> bool {
        self.0.is_none_or(|room| amount <= room)
    }

    fn use_up(&mut self, amount: i128) {
        if let Some(room) = &mut self.0 {
            *room -= amount;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::serialized;

    fn cents(values: &[i64]) -> Vec<Cents> {
        values.iter().copied().map(Cents::new).collect()
    }

    fn capped(daily: Option<i64>, monthly: Option<i64>) -> RoundUpRules {
        RoundUpRules {
            daily_cap: daily.map(|dollars| Cap::parse_dollars(dollars).unwrap()),
            monthly_cap: monthly.map(|dollars| Cap::parse_dollars(dollars).unwrap()),
            ..RoundUpRules::default()
        }
    }

    const FIVE_DOLLARS: Cents = Cents::new(500);

    fn at(hours_ago: i64) -> DateTime<Utc> {
        now() - TimeDelta::hours(hours_ago)
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn seen(available: i64, hours_ago: i64) -> KnownBalance {
        KnownBalance { available: Some(Cents::new(available)), seen_at: Some(at(hours_ago)) }
    }

    #[test]
    fn floor_accepts_0_to_10000_dollars_and_defaults_to_100() {
        for dollars in [0, 1, 100, 9_999, 10_000] {
            assert_eq!(OverdraftFloor::parse_dollars(dollars).map(OverdraftFloor::dollars), Ok(dollars));
        }
        for dollars in [-1, 10_001, i64::MIN, i64::MAX] {
            assert_eq!(OverdraftFloor::parse_dollars(dollars), Err(ProfileError::FloorOutOfRange));
        }
        assert_eq!(OverdraftFloor::default().cents(), Cents::new(10_000));
        assert_eq!(ProfileError::FloorOutOfRange.to_string(), "Ensure this value is between 0 and 10000.");
    }

    #[test]
    fn a_fresh_balance_that_keeps_the_floor_holds_nothing() {
        let floor = OverdraftFloor::default();
        // 112.00 available, 12.00 collected: exactly the 100.00 floor is left.
        assert_eq!(CollectionHold::of(seen(11_200, 71), Cents::new(1_200), floor, now()), None);
        let zero = OverdraftFloor::parse_dollars(0).unwrap();
        assert_eq!(CollectionHold::of(seen(1_200, 0), Cents::new(1_200), zero, now()), None);
    }

    #[test]
    fn a_collection_that_would_go_below_the_floor_is_held_for_low_balance() {
        let floor = OverdraftFloor::default();
        let hold = CollectionHold::of(seen(11_199, 1), Cents::new(1_200), floor, now());
        assert_eq!(hold, Some(CollectionHold::LowBalance { available: Cents::new(11_199), floor: Cents::new(10_000) }));
        assert_eq!(hold.unwrap().as_str(), "low_balance");
        assert_eq!(hold.unwrap().to_string(), "low balance: 111.99 available, floor 100.00");
        // An overdrawn account, and one whose bank reports an absurd balance, never wrap.
        assert!(CollectionHold::of(seen(-5_000, 1), Cents::new(1), floor, now()).is_some());
        assert!(CollectionHold::of(seen(i64::MIN, 1), Cents::new(i64::MAX), floor, now()).is_some());
        assert_eq!(CollectionHold::of(seen(i64::MAX, 1), Cents::new(i64::MIN), floor, now()), None);
    }

    #[test]
    fn a_balance_older_than_72_hours_or_unknown_is_stale_and_stale_wins() {
        let floor = OverdraftFloor::default();
        let old = CollectionHold::of(seen(1_000_000, 73), Cents::new(100), floor, now());
        assert_eq!(old, Some(CollectionHold::StaleBalance { seen_at: Some(at(73)) }));
        assert_eq!(old.unwrap().to_string(), "stale balance: last seen 2026-12-04T11:00:00");
        assert_eq!(CollectionHold::of(seen(1_000_000, 72), Cents::new(100), floor, now()), None, "72 h is fresh");
        // Low and stale at once: stale.
        let both = CollectionHold::of(seen(0, 100), Cents::new(100), floor, now());
        assert_eq!(both.map(|h| h.as_str()), Some("stale_balance"));
        let unknown = KnownBalance { available: None, seen_at: Some(at(1)) };
        assert_eq!(
            CollectionHold::of(unknown, Cents::new(100), floor, now()),
            Some(CollectionHold::StaleBalance { seen_at: Some(at(1)) })
        );
        let never = KnownBalance { available: Some(Cents::new(1_000_000)), seen_at: None };
        let hold = CollectionHold::of(never, Cents::new(100), floor, now()).unwrap();
        assert_eq!((hold.as_str(), hold.to_string().as_str()), ("stale_balance", "stale balance: never seen"));
    }

    #[test]
    fn multiplier_accepts_only_the_listed_choices() {
        for n in [1, 2, 3, 5, 10] {
            assert_eq!(Multiplier::parse(n).map(Multiplier::get), Ok(n));
        }
        for n in [0, 4, 6, 7, 9, 11, 100, -1, i64::MIN, i64::MAX] {
            assert_eq!(Multiplier::parse(n), Err(ProfileError::InvalidChoice(n)));
        }
        assert_eq!(Multiplier::parse(7).unwrap_err().to_string(), "\"7\" is not a valid choice.");
    }

    #[test]
    fn multiplier_defaults_to_one_and_serializes_as_a_number() {
        assert_eq!(Multiplier::default().get(), 1);
        assert_eq!(serialized(&Multiplier::parse(5).unwrap()), "i64:5");
    }

    #[test]
    fn cap_accepts_10_to_100000_dollars() {
        for dollars in [10, 11, 500, 99_999, 100_000] {
            assert_eq!(Cap::parse_dollars(dollars).map(Cap::dollars), Ok(dollars));
        }
        for dollars in [9, 0, -10, 100_001, i64::MIN, i64::MAX] {
            assert_eq!(Cap::parse_dollars(dollars), Err(ProfileError::CapOutOfRange));
        }
    }

    #[test]
    fn cap_out_of_range_message_names_the_bounds() {
        assert_eq!(ProfileError::CapOutOfRange.to_string(), "Ensure this value is between 10 and 100000.");
    }

    #[test]
    fn cap_in_cents_and_as_a_json_number_of_dollars() {
        let cap = Cap::parse_dollars(25).unwrap();
        assert_eq!(cap.cents(), Cents::new(2500));
        assert_eq!(Cap::parse_dollars(Cap::MAX_DOLLARS).unwrap().cents(), Cents::new(10_000_000));
        assert_eq!(serialized(&cap), "i64:25");
        assert!(Cap::parse_dollars(10).unwrap() < cap);
    }

    #[test]
    fn default_rules_round_up_plainly_without_caps() {
        let rules = RoundUpRules::default();
        assert!(!rules.even_roundup && !rules.paused);
        assert_eq!(rules.multiplier.get(), 1);
        assert_eq!((rules.daily_cap, rules.monthly_cap), (None, None));
        assert_eq!(rules.roundup(Direction::Debit, AccountFamily::Debit, Cents::new(1230)), Cents::new(70));
    }

    #[test]
    fn roundup_is_multiplied_and_follows_even_roundup() {
        let rules = RoundUpRules { multiplier: Multiplier::parse(3).unwrap(), ..RoundUpRules::default() };
        assert_eq!(rules.roundup(Direction::Debit, AccountFamily::Debit, Cents::new(1230)), Cents::new(210));
        assert_eq!(rules.roundup(Direction::Debit, AccountFamily::Debit, Cents::new(500)), Cents::ZERO);
        assert_eq!(rules.roundup(Direction::Credit, AccountFamily::Debit, Cents::new(1230)), Cents::ZERO);
        assert_eq!(rules.roundup(Direction::Debit, AccountFamily::Debt, Cents::new(1230)), Cents::ZERO);
        let even = RoundUpRules { even_roundup: true, multiplier: Multiplier::parse(10).unwrap(), ..rules };
        assert_eq!(even.roundup(Direction::Debit, AccountFamily::Debit, Cents::new(500)), Cents::new(1000));
        assert_eq!(even.roundup(Direction::Debit, AccountFamily::Debit, Cents::new(1201)), Cents::new(990));
    }

    #[test]
    fn roundup_is_zero_while_paused() {
        let rules = RoundUpRules {
            paused: true,
            even_roundup: true,
            multiplier: Multiplier::parse(10).unwrap(),
            ..RoundUpRules::default()
        };
        assert_eq!(rules.roundup(Direction::Debit, AccountFamily::Debit, Cents::new(1230)), Cents::ZERO);
        assert_eq!(rules.roundup(Direction::Debit, AccountFamily::Debit, Cents::new(500)), Cents::ZERO);
    }

    #[test]
    fn selection_without_caps_takes_everything_once_the_minimum_is_reached() {
        let rules = RoundUpRules::default();
        let items = cents(&[99, 250, 1, 300]);
        assert_eq!(rules.select_for_collection(&items, Cents::ZERO, Cents::ZERO, FIVE_DOLLARS), vec![0, 1, 2, 3]);
        // $3.50 in all is below $5.00: nothing moves yet.
        let few = cents(&[99, 250, 1]);
        assert!(rules.select_for_collection(&few, Cents::ZERO, Cents::ZERO, FIVE_DOLLARS).is_empty());
        // Exactly the minimum is enough.
        let exact = cents(&[200, 300]);
        assert_eq!(rules.select_for_collection(&exact, Cents::ZERO, Cents::ZERO, FIVE_DOLLARS), vec![0, 1]);
        assert!(rules.select_for_collection(&[], Cents::ZERO, Cents::ZERO, Cents::ZERO).is_empty());
    }

    #[test]
    fn selection_skips_what_does_not_fit_and_takes_later_smaller_items() {
        // $10 a day, $6 already collected today: $4 of room.
        let rules = capped(Some(10), None);
        let items = cents(&[300, 200, 150, 50]);
        // 300 fits (100 left), 200 and 150 do not, 50 does (50 left).
        assert_eq!(rules.select_for_collection(&items, Cents::new(600), Cents::ZERO, Cents::ZERO), vec![0, 3]);
        // The same with a $5 minimum: $3.50 is not enough, so nothing is collected.
        assert!(rules.select_for_collection(&items, Cents::new(600), Cents::ZERO, FIVE_DOLLARS).is_empty());
    }

    #[test]
    fn selection_respects_the_tighter_of_the_two_rooms() {
        // $50 a day with nothing collected today, but only $2 left of a $100 month.
        let rules = capped(Some(50), Some(100));
        let items = cents(&[150, 99, 101, 1]);
        assert_eq!(rules.select_for_collection(&items, Cents::ZERO, Cents::new(9_800), Cents::ZERO), vec![0, 3]);
        // And the other way round: $1 left today of a roomy month.
        assert_eq!(rules.select_for_collection(&items, Cents::new(4_900), Cents::ZERO, Cents::ZERO), vec![1, 3]);
    }

    #[test]
    fn selection_takes_nothing_once_a_cap_is_reached_or_passed() {
        let rules = capped(Some(10), Some(1_000));
        let items = cents(&[1, 500]);
        assert!(rules.select_for_collection(&items, Cents::new(1_000), Cents::ZERO, Cents::ZERO).is_empty());
        // Collected beyond the cap (the cap was lowered mid-day): the room is zero, not negative.
        assert!(rules.select_for_collection(&items, Cents::new(5_000), Cents::ZERO, Cents::ZERO).is_empty());
        assert!(rules.select_for_collection(&items, Cents::ZERO, Cents::new(100_000), Cents::ZERO).is_empty());
    }

    #[test]
    fn selection_never_takes_empty_or_negative_items() {
        let rules = capped(Some(10), None);
        let items = cents(&[0, -700, 1_000]);
        assert_eq!(rules.select_for_collection(&items, Cents::ZERO, Cents::ZERO, Cents::ZERO), vec![2]);
        let items = cents(&[-500, 1_000, 100]);
        assert_eq!(rules.select_for_collection(&items, Cents::new(100), Cents::ZERO, Cents::ZERO), vec![2]);
    }

    #[test]
    fn selection_ignores_the_pause() {
        let rules = RoundUpRules { paused: true, ..RoundUpRules::default() };
        assert_eq!(rules.select_for_collection(&cents(&[600]), Cents::ZERO, Cents::ZERO, FIVE_DOLLARS), vec![0]);
    }
}
