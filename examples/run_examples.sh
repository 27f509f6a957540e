#!/usr/bin/env bash
# `make test-examples`: runs every drive-mode example (drive_poll, drive_epoll, drive_thread,
# loop_libuv, loop_libevent, loop_libev) against the example receiver on 127.0.0.1, each to a
# path of its own, and checks that each exited 0 and that the receiver got exactly its events,
# every one with a valid signature.
#
#   examples/run_examples.sh [EXAMPLE...]      (default: all of them)
#
# Expects the programs in build/examples/ (`make examples`; WH_EXAMPLES_BIN=DIR takes them from
# DIR instead).
set -euo pipefail

cd "$(dirname "$0")/.."
bin=${WH_EXAMPLES_BIN:-build/examples}
events=6
examples=("$@")
[[ ${#examples[@]} -gt 0 ]] ||
    examples=(drive_poll drive_epoll drive_thread loop_libuv loop_libevent loop_libev)
for b in receiver "${examples[@]}"; do
    [[ -x $bin/$b ]] || { echo "run_examples: $bin/$b is missing; run make examples" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/webhook-examples.XXXXXX")
receiver_pid=
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    if [[ -n $receiver_pid ]]; then
        kill -TERM "$receiver_pid" 2>/dev/null || true
        wait "$receiver_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

secret="whsec_$(head -c 32 /dev/urandom | base64 -w0)"
"$bin/receiver" --port 0 --secret "$secret" >"$tmp/receiver.out" 2>"$tmp/receiver.err" &
receiver_pid=$!
port=
for _ in $(seq 1 50); do # its first line is "listening on PORT"; at most 5 s
    if IFS= read -r first <"$tmp/receiver.out" && [[ $first =~ ^listening\ on\ ([0-9]+)$ ]]; then
        port=${BASH_REMATCH[1]}
        break
    fi
    kill -0 "$receiver_pid" 2>/dev/null || { cat "$tmp/receiver.err" >&2; exit 1; }
    sleep 0.1
done
[[ -n $port ]] || { echo "run_examples: the receiver did not start within 5 s" >&2; exit 1; }

status=0
for ex in "${examples[@]}"; do
    rc=0
    timeout --kill-after=2 30 "$bin/$ex" --url "http://127.0.0.1:$port/$ex" --secret "$secret" \
        --events "$events" >"$tmp/$ex.out" 2>&1 || rc=$?
    tail -n 1 "$tmp/$ex.out"
    if [[ $rc -ne 0 ]]; then
        echo "run_examples: FAILED: $ex exited with status $rc:" >&2
        cat "$tmp/$ex.out" >&2
        status=1
    fi
done

# The receiver answers every request before the example sees it delivered, and prints it first.
for ex in "${examples[@]}"; do
    got=$(awk -v p="/$ex" '$2 == p' "$tmp/receiver.out" | wc -l)
    ok=$(awk -v p="/$ex" '$2 == p && $NF == "signature=ok"' "$tmp/receiver.out" | wc -l)
    echo "receiver: /$ex: $got requests, $ok with signature=ok"
    if [[ $got -ne $events || $ok -ne $events ]]; then
        echo "run_examples: FAILED: /$ex should have had $events requests, all signature=ok" >&2
        status=1
    fi
done
[[ $status -ne 0 ]] || echo "== examples OK"
exit "$status"
