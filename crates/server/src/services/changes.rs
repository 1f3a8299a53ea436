//! What changed in stored data, told to whoever keeps a view of it: in this process at once,
//! and on PostgreSQL to every other process through `NOTIFY`.
//!
//! A unit of work that commits changes sends one notice on [`notices::CHANGES`] in its own
//! transaction, so the notice goes out exactly when the data is visible. Every process that
//! listens applies a notice from another process to its own listeners (caches, waiting
//! requests) and acknowledges it. The process that made the change waits, before it answers,
//! until every other listening process has acknowledged (at most [`ACK_WAIT`]): so the next
//! request to any process sees the change, which is what makes caching sessions and page
//! reads exact on PostgreSQL. A process whose listening connection is down keeps no views
//! (see [`Changes::is_live`]) and forgets all it kept when it comes back.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use donkies_store::{Db, StoreError, Tx, jobs, notices};
use tokio::sync::{Notify, watch};

/// The name under which processes listen (the connection's application name, with the schema).
const LISTENER_NAME: &str = "donkies";

/// The longest a change waits for other processes to acknowledge it.
pub const ACK_WAIT: Duration = Duration::from_secs(2);

/// Something stored changed; readers (caches, waiting requests) react at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The user row or the user's sessions.
    User(i64),
    /// A member's status, challenges or accounts.
    Member { id: i64, user_id: i64 },
    /// What the user's transaction list shows: its rows, or the accounts they belong to.
    Transactions(i64),
    /// Something some users see changed; who is not known.
    Any,
    /// Changes may have been missed (this process was not listening for a while): whatever
    /// was kept may be stale, sessions included.
    Missed,
}

impl Change {
    fn encode(&self, out: &mut String) {
        let _ = match self {
            Change::User(id) => write!(out, " u{id}"),
            Change::Member { id, user_id } => write!(out, " m{id}.{user_id}"),
            Change::Transactions(id) => write!(out, " t{id}"),
            Change::Any | Change::Missed => write!(out, " *"),
        };
    }

    fn decode(token: &str) -> Option<Change> {
        let (kind, rest) = token.split_at_checked(1)?;
        match kind {
            "u" => rest.parse().ok().map(Change::User),
            "t" => rest.parse().ok().map(Change::Transactions),
            "m" => {
                let (id, user_id) = rest.split_once('.')?;
                Some(Change::Member { id: id.parse().ok()?, user_id: user_id.parse().ok()? })
            }
            "*" => Some(Change::Any),
            _ => None,
        }
    }
}

type Listener = Arc<dyn Fn(&Change) + Send + Sync>;

/// Listeners told about every committed [`Change`], synchronously; and, once [`Changes::listen_to`]
/// runs, the link to the other processes on the same PostgreSQL database.
#[derive(Clone)]
pub struct Changes(Arc<Inner>);

struct Inner {
    listeners: RwLock<Vec<Listener>>,
    /// This process, among those that send notices.
    origin: u64,
    sequence: AtomicU64,
    /// This process listens to the others' notices right now.
    live: AtomicBool,
    /// Acknowledgements counted per notice this process sent and waits on.
    waiting: Mutex<HashMap<u64, Arc<Acks>>>,
    /// Counts the jobs other processes wrote (and the times they may have been missed).
    jobs_written: watch::Sender<u64>,
}

#[derive(Default)]
struct Acks {
    count: AtomicUsize,
    arrived: Notify,
}

impl Default for Changes {
    fn default() -> Changes {
        Changes(Arc::new(Inner {
            listeners: RwLock::default(),
            origin: rand::random::<u64>() >> 1,
            sequence: AtomicU64::new(1),
            live: AtomicBool::new(false),
            waiting: Mutex::default(),
            jobs_written: watch::Sender::new(0),
        }))
    }
}

/// A notice sent in a transaction, to be waited on once it commits.
pub struct Sent {
    sequence: u64,
    acks: Arc<Acks>,
}

impl Changes {
    pub fn listen(&self, listener: impl Fn(&Change) + Send + Sync + 'static) {
        if let Ok(mut list) = self.0.listeners.write() {
            list.push(Arc::new(listener));
        }
    }

    pub fn publish(&self, change: &Change) {
        let listeners: Vec<Listener> = self.0.listeners.read().map(|l| l.clone()).unwrap_or_default();
        for listener in listeners {
            listener(change);
        }
    }

    /// Whether this process hears every other process's changes (always on SQLite, whose
    /// database one process answers for; on PostgreSQL while the listening connection is up).
    pub fn is_live(&self, db: &Db) -> bool {
        match db {
            Db::Sqlite { .. } => true,
            Db::Postgres(_) => self.0.live.load(Ordering::SeqCst),
        }
    }

    /// Send the notice of `changed` (everything, when nothing more precise was said) as part of
    /// `tx`. When this process listens, the answer says what to wait on after the commit.
    pub async fn send(&self, tx: &mut Tx, changed: &[Change]) -> Result<Option<Sent>, StoreError> {
        if !matches!(tx, Tx::Postgres(_)) {
            return Ok(None);
        }
        let sequence = self.0.sequence.fetch_add(1, Ordering::SeqCst);
        let mut body = format!("{} {sequence}", self.0.origin);
        let head = body.len();
        for change in changed {
            change.encode(&mut body);
        }
        if changed.is_empty() || body.len() > notices::MAX_BODY {
            body.truncate(head);
            Change::Any.encode(&mut body);
        }
        notices::notify_on_commit(tx, notices::CHANGES, &body).await?;
        if !self.0.live.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let acks = Arc::new(Acks::default());
        if let Ok(mut waiting) = self.0.waiting.lock() {
            waiting.insert(sequence, acks.clone());
        }
        Ok(Some(Sent { sequence, acks }))
    }

