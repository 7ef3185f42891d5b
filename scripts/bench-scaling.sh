#!/usr/bin/env bash
# Per-node cost as a run grows (docs/benchmarks.md "Costs as work grows"): a chain of K llm
# nodes (K = 1, 10, 100) and a loop of I iterations with one llm node inside (I = 10 ... 10,000),
# one run at a time, each shape on a fresh deployment (scripts/bench-tasks.sh), the mock LLM
# answering at once. Prints each shape's p50 run time and the time per node or iteration.
#
#   scripts/bench-scaling.sh embedded|distributed
set -euo pipefail
# A loop iteration runs three nodes (block start, llm, block end), and the loop's output holds
# every answer: 10,000 iterations need more than the default limits of 10,000 node executions
# per run and 1 MB per node output.
export LLMOPS_MAX_NODES_PER_RUN=${LLMOPS_MAX_NODES_PER_RUN:-100000}
export LLMOPS_MAX_NODE_OUTPUT_BYTES=${LLMOPS_MAX_NODE_OUTPUT_BYTES:-16MB}
mode=${1:?usage: $0 embedded|distributed}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 "$root/scripts/scaling-schemas.py" "$dir"

# shape, units of work (nodes run or iterations), runs measured, warm-up runs, schema, inputs
measure() {
  local label=$1 units=$2 runs=$3 warm=$4 schema=$5 inputs=$6 p50
  p50=$(SCHEMA=$schema N=$runs C=1 BENCH=workflow "$root/scripts/bench-tasks.sh" "$mode" \
    --warmup "$warm" --inputs "$inputs" 2>&1 | sed -n 's/.*latency: p50 \([0-9.]*\) ms.*/\1/p' | tail -1)
  if [ -z "$p50" ]; then echo "$label: no result" >&2; exit 1; fi
  python3 -c "print(f'| $label | $units | {$p50:.2f} ms | {$p50 / $units:.3f} ms |')"
}
items() { python3 -c "import json; print(json.dumps({'tasks': ['x'] * $1}))"; }

echo "| $mode | units | p50 per run | per unit |"
echo "|---|---|---|---|"
measure "chain of 1 llm node" 1 300 50 "$dir/chain-1.json" '{"prompt": "hi"}'
measure "chain of 10 llm nodes" 10 100 10 "$dir/chain-10.json" '{"prompt": "hi"}'
measure "chain of 100 llm nodes" 100 20 3 "$dir/chain-100.json" '{"prompt": "hi"}'
for i in 10 100 1000 10000; do
  runs=$((20000 / i)); runs=$((runs < 3 ? 3 : runs > 200 ? 200 : runs))
  measure "loop of $i iterations" "$i" "$runs" 1 "$dir/loop.json" "$(items "$i")"
done
