//! `TestApp`: the real server on port 0 over a fresh database, a real SMTP listener, and one
//! helper per endpoint.

use std::time::Duration;

use donkies_sandbox::{
    AtriumSim, AtriumSimConfig, DwollaSim, DwollaSimConfig, FacebookSim, GoogleSim, SANDBOX_API_KEY, SANDBOX_CLIENT_ID,
    SANDBOX_DWOLLA_KEY, SANDBOX_DWOLLA_SECRET, SANDBOX_FACEBOOK_APP_ID, SANDBOX_FACEBOOK_APP_SECRET,
    SANDBOX_GOOGLE_CLIENT_ID, SANDBOX_GOOGLE_CLIENT_SECRET, SANDBOX_TWITTER_CONSUMER_KEY,
    SANDBOX_TWITTER_CONSUMER_SECRET, TwitterSim,
};
use donkies_server::Server;
use donkies_server::config::{CommonArgs, FileValues, Settings};
use donkies_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::smtp::{Mode, SmtpSink, link_params};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generate a SQLite and a PostgreSQL test for each `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! both_databases {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case($crate::helpers::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(postgres_tests), ignore = "set DONKIES_TEST_POSTGRES_URL to run the PostgreSQL half")]
            async fn postgres() {
                super::$case($crate::helpers::Backend::Postgres).await;
            }
        }
    )*};
}

pub const PASSWORD: &str = "correct horse battery";

/// Rate limits count in clock minutes (and hours): a test that spends a budget waits, when it is
/// near the end of a minute, for the next one to begin, so that its attempts fall in one window.
pub async fn start_of_a_rate_window() {
    let second = chrono::Timelike::second(&chrono::Utc::now());
    if second >= 45 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - second))).await;
    }
}

/// The longest a waiting test goes without looking again, when nothing it can see is due.
const IDLE: Duration = Duration::from_millis(50);
/// The same while another worker runs a job.
const BUSY: Duration = Duration::from_millis(10);

pub struct TestApp {
    pub server: Option<Server>,
    pub base: String,
    pub client: reqwest::Client,
    pub smtp: SmtpSink,
    pub test_db: TestDb,
    /// The Atrium simulator this server talks to (fault knobs: `atrium.set_faults`).
    pub atrium: AtriumSim,
    /// The sign-in provider simulators this server talks to.
    pub facebook: FacebookSim,
    pub google: GoogleSim,
    pub twitter: TwitterSim,
    /// The Dwolla simulator, its webhooks subscribed to this server.
    pub dwolla: DwollaSim,
    /// Job kinds the test expects to end parked; any other parked job fails the test.
    pub parked_ok: std::sync::Mutex<Vec<String>>,
    /// Signalled when the server commits a change, so that a test waiting
    /// for something re-checks at once instead of on a clock.
    pub stirred: std::sync::Arc<tokio::sync::Notify>,
}

/// Drives a test server's jobs from the test itself, and waits for its changes.
#[derive(Clone)]
pub struct Driver {
    ctx: donkies_server::jobs::JobContext,
    db: donkies_store::Db,
    stirred: std::sync::Arc<tokio::sync::Notify>,
}

impl Driver {
    /// Run, in the test's own task, every job that is due now, until none is left (the
    /// server's worker may take some of them: each is claimed once); what this call ran.
    pub async fn run_jobs(&self) -> Vec<donkies_server::jobs::Outcome> {
        donkies_server::jobs::Worker::new(self.ctx.clone(), Default::default()).run_until_idle().await.unwrap()
    }

    /// Drive the server until `check` finds what the test waits for: run the jobs that are
    /// due, and otherwise wait for the next change the server commits or the next job to fall
    /// due, never on a fixed clock. `check` answers `Err(what it saw)` while it waits; the last
    /// one is in the failure.
    pub async fn eventually<T, E: std::fmt::Debug>(
        &self,
        what: &str,
        mut check: impl AsyncFnMut() -> Result<T, E>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            let stirred = self.stirred.notified();
            tokio::pin!(stirred);
            stirred.as_mut().enable();
            let seen = match check().await {
                Ok(found) => return found,
                Err(seen) => seen,
            };
            assert!(tokio::time::Instant::now() < deadline, "{what} never happened; last seen: {seen:?}");
            if !self.run_jobs().await.is_empty() {
                continue;
            }
            let _ = tokio::time::timeout(self.until_next_job().await, stirred).await;
        }
    }

    /// Jobs queued or running that requests caused (the periodic ones aside).
    pub async fn pending_jobs(&self) -> Vec<donkies_store::jobs::Job> {
        let periodic: Vec<&str> = donkies_server::jobs::periodic().iter().map(|(kind, _)| *kind).collect();
        let jobs = donkies_store::jobs::list(&self.db, false).await.unwrap();
        jobs.into_iter().filter(|j| j.status != "failed" && !periodic.contains(&j.kind.as_str())).collect()
    }

    /// How long until the next queued job falls due (a job another worker runs, or one to
    /// retry later), at most [`IDLE`]: what comes from outside the server (a simulator's webhook
    /// or clock) is only seen by looking again.
    async fn until_next_job(&self) -> Duration {
        let jobs = donkies_store::jobs::list(&self.db, false).await.unwrap();
        let t = donkies_store::now();
        let running = jobs.iter().any(|j| j.status == donkies_store::jobs::RUNNING);
        let next =
            jobs.iter().filter(|j| j.status == "queued").map(|j| (j.run_at - t).to_std().unwrap_or_default()).min();
        let idle = if running { BUSY } else { IDLE };
        next.map_or(idle, |next| next.min(idle))
    }
}

/// A `donkies serve` (or `worker`) process beside a [`TestApp`]; stopped when dropped.
pub struct ApiProcess {
    pub base: String,
    _child: tokio::process::Child,
}

impl ApiProcess {
    /// Send the process `signal` (`STOP`, `CONT`, `KILL`…), as an operator's `kill -s` would.
    pub fn signal(&self, signal: &str) {
        let pid = self._child.id().expect("the process runs").to_string();
        let status = std::process::Command::new("kill").args(["-s", signal, &pid]).status().unwrap();
        assert!(status.success(), "kill -s {signal} {pid}");
    }
}

pub struct Options {
    pub with_worker: bool,
    /// Zero-config sandbox mode: the server runs its own Atrium and Dwolla simulators (not
    /// the test's), keeping them in a data directory of the test's own.
    pub sandbox: bool,
    pub smtp_mode: Mode,
    pub args: CommonArgs,
    pub atrium: AtriumSimConfig,
    pub dwolla: DwollaSimConfig,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            with_worker: true,
            sandbox: false,
            smtp_mode: Mode::Accept,
            args: CommonArgs::default(),
            atrium: AtriumSimConfig { step: Duration::from_millis(40), ..Default::default() },
            dwolla: DwollaSimConfig {
                webhook_retries: [100, 500, 1000, 2000, 4000, 8000].map(Duration::from_millis).to_vec(),
                webhook_timeout: Duration::from_secs(5),
                ..Default::default()
            },
        }
    }
}

pub async fn fresh_db(backend: Backend) -> TestDb {
    match backend {
        Backend::Sqlite => TestDb::sqlite().await,
        Backend::Postgres => TestDb::postgres().await,
    }
}

/// Settings for a test process: fast job polling and retries, the given SMTP sink.
pub fn test_args(db_url: &str, smtp: &SmtpSink, mut args: CommonArgs) -> CommonArgs {
    args.database_url = Some(db_url.to_owned());
    args.secret_key.get_or_insert_with(|| "test secret key, not for production".into());
    args.smtp_url.get_or_insert_with(|| smtp.url());
    args.frontend_url.get_or_insert_with(|| "http://front.test".into());
    args.job_poll_ms.get_or_insert_with(|| "50".into());
    args.job_retry_base_ms.get_or_insert_with(|| "100".into());
    args.data_dir.get_or_insert_with(|| test_data_dir().display().to_string());
    args
}

/// A data directory of the test's own (a server in sandbox mode keeps its simulators there).
pub fn test_data_dir() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let data = std::env::temp_dir().join(format!("donkies-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    data
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, options: Options) -> TestApp {
        let test_db = fresh_db(backend).await;
        let smtp = SmtpSink::start(options.smtp_mode).await;
        let atrium = AtriumSim::start("127.0.0.1:0".parse().unwrap(), options.atrium).await.unwrap();
        let loopback = || "127.0.0.1:0".parse().unwrap();
        let facebook = FacebookSim::start(loopback(), Default::default()).await.unwrap();
        let google = GoogleSim::start(loopback(), Default::default()).await.unwrap();
        let twitter = TwitterSim::start(loopback(), Default::default()).await.unwrap();
        let dwolla = DwollaSim::start(loopback(), options.dwolla).await.unwrap();
        let mut args = options.args;
        args.facebook_url.get_or_insert_with(|| facebook.base_url().to_string());
        args.facebook_key.get_or_insert_with(|| SANDBOX_FACEBOOK_APP_ID.into());
        args.facebook_secret.get_or_insert_with(|| SANDBOX_FACEBOOK_APP_SECRET.into());
        args.google_url.get_or_insert_with(|| google.base_url().to_string());
        args.google_key.get_or_insert_with(|| SANDBOX_GOOGLE_CLIENT_ID.into());
        args.google_secret.get_or_insert_with(|| SANDBOX_GOOGLE_CLIENT_SECRET.into());
        args.twitter_url.get_or_insert_with(|| twitter.base_url().to_string());
        args.twitter_key.get_or_insert_with(|| SANDBOX_TWITTER_CONSUMER_KEY.into());
        args.twitter_secret.get_or_insert_with(|| SANDBOX_TWITTER_CONSUMER_SECRET.into());
        args.member_poll_ms.get_or_insert_with(|| "40".into());
        if options.sandbox {
            args.data_dir.get_or_insert(test_data_dir().display().to_string());
            args.sandbox_step_ms.get_or_insert_with(|| "40".into());
            args.dwolla_sandbox_processing_ms.get_or_insert_with(|| "0".into());
        } else {
            args.atrium_url.get_or_insert_with(|| atrium.base_url().to_string());
            args.atrium_client_id.get_or_insert_with(|| SANDBOX_CLIENT_ID.into());
            args.atrium_key.get_or_insert_with(|| SANDBOX_API_KEY.into());
            args.dwolla_url.get_or_insert_with(|| dwolla.base_url().to_string());
            args.dwolla_key.get_or_insert_with(|| SANDBOX_DWOLLA_KEY.into());
            args.dwolla_secret.get_or_insert_with(|| SANDBOX_DWOLLA_SECRET.into());
        }
        let args = test_args(&test_db.url, &smtp, args);
        let settings = Settings::resolve(Some("127.0.0.1:0".into()), &args, &FileValues::default()).unwrap();
        let server = Server::start_with_db(settings, test_db.db.clone(), options.with_worker).await.unwrap();
        let webhooks = format!("{}/v1/dwolla/webhooks", server.base_url());
        // The server's own start-up job subscribes too, with the same idempotency key: while
        // its request is in flight, Dwolla answers 409 and this one is tried again.
        let mut tries = 0;
        while let Err(err) = server.services().payments.ensure_webhook_subscription(&webhooks).await {
            tries += 1;
            assert!(tries < 50, "could not subscribe to the Dwolla simulator's webhooks: {err:?}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let stirred = Self::stir_on_changes(&server);
        TestApp {
            base: server.base_url(),
            server: Some(server),
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            smtp,
            test_db,
            atrium,
            facebook,
            google,
            twitter,
            dwolla,
            parked_ok: Default::default(),
            stirred,
        }
    }

    /// A signal raised by every change the server commits.
    pub fn stir_on_changes(server: &Server) -> std::sync::Arc<tokio::sync::Notify> {
        let stirred = std::sync::Arc::new(tokio::sync::Notify::new());
        let signal = stirred.clone();
        server.services().store.changes.listen(move |_| signal.notify_waiters());
        stirred
    }

    /// The test means a job of `kind` to end parked (a refused request, a relay that never
    /// answers); without this, a parked job fails the test when the app is dropped.
    pub fn expect_parked(&self, kind: &str) {
        self.parked_ok.lock().unwrap().push(kind.to_owned());
    }

    /// Parked jobs the test did not say it expects.
    async fn unexpected_parked(db: &donkies_store::Db, expected: &[String]) -> Vec<donkies_store::jobs::Job> {
        let jobs = donkies_store::jobs::list(db, true).await.unwrap_or_default();
        jobs.into_iter().filter(|j| j.status == "failed" && !expected.contains(&j.kind)).collect()
    }

    /// Whether the server runs its own simulators (`Options::sandbox`).
    pub fn is_sandbox(&self) -> bool {
        self.settings().dwolla.rail.is_sandbox()
    }

    /// Process the transfers and micro-deposits pending at the Dwolla this server talks to.
    pub async fn simulate_dwolla(&self) {
        if self.is_sandbox() {
            let url = self.url("/__sandbox/dwolla/__sim/simulate");
            let response = self.client.post(url).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        } else {
            self.dwolla.handle().simulate();
        }
    }

    /// Stop the server and start it again on the same address, database and data directory,
    /// as an operator restarting `serve` would.
    pub async fn restart(&mut self) {
        let server = self.server.take().unwrap();
        let mut settings = (*server.settings).clone();
        settings.listen = server.addr;
        server.shutdown().await;
        let server = Server::start_with_db(settings, self.test_db.db.clone(), true).await.unwrap();
        assert_eq!(server.base_url(), self.base);
        self.stirred = Self::stir_on_changes(&server);
        self.server = Some(server);
    }

    /// What drives this server's jobs and sees its changes, for helpers that hold no `TestApp`.
    pub fn driver(&self) -> Driver {
        Driver {
            ctx: self.server.as_ref().unwrap().job_context(),
            db: self.db().clone(),
            stirred: self.stirred.clone(),
        }
    }

    /// See [`Driver::eventually`].
    pub async fn eventually<T, E: std::fmt::Debug>(&self, what: &str, check: impl AsyncFnMut() -> Result<T, E>) -> T {
        self.driver().eventually(what, check).await
    }

    /// Run every job that requests so far caused (the periodic ones aside), so that a check
    /// for something that must not happen is not made too early; fails on a parked job the
    /// test does not expect.
    pub async fn wait_jobs_idle(&self) {
        let driver = self.driver();
        self.eventually("the jobs to finish", async || {
            let pending = driver.pending_jobs().await;
            if pending.is_empty() { Ok(()) } else { Err(pending) }
        })
        .await;
        let expected = self.parked_ok.lock().unwrap().clone();
        let parked = Self::unexpected_parked(self.db(), &expected).await;
        assert!(parked.is_empty(), "jobs parked: {parked:?}");
    }

    /// Wait until a job of `kind` failed an attempt with an error that contains `error`, so
    /// that a test checks what a failed attempt left behind as soon as there is one.
    pub async fn wait_failed_attempt(&self, kind: &str, error: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            let jobs = donkies_store::jobs::list(self.db(), false).await.unwrap();
            if jobs.iter().any(|j| j.kind == kind && j.last_error.as_deref().is_some_and(|e| e.contains(error))) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "no {kind} attempt failed with {error:?}: {jobs:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Run `donkies ARGS` beside this server, as an operator would in a second terminal: the
    /// same database and the same simulated providers.
    pub async fn operator(&self, args: &[&str]) -> std::process::Output {
        self.operator_command(args).output().await.unwrap()
    }

    fn operator_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_donkies"));
        command
            .args(args)
            .env("DATABASE_URL", &self.test_db.url)
            .env("DONKIES_SECRET_KEY", "test secret key, not for production")
            .env("DONKIES_DATA_DIR", &self.settings().data_dir)
            .env("RUST_LOG", "warn");
        if self.is_sandbox() {
            // Sandbox mode: the simulators of the `serve` listening there.
            command.env("DONKIES_LISTEN", self.base.trim_start_matches("http://"));
        } else {
            command
                .env("DONKIES_ATRIUM_URL", self.atrium.base_url().as_str())
                .env("DONKIES_ATRIUM_CLIENT_ID", SANDBOX_CLIENT_ID)
                .env("DONKIES_ATRIUM_KEY", SANDBOX_API_KEY)
                .env("DONKIES_DWOLLA_URL", self.dwolla.base_url().as_str())
                .env("DONKIES_DWOLLA_KEY", SANDBOX_DWOLLA_KEY)
                .env("DONKIES_DWOLLA_SECRET", SANDBOX_DWOLLA_SECRET);
        }
        command
    }

    /// Start a second API process (`donkies serve --no-worker`) on this server's database and
    /// providers, as a deployment with several API processes runs them.
    pub async fn second_process(&self) -> ApiProcess {
        self.second_process_with(&[("DONKIES_LOGIN_RATE_PER_MINUTE", "1000")]).await
    }

    /// As [`TestApp::second_process`], with the settings `env` gives it.
    pub async fn second_process_with(&self, env: &[(&str, &str)]) -> ApiProcess {
        let args = ["serve", "--no-worker", "--listen", "127.0.0.1:0"];
        self.process_at(&args, env, "listening on http://").await
    }

    /// Start `donkies ARGS` beside this server (see [`TestApp::operator`]) with the settings
    /// `env` gives it, and wait for it to log `announce` followed by its address; the process,
    /// with its base URL.
    pub async fn process_at(&self, args: &[&str], env: &[(&str, &str)], announce: &str) -> ApiProcess {
        use tokio::io::AsyncBufReadExt;
        let mut command = self.operator_command(args);
        command.env("RUST_LOG", "info").envs(env.iter().copied());
        let mut child = command.stdout(std::process::Stdio::piped()).kill_on_drop(true).spawn().unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let wait = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(i) = line.find(announce) {
                    let address = line[i + announce.len()..].trim();
                    return format!("http://{}", address.split('/').next().unwrap_or(address));
                }
            }
            panic!("donkies {args:?} stopped before it logged {announce:?}")
        };
        let base = tokio::time::timeout(Duration::from_secs(60), wait).await.expect("the process starts");
        // Keep reading its output, so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ApiProcess { base, _child: child }
    }

    pub fn db(&self) -> &donkies_store::Db {
        &self.test_db.db
    }

    pub fn settings(&self) -> std::sync::Arc<Settings> {
        self.server.as_ref().unwrap().settings.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Send a JSON request, with a token when given; returns status and parsed body (Null if empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_on(&self.base, method, path, token, body).await
    }

    /// As [`TestApp::call`], to the server at `base` (another process on the same database).
    pub async fn call_on(
        &self,
        base: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{base}{path}"));
        if let Some(token) = token {
            req = req.header("Authorization", format!("Token {token}"));
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn signup(&self, email: &str) -> StatusCode {
        let body = json!({"email": email, "password": PASSWORD, "first_name": "Ada", "last_name": "Lovelace"});
        self.post("/v1/auth/signup", None, body).await.0
    }

    /// The `id` and `token` of the latest mailed link to `page` for `to`.
    pub async fn mailed_link(&self, to: &str, page: &str, nth: usize) -> (String, String) {
        let mails = self.smtp.wait_for(to, nth, Duration::from_secs(15)).await;
        assert!(mails.len() >= nth, "expected {nth} mail(s) to {to}, got {}", mails.len());
        link_params(&mails[nth - 1].data, page)
    }

    pub async fn confirm(&self, encrypted_id: &str, token: &str) -> (StatusCode, Value) {
        self.post("/v1/auth/signup/confirm", None, json!({"encrypted_id": encrypted_id, "confirmation_token": token}))
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        self.post("/v1/auth/login", None, json!({"email": email, "password": password})).await
    }

    /// Sign up, confirm from the mailed link, and return a session token.
    pub async fn signed_up_user(&self, email: &str) -> String {
        assert_eq!(self.signup(email).await, StatusCode::NO_CONTENT);
        let (id, token) = self.mailed_link(email, "confirm", 1).await;
        let (status, body) = self.confirm(&id, &token).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

/// A test that leaves a job parked, without saying it expects that, fails: a parked job is work
/// the server gave up on.
impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let expected = self.parked_ok.lock().map(|k| k.clone()).unwrap_or_default();
        let db = self.test_db.db.clone();
        // The test's runtime may be single-threaded and busy dropping us: use a private one.
        let parked = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(TestApp::unexpected_parked(&db, &expected))
        })
        .join()
        .unwrap_or_default();
        if !parked.is_empty() {
            let list: Vec<String> = parked
                .iter()
                .map(|j| format!("{} ({}): {}", j.kind, j.id, j.last_error.as_deref().unwrap_or("")))
                .collect();
            panic!("the test left jobs parked (call app.expect_parked(kind) if it means to):\n{}", list.join("\n"));
        }
    }
}
