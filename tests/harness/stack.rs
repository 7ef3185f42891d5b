//! A deployment under test, started the way a deployment starts: the embedded default (one
//! API on SQLite with in-process workers) or the distributed one (an API plus `llmops-worker`
//! processes on a throwaway Postgres and Redis).
//!
//! The API runs in this process by default (`spawn_app`: `Application::build` on port 0, on a
//! runtime of its own, so a test's runtime cannot starve it and dropping the stack stops it).
//! Suites that need the API as a real process (SIGTERM, SIGKILL and restart, its own log or
//! memory) ask for `StackOptions::processes()`. Workers of the distributed deployment are
//! always real `llmops-worker` processes, so signals and jobs still cross processes.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use clap::{CommandFactory, FromArgMatches};
use llmops_api::Application;
use shared::config::Config;

use crate::{MockLlm, Postgres, Redis, free_port};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    Distributed { workers: usize },
}

/// The model the mock LLM is configured as (`StackOptions::mock_llm`).
pub const MOCK_MODEL: &str = "mock-model";

#[derive(Clone, Debug)]
pub struct StackOptions {
    pub mode: Mode,
    /// Extra settings, by environment name, for the API and every worker.
    pub env: Vec<(String, String)>,
    /// Run the API as a real `llmops-api` process instead of in this process.
    pub processes: bool,
    /// Start a mock LLM and make it the provider of debug chats.
    pub mock_llm: bool,
}

impl StackOptions {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            env: Vec::new(),
            processes: false,
            mock_llm: false,
        }
    }
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }
    /// The API as a real process: for tests that signal, kill or restart it, or read its log.
    pub fn processes(mut self) -> Self {
        self.processes = true;
        self
    }
    /// A fresh mock LLM (`Stack::llm`) as the provider (`LLMOPS_LLM_BASE_URL`, key `sk-test`,
    /// model `MOCK_MODEL`).
    pub fn mock_llm(mut self) -> Self {
        self.mock_llm = true;
        self
    }
    /// The number of worker processes of the distributed deployment (no effect when embedded).
    pub fn workers(mut self, n: usize) -> Self {
        if let Mode::Distributed { workers } = &mut self.mode {
            *workers = n;
        }
        self
    }
}

/// A child process that is killed when dropped; its output goes to a log file.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// SIGTERM, as an orchestrator would; returns the exit status once the process stopped.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API of a stack: in this process, or a real process.
pub enum Api {
    InProcess(InProcessApp),
    Process(Proc),
}

impl Api {
    /// The `llmops-api` process; panics for an in-process API (use `StackOptions::processes`).
    pub fn process(&mut self) -> &mut Proc {
        match self {
            Api::Process(proc) => proc,
            Api::InProcess(_) => panic!("this test needs StackOptions::processes()"),
        }
    }

    /// The id of the `llmops-api` process; panics for an in-process API.
    pub fn pid(&self) -> u32 {
        match self {
            Api::Process(proc) => proc.child.id(),
            Api::InProcess(_) => panic!("this test needs StackOptions::processes()"),
        }
    }
}

/// A running deployment under test.
pub struct Stack {
    pub mode: Mode,
    pub base: String,
    pub client: reqwest::Client,
    pub api: Api,
    pub workers: Vec<Proc>,
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    llm: Option<MockLlm>,
    // Kept for their Drop: the servers die with the stack.
    pub redis: Option<Redis>,
    /// The stack's own cluster (`StackOptions::processes`); others use a database on the
    /// shared one.
    pub postgres: Option<Postgres>,
}

impl Stack {
    /// A setting this stack's processes were started with.
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Where cargo put the binaries: next to the test executable's `deps/` directory.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

impl Stack {
    pub async fn start(mode: Mode) -> Option<Self> {
        Self::start_with(StackOptions::new(mode)).await
    }

    /// The deployment with the API as a real `llmops-api` process (`StackOptions::processes`).
    pub async fn start_processes(mode: Mode) -> Option<Self> {
        Self::start_with(StackOptions::new(mode).processes()).await
    }

