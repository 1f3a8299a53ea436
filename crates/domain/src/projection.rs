//! Payoff projection (interim; replaced by the domain branch).
use crate::Cents;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Projection {
    pub months_without: Option<u32>,
    pub months_with: Option<u32>,
    pub interest_without: Option<Cents>,
    pub interest_with: Option<Cents>,
    pub interest_saved: Option<Cents>,
    pub months_saved: Option<u32>,
}

pub fn project_payoff(
    balance: Cents,
    apr_basis_points: u32,
    minimum_payment: Cents,
    monthly_roundup: Cents,
) -> Projection {
    let run = |payment: i64| -> Option<(u32, i64)> {
        let mut b = balance.get() as i128;
        let mut interest = 0i128;
        let mut months = 0u32;
        while b > 0 {
            if months >= 1200 || payment <= 0 {
                return None;
            }
            let i = (b * apr_basis_points as i128 + 60_000) / 120_000;
            if payment as i128 <= i {
                return None;
            }
            interest += i;
            b += i;
            b -= (payment as i128).min(b);
            months += 1;
        }
        Some((months, interest as i64))
    };
    let without = run(minimum_payment.get());
    let with = run(minimum_payment.get() + monthly_roundup.get());
    Projection {
        months_without: without.map(|w| w.0),
        months_with: with.map(|w| w.0),
        interest_without: without.map(|w| Cents::new(w.1)),
        interest_with: with.map(|w| Cents::new(w.1)),
        interest_saved: without.zip(with).map(|(a, b)| Cents::new(a.1 - b.1)),
        months_saved: without.zip(with).map(|(a, b)| a.0 - b.0),
    }
}
