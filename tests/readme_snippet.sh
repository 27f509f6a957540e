#!/usr/bin/env bash
# `make test-readme`: the C program under README.md's "## Usage" heading (its first ```c block)
# is extracted as it stands, then compiled with the project's warnings as errors and linked
# against the library, so that the snippet users copy first never goes stale. It is not run:
# it delivers to ops.example.com forever.
#
#   tests/readme_snippet.sh README.md "CC CFLAGS..." "LIBS..."
set -euo pipefail

readme=$1 compile=$2 libs=$3
out=build/readme
mkdir -p "$out"
awk '
    /^## / { in_usage = ($0 == "## Usage") }
    in_usage && !done && /^```c$/ { grab = 1; next }
    grab && /^```$/ { grab = 0; done = 1 }
    grab { print }
' "$readme" >"$out/usage.c"
if ! grep -q 'int main' "$out/usage.c"; then
    echo "readme_snippet: no C program with main() in a \`\`\`c block under \"## Usage\" in $readme" >&2
    exit 1
fi
# shellcheck disable=SC2086  # the flags are word lists
if ! $compile -o "$out/usage" "$out/usage.c" $libs; then
    echo "readme_snippet: FAILED: the usage snippet of $readme ($out/usage.c) does not build" >&2
    exit 1
fi
echo "readme_snippet: the usage snippet of $readme ($(wc -l <"$out/usage.c") lines) builds"
