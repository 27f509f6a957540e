#!/usr/bin/env bash
# `make bench`: makes sure nginx and wrk are there (installs them as root, or says how), then
# runs build/bench/bench, which prints the table and writes bench/results.json.
#
#   bench/run.sh [bench options, e.g. --only throughput,durable]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"
[[ -x build/bench/bench ]] || { echo "bench/run.sh: build/bench/bench is missing; run make bench" >&2; exit 1; }

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if ((${#need[@]})); then
    if [[ $(id -u) == 0 ]]; then
        echo "bench: apt-get install -y ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y "${need[@]}" >/dev/null ||
            { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
    else
        echo "bench: needs ${need[*]}; as root, run: apt-get install -y ${need[*]}" >&2
        exit 1
    fi
fi
ulimit -n 65536 2>/dev/null || true
exec build/bench/bench --dir bench "$@"
