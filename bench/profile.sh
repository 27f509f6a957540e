#!/usr/bin/env bash
# Where the time of a bench scenario goes: runs it under `perf record` (cpu-clock samples,
# DWARF call graphs; this VM has no hardware counters) with no wrk baseline, then prints the
# split by component and by libwebhook stage (bench/perf_split.py). Run after make bench.
#
#   bench/profile.sh [SCENARIO [EVENTS]]     default: throughput 100000; durable works too
#   BENCH=/abs/path/bench bench/profile.sh ...  another build of the bench, named bench
#                                               (bench/compare.py --keep DIR leaves one)
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-throughput}
events=${2:-100000}
command -v perf >/dev/null || { echo "profile.sh: needs perf; as root: apt-get install -y linux-perf" >&2; exit 1; }
bench=${BENCH:-build/bench/bench}
[[ -x $bench ]] || { echo "profile.sh: run make bench (or make build/bench/bench) first" >&2; exit 1; }
export PATH="$PATH:/usr/sbin:/sbin"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/webhook-profile.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 -o "$tmp/perf.data" -- \
    "$bench" --dir bench --only "$scenario" --no-baseline --no-json --events "$events" >&2
perf script -i "$tmp/perf.data" --comm bench -F comm,time,ip,sym,dso 2>/dev/null |
    python3 bench/perf_split.py bench/bench.c
