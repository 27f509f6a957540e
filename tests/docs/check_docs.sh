#!/bin/bash
# The documentation says what the code does: every manual page renders, from any directory,
# with no warning (an alias page that cannot find its target is a warning); every public
# function has a page; and the libuv example of wh_fd(3) compiles and links.
# Usage: check_docs.sh (from `make test-docs`; CC may be set)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cc=${CC:-cc}
tmp=$(mktemp -d /tmp/wh_docs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check_docs: FAIL: $*" >&2; exit 1; }

cd "$tmp" # not man/: the pages must not depend on the reader's directory
for page in "$root"/man/man[137]/*.[137]; do
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) ||
        fail "$page: man failed: $out"
    [ -z "$out" ] || fail "$page: $out"
    LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q '^NAME' || fail "$page: no NAME section"
done

# every page names the version the header says (its .TH line)
version=$(sed -n 's/^#define WH_VERSION_STRING "\(.*\)"/\1/p' "$root/include/webhook/webhook.h")
for page in "$root"/man/man[137]/*.[137]; do
    [ -L "$page" ] && continue
    head -1 "$page" | grep -q "^\.TH .* \"libwebhook $version\" " ||
        fail "$page: its .TH line does not name libwebhook $version"
done

for fn in $(sed -n 's/^WH_API [^(]*[ *]\(wh_[a-z_]*\)(.*/\1/p' "$root"/include/webhook/webhook*.h); do
    [ -e "$root/man/man3/$fn.3" ] || fail "$fn has no man/man3/$fn.3"
done

# the libuv example, inside a main() that makes the context (compiled and linked, not run:
# uv_run would wait for webhook work for ever)
LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$root/man/man3/wh_fd.3" 2>/dev/null |
    sed -n '/^ *With libuv/,/^SEE ALSO/p' | sed '1d;$d' >"$tmp/example.txt"
grep -q 'uv_run' "$tmp/example.txt" || fail "wh_fd(3): no libuv example found"
{
    grep '^ *#include' "$tmp/example.txt"
    echo 'int main(void)'
    echo '{'
    echo '    char err[256];'
    echo '    wh_ctx *wh = wh_new(NULL, err, sizeof err);'
    echo '    if (!wh) return 1;'
    grep -v '^ *#include' "$tmp/example.txt"
    echo '    wh_destroy(wh);'
    echo '    return 0;'
    echo '}'
} >"$tmp/example.c"
# shellcheck disable=SC2046 # pkg-config's output is meant to be split
"$cc" -std=gnu11 -Wall -Wextra -Werror -I"$root/include" -o "$tmp/example" "$tmp/example.c" \
    "$root/lib/libwebhook.a" $(pkg-config --cflags --libs libcurl libcrypto libcjson sqlite3 libpq libuv) \
    -lpthread 2>"$tmp/example.err" || fail "wh_fd(3) libuv example: $(cat "$tmp/example.err")"
echo "check_docs: man pages, their aliases and the wh_fd(3) libuv example ok"