    /// Starts the deployment, or returns `None` after a loud skip when Postgres or Redis is
    /// missing (a failure under `LLMOPS_REQUIRE_SERVICES=1`).
    pub async fn start_with(options: StackOptions) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("llmops-stack-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create stack dir");
        let port = free_port();
        let mut env: Vec<(String, String)> = vec![
            ("LLMOPS_LISTEN".into(), format!("127.0.0.1:{port}")),
            (
                "LLMOPS_DATA_DIR".into(),
                dir.join("data").display().to_string(),
            ),
            ("LLMOPS_HTTP_ALLOW_PRIVATE".into(), "true".into()),
            (
                "RUST_LOG".into(),
                "info,sqlx=warn,apalis=warn,apalis_core=warn".into(),
            ),
            ("JWT_SECRET".into(), "test-secret-0123456789abcdef".into()),
        ];
        let (mut postgres, mut redis) = (None, None);
        if let Mode::Distributed { .. } = options.mode {
            // A suite of real processes may stop or restart Postgres: it gets a cluster of its
            // own. Otherwise a fresh database on the shared cluster isolates the test as well.
            let pg = match options.processes {
                true => tokio::task::spawn_blocking(Postgres::start)
                    .await
                    .expect("start Postgres")
                    .map(|pg| (pg.url(), Some(pg))),
                false => Postgres::fresh_database().await.map(|url| (url, None)),
            };
            let rd = tokio::task::spawn_blocking(Redis::start)
                .await
                .expect("start Redis");
            let (Some((database_url, pg)), Some(rd)) = (pg, rd) else {
                return None;
            };
            env.push(("DATABASE_URL".into(), database_url));
            env.push(("REDIS_URL".into(), rd.url()));
            postgres = pg;
            redis = Some(rd);
        }
        let llm = match options.mock_llm {
            true => Some(MockLlm::start().await),
            false => None,
        };
        if let Some(llm) = &llm {
            env.push(("LLMOPS_LLM_BASE_URL".into(), llm.base_url.clone()));
            env.push(("LLMOPS_LLM_API_KEY".into(), "sk-test".into()));
            env.push(("LLMOPS_LLM_MODEL".into(), MOCK_MODEL.into()));
        }
        env.extend(options.env.iter().cloned());
        let (api, base) = match options.processes {
            true => (
                Api::Process(spawn(&dir, "llmops-api", "api", &env)),
                format!("http://127.0.0.1:{port}"),
            ),
            false => {
                let app = spawn_app(&env);
                let base = format!("http://{}", app.addr);
                (Api::InProcess(app), base)
            }
        };
        let mut stack = Self {
            mode: options.mode,
            base,
            client: reqwest::Client::new(),
            api,
            workers: Vec::new(),
            dir,
            env,
            llm,
            redis,
            postgres,
        };
        stack.wait_healthy().await;
        if let Mode::Distributed { workers } = options.mode {
            for _ in 0..workers {
                stack.spawn_worker().await;
            }
        }
        Some(stack)
    }

