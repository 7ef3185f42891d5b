//! Configuration: one typed struct for both binaries, read from flags with environment fallbacks
//! (and a `.env` file when present). `--help` documents every setting.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::{Parser, ValueEnum, builder::BoolishValueParser, error::ContextKind};

/// Settings shared by `llmops-api` and `llmops-worker`. Both read the same names, so one
/// environment serves a whole deployment.
#[derive(Parser, Clone)]
#[command(
    version,
    about = "llmops: an LLMOps backend (workflow runtime + LLM apps)"
)]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "LLMOPS_LISTEN", default_value = "127.0.0.1:4000")]
    pub listen: SocketAddr,

    /// Directory for the embedded database and the generated JWT secret.
    #[arg(long, env = "LLMOPS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Store URL: `postgres://…` for the distributed deployment, `sqlite://…` for the embedded one.
    /// Default: a SQLite file `llmops.db` in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Redis URL for the job queues and signals. Absent: the embedded queue (SQLite) and
    /// in-process signals.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Secret for signing access tokens (HS256). Required with Postgres; the embedded mode
    /// generates one and keeps it in the data directory.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// Lifetime of an access token, in seconds (default 30 days).
    #[arg(long, env = "LLMOPS_JWT_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub jwt_ttl_secs: u64,

    /// Workflow runs a worker process runs at once.
    #[arg(long, env = "LLMOPS_WORKER_CONCURRENCY", default_value_t = 64)]
    pub worker_concurrency: usize,

    /// Chat answers a worker process runs at once. Higher than for runs: an answer mostly
    /// waits for the provider (seconds each), so 200 people chatting at once should not queue.
    #[arg(long, env = "LLMOPS_CHAT_CONCURRENCY", default_value_t = 256)]
    pub chat_concurrency: usize,

    /// Whether `llmops-api` also runs workers in its own process. Default: yes in the embedded
    /// mode, no when a REDIS_URL is set.
    #[arg(long, env = "LLMOPS_RUN_WORKERS", value_parser = BoolishValueParser::new())]
    pub run_workers: Option<bool>,

    /// Base URL of the OpenAI-compatible provider used by debug chats (e.g. `https://api.openai.com/v1`).
    #[arg(long, env = "LLMOPS_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,

    /// API key of the default provider.
    #[arg(long, env = "LLMOPS_LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<Secret>,

    /// Default model for debug chats when an app's config names none.
    #[arg(long, env = "LLMOPS_LLM_MODEL", default_value = "gpt-4o-mini")]
    pub llm_model: String,

    /// Let workflow http and llm nodes reach loopback, private, link-local and metadata addresses.
    #[arg(long, env = "LLMOPS_HTTP_ALLOW_PRIVATE", default_value = "false", value_parser = BoolishValueParser::new())]
    pub http_allow_private: bool,

    /// Whether the task API needs a bearer token (`required`) or takes one when given (`optional`).
    #[arg(long, env = "LLMOPS_TASK_AUTH", value_enum, default_value_t = TaskAuth::Optional)]
    pub task_auth: TaskAuth,

    /// Largest accepted request body, e.g. `10MB`, `512KB` or a number of bytes.
    #[arg(long, env = "LLMOPS_BODY_LIMIT", default_value = "10MB")]
    pub body_limit: ByteSize,

    /// Log format.
    #[arg(long, env = "LLMOPS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Origins allowed by CORS, comma separated, or `*` for any (the FlowGram editor calls from
    /// another origin).
    #[arg(long, env = "LLMOPS_CORS_ORIGINS", default_value = "*")]
    pub cors_origins: String,

    /// Connections in the Postgres pool of each process. (SQLite uses one: it serializes
    /// writers anyway, and a second writer would only sleep in its busy handler.)
    #[arg(long, env = "LLMOPS_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,

    /// Attempts a workflow run gets (a worker crash costs one) before it is marked failed.
    #[arg(long, env = "LLMOPS_TASK_MAX_ATTEMPTS", default_value_t = 3)]
    pub task_max_attempts: u32,

    /// Seconds between worker heartbeats; a worker silent for three of them is presumed dead
    /// and its jobs are handed to another worker.
    #[arg(long, env = "LLMOPS_WORKER_HEARTBEAT_SECS", default_value_t = 2)]
    pub worker_heartbeat_secs: u64,

    /// Address where `llmops-worker` serves its Prometheus metrics (`GET /metrics`). Absent: no
    /// listener (the API serves `/metrics` itself, covering its in-process workers).
    #[arg(long, env = "LLMOPS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Delete terminated tasks older than this many days (0 keeps them forever).
    #[arg(long, env = "LLMOPS_TASK_RETENTION_DAYS", default_value_t = 0)]
    pub task_retention_days: u64,

    /// How long after a run ends its event stream can still be read (`GET /api/task/stream`,
    /// resumed with `Last-Event-ID`); later, the stream of the task answers 404 (its report and
    /// result stay readable until task retention deletes the row).
    #[arg(long, env = "LLMOPS_STREAM_RETENTION_SECS", default_value_t = 3600)]
    pub stream_retention_secs: u64,

    /// Nodes one workflow run may execute.
    #[arg(long, env = "LLMOPS_MAX_NODES_PER_RUN", default_value_t = 10_000)]
    pub max_nodes_per_run: u64,

    /// Iterations one loop node may run.
    #[arg(long, env = "LLMOPS_MAX_LOOP_ITERATIONS", default_value_t = 10_000)]
    pub max_loop_iterations: u64,

    /// Wall-clock limit of one workflow run, in seconds.
    #[arg(long, env = "LLMOPS_MAX_RUN_SECS", default_value_t = 600)]
    pub max_run_secs: u64,

    /// Time limit of one code-node script, in seconds.
    #[arg(long, env = "LLMOPS_CODE_TIMEOUT_SECS", default_value_t = 60)]
    pub code_timeout_secs: u64,

    /// Timeout of one LLM request (workflow llm nodes and debug chats), in seconds.
    #[arg(long, env = "LLMOPS_LLM_TIMEOUT_SECS", default_value_t = 120)]
    pub llm_timeout_secs: u64,

    /// Login attempts allowed per email and per client address within a minute.
    #[arg(long, env = "LLMOPS_LOGIN_RATE_LIMIT", default_value_t = 10)]
    pub login_rate_limit: u32,

    /// Service API requests (`/v1/…`) allowed per app key within a minute (0: no limit).
    #[arg(long, env = "LLMOPS_SERVICE_RATE_LIMIT", default_value_t = 600)]
    pub service_rate_limit: u32,

    /// Largest output of one workflow node execution, as JSON, e.g. `1MB` or a number of
    /// bytes; a node whose output is larger fails.
    #[arg(long, env = "LLMOPS_MAX_NODE_OUTPUT_BYTES", default_value = "1MB")]
    pub max_node_output_bytes: ByteSize,

    /// Largest report of one workflow run, as JSON (its inputs and every node execution's
    /// inputs and outputs), e.g. `16MB`; the node that would pass it fails.
    #[arg(long, env = "LLMOPS_MAX_REPORT_BYTES", default_value = "16MB")]
    pub max_report_bytes: ByteSize,
}

