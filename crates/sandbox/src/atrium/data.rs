//! Deterministic accounts and transactions of a member (Decisions: mxbank
//! data). Everything is drawn from a generator seeded by the login (user
//! guid, institution code and username: [`login_seed`]), so a re-link of the
//! same login on the same anchor day gets the same data; guids are derived
//! from the member guid, so a re-link gets new ones.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, Utc};
use donkies_atrium::wire::{Account, AccountType, Amount, Transaction, TransactionStatus, TransactionType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::guid::{stable_guid, stable_hash};

/// Days of history a member gets.
pub const HISTORY_DAYS: u32 = 90;

/// The seed of everything generated for one login: the same user, institution
/// and username always draw the same accounts, history and churn.
pub(crate) fn login_seed(user_guid: &str, institution_code: &str, username: &str) -> u64 {
    stable_hash(&[user_guid, institution_code, username, "login"])
}

/// Who the data belongs to and when it was aggregated.
pub(crate) struct Owner<'a> {
    /// Seed of the data ([`login_seed`]).
    pub seed: u64,
    /// Whether purchases of the newest days may still be PENDING.
    pub pending_tail: bool,
    pub member_guid: &'a str,
    pub user_guid: &'a str,
    pub institution_code: &'a str,
    pub institution_name: &'a str,
    /// When the aggregation completed; its date is the newest transaction day.
    pub aggregated_at: DateTime<Utc>,
}

pub(crate) struct Merchant {
    description: &'static str,
    original: &'static str,
    category: &'static str,
    top_level: &'static str,
    mcc: i64,
    min_cents: i64,
    max_cents: i64,
}

const fn merchant(
    description: &'static str,
    original: &'static str,
    category: &'static str,
    top_level: &'static str,
    mcc: i64,
    min_cents: i64,
    max_cents: i64,
) -> Merchant {
    Merchant { description, original, category, top_level, mcc, min_cents, max_cents }
}

pub(crate) const MERCHANTS: &[Merchant] = &[
    merchant("Starbucks", "STARBUCKS STORE 08123", "Coffee Shops", "Food & Dining", 5814, 250, 1_250),
    merchant("Chipotle", "CHIPOTLE 1142", "Fast Food", "Food & Dining", 5814, 750, 2_600),
    merchant("McDonald's", "MCDONALD'S F3210", "Fast Food", "Food & Dining", 5814, 399, 1_899),
    merchant("Whole Foods", "WHOLEFDS MKT 10234", "Groceries", "Food & Dining", 5411, 1_200, 16_000),
    merchant("Trader Joe's", "TRADER JOE'S #552", "Groceries", "Food & Dining", 5411, 900, 11_000),
    merchant("Kroger", "KROGER #0615", "Groceries", "Food & Dining", 5411, 1_500, 14_000),
    merchant("Safeway", "SAFEWAY STORE 1487", "Groceries", "Food & Dining", 5411, 1_100, 12_500),
    merchant("Shell", "SHELL OIL 57444", "Gas & Fuel", "Auto & Transport", 5541, 1_800, 6_500),
    merchant("Chevron", "CHEVRON 0091245", "Gas & Fuel", "Auto & Transport", 5541, 2_000, 7_000),
    merchant("Uber", "UBER *TRIP HELP.UBER.COM", "Ride Share", "Auto & Transport", 4121, 650, 4_800),
    merchant("Lyft", "LYFT *RIDE SUN 6PM", "Ride Share", "Auto & Transport", 4121, 700, 3_900),
    merchant("Amazon", "AMAZON MKTPLACE PMTS", "Shopping", "Shopping", 5942, 599, 12_999),
    merchant("Target", "TARGET 00017483", "Shopping", "Shopping", 5311, 800, 9_500),
    merchant("Walmart", "WAL-MART #2031", "Shopping", "Shopping", 5311, 650, 11_000),
    merchant("Best Buy", "BEST BUY 00012", "Electronics & Software", "Shopping", 5732, 1_999, 29_999),
    merchant("CVS Pharmacy", "CVS/PHARMACY #07213", "Pharmacy", "Health & Fitness", 5912, 350, 4_500),
    merchant("Walgreens", "WALGREENS #9914", "Pharmacy", "Health & Fitness", 5912, 299, 3_800),
    merchant("Planet Fitness", "PLANET FITNESS CLUB", "Gym", "Health & Fitness", 7997, 1_000, 2_500),
    merchant("Netflix", "NETFLIX.COM", "Movies & DVDs", "Entertainment", 4899, 999, 1_599),
    merchant("Spotify", "SPOTIFY USA", "Music", "Entertainment", 4899, 999, 1_499),
    merchant("AMC Theatres", "AMC 0423 ONLINE", "Movies & DVDs", "Entertainment", 7832, 1_150, 4_200),
    merchant("Home Depot", "THE HOME DEPOT #6602", "Home Improvement", "Home", 5200, 1_100, 18_000),
    merchant("Comcast", "COMCAST CABLE COMM", "Internet", "Bills & Utilities", 4899, 4_999, 9_999),
    merchant("Pyrefunc Disc Filter", "Pyrefunc Disc Filter", "Uncategorized", "Uncategorized", 5999, 500, 6_000),
];