    /// Wait until every other listening process acknowledged `sent` (committed), at most
    /// [`ACK_WAIT`].
    pub async fn settled(&self, db: &Db, sent: Sent) {
        let others = match notices::listeners(db, LISTENER_NAME).await {
            Ok(n) => usize::try_from(n).unwrap_or(0).saturating_sub(1),
            Err(err) => {
                tracing::warn!(error = %err, "could not count the processes to tell of a change");
                0
            }
        };
        let deadline = tokio::time::Instant::now() + ACK_WAIT;
        loop {
            let arrived = sent.acks.arrived.notified();
            if sent.acks.count.load(Ordering::SeqCst) >= others {
                break;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                tracing::warn!(
                    waited_for = others,
                    acknowledged = sent.acks.count.load(Ordering::SeqCst),
                    "not every process acknowledged a change in time"
                );
                break;
            }
        }
        if let Ok(mut waiting) = self.0.waiting.lock() {
            waiting.remove(&sent.sequence);
        }
    }

    /// Changes when another process commits a job (or jobs may have been missed): what an
    /// idle worker waits on besides its own process's signal.
    pub fn jobs_written(&self) -> watch::Receiver<u64> {
        self.0.jobs_written.subscribe()
    }

    fn job_written(&self) {
        self.0.jobs_written.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// On PostgreSQL, listen to the other processes from now on: their changes reach this
    /// process's listeners, and their committed jobs wake workers (see [`Changes::jobs_written`]).
    /// One connection, outside the pool.
    pub fn listen_to(&self, db: &Db) -> Option<tokio::task::JoinHandle<()>> {
        if !matches!(db, Db::Postgres(_)) {
            return None;
        }
        let this = self.clone();
        let db = db.clone();
        Some(tokio::spawn(async move {
            loop {
                let mut listener =
                    match notices::Listener::connect(&db, LISTENER_NAME, &[jobs::CHANNEL, notices::CHANGES]).await {
                        Ok(Some(listener)) => listener,
                        Ok(None) => return,
                        Err(err) => {
                            tracing::warn!(error = %err, "could not listen to the other processes; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    };
                // Whatever happened before the connection was made is not known here.
                this.publish(&Change::Missed);
                this.0.live.store(true, Ordering::SeqCst);
                this.job_written();
                loop {
                    match listener.recv().await {
                        Ok(Some((channel, _))) if channel == jobs::CHANNEL => this.job_written(),
                        Ok(Some((_, body))) => this.received(&db, &body).await,
                        Ok(None) => break,
                        Err(err) => {
                            tracing::warn!(error = %err, "lost the connection to the other processes");
                            break;
                        }
                    }
                }
                this.0.live.store(false, Ordering::SeqCst);
                this.publish(&Change::Missed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }))
    }

    /// Apply another process's notice here and acknowledge it, or count an acknowledgement.
    async fn received(&self, db: &Db, body: &str) {
        let mut tokens = body.split(' ');
        let (Some(origin), Some(sequence)) = (tokens.next(), tokens.next()) else { return };
        let (Ok(origin), Ok(sequence)) = (origin.parse::<u64>(), sequence.parse::<u64>()) else { return };
        if origin == self.0.origin {
            return;
        }
        let mut acknowledged = Vec::new();
        for token in tokens {
            if let Some(ack) = token.strip_prefix('a') {
                acknowledged.push(ack);
            } else if let Some(change) = Change::decode(token) {
                self.publish(&change);
            }
        }
        if acknowledged.is_empty() {
            let ack = format!("{} 0 a{origin}.{sequence}", self.0.origin);
            if let Err(err) = notices::notify(db, notices::CHANGES, &ack).await {
                tracing::warn!(error = %err, "could not acknowledge a change");
            }
            return;
        }
        let mine = format!("{}.", self.0.origin);
        for ack in acknowledged {
            let Some(sequence) = ack.strip_prefix(&mine).and_then(|s| s.parse::<u64>().ok()) else { continue };
            let acks = self.0.waiting.lock().ok().and_then(|w| w.get(&sequence).cloned());
            if let Some(acks) = acks {
                acks.count.fetch_add(1, Ordering::SeqCst);
                acks.arrived.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_their_notice() {
        let all = [Change::User(7), Change::Member { id: 3, user_id: 7 }, Change::Transactions(9), Change::Any];
        let mut body = String::new();
        for change in &all {
            change.encode(&mut body);
        }
        let back: Vec<Change> = body.split(' ').filter(|t| !t.is_empty()).filter_map(Change::decode).collect();
        assert_eq!(back, all);
        assert_eq!(Change::decode("m3"), None);
        assert_eq!(Change::decode("x1"), None);
        assert_eq!(Change::decode(""), None);
    }
}