/// How the task API treats bearer tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TaskAuth {
    /// Anyone may run tasks; a run made with a token belongs to that account.
    Optional,
    /// Every task route needs a valid token.
    Required,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which store the URL selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Postgres,
    Sqlite,
}

/// A secret value: never printed by `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// A byte count written as `10MB`, `512KB`, `1GB` or plain bytes (binary multiples).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_uppercase();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: usize = digits
            .parse()
            .map_err(|_| format!("`{s}` is not a size like 10MB"))?;
        let mult = match unit.trim() {
            "" | "B" => 1,
            "K" | "KB" | "KIB" => 1 << 10,
            "M" | "MB" | "MIB" => 1 << 20,
            "G" | "GB" | "GIB" => 1 << 30,
            other => return Err(format!("unknown size unit `{other}` (use B, KB, MB or GB)")),
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database", &self.store_kind())
            .field("redis", &self.redis_url.is_some())
            .field("worker_concurrency", &self.worker_concurrency)
            .field("chat_concurrency", &self.chat_concurrency)
            .field("task_auth", &self.task_auth)
            .finish_non_exhaustive()
    }
}

/// A configuration problem, reported as one line that names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag or variable clap could not read (`line` is clap's first line).
    #[error("{line}{}", .env.as_ref().map(|env| format!(" (setting {env})")).unwrap_or_default())]
    Unreadable { line: String, env: Option<String> },
    #[error("DATABASE_URL must start with postgres://, postgresql:// or sqlite:")]
    DatabaseUrlScheme,
    #[error("JWT_SECRET is required when DATABASE_URL points at Postgres")]
    JwtSecretRequired,
    #[error("JWT_SECRET must be at least 16 characters")]
    JwtSecretTooShort,
    #[error("REDIS_URL must start with redis:// or rediss://")]
    RedisUrlScheme,
    /// A count that must be at least 1, by the variable that set it.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

