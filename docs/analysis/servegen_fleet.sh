#!/usr/bin/env bash
# Issue 9 at fleet scale: plain scale-to-zero against the warm pool on EVERY client of a
# ServeGen model, day 1 (no history) and day 2 (day 1 as history), one JSON per client-day.
# Summarise with docs/analysis/servegen_fleet.py (figures in docs/BENCHMARKS.md, *The whole
# ServeGen m-large fleet*). Simulated figures: machine load changes only the wall time
# (≈ 10 min on 2 cores for m-large).
#
#     docs/analysis/servegen_fleet.sh target/release/slo-scaler OUTDIR [m-large|m-mid] [CONFIG]
#
# CONFIG (optional): a backtest config (`--config`), e.g. the embedded fleet with other
# `sizing.tiers` (warm_cost_fraction, cold_wait_cost_per_request).
set -euo pipefail
bin=$(realpath "$1")
out=$2
model=${3:-m-large}
config=${4:+--config $(realpath "$4")}
data=${SLO_SCALER_DATA_DIR:-$(dirname "$0")/../../../shared/data}
dir=$data/traces/servegen/language/$model
mkdir -p "$out"
for f in "$dir"/chunk-*-trace.csv; do
    c=$(basename "$f" | sed 's/chunk-\([0-9]*\)-trace.csv/\1/')
    for day in 1 2; do
        # A client-day with no request is refused by `backtest` (an empty file marks it).
        echo "$bin backtest --trace $f --start-s $(((day - 1) * 86400)) --duration-s 86400 \
$config --policy scale-to-zero,slo-scaler-warm --format json > $out/$c-d$day.json 2>/dev/null || true"
    done
done | xargs -P "$(nproc)" -I{} bash -c "{}"
