//! The real binaries, started the way a deployment starts them: the embedded default (one
//! `llmops-api` on SQLite with in-process workers) or the distributed one (`llmops-api` plus
//! `llmops-worker` processes on a throwaway Postgres and Redis).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{Postgres, Redis, free_port};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    Distributed { workers: usize },
}

#[derive(Clone, Debug)]
pub struct StackOptions {
    pub mode: Mode,
    /// Extra environment for every process.
    pub env: Vec<(String, String)>,
}

impl StackOptions {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            env: Vec::new(),
        }
    }
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
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

/// A running deployment under test.
pub struct Stack {
    pub mode: Mode,
    pub base: String,
    pub client: reqwest::Client,
    pub api: Proc,
    pub workers: Vec<Proc>,
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    // Kept for their Drop: the servers die with the stack.
    pub redis: Option<Redis>,
    pub postgres: Option<Postgres>,
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
            let (pg, rd) = tokio::task::spawn_blocking(|| (Postgres::start(), Redis::start()))
                .await
                .expect("start services");
            let (Some(pg), Some(rd)) = (pg, rd) else {
                return None;
            };
            env.push(("DATABASE_URL".into(), pg.url()));
            env.push(("REDIS_URL".into(), rd.url()));
            postgres = Some(pg);
            redis = Some(rd);
        }
        env.extend(options.env.iter().cloned());
        let api = spawn(&dir, "llmops-api", "api", &env);
        let mut stack = Self {
            mode: options.mode,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            api,
            workers: Vec::new(),
            dir,
            env,
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
        self.api.kill9();
        let restarted = spawn(&self.dir, "llmops-api", "api-restarted", &self.env);
        self.api = restarted;
        self.wait_healthy().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
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
            if let Ok(Some(status)) = self.api.child.try_wait() {
                panic!("llmops-api exited with {status}:\n{}", self.api.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "llmops-api did not become ready:\n{}",
                self.api.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the processes logged, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = format!("--- api ---\n{}", self.api.log_text());
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
        let _ = self.api.child.kill();
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