/// The accounts of a member: a checking, a savings, a credit card and a
/// student loan.
pub(crate) fn accounts(owner: &Owner<'_>) -> Vec<Account> {
    let seed = owner.seed.to_string();
    let mut rng = StdRng::seed_from_u64(stable_hash(&[&seed, "accounts"]));
    let today = owner.aggregated_at.date_naive();
    let base = |index: usize, name: String, account_type: AccountType| Account {
        guid: stable_guid("ACT", &[owner.member_guid, &index.to_string()]),
        member_guid: Some(owner.member_guid.to_owned()),
        user_guid: Some(owner.user_guid.to_owned()),
        institution_code: Some(owner.institution_code.to_owned()),
        name,
        account_number: Some(account_number(&seed, index)),
        account_type,
        subtype: None,
        balance: None,
        available_balance: None,
        available_credit: None,
        credit_limit: None,
        apr: None,
        apy: None,
        interest_rate: None,
        day_payment_is_due: None,
        last_payment: None,
        last_payment_at: None,
        payment_due_at: None,
        matures_on: None,
        started_on: None,
        minimum_balance: None,
        minimum_payment: None,
        original_balance: None,
        payoff_balance: None,
        total_account_value: None,
        is_closed: false,
        created_at: Some(owner.aggregated_at),
        updated_at: Some(owner.aggregated_at),
    };
    let bank = owner.institution_name;

    // At least $2,500 available, so that an ordinary collection from this account (round-ups and
    // contributions of up to a couple of thousand dollars) keeps the default $100 overdraft floor.
    let checking_balance = Amount::from_cents(rng.gen_range(250_000..1_000_000));
    let checking = Account {
        balance: Some(checking_balance),
        available_balance: Some(checking_balance),
        minimum_balance: Some(Amount::from_cents(0)),
        ..base(0, format!("{bank} Checking"), AccountType::Checking)
    };

    let savings_balance = Amount::from_cents(rng.gen_range(100_000..2_000_000));
    let savings = Account {
        balance: Some(savings_balance),
        available_balance: Some(savings_balance),
        apy: Some(0.0125),
        ..base(1, format!("{bank} Savings"), AccountType::Savings)
    };

    let limit = 500_000;
    let owed = rng.gen_range(20_000..300_000);
    let due_day = rng.gen_range(1..=28u32);
    let card = Account {
        balance: Some(Amount::from_cents(owed)),
        credit_limit: Some(Amount::from_cents(limit)),
        available_credit: Some(Amount::from_cents(limit - owed)),
        apr: Some(0.1999),
        minimum_payment: Some(Amount::from_cents((owed / 50).max(2_500))),
        day_payment_is_due: Some(i64::from(due_day)),
        payment_due_at: next_day_of_month(today, due_day).map(|day| day.and_time(NaiveTime::MIN).and_utc()),
        ..base(2, format!("{bank} Rewards Card"), AccountType::CreditCard)
    };

    let original = 2_500_000;
    let loan_owed = rng.gen_range(1_500_000..2_400_000);
    let started_on = today.checked_sub_months(Months::new(36));
    let loan = Account {
        balance: Some(Amount::from_cents(loan_owed)),
        original_balance: Some(Amount::from_cents(original)),
        payoff_balance: Some(Amount::from_cents(loan_owed + loan_owed / 200)),
        interest_rate: Some(0.0545),
        minimum_payment: Some(Amount::from_cents(27_000)),
        day_payment_is_due: Some(20),
        started_on,
        matures_on: started_on.and_then(|d| d.checked_add_months(Months::new(120))),
        ..base(3, "Student Loan".to_owned(), AccountType::Loan)
    };

    vec![checking, savings, card, loan]
}

