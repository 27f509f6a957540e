#!/usr/bin/env bash
# `make demo`: starts the example receiver on 127.0.0.1 (a free port), runs the engine demo
# against it with a fresh secret on a SQLite store in a temporary folder (the embedded
# default for the main job), stops the receiver, shows what it received, and ends with
# `webhookctl log` and `webhookctl stats` read from that store.
#
#   examples/run_demo.sh [--store SPEC]      (WH_DEMO_STORE=SPEC works too; "memory" works)
#
# Expects build/examples/receiver and build/examples/engine_demo (make demo builds them;
# WH_DEMO_BIN=DIR takes them from DIR instead, e.g. a sanitizer build).
# Exits non-zero when the engine reports something unexpected, when the receiver saw a bad
# signature, or when anything takes too long.
set -euo pipefail

cd "$(dirname "$0")/.."
bin=${WH_DEMO_BIN:-build/examples}
store=${WH_DEMO_STORE:-}
if [[ $# -ge 2 && $1 == --store ]]; then
    store=$2
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--store SPEC]" >&2
    exit 2
fi
for b in receiver engine_demo; do
    [[ -x $bin/$b ]] || { echo "run_demo: $bin/$b is missing; run make demo" >&2; exit 1; }
done
ctl=${WH_DEMO_CTL:-build/bin/webhookctl}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/webhook-demo.XXXXXX")
store=${store:-sqlite:$tmp/webhooks.db}
receiver_pid=

stop_receiver() {
    [[ -n $receiver_pid ]] || return 0
    kill -TERM "$receiver_pid" 2>/dev/null || true
    for _ in $(seq 1 30); do # up to 3 s, then for good
        kill -0 "$receiver_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$receiver_pid" 2>/dev/null || true
    wait "$receiver_pid" 2>/dev/null || true
    receiver_pid=
}
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    stop_receiver
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A fresh secret for this run: 32 random bytes; the receiver verifies with the same one.
secret="whsec_$(head -c 32 /dev/urandom | base64 -w0)"

"$bin/receiver" --port 0 --secret "$secret" >"$tmp/receiver.out" 2>"$tmp/receiver.err" &
receiver_pid=$!

# Its first stdout line is "listening on PORT" (flushed); wait for it, at most 5 s.
port=
for _ in $(seq 1 50); do
    if IFS= read -r first <"$tmp/receiver.out" && [[ $first =~ ^listening\ on\ ([0-9]+)$ ]]; then
        port=${BASH_REMATCH[1]}
        break
    fi
    if ! kill -0 "$receiver_pid" 2>/dev/null; then
        echo "run_demo: the receiver exited:" >&2
        cat "$tmp/receiver.err" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z $port ]]; then
    echo "run_demo: the receiver did not say which port it listens on within 5 s" >&2
    exit 1
fi
echo "== receiver: pid $receiver_pid, listening on 127.0.0.1:$port"
echo "== engine_demo --receiver http://127.0.0.1:$port --secret whsec_...${store:+ --store $store}"
echo

engine_rc=0
timeout --kill-after=2 25 "$bin/engine_demo" --receiver "http://127.0.0.1:$port" \
    --secret "$secret" ${store:+--store "$store"} || engine_rc=$?

stop_receiver
echo
echo "== what the receiver printed:"
echo "   time path webhook-id event_type run_id task_id status signature"
tail -n +2 "$tmp/receiver.out"
sed -e '/^receiver: stopped by signal/d' "$tmp/receiver.err" >&2

lines=$(tail -n +2 "$tmp/receiver.out" | grep -c ' signature=' || true)
ok=$(tail -n +2 "$tmp/receiver.out" | grep -c ' signature=ok$' || true)
echo
printf '== receiver: %d requests (' "$lines"
first=1
for path in /hooks /fail-twice /gone; do
    n=$(tail -n +2 "$tmp/receiver.out" | awk -v p="$path" '$2 == p' | wc -l)
    [[ $first == 1 ]] || printf ', '
    printf '%s %d' "$path" "$n"
    first=0
done
printf '), %d with signature=ok\n' "$ok"

status=0
if [[ $engine_rc -eq 124 || $engine_rc -eq 137 ]]; then
    echo "run_demo: FAILED: engine_demo did not finish within 25 s" >&2
    status=1
elif [[ $engine_rc -ne 0 ]]; then
    echo "run_demo: FAILED: engine_demo exited with status $engine_rc" >&2
    status=1
fi
if [[ $lines -eq 0 || $ok -ne $lines ]]; then
    echo "run_demo: FAILED: $((lines - ok)) of $lines requests did not carry a valid signature" >&2
    status=1
fi
if [[ $store == sqlite:* && -x $ctl ]]; then
    echo
    echo "== webhookctl -s ${store#sqlite:} log --limit 12"
    "$ctl" -s "${store#sqlite:}" log --limit 12 || status=1
    echo
    echo "== webhookctl -s ${store#sqlite:} stats"
    "$ctl" -s "${store#sqlite:}" stats || status=1
fi
[[ $status -ne 0 ]] || echo "== demo OK"
exit "$status"