    /// Starts a second `llmops-api` process on the stack's store, queue and signals (another
    /// replica behind the same load balancer); answers it and its base URL once it is ready.
    pub async fn spawn_api_replica(&self) -> (Proc, String) {
        let port = free_port();
        let mut env = self.env.clone();
        env.push(("LLMOPS_LISTEN".into(), format!("127.0.0.1:{port}")));
        let mut api = spawn(&self.dir, "llmops-api", "api-replica", &env);
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.client.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                return (api, base);
            }
            if let Ok(Some(status)) = api.child.try_wait() {
                panic!(
                    "llmops-api replica exited with {status}:\n{}",
                    api.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the replica did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts one more `llmops-worker` with the stack's settings and waits until it has
    /// connected (by then its signal handlers are installed, so a SIGTERM is a clean stop).
    pub async fn spawn_worker(&mut self) -> usize {
        let n = self.workers.len();
        let mut worker = spawn(&self.dir, "llmops-worker", &format!("worker{n}"), &self.env);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !worker.log_text().contains("llmops-worker started") {
            if let Ok(Some(status)) = worker.child.try_wait() {
                panic!("llmops-worker exited with {status}:\n{}", worker.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "llmops-worker did not start:\n{}",
                worker.log_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.workers.push(worker);
        n
    }

    /// Kills `llmops-api` with SIGKILL, as a crash would, and starts it again on the same data
    /// and settings; returns once it is ready.
    pub async fn crash_and_restart_api(&mut self) {
        self.api.process().kill9();
        let restarted = spawn(&self.dir, "llmops-api", "api-restarted", &self.env);
        self.api = Api::Process(restarted);
        self.wait_healthy().await;
    }

    /// The mock LLM of a stack started with `StackOptions::mock_llm`.
    pub fn llm(&self) -> &MockLlm {
        self.llm
            .as_ref()
            .expect("this stack has no mock LLM (StackOptions::mock_llm)")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `GET path`, answered with JSON whatever the status.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        r.json().await.unwrap()
    }

    /// Registers an account with this email and password, signs in, and returns the access token.
    pub async fn sign_up(&self, email: &str, password: &str) -> String {
        let creds = serde_json::json!({"email": email, "password": password});
        let r = self
            .client
            .post(self.url("/api/auth/register"))
            .json(&creds)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "register: {}", r.text().await.unwrap());
        let r = self
            .client
            .post(self.url("/api/auth/password-login"))
            .json(&creds)
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        body["data"]["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Environment the stack's processes run with.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.client.get(self.url("/readyz")).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Api::Process(api) = &mut self.api
                && let Ok(Some(status)) = api.child.try_wait()
            {
                panic!("llmops-api exited with {status}:\n{}", api.log_text());
            }
            if let Api::InProcess(app) = &self.api
                && app.is_finished()
            {
                panic!("the in-process API stopped before it was ready");
            }
            assert!(
                Instant::now() < deadline,
                "llmops-api did not become ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the processes logged, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = match &self.api {
            Api::Process(api) => format!("--- api ---\n{}", api.log_text()),
            Api::InProcess(_) => "--- api: in-process (TEST_LOG=1 prints its log) ---".to_owned(),
        };
        for (i, w) in self.workers.iter().enumerate() {
            out.push_str(&format!("\n--- worker{i} ---\n{}", w.log_text()));
        }
        out
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.workers.clear();
        match &mut self.api {
            Api::Process(api) => api.kill9(),
            Api::InProcess(app) => app.stop(),
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(dir: &std::path::Path, bin: &str, name: &str, env: &[(String, String)]) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).expect("create log");
    let child = Command::new(binary(bin))
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone log"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    Proc { child, log }
}

/// An API built by `Application::build` and served in this process, on a runtime and thread of
/// its own.
pub struct InProcessApp {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessApp {
    /// Stops the app at once, as a crash would: its runtime is dropped with whatever it was
    /// doing (the store and the queue, not the app, are what a test observes afterwards).
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

/// Builds the configuration from `settings` (environment names and values, as a deployment
/// passes them), with the listener on a free port, and serves the API in this process;
/// returns once it is bound (requests queue until it serves). zero2prod's `spawn_app`.
pub fn spawn_app(settings: &[(String, String)]) -> InProcessApp {
    if std::env::var_os("TEST_LOG").is_some() {
        // Kept for the test process's life: dropping it would stop a trace exporter.
        std::mem::forget(shared::telemetry::init(
            shared::config::LogFormat::Text,
            "llmops-tests",
        ));
    }
    let mut settings = settings.to_vec();
    settings.push(("LLMOPS_LISTEN".into(), "127.0.0.1:0".into()));
    let config = config_from(&settings);
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("app runtime");
        runtime.block_on(async move {
            let app = match Application::build(config).await {
                Ok(app) => app,
                Err(e) => {
                    let _ = bound_tx.send(Err(format!("{e:#}")));
                    return;
                }
            };
            let _ = bound_tx.send(Ok(app.local_addr()));
            tokio::select! {
                result = app.run_until(std::future::pending()) => {
                    if let Err(e) = result {
                        panic!("the in-process API failed: {e:#}");
                    }
                }
                _ = stopped => {}
            }
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
    });
    let addr = match bound_rx.recv() {
        Ok(Ok(addr)) => addr,
        Ok(Err(e)) => panic!("Application::build failed: {e}"),
        Err(_) => panic!("the in-process API panicked while building"),
    };
    InProcessApp {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// The configuration a process started with `settings` in its environment reads: each name
/// becomes its flag, and the ambient environment is ignored, so a developer's own
/// `DATABASE_URL` cannot leak into a test. Names no setting reads (`RUST_LOG`) are skipped.
pub fn config_from(settings: &[(String, String)]) -> Config {
    let command = Config::command().mut_args(|arg| arg.env(None::<&'static str>));
    let flags = Config::command();
    // As in an environment, the last value given for a name is the one read.
    let mut last: Vec<&(String, String)> = Vec::new();
    for setting in settings {
        last.retain(|(name, _)| *name != setting.0);
        last.push(setting);
    }
    let mut args = vec!["llmops-api".to_owned()];
    for (name, value) in last {
        let Some(arg) = flags
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == name.as_str()))
        else {
            assert_eq!(name, "RUST_LOG", "{name} is not a setting");
            continue;
        };
        let long = arg.get_long().expect("every setting has a flag");
        if arg.get_action().takes_values() {
            args.push(format!("--{long}={value}"));
        } else if matches!(value.as_str(), "y" | "yes" | "t" | "true" | "on" | "1") {
            // A switch: from the environment, a truthy value sets it.
            args.push(format!("--{long}"));
        }
    }
    let matches = command
        .try_get_matches_from(&args)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    Config::from_arg_matches(&matches).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}
