//! Operator commands of the money loop, run in a terminal beside `serve`: they act on the same
//! database and the same payment provider (in sandbox mode, the simulator `serve` runs), and the
//! transfers they record are sent by the running worker, which they follow.

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use donkies_domain::Cents;
use donkies_store::money_loop::PartMethod;
use donkies_store::{money_loop, now, payments};
use indicatif::{ProgressBar, ProgressStyle};

use crate::jobs::worker::ALIVE_EVERY;
use crate::services::Services;
use crate::services::money::{Collected, PaidOut};

/// How long a command follows the transfers it recorded before giving up on the worker.
const FOLLOW_FOR: Duration = Duration::from_secs(120);

fn bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    let style = ProgressStyle::with_template(&format!("{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} {{msg}}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar
}

/// Whether some worker said it was alive recently; the command's transfers wait for one.
async fn require_worker(services: &Services) -> anyhow::Result<()> {
    let since = now() - chrono::Duration::from_std(ALIVE_EVERY * 3)?;
    let alive = money_loop::workers_seen_since(&services.store.db, since).await?;
    if alive == 0 {
        bail!(
            "no worker is running against this database (start `donkies serve`, or `donkies worker`): \
             nothing was done"
        );
    }
    Ok(())
}

/// Wait until the worker has sent every transfer to the payment provider (or it ended).
async fn follow(services: &Services, transfers: &[i64]) -> anyhow::Result<()> {
    if transfers.is_empty() {
        return Ok(());
    }
    let bar = bar(transfers.len(), "sending");
    let deadline = tokio::time::Instant::now() + FOLLOW_FOR;
    let mut waiting: Vec<i64> = transfers.to_vec();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for id in waiting {
            let t = payments::transfer_by_id(&services.store.db, id).await?;
            if t.is_none_or(|t| t.dwolla_id.is_none() && !t.status.is_final()) {
                still.push(id);
            } else {
                bar.inc(1);
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bar.abandon_with_message("the worker did not send them all");
            bail!("{} transfer(s) not sent by the worker within {:?}: {:?}", waiting.len(), FOLLOW_FOR, waiting);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_with_message("sent to the payment provider");
    Ok(())
}

pub async fn collect(services: &Services, dry_run: bool) -> anyhow::Result<()> {
    if !dry_run {
        require_worker(services).await?;
    }
    let users = money_loop::users_to_collect(&services.store.db).await?;
    let bar = bar(users.len(), if dry_run { "looking" } else { "collecting" });
    let outcomes = services.money.collect_all(dry_run, |done, _| bar.set_position(done as u64)).await?;
    bar.finish_and_clear();
    let report = collect_report(&outcomes, services.money.settings.collection_minimum, dry_run);
    print!("{}", report.text);
    follow(services, &report.transfers).await?;
    if !report.failed.is_empty() {
        bail!("the collection failed for {} user(s): {:?}; run it again", report.failed.len(), report.failed);
    }
    Ok(())
}

/// What a collection run tells the operator: a line per user and a summary that counts every
/// outcome; the transfers to follow and the users it failed for.
struct CollectReport {
    text: String,
    transfers: Vec<i64>,
    failed: Vec<i64>,
}

fn collect_report(outcomes: &[(i64, Collected)], minimum: Cents, dry_run: bool) -> CollectReport {
    let mut text = String::new();
    let (mut transfers, mut failed) = (Vec::new(), Vec::new());
    let (mut total, mut would, mut below, mut capped, mut skipped) = (0i64, 0usize, 0usize, 0usize, 0usize);
    let mut by_balance = 0usize;
    for (user, outcome) in outcomes {
        let line = match outcome {
            Collected::Sent { collection_id, transfer_id, amount } => {
                transfers.push(*transfer_id);
                total += amount.get();
                format!("collection {collection_id} of {amount} (transfer {transfer_id})")
            }
            Collected::Would { amount } => {
                would += 1;
                total += amount.get();
                format!("would collect {amount}")
            }
            Collected::BelowMinimum { waiting } => {
                below += 1;
                format!("{waiting} waits, below the minimum of {minimum}")
            }
            Collected::HeldByCap { waiting } => {
                capped += 1;
                format!("{waiting} waits, held by the daily or monthly cap")
            }
            Collected::HeldByBalance { waiting, hold } => {
                by_balance += 1;
                format!("{waiting} waits, held: {hold}")
            }
            Collected::Skipped(why) => {
                skipped += 1;
                format!("skipped: {why}")
            }
            Collected::Failed(why) => {
                failed.push(*user);
                format!("failed: {why}")
            }
        };
        text.push_str(&format!("user {user}: {line}\n"));
    }
    let (verb, sent) = if dry_run { ("would collect", would) } else { ("collected", transfers.len()) };
    text.push_str(&format!(
        "{} user(s) looked at; {verb} {} in {sent} transfer(s); {below} below the minimum; {capped} held by a cap; \
         {by_balance} held by the bank balance; {skipped} skipped; {} failed\n",
        outcomes.len(),
        Cents::new(total),
        failed.len(),
    ));
    CollectReport { text, transfers, failed }
}

pub async fn payout(services: &Services, day: NaiveDate, dry_run: bool) -> anyhow::Result<()> {
    if !dry_run {
        require_worker(services).await?;
    }
    let held = money_loop::users_with_held_money(&services.store.db).await?;
    let bar = bar(held.len(), if dry_run { "looking" } else { "paying out" });
    let outcomes = services.money.payout_all(day, dry_run, |done, _| bar.set_position(done as u64)).await?;
    bar.finish_and_clear();
    let mut transfers = Vec::new();
    let mut total = Cents::ZERO;
    for (user, outcome) in &outcomes {
        match outcome {
            PaidOut::Sent { payout_id, amount, parts } => {
                total += *amount;
                println!("user {user}: payout {payout_id} of {amount}");
                for (account, part, method) in parts {
                    println!("    {part} to account {account} ({})", method.as_str());
                }
            }
            PaidOut::Would { amount, parts } => {
                total += *amount;
                println!("user {user}: would pay out {amount}");
                for (account, part) in parts {
                    println!("    {part} to account {account}");
                }
            }
            PaidOut::AlreadyPaid => println!("user {user}: already paid out for {day}"),
            PaidOut::BelowMinimum { held } => println!("user {user}: holds {held}, below their minimum"),
            PaidOut::Nothing(why) => println!("user {user}: nothing paid: {why}"),
        }
    }
    if !dry_run {
        for part in money_loop::all_parts(&services.store.db).await? {
            if part.status == "pending"
                && let Some(t) = part.transfer_id
            {
                transfers.push(t);
            }
        }
    }
    let verb = if dry_run { "would pay out" } else { "paid out" };
    println!("{} user(s) hold money; {verb} {} for {day}", outcomes.len(), total);
    follow(services, &transfers).await
}

pub async fn manual_parts(services: &Services) -> anyhow::Result<()> {
    let parts = services.money.manual_parts_waiting().await?;
    println!("{:<16}  {:<16}  {:<16}  {:>10}  created", "part", "user", "debt account", "amount");
    for p in &parts {
        println!(
            "{:<16}  {:<16}  {:<16}  {:>10}  {}",
            p.id,
            p.user_id,
            p.account_id,
            p.amount.to_string(),
            p.created_at.format("%Y-%m-%dT%H:%M:%S")
        );
    }
    println!("{} part(s) to pay by hand", parts.len());
    Ok(())
}

pub async fn mark_paid(services: &Services, part: i64, reference: &str) -> anyhow::Result<()> {
    let reference = reference.trim();
    if reference.is_empty() || reference.contains('\0') {
        bail!("--reference must name the payment");
    }
    let paid = services.money.mark_part_paid(part, reference).await.map_err(|e| anyhow::anyhow!("part {part}: {e}"))?;
    debug_assert_eq!(paid.method, PartMethod::Manual);
    println!("part {} of {} to account {} recorded as paid ({reference})", paid.id, paid.amount, paid.account_id);
    Ok(())
}

pub async fn ledger_check(services: &Services, at_provider: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let spinner = ProgressBar::new_spinner();
    spinner.set_message("checking the ledger");
    spinner.enable_steady_tick(Duration::from_millis(120));
    let report = services.money.ledger_report(at_provider).await.context("checking the ledger");
    spinner.finish_and_clear();
    let report = report?;
    let [gathered, pending, in_collection, held, paid, refunded] = report.totals;
    println!("users: {}", report.users);
    println!("round-ups and contributions: {gathered}");
    println!("  pending in users' banks:   {pending}");
    println!("  in collection:             {in_collection}");
    println!("  held at Donkies:           {held}");
    println!("  paid out to debts:         {paid}");
    println!("  refunded:                  {refunded}");
    println!(
        "transfers checked: {} here{}",
        report.transfers_checked,
        if at_provider {
            format!(", {} at the payment provider", report.provider_transfers_checked)
        } else {
            String::new()
        }
    );
    for line in &report.outside_loop {
        println!("note: outside the money loop: {line}");
    }
    println!("took {:.2} s", started.elapsed().as_secs_f64());
    if report.problems.is_empty() {
        println!("ledger balanced");
        return Ok(());
    }
    for problem in &report.problems {
        println!("OFF: {problem}");
    }
    println!("ledger NOT balanced: {} problem(s)", report.problems.len());
    std::process::exit(1);
}

/// `donkies sync --user EMAIL`: refresh the user's banks and say what each sync changed.
pub async fn sync_user(services: &Services, email: &str) -> anyhow::Result<()> {
    let user = donkies_store::users::find_by_email(&services.store.db, email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{email}: no such user"))?;
    let synced = services.banking.sync_user(user.id).await.map_err(|e| anyhow::anyhow!("{email}: {e}"))?;
    if synced.is_empty() {
        println!("{email} has no linked bank");
    }
    for (member, counts) in &synced {
        println!("{} ({}): {counts}", member.name, member.identifier);
    }
    Ok(())
}

pub async fn ledger_user(services: &Services, email: &str) -> anyhow::Result<()> {
    let (user, balances, entries, pending) =
        services.money.ledger_of_user(email).await.map_err(|e| anyhow::anyhow!("{email}: {e}"))?;
    println!("user {} <{}>{}", user.id, user.email, if user.is_closed_account { " (closed)" } else { "" });
    println!("{:<32}  {:>12}  {:>14}  {:>15}", "account", "posted", "pending debits", "pending credits");
    for (account, b) in &balances {
        println!(
            "{:<32}  {:>12}  {:>14}  {:>15}",
            account.code(),
            b.posted.to_string(),
            b.pending_debits.to_string(),
            b.pending_credits.to_string()
        );
    }
    println!("entries:");
    for e in &entries {
        println!(
            "  {}  {:<28}  {:>10}  {} -> {}",
            e.created_at.format("%Y-%m-%dT%H:%M:%S"),
            e.entry.key(),
            e.entry.amount().to_string(),
            e.entry.debit(),
            e.entry.credit()
        );
    }
    println!("corrections:");
    for c in &services.money.corrections(user.id).await? {
        let offset = c.collection_id.map_or_else(|| "open".to_owned(), |id| format!("offset by collection {id}"));
        println!(
            "  {}  correction {}  {:>10}  round-up {} {}  {offset}",
            c.created_at.format("%Y-%m-%dT%H:%M:%S"),
            c.id,
            c.amount.to_string(),
            c.roundup_id,
            c.reason
        );
    }
    println!("two-phase:");
    for p in &pending {
        println!(
            "  {}  {:<28}  {:>10}  {:<7}  {} -> {}",
            p.created_at.format("%Y-%m-%dT%H:%M:%S"),
            p.entry.key(),
            p.entry.amount().to_string(),
            p.state.as_str(),
            p.entry.debit(),
            p.entry.credit()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use donkies_domain::CollectionHold;

    use super::*;

    #[test]
    fn the_collect_summary_counts_and_names_every_outcome() {
        let seen_at = chrono::DateTime::parse_from_rfc3339("2026-12-04T09:30:00Z").ok().map(|t| t.to_utc());
        let outcomes = vec![
            (1, Collected::Sent { collection_id: 10, transfer_id: 20, amount: Cents::new(700) }),
            (2, Collected::BelowMinimum { waiting: Cents::new(120) }),
            (3, Collected::HeldByCap { waiting: Cents::new(86_802) }),
            (4, Collected::Skipped("no round-up source".into())),
            (
                6,
                Collected::HeldByBalance {
                    waiting: Cents::new(1_250),
                    hold: CollectionHold::LowBalance { available: Cents::new(1_200), floor: Cents::new(10_000) },
                },
            ),
            (7, Collected::HeldByBalance { waiting: Cents::new(600), hold: CollectionHold::StaleBalance { seen_at } }),
            (5, Collected::Failed("The payment service is unavailable".into())),
        ];
        let report = collect_report(&outcomes, Cents::new(500), false);
        let lines: Vec<&str> = report.text.lines().collect();
        assert_eq!(
            lines,
            [
                "user 1: collection 10 of 7.00 (transfer 20)",
                "user 2: 1.20 waits, below the minimum of 5.00",
                "user 3: 868.02 waits, held by the daily or monthly cap",
                "user 4: skipped: no round-up source",
                "user 6: 12.50 waits, held: low balance: 12.00 available, floor 100.00",
                "user 7: 6.00 waits, held: stale balance: last seen 2026-12-04T09:30:00",
                "user 5: failed: The payment service is unavailable",
                "7 user(s) looked at; collected 7.00 in 1 transfer(s); 1 below the minimum; 1 held by a cap; \
                 2 held by the bank balance; 1 skipped; 1 failed",
            ]
        );
        assert_eq!(report.transfers, [20]);
        assert_eq!(report.failed, [5], "a failed user makes the command fail");
    }
}