/// A 10-digit account number, the same for every link of the login.
fn account_number(seed: &str, index: usize) -> String {
    let number = stable_hash(&[seed, "account number", &index.to_string()]) % 9_000_000_000 + 1_000_000_000;
    number.to_string()
}

fn next_day_of_month(today: NaiveDate, day: u32) -> Option<NaiveDate> {
    let this_month = today.with_day(day)?;
    if this_month > today { Some(this_month) } else { this_month.checked_add_months(Months::new(1)) }
}

/// What one generated transaction is.
struct Draft<'a> {
    account: &'a Account,
    date: NaiveDate,
    cents: i64,
    transaction_type: TransactionType,
    description: &'static str,
    original: &'static str,
    category: &'static str,
    top_level: &'static str,
    mcc: Option<i64>,
}

/// Writes transactions of one owner; guids come from the member guid, the
/// `scope` and the position in `out`.
pub(crate) struct Writer<'a> {
    pub owner: &'a Owner<'a>,
    pub scope: Vec<String>,
    pub rng: StdRng,
    pub out: Vec<Transaction>,
}

impl Writer<'_> {
    fn next_guid(&self) -> String {
        let seq = self.out.len().to_string();
        let mut parts: Vec<&str> = vec![self.owner.member_guid];
        parts.extend(self.scope.iter().map(String::as_str));
        parts.push(&seq);
        stable_guid("TRN", &parts)
    }

    fn push(&mut self, draft: Draft<'_>) {
        let guid = self.next_guid();
        let minutes = self.rng.gen_range(7 * 60..22 * 60);
        let at = draft.date.and_hms_opt(minutes / 60, minutes % 60, 0).map(|naive| naive.and_utc());
        let debit = draft.transaction_type == TransactionType::Debit;
        let income = !debit && draft.top_level == "Income";
        self.out.push(Transaction {
            guid,
            account_guid: Some(draft.account.guid.clone()),
            member_guid: Some(self.owner.member_guid.to_owned()),
            user_guid: Some(self.owner.user_guid.to_owned()),
            amount: Amount::from_cents(draft.cents),
            transaction_type: draft.transaction_type,
            status: TransactionStatus::Posted,
            date: draft.date,
            transacted_at: at,
            posted_at: at,
            created_at: Some(self.owner.aggregated_at),
            updated_at: Some(self.owner.aggregated_at),
            description: draft.description.to_owned(),
            original_description: Some(draft.original.to_owned()),
            category: Some(draft.category.to_owned()),
            top_level_category: Some(draft.top_level.to_owned()),
            is_bill_pay: draft.category == "Loan Payment",
            is_direct_deposit: income,
            is_expense: debit && draft.mcc.is_some(),
            is_fee: false,
            is_income: income,
            is_overdraft_fee: false,
            is_payroll_advance: false,
            check_number: None,
            merchant_category_code: draft.mcc,
            latitude: None,
            longitude: None,
            memo: None,
        });
    }

    pub fn purchase(&mut self, account: &Account, date: NaiveDate) {
        let merchant = &MERCHANTS[self.rng.gen_range(0..MERCHANTS.len())];
        let mut cents = self.rng.gen_range(merchant.min_cents..=merchant.max_cents);
        // Now and then a whole-dollar purchase, whose round-up is zero.
        if self.rng.gen_ratio(1, 12) {
            cents = (cents / 100).max(1) * 100;
        }
        self.push(Draft {
            account,
            date,
            cents,
            transaction_type: TransactionType::Debit,
            description: merchant.description,
            original: merchant.original,
            category: merchant.category,
            top_level: merchant.top_level,
            mcc: Some(merchant.mcc),
        });
    }

    fn paycheck(&mut self, checking: &Account, date: NaiveDate) {
        let cents = self.rng.gen_range(1_850..=2_150) * 100;
        self.push(Draft {
            account: checking,
            date,
            cents,
            transaction_type: TransactionType::Credit,
            description: "Acme Corp Payroll",
            original: "ACME CORP PAYROLL PPD",
            category: "Paycheck",
            top_level: "Income",
            mcc: None,
        });
    }

    /// Money from one account to another: a DEBIT and a CREDIT.
    #[allow(clippy::too_many_arguments)]
    fn transfer(
        &mut self,
        from: &Account,
        to: &Account,
        date: NaiveDate,
        cents: i64,
        out_text: &'static str,
        in_text: &'static str,
        category: &'static str,
    ) {
        for (account, transaction_type, text) in
            [(from, TransactionType::Debit, out_text), (to, TransactionType::Credit, in_text)]
        {
            self.push(Draft {
                account,
                date,
                cents,
                transaction_type,
                description: text,
                original: text,
                category,
                top_level: "Transfer",
                mcc: None,
            });
        }
    }
}

