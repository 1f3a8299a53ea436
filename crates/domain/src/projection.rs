//! How a debt is paid off with and without the user's round-ups: a month-by-month amortisation
//! in integer cents, so the figures shown to the user are exact and repeatable.

use serde::Serialize;

use crate::money::Cents;

/// A debt that takes longer than this (a hundred years) to pay off is shown as never paid off.
pub const MAX_PAYOFF_MONTHS: u32 = 1200;

/// Basis points in a whole rate (10 000 = 100 %) times months in a year: a month's interest is
/// `balance × apr_basis_points / MONTHLY_RATE_DIVISOR`.
const MONTHLY_RATE_DIVISOR: i128 = 10_000 * 12;

/// How a debt is paid off with and without the user's round-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Projection {
    /// Months to pay off with the minimum payment alone; `None` when that never pays it off
    /// (the payment does not beat the interest) or takes more than [`MAX_PAYOFF_MONTHS`].
    pub months_without: Option<u32>,
    /// Months to pay off with the minimum payment plus the monthly round-up.
    pub months_with: Option<u32>,
    /// Interest paid over the whole payoff with the minimum payment alone.
    pub interest_without: Option<Cents>,
    /// Interest paid over the whole payoff with the round-ups added.
    pub interest_with: Option<Cents>,
    /// `interest_without - interest_with`, when both pay off.
    pub interest_saved: Option<Cents>,
    /// `months_without - months_with`, when both pay off.
    pub months_saved: Option<u32>,
}

/// How a debt is paid off with and without the user's round-ups.
///
/// Each month the interest is `balance × apr / 12`, rounded half up to the cent (APR in basis
/// points: 1999 is 19.99 %), and then the payment comes off, capped at what is owed, so the last
/// month pays only the rest. Without round-ups the payment is `minimum_payment`; with them it is
/// `minimum_payment + monthly_roundup`. A balance of zero or less is already paid off (every
/// figure zero); a zero minimum payment never pays off a balance. Negative payments count as
/// zero.
pub fn project_payoff(
    balance: Cents,
    apr_basis_points: u32,
    minimum_payment: Cents,
    monthly_roundup: Cents,
) -> Projection {
    let minimum_payment = minimum_payment.get().max(0);
    let with_roundups = minimum_payment.saturating_add(monthly_roundup.get().max(0));
    let without = Payoff::of(balance, apr_basis_points, Cents::new(minimum_payment));
    let with = Payoff::of(balance, apr_basis_points, Cents::new(with_roundups));
    // A larger payment leaves a balance no larger, month after month (the interest only grows
    // with the balance), so it pays off no later and with no more interest: the differences
    // below are never negative.
    let both = without.zip(with);
    Projection {
        months_without: without.map(|payoff| payoff.months),
        months_with: with.map(|payoff| payoff.months),
        interest_without: without.map(|payoff| payoff.interest),
        interest_with: with.map(|payoff| payoff.interest),
        interest_saved: both.map(|(without, with)| without.interest - with.interest),
        months_saved: both.map(|(without, with)| without.months.saturating_sub(with.months)),
    }
}

/// How long a payoff takes and what it costs.
#[derive(Debug, Clone, Copy)]
struct Payoff {
    months: u32,
    interest: Cents,
}

impl Payoff {
    /// `None` when the payments do not pay the balance off within [`MAX_PAYOFF_MONTHS`] (or the
    /// interest would not fit in cents).
    fn of(balance: Cents, apr_basis_points: u32, monthly_payment: Cents) -> Option<Payoff> {
        let mut payoff = Payoff { months: 0, interest: Cents::ZERO };
        let mut paid_off = balance.get() <= 0;
        let horizon = usize::try_from(MAX_PAYOFF_MONTHS).unwrap_or(usize::MAX);
        for month in payoff_schedule(balance, apr_basis_points, monthly_payment).take(horizon) {
            payoff.months += 1;
            payoff.interest = payoff.interest.checked_add(month.interest)?;
            paid_off = month.balance_after == Cents::ZERO;
        }
        paid_off.then_some(payoff)
    }
}

