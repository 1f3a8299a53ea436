//! Round-up rules (interim; replaced by the domain branch).
use crate::profile::ProfileError;
use crate::{AccountFamily, Cents, Direction};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Multiplier(i64);
impl Default for Multiplier {
    fn default() -> Self {
        Multiplier(1)
    }
}
impl Multiplier {
    pub const CHOICES: [i64; 5] = [1, 2, 3, 5, 10];
    pub fn parse(n: i64) -> Result<Multiplier, ProfileError> {
        if Self::CHOICES.contains(&n) { Ok(Multiplier(n)) } else { Err(ProfileError::InvalidChoice(n)) }
    }
    pub const fn get(self) -> i64 {
        self.0
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cap(i64);
impl Cap {
    pub fn parse_dollars(d: i64) -> Result<Cap, ProfileError> {
        if (10..=100_000).contains(&d) { Ok(Cap(d)) } else { Err(ProfileError::InvalidChoice(d)) }
    }
    pub fn dollars(self) -> i64 {
        self.0
    }
    pub fn cents(self) -> Cents {
        Cents::new(self.0 * 100)
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundUpRules {
    pub even_roundup: bool,
    pub paused: bool,
    pub multiplier: Multiplier,
    pub daily_cap: Option<Cap>,
    pub monthly_cap: Option<Cap>,
}
impl RoundUpRules {
    pub fn roundup(&self, direction: Direction, family: AccountFamily, amount: Cents) -> Cents {
        if self.paused {
            return Cents::ZERO;
        }
        Cents::new(crate::roundup(direction, family, amount, self.even_roundup).get() * self.multiplier.get())
    }
    pub fn select_for_collection(
        &self,
        items: &[Cents],
        collected_today: Cents,
        collected_this_month: Cents,
        minimum: Cents,
    ) -> Vec<usize> {
        let room = |cap: Option<Cap>, used: Cents| cap.map(|c| (c.cents().get() - used.get()).max(0));
        let (mut day, mut month) =
            (room(self.daily_cap, collected_today), room(self.monthly_cap, collected_this_month));
        let mut taken = Vec::new();
        let mut total = 0;
        for (i, item) in items.iter().enumerate() {
            let a = item.get();
            if day.is_some_and(|d| a > d) || month.is_some_and(|m| a > m) {
                continue;
            }
            day = day.map(|d| d - a);
            month = month.map(|m| m - a);
            total += a;
            taken.push(i);
        }
        if total < minimum.get() { Vec::new() } else { taken }
    }
}