/// The transactions of a member's `accounts` (as made by [`accounts`]),
/// oldest first. `count: None` gives 90 days of a few a day (purchases,
/// biweekly paychecks, monthly transfers and payments); `Some(n)` gives
/// exactly `n`, spread evenly over the 90 days.
pub(crate) fn transactions(owner: &Owner<'_>, accounts: &[Account], count: Option<u32>) -> Vec<Transaction> {
    let [checking, savings, card, loan] = accounts else {
        return Vec::new();
    };
    let today = owner.aggregated_at.date_naive();
    let day = |offset: u32| today - Days::new(u64::from(offset));
    let mut writer = Writer {
        owner,
        scope: Vec::new(),
        rng: StdRng::seed_from_u64(stable_hash(&[&owner.seed.to_string(), "transactions"])),
        out: Vec::new(),
    };

    match count {
        None => {
            writer.out.reserve(HISTORY_DAYS as usize * 4);
            for offset in (0..HISTORY_DAYS).rev() {
                let date = day(offset);
                for _ in 0..writer.rng.gen_range(1..=3) {
                    writer.purchase(checking, date);
                }
                if writer.rng.gen_bool(0.4) {
                    writer.purchase(card, date);
                }
                if offset % 14 == 3 {
                    writer.paycheck(checking, date);
                }
                if offset % 30 == 5 {
                    let cents = writer.rng.gen_range(1..=4) * 5_000;
                    writer.transfer(
                        checking,
                        savings,
                        date,
                        cents,
                        "Transfer to Savings",
                        "Transfer from Checking",
                        "Transfer",
                    );
                }
                if offset % 30 == 10 {
                    let cents = writer.rng.gen_range(10_000..60_000);
                    writer.transfer(
                        checking,
                        card,
                        date,
                        cents,
                        "Credit Card Payment",
                        "Payment - Thank You",
                        "Credit Card Payment",
                    );
                }
                if offset % 30 == 20 {
                    writer.transfer(
                        checking,
                        loan,
                        date,
                        27_000,
                        "Student Loan Payment",
                        "Payment Received",
                        "Loan Payment",
                    );
                }
            }
        }
        Some(count) => {
            writer.out.reserve(count as usize);
            let count = u64::from(count);
            for index in 0..count {
                let offset = (u64::from(HISTORY_DAYS) - 1) - index * u64::from(HISTORY_DAYS) / count;
                let date = today - Days::new(offset);
                if index % 25 == 0 {
                    writer.paycheck(checking, date);
                } else if writer.rng.gen_ratio(3, 4) {
                    writer.purchase(checking, date);
                } else {
                    writer.purchase(card, date);
                }
            }
        }
    }
    if owner.pending_tail {
        hold_newest(owner, checking, today, &mut writer.out);
    }
    writer.out
}