/// One month of a payoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayoffMonth {
    /// The interest charged this month, on the balance the month began with.
    pub interest: Cents,
    /// What was paid: the monthly payment, or less in the last month.
    pub payment: Cents,
    /// What is still owed after the payment.
    pub balance_after: Cents,
}

/// The months of paying off `balance` with a fixed `monthly_payment`, as [`project_payoff`]
/// computes them. It ends when the balance reaches zero, or before the first month whose
/// payment does not beat its interest: from then on the balance would never come down, so a
/// schedule that ends with money still owed is one that never pays off. It has no length limit
/// of its own; [`project_payoff`] looks at the first [`MAX_PAYOFF_MONTHS`].
pub fn payoff_schedule(balance: Cents, apr_basis_points: u32, monthly_payment: Cents) -> PayoffSchedule {
    PayoffSchedule { balance: balance.get(), apr_basis_points, payment: monthly_payment.get().max(0) }
}

/// The iterator of [`payoff_schedule`].
#[derive(Debug, Clone)]
pub struct PayoffSchedule {
    balance: i64,
    apr_basis_points: u32,
    payment: i64,
}

impl Iterator for PayoffSchedule {
    type Item = PayoffMonth;

    fn next(&mut self) -> Option<PayoffMonth> {
        if self.balance <= 0 {
            return None;
        }
        // An interest beyond i64 is certainly beyond the payment.
        let interest = i64::try_from(monthly_interest(self.balance, self.apr_basis_points)).ok()?;
        if self.payment <= interest {
            return None;
        }
        // Both differences stay in range: the payment beats the interest, so what is owed after
        // the payment is below the balance the month began with.
        let paid_down = self.payment - interest;
        let (payment, balance_after) = if paid_down >= self.balance {
            (self.balance + interest, 0)
        } else {
            (self.payment, self.balance - paid_down)
        };
        self.balance = balance_after;
        Some(PayoffMonth {
            interest: Cents::new(interest),
            payment: Cents::new(payment),
            balance_after: Cents::new(balance_after),
        })
    }
}

