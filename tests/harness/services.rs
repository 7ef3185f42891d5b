//! Throwaway Postgres and Redis servers: each in a temp dir on a free port, gone on drop; and
//! one Postgres cluster shared by the tests of a process, which hands each test a database of
//! its own (`fresh_database`) and is stopped by a watchdog when the process ends. Also a
//! throwaway embedded store (`embedded_store`).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use sqlx::Connection;

use crate::{free_port, skip, stack::config_from};

/// A throwaway embedded store: SQLite with every migration applied, in a fresh directory
/// `llmops-<name>-<uuid>` under the system's temp dir, which the caller removes. The ambient
/// environment is ignored (a developer's `DATABASE_URL` would make it Postgres).
pub async fn embedded_store(name: &str) -> (shared::store::Db, PathBuf) {
    let dir = std::env::temp_dir().join(format!("llmops-{name}-{}", uuid::Uuid::new_v4()));
    let config = config_from(&[("LLMOPS_DATA_DIR".to_owned(), dir.display().to_string())]);
    let db = shared::store::Db::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("embedded store in {}: {e}", dir.display()));
    (db, dir)
}

/// A private Postgres cluster (initdb + pg_ctl from PATH or `/usr/lib/postgresql/*/bin`).
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

fn find_pg_bin() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev());
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a Postgres tool, as the `postgres` user when we are root (Postgres refuses root).
fn pg_command(bin: &Path, tool: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

impl Postgres {
    /// Starts a cluster, or returns `None` after a loud skip when Postgres is not installed.
    pub fn start() -> Option<Self> {
        let Some(bin) = find_pg_bin() else {
            skip("PostgreSQL binaries (initdb, pg_ctl) were not found");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("llmops-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create pg temp dir");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "cannot chown the Postgres temp dir to the postgres user"
            );
        }
        let data = dir.join("data");
        let out = pg_command(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            dir.display()
        );
        let out = pg_command(&bin, "pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-o", &opts, "-l"])
            .arg(dir.join("log"))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .output()
            .expect("run pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        Some(Self { port, dir, bin })
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A new, empty database on the cluster this process's tests share (started on first use),
    /// or `None` after a loud skip. A test that stops or restarts Postgres needs a cluster of
    /// its own (`Postgres::start`).
    pub async fn fresh_database() -> Option<String> {
        static SHARED: OnceLock<Option<Postgres>> = OnceLock::new();
        let pg = tokio::task::spawn_blocking(|| {
            SHARED
                .get_or_init(|| {
                    let pg = Postgres::start()?;
                    pg.stop_when_this_process_ends();
                    Some(pg)
                })
                .as_ref()
        })
        .await
        .expect("start the shared Postgres")?;
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&pg.url())
            .await
            .expect("connect to the shared Postgres");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let _ = admin.close().await;
        Some(format!("postgres://postgres@127.0.0.1:{}/{name}", pg.port))
    }

    /// A static is never dropped: a watchdog stops the cluster and removes its files once this
    /// process is gone, however it ends.
    // The watchdog is never waited for: it must outlive this process.
    #[allow(clippy::zombie_processes)]
    fn stop_when_this_process_ends(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = match is_root() {
            true => format!("runuser -u postgres -- {}", pg_ctl.display()),
            false => pg_ctl.display().to_string(),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {stop} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            data = self.dir.join("data").display(),
            dir = self.dir.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Postgres watchdog");
    }

    /// A fast restart (`pg_ctl restart -m fast`): every connection is closed, the data kept.
    pub fn restart(&self) {
        let data = self.dir.join("data");
        let out = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-m", "fast", "-w", "-t", "60", "restart"])
            .stdout(Stdio::null())
            .output()
            .expect("run pg_ctl restart");
        assert!(
            out.status.success(),
            "pg_ctl restart failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private `redis-server` (no persistence), killed on drop.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts a server, or returns `None` after a loud skip when `redis-server` is missing.
    pub fn start() -> Option<Self> {
        let port = free_port();
        let child = match spawn_redis(port) {
            Ok(c) => c,
            Err(_) => {
                skip("redis-server was not found");
                return None;
            }
        };
        let redis = Self {
            port,
            child: Some(child),
        };
        redis.wait_listening();
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no persistence, so everything it held is lost).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts an empty server again on the same port.
    pub fn start_again(&mut self) {
        self.stop();
        self.child = Some(spawn_redis(self.port).expect("restart redis-server"));
        self.wait_listening();
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn spawn_redis(port: u16) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