/// Marks about half the card purchases of the newest two days on the
/// checking account PENDING (not yet posted by the bank).
fn hold_newest(owner: &Owner<'_>, checking: &Account, today: NaiveDate, out: &mut [Transaction]) {
    let mut rng = StdRng::seed_from_u64(stable_hash(&[&owner.seed.to_string(), "pending"]));
    let newest = today - Days::new(1);
    for transaction in out.iter_mut().filter(|t| {
        t.date >= newest
            && t.transaction_type == TransactionType::Debit
            && t.merchant_category_code.is_some()
            && t.account_guid.as_deref() == Some(checking.guid.as_str())
    }) {
        if rng.gen_bool(0.5) {
            transaction.status = TransactionStatus::Pending;
            transaction.posted_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(guid: &str) -> Owner<'_> {
        Owner {
            seed: login_seed("USR-1", "mxbank", guid),
            pending_tail: false,
            member_guid: guid,
            user_guid: "USR-1",
            institution_code: "mxbank",
            institution_name: "MX Bank",
            aggregated_at: DateTime::parse_from_rfc3339("2024-03-15T10:00:00Z").unwrap().with_timezone(&Utc),
        }
    }

    #[test]
    fn the_same_member_always_gets_the_same_data() {
        let a = owner("MBR-a");
        let first = transactions(&a, &accounts(&a), None);
        let again = transactions(&a, &accounts(&a), None);
        assert_eq!(first, again);
        let other = owner("MBR-b");
        assert_ne!(first, transactions(&other, &accounts(&other), None));
    }

    #[test]
    fn a_relink_of_the_login_gets_the_same_data_under_new_guids() {
        let first = owner("test_atrium");
        let relinked = Owner { member_guid: "MBR-relinked", ..owner("test_atrium") };
        let (accounts, again) = (accounts(&first), accounts(&relinked));
        let told = |a: &Account| (a.name.clone(), a.account_type.clone(), a.account_number.clone(), a.balance);
        assert_eq!(accounts.iter().map(told).collect::<Vec<_>>(), again.iter().map(told).collect::<Vec<_>>());
        assert!(accounts.iter().zip(&again).all(|(a, b)| a.guid != b.guid));
        let number = accounts[0].account_number.as_deref().unwrap();
        assert!(number.len() == 10 && number.bytes().all(|b| b.is_ascii_digit()));
        let (history, history_again) = (transactions(&first, &accounts, None), transactions(&relinked, &again, None));
        assert_eq!(history.len(), history_again.len());
        for (a, b) in history.iter().zip(&history_again) {
            assert_ne!(a.guid, b.guid);
            assert_eq!((a.date, a.amount, &a.description, &a.status), (b.date, b.amount, &b.description, &b.status));
        }
    }

    #[test]
    fn default_history_covers_ninety_days_of_a_few_a_day() {
        let a = owner("MBR-a");
        let all = transactions(&a, &accounts(&a), None);
        assert!(all.len() >= 90 * 2 && all.len() <= 90 * 6, "{}", all.len());
        let first = all.first().unwrap().date;
        let last = all.last().unwrap().date;
        assert_eq!((last - first).num_days(), i64::from(HISTORY_DAYS) - 1);
        assert!(all.windows(2).all(|w| w[0].date <= w[1].date));
        assert!(all.iter().any(|t| t.transaction_type == TransactionType::Credit));
        assert!(all.iter().all(|t| t.amount.cents() > 0));
    }

    #[test]
    fn a_fixed_count_gives_exactly_that_many_within_ninety_days() {
        let a = owner("MBR-a");
        let all = transactions(&a, &accounts(&a), Some(1_000));
        assert_eq!(all.len(), 1_000);
        let days = (all.last().unwrap().date - all.first().unwrap().date).num_days();
        assert!(days < i64::from(HISTORY_DAYS));
        let mut guids: Vec<_> = all.iter().map(|t| &t.guid).collect();
        guids.sort();
        guids.dedup();
        assert_eq!(guids.len(), 1_000);
    }

    #[test]
    fn a_member_has_checking_savings_card_and_loan() {
        let kinds: Vec<_> = accounts(&owner("MBR-a")).into_iter().map(|a| a.account_type).collect();
        assert_eq!(kinds, [AccountType::Checking, AccountType::Savings, AccountType::CreditCard, AccountType::Loan]);
    }
}