impl Config {
    /// Reads `.env` (if present), flags and environment; validates the combination.
    pub fn load() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::try_parse_from(std::env::args_os())
    }

    /// Parses the given arguments (plus environment) and validates them.
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let config = <Self as Parser>::try_parse_from(args).map_err(one_line)?;
        config.validate()?;
        Ok(config)
    }

    /// Loads the configuration or exits: help and version print normally, errors print one line.
    pub fn load_or_exit() -> Self {
        let _ = dotenvy::dotenv();
        match <Self as Parser>::try_parse() {
            Ok(config) => match config.validate() {
                Ok(()) => config,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(2)
                }
            },
            Err(e) if !e.use_stderr() => e.exit(),
            Err(e) => {
                eprintln!("error: {}", one_line(e));
                std::process::exit(2)
            }
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
        {
            return Err(ConfigError::DatabaseUrlScheme);
        }
        if self.store_kind() == StoreKind::Postgres && self.jwt_secret.is_none() {
            return Err(ConfigError::JwtSecretRequired);
        }
        if let Some(secret) = &self.jwt_secret
            && secret.expose().len() < 16
        {
            return Err(ConfigError::JwtSecretTooShort);
        }
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(ConfigError::RedisUrlScheme);
        }
        if self.worker_concurrency == 0 {
            return Err(ConfigError::Zero("LLMOPS_WORKER_CONCURRENCY"));
        }
        if self.chat_concurrency == 0 {
            return Err(ConfigError::Zero("LLMOPS_CHAT_CONCURRENCY"));
        }
        if self.task_max_attempts == 0 {
            return Err(ConfigError::Zero("LLMOPS_TASK_MAX_ATTEMPTS"));
        }
        if self.worker_heartbeat_secs == 0 {
            return Err(ConfigError::Zero("LLMOPS_WORKER_HEARTBEAT_SECS"));
        }
        Ok(())
    }

    pub fn store_kind(&self) -> StoreKind {
        match &self.database_url {
            Some(url) if url.starts_with("postgres") => StoreKind::Postgres,
            _ => StoreKind::Sqlite,
        }
    }

    /// The store URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("llmops.db").display()))
    }

    /// Whether this process should consume jobs (always true for `llmops-worker`).
    pub fn api_runs_workers(&self) -> bool {
        self.run_workers.unwrap_or(self.redis_url.is_none())
    }

    pub fn worker_heartbeat(&self) -> Duration {
        Duration::from_secs(self.worker_heartbeat_secs)
    }

    /// Environment variables a deployment may set, as read by both binaries. The compose-file
    /// test checks against this list.
    pub fn env_names() -> Vec<&'static str> {
        let cmd = <Self as clap::CommandFactory>::command();
        cmd.get_arguments()
            .filter_map(|a| a.get_env())
            .filter_map(|e| e.to_str())
            .map(|s| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) })
            .collect()
    }
}

/// Turns clap's multi-line error into one line that names the flag and its environment variable.
fn one_line(err: clap::Error) -> ConfigError {
    let rendered = err.to_string();
    let first = rendered.lines().next().unwrap_or("invalid configuration");
    let first = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    let env = err
        .get(ContextKind::InvalidArg)
        .map(|arg| arg.to_string())
        .and_then(|arg| {
            let long = arg.trim_start_matches("--");
            let long = long
                .split([' ', '=', '<'])
                .next()
                .unwrap_or(long)
                .to_owned();
            let cmd = <Config as clap::CommandFactory>::command();
            cmd.get_arguments()
                .find(|a| a.get_long() == Some(long.as_str()))
                .and_then(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        });
    ConfigError::Unreadable { line: first, env }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["llmops"];
        all.extend_from_slice(args);
        Config::try_parse_from(all)
    }

    #[test]
    fn defaults_select_the_embedded_mode() {
        let c = parse(&[]).expect("defaults parse");
        assert_eq!(c.listen.to_string(), "127.0.0.1:4000");
        assert_eq!(c.store_kind(), StoreKind::Sqlite);
        assert!(c.api_runs_workers());
        assert!(c.database_url().ends_with("data/llmops.db"));
    }

    #[test]
    fn postgres_without_a_jwt_secret_is_refused_naming_the_setting() {
        let err = parse(&["--database-url", "postgres://u@localhost/db"]).unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET"), "{err}");
    }

    #[test]
    fn a_bad_value_is_one_line_naming_the_environment_variable() {
        let err = parse(&["--listen", "not-an-address"]).unwrap_err();
        let line = err.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("LLMOPS_LISTEN"), "{line}");
    }

    #[test]
    fn chat_answers_have_their_own_concurrency() {
        let c = parse(&[]).unwrap();
        assert_eq!((c.worker_concurrency, c.chat_concurrency), (64, 256));
        let err = parse(&["--chat-concurrency", "0"]).unwrap_err();
        assert!(err.to_string().contains("LLMOPS_CHAT_CONCURRENCY"), "{err}");
    }

    #[test]
    fn byte_sizes_accept_units() {
        assert_eq!("10MB".parse::<ByteSize>().unwrap().0, 10 << 20);
        assert_eq!("512kb".parse::<ByteSize>().unwrap().0, 512 << 10);
        assert_eq!("123".parse::<ByteSize>().unwrap().0, 123);
        assert!("ten".parse::<ByteSize>().is_err());
        assert!("10XB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn redis_turns_off_in_process_workers_unless_asked() {
        let c = parse(&["--redis-url", "redis://127.0.0.1:6379"]).unwrap();
        assert!(!c.api_runs_workers());
        let c = parse(&[
            "--redis-url",
            "redis://127.0.0.1:6379",
            "--run-workers",
            "true",
        ])
        .unwrap();
        assert!(c.api_runs_workers());
    }

    #[test]
    fn every_setting_has_an_environment_name() {
        let cmd = <Config as clap::CommandFactory>::command();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(arg.get_env().is_some(), "--{id} has no env fallback");
        }
    }
}
