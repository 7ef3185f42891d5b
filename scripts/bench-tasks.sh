#!/usr/bin/env bash
# Task API throughput, as in docs/benchmarks.md: start a deployment from the release binaries,
# run `llmops-loadgen workflow` against it (start -> llm (mock, 0 ms) -> end), tear it down.
#
#   scripts/bench-tasks.sh embedded    [loadgen args...]   # one llmops-api on SQLite
#   scripts/bench-tasks.sh distributed [loadgen args...]   # api + 2 workers + Postgres + Redis
#
# Runs and concurrency: N (10000) and C (64) in the environment; extra args go to the load
# generator, e.g. `N=15000 scripts/bench-tasks.sh distributed --rate 750`. BENCH=cancel measures
# cancel-to-canceled instead (N samples, default 100, each canceled inside a 5 s LLM call);
# BENCH=scrape the server CPU of a /metrics scrape every second (api and, distributed, both
# workers' listeners; SECS per phase, default 30) after N (2000) runs. BENCH=chat measures chats
# (`llmops-loadgen chat`, one at a time, N = 2000) over the mock provider: extra args such as
# `--service` or `--stream` go to the load generator. BENCH=streams runs
# `llmops-loadgen streams` (task stream cost: `--phase cost` CPU per event, `--phase hold`
# 1,000 open streams; set LLMOPS_WORKER_CONCURRENCY above the streams for hold).
# SCHEMA runs another workflow (`{{MOCK_LLM}}` becomes the mock's URL). API_BIN runs another llmops-api build, WORKER_BIN another llmops-worker build (to compare
# builds, alternate them); RUST_LOG and
# KEEP_LOG=<file> keep the server's log (e.g. RUST_LOG=warn,sqlx::query=debug counts statements).
# Build first: cargo build --release --workspace --bins. Distributed needs initdb/pg_ctl
# (run as the `postgres` user when root) and redis-server; Postgres runs with
# synchronous_commit=off, as in the published figures, unless PG_SYNCHRONOUS_COMMIT=on (what
# docker-compose.yml ships: each commit then waits for this disk's fsync).
set -euo pipefail
mode=${1:?usage: $0 embedded|distributed [loadgen args...]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
port=${BENCH_PORT:-4100}
dir=$(mktemp -d)
chmod 777 "$dir"
pids=()
pg_ctl_bin=""

as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$pg_ctl_bin" ]; then as_postgres "$pg_ctl_bin" -D "$dir/pg" stop -m fast >/dev/null || true; fi
  if [ -n "${KEEP_LOG:-}" ]; then cp "$dir/api.log" "$KEEP_LOG"; fi
  rm -rf "$dir"
}
trap cleanup EXIT

# The mock LLM is on loopback, which the egress policy refuses to llm nodes by default.
# Chats reach the mock through the configured provider; the load generator is one app key.
if [ "${BENCH:-}" = chat ]; then
  export LLMOPS_LLM_BASE_URL=http://127.0.0.1:$((port + 5))/v1 LLMOPS_SERVICE_RATE_LIMIT=0
fi
export RUST_LOG=${RUST_LOG:-warn} LLMOPS_LISTEN=127.0.0.1:$port LLMOPS_DATA_DIR=$dir/data LLMOPS_HTTP_ALLOW_PRIVATE=true
if [ "$mode" = distributed ]; then
  pg_bin=$(dirname "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -1)")
  pg_ctl_bin=$pg_bin/pg_ctl
  pg_port=$((port + 1)) redis_port=$((port + 2))
  as_postgres "$pg_bin/initdb" -D "$dir/pg" -A trust -U postgres >/dev/null
  as_postgres "$pg_ctl_bin" -D "$dir/pg" -l "$dir/pg.log" -w start \
    -o "-p $pg_port -k $dir -c synchronous_commit=${PG_SYNCHRONOUS_COMMIT:-off} -c max_connections=200" >/dev/null
  redis-server --port "$redis_port" --save "" --appendonly no >"$dir/redis.log" 2>&1 &
  pids+=($!)
  export DATABASE_URL=postgres://postgres@127.0.0.1:$pg_port/postgres
  export REDIS_URL=redis://127.0.0.1:$redis_port JWT_SECRET=bench-secret-0123456789abcdef
  sleep 0.5
fi
(cd "$dir" && exec "${API_BIN:-$bin/llmops-api}") >"$dir/api.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.05; done
if [ "$mode" = distributed ]; then
  for i in 1 2; do
    LLMOPS_METRICS_LISTEN=127.0.0.1:$((port + 10 + i)) "${WORKER_BIN:-$bin/llmops-worker}" >>"$dir/workers.log" 2>&1 &
    pids+=($!)
  done
  sleep 1
fi
# This VM's speed drifts: print a fixed CPU-bound reference next to the figures (0.45-0.55 s when
# the machine is quick).
if command -v python3 >/dev/null; then
  python3 -c "import time; t = time.perf_counter(); sum(i * i for i in range(10**7)); \
print(f'machine: reference loop {time.perf_counter() - t:.2f} s')"
fi
schema=${SCHEMA:-$root/loadgen/schemas/start-llm-end.json}
case "${BENCH:-workflow}" in
  workflow) "$bin/llmops-loadgen" workflow --url "http://127.0.0.1:$port" \
    --schema "$schema" --mock-llm -n "${N:-10000}" -c "${C:-64}" "$@" ;;
  cancel) "$bin/llmops-loadgen" cancel --url "http://127.0.0.1:$port" \
    --schema "$schema" -n "${N:-100}" "$@" ;;
  scrape)
    urls=(--url "http://127.0.0.1:$port/metrics")
    if [ "$mode" = distributed ]; then
      urls+=(--url "http://127.0.0.1:$((port + 11))/metrics" --url "http://127.0.0.1:$((port + 12))/metrics")
      server_pids="${pids[*]} $(head -1 "$dir/pg/postmaster.pid")"
    else
      server_pids="${pids[*]}"
    fi
    # A store that has run work: the scrape reads queue depths and renders every histogram.
    "$bin/llmops-loadgen" workflow --url "http://127.0.0.1:$port" --schema "$schema" --mock-llm \
      -n "${N:-2000}" -c "${C:-64}" >/dev/null
    python3 "$root/scripts/scrape-cost.py" --secs "${SECS:-30}" --pids "$server_pids" "${urls[@]}" ;;
  chat) "$bin/llmops-loadgen" chat --url "http://127.0.0.1:$port" --mock-llm \
    --mock-port $((port + 5)) -n "${N:-2000}" -c "${C:-1}" "$@" ;;
  streams) "$bin/llmops-loadgen" streams --url "http://127.0.0.1:$port" --schema "$schema" "$@" ;;
  *) echo "BENCH is workflow, cancel, scrape, chat or streams" >&2; exit 2 ;;
esac
