#!/usr/bin/env bash
# `make bench`: makes sure nginx, wrk and PostgreSQL's server are there (installs them as root,
# or says how), then runs build/bench/bench, which prints the table and writes
# bench/results.json. The bench starts its own throwaway PostgreSQL cluster (initdb into a temp
# dir, as the postgres user when run as root) and stops and removes it at the end.
#
#   bench/run.sh [bench options, e.g. --only throughput,durable]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"
[[ -x build/bench/bench ]] || { echo "bench/run.sh: build/bench/bench is missing; run make bench" >&2; exit 1; }

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
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