/// `balance × apr / 12`, rounded half up to the cent. i128 because the product of an i64 balance
/// and a u32 rate does not fit in i64.
fn monthly_interest(balance: i64, apr_basis_points: u32) -> i128 {
    let scaled = i128::from(balance) * i128::from(apr_basis_points);
    (scaled + MONTHLY_RATE_DIVISOR / 2) / MONTHLY_RATE_DIVISOR
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWELVE_PERCENT: u32 = 1200;

    fn dollars(amount: i64) -> Cents {
        Cents::new(amount * 100)
    }

    #[test]
    fn interest_rounds_half_a_cent_up() {
        // $878.80 at 1 % a month is 878.8 cents: 879.
        assert_eq!(monthly_interest(87_880, TWELVE_PERCENT), 879);
        // 0.5 cent exactly: $0.50 at 12 % is 0.5 cents, rounded up to 1.
        assert_eq!(monthly_interest(50, TWELVE_PERCENT), 1);
        assert_eq!(monthly_interest(49, TWELVE_PERCENT), 0);
        assert_eq!(monthly_interest(100_000, 0), 0);
    }

    #[test]
    fn schedule_of_1000_dollars_at_12_percent_with_50_a_month_begins_as_by_hand() {
        // 1 % a month: $10.00 of interest on $1,000, then $50 off, and so on.
        let months: Vec<PayoffMonth> = payoff_schedule(dollars(1_000), TWELVE_PERCENT, dollars(50)).collect();
        let month = |interest, payment, balance_after| PayoffMonth {
            interest: Cents::new(interest),
            payment: Cents::new(payment),
            balance_after: Cents::new(balance_after),
        };
        assert_eq!(months[0], month(1_000, 5_000, 96_000));
        assert_eq!(months[1], month(960, 5_000, 91_960));
        // 919.60 × 1 % = 9.196, rounded to $9.20.
        assert_eq!(months[2], month(920, 5_000, 87_880));
        assert_eq!(months[3], month(879, 5_000, 83_759));
        // The closed form n = −ln(1 − rB/P) / ln(1 + r) = −ln(0.8) / ln(1.01) ≈ 22.4 months:
        // 22 full payments and a 23rd of the rest.
        assert_eq!(months.len(), 23);
        let last = months[22];
        assert!(last.payment < dollars(50) && last.balance_after == Cents::ZERO);
        assert!(months[..22].iter().all(|month| month.payment == dollars(50)));
    }

    #[test]
    fn projection_of_1000_dollars_at_12_percent_with_50_minimum_and_25_of_round_ups() {
        let projection = project_payoff(dollars(1_000), TWELVE_PERCENT, dollars(50), dollars(25));
        // Checked against an independent decimal computation: without round-ups 22 payments of
        // $50 and a last one of $21.36 ($1,121.36 paid); with them −ln(1 − 10/75) / ln(1.01)
        // ≈ 14.4, so 14 payments of $75 and a last of $28.68 ($1,078.68 paid).
        assert_eq!(
            projection,
            Projection {
                months_without: Some(23),
                months_with: Some(15),
                interest_without: Some(Cents::new(12_136)),
                interest_with: Some(Cents::new(7_868)),
                interest_saved: Some(Cents::new(4_268)),
                months_saved: Some(8),
            }
        );
    }

    #[test]
    fn a_paid_off_debt_projects_all_zeros() {
        let zeros = Projection {
            months_without: Some(0),
            months_with: Some(0),
            interest_without: Some(Cents::ZERO),
            interest_with: Some(Cents::ZERO),
            interest_saved: Some(Cents::ZERO),
            months_saved: Some(0),
        };
        assert_eq!(project_payoff(Cents::ZERO, 1999, dollars(50), dollars(10)), zeros);
        assert_eq!(project_payoff(Cents::new(-500), 1999, Cents::ZERO, Cents::ZERO), zeros);
    }

    #[test]
    fn a_payment_that_does_not_beat_the_interest_never_pays_off() {
        // $10 of interest a month on $1,000 at 12 %: a $10 payment only keeps up.
        let projection = project_payoff(dollars(1_000), TWELVE_PERCENT, dollars(10), dollars(40));
        assert_eq!(projection.months_without, None);
        assert_eq!(projection.interest_without, None);
        assert_eq!(projection.months_with, Some(23));
        assert_eq!((projection.interest_saved, projection.months_saved), (None, None));
        assert_eq!(payoff_schedule(dollars(1_000), TWELVE_PERCENT, dollars(10)).count(), 0);
    }

    #[test]
    fn a_zero_minimum_payment_never_pays_off_but_round_ups_alone_may() {
        let projection = project_payoff(dollars(100), 0, Cents::ZERO, dollars(10));
        assert_eq!(projection.months_without, None);
        assert_eq!(projection.months_with, Some(10));
        assert_eq!(projection.interest_with, Some(Cents::ZERO));
    }

    #[test]
    fn a_payoff_beyond_1200_months_is_shown_as_never() {
        // Interest-free, a cent a month: one month per cent of balance.
        let exactly = project_payoff(Cents::new(1200), 0, Cents::new(1), Cents::ZERO);
        assert_eq!(exactly.months_without, Some(MAX_PAYOFF_MONTHS));
        let beyond = project_payoff(Cents::new(1201), 0, Cents::new(1), Cents::new(1));
        assert_eq!(beyond.months_without, None);
        assert_eq!(beyond.months_with, Some(601));
    }

    #[test]
    fn huge_balances_and_rates_do_not_overflow() {
        let projection = project_payoff(Cents::new(i64::MAX), u32::MAX, Cents::new(i64::MAX), Cents::new(i64::MAX));
        assert_eq!((projection.months_without, projection.months_with), (None, None));
        let projection = project_payoff(Cents::new(i64::MAX), 0, Cents::new(i64::MAX), Cents::ZERO);
        assert_eq!(projection.months_without, Some(1));
    }

    #[test]
    fn negative_payments_count_as_zero() {
        let projection = project_payoff(dollars(100), 0, dollars(10), Cents::new(-500));
        assert_eq!(projection.months_with, projection.months_without);
        assert_eq!(project_payoff(dollars(100), 0, Cents::new(-1), Cents::ZERO).months_without, None);
    }
}
