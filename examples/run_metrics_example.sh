#!/usr/bin/env bash
# `make test-examples` (with run_examples.sh): runs examples/metrics_http against the example
# receiver, scrapes its /metrics over HTTP until every event shows as delivered, checks the
# scrape with Prometheus's `promtool check metrics`, then stops it with SIGTERM and checks
# that it exited 0 and that the receiver got each event once with a valid signature.
#
# Expects the programs in build/examples/ (`make examples`; WH_EXAMPLES_BIN=DIR takes them from
# DIR instead), curl and promtool (Debian packages curl and prometheus: `make deps`).
set -euo pipefail

cd "$(dirname "$0")/.."
bin=${WH_EXAMPLES_BIN:-build/examples}
events=6
for b in receiver metrics_http; do
    [[ -x $bin/$b ]] || { echo "run_metrics_example: $bin/$b is missing; run make examples" >&2; exit 1; }
done
for tool in curl promtool; do
    command -v "$tool" >/dev/null || { echo "run_metrics_example: no $tool; run make deps" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/webhook-metrics.XXXXXX")
pids=()
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# first_line FILE PATTERN PID: waits (at most 5 s) for the program's first line to match
# PATTERN (an ERE with one group) and prints the group.
first_line() {
    for _ in $(seq 1 50); do
        if IFS= read -r line <"$1" && [[ $line =~ $2 ]]; then
            echo "${BASH_REMATCH[1]}"
            return 0
        fi
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    echo "run_metrics_example: no \"$2\" from $1 within 5 s" >&2
    cat "$1" "${1%.out}.err" >&2 2>/dev/null || true
    return 1
}

secret="whsec_$(head -c 32 /dev/urandom | base64 -w0)"
"$bin/receiver" --port 0 --secret "$secret" >"$tmp/receiver.out" 2>"$tmp/receiver.err" &
pids+=($!)
port=$(first_line "$tmp/receiver.out" '^listening on ([0-9]+)$' "${pids[0]}")

"$bin/metrics_http" --url "http://127.0.0.1:$port/metrics_http" --secret "$secret" \
    --events "$events" --metrics-port 0 >"$tmp/metrics_http.out" 2>"$tmp/metrics_http.err" &
ex_pid=$!
pids+=("$ex_pid")
url=$(first_line "$tmp/metrics_http.out" '^metrics on (http://[0-9.:]+/metrics)$' "$ex_pid")

delivered='^webhook_deliveries_total\{endpoint="[^"]+",outcome="delivered"\} '"$events"'$'
ok=
for _ in $(seq 1 200); do # at most 20 s
    curl -fsS --max-time 5 "$url" >"$tmp/scrape.txt" || true
    if grep -Eq "$delivered" "$tmp/scrape.txt"; then
        ok=1
        break
    fi
    sleep 0.1
done
if [[ -z $ok ]]; then
    echo "run_metrics_example: FAILED: /metrics never showed $events deliveries:" >&2
    cat "$tmp/scrape.txt" "$tmp/metrics_http.out" "$tmp/metrics_http.err" >&2
    exit 1
fi
grep -q "^webhook_events_emitted_total $events\$" "$tmp/scrape.txt" ||
    { echo "run_metrics_example: FAILED: webhook_events_emitted_total is not $events" >&2; exit 1; }
type=$(curl -fsS -o /dev/null -w '%{content_type}' "$url")
[[ $type == "text/plain; version=0.0.4; charset=utf-8" ]] ||
    { echo "run_metrics_example: FAILED: Content-Type: $type" >&2; exit 1; }
promtool check metrics <"$tmp/scrape.txt" ||
    { echo "run_metrics_example: FAILED: promtool check metrics" >&2; exit 1; }
echo "metrics_http: $(grep -c '^webhook_' "$tmp/scrape.txt") samples, promtool check metrics OK"

kill -TERM "$ex_pid"
rc=0
wait "$ex_pid" || rc=$?
pids=("${pids[0]}")
tail -n 1 "$tmp/metrics_http.out"
if [[ $rc -ne 0 ]]; then
    echo "run_metrics_example: FAILED: metrics_http exited with status $rc:" >&2
    cat "$tmp/metrics_http.out" "$tmp/metrics_http.err" >&2
    exit 1
fi
got=$(awk '$2 == "/metrics_http"' "$tmp/receiver.out" | wc -l)
good=$(awk '$2 == "/metrics_http" && $NF == "signature=ok"' "$tmp/receiver.out" | wc -l)
echo "receiver: /metrics_http: $got requests, $good with signature=ok"
[[ $got -eq $events && $good -eq $events ]] ||
    { echo "run_metrics_example: FAILED: wanted $events requests, all signature=ok" >&2; exit 1; }
echo "== metrics example OK"
