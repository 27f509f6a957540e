#!/bin/bash
# `make install` into a staging folder with another prefix, then what a user does with it:
# build a program against the staged install with pkg-config (shared; --static as the README
# says, which needs the -dev packages of libcurl's own dependencies; and with libwebhook.a
# itself), run each, and `make uninstall`, which must leave nothing the install created, and
# keep what existed before.
# Usage: check_install.sh (from `make test-install`; MAKE and CC may be set)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
make=${MAKE:-make}
cc=${CC:-cc}
tmp=$(mktemp -d /tmp/wh_install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check_install: FAIL: $*" >&2; exit 1; }

# as after a plain `make`: the build tree's .pc names the default prefix
rm -f "$root/pkgconfig/libwebhook.pc"
"$make" -s -C "$root" pkgconfig/libwebhook.pc >/dev/null
prefix=/opt/wh
stage=$tmp/stage # does not exist yet: the install makes it
"$make" -s -C "$root" install PREFIX=$prefix DESTDIR="$stage" >/dev/null
pc=$stage$prefix/lib/pkgconfig/libwebhook.pc
[ -f "$pc" ] || fail "no $pc"
grep -qx "prefix=$prefix" "$pc" || fail "$pc: $(head -1 "$pc"), expected prefix=$prefix"
grep -qx "libdir=$prefix/lib" "$pc" || fail "$pc: libdir is not $prefix/lib"
grep -qx "includedir=$prefix/include" "$pc" || fail "$pc: includedir is not $prefix/include"

# every function a public header declares leaves the installed shared library (a definition
# that does not see its WH_API declaration stays hidden)
so=$(ls "$stage$prefix"/lib/libwebhook.so.*.*.* | head -1)
exported=$(nm -D --defined-only "$so" | awk '{print $3}')
for fn in $(sed -n 's/^WH_API [^(]*[ *]\(wh_[a-z0-9_]*\)(.*/\1/p' "$stage$prefix"/include/webhook/webhook*.h); do
    grep -qx "$fn" <<<"$exported" || fail "$so does not export $fn"
done

# the installed alias pages (wh_conf_set(3), ...) find the page they stand for
for page in "$stage$prefix"/share/man/man3/*.3; do
    out=$(cd / && LC_ALL=C.UTF-8 man --warnings -l "$page" 2>&1 >/dev/null) || fail "$page: $out"
    [ -z "$out" ] || fail "$page: $out"
done

# pkg-config reads the staged .pc as if it were installed in $prefix
export PKG_CONFIG_PATH=$stage$prefix/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage
src=$root/tests/install/hello.c
build() { # name, then the compiler's arguments
    local name=$1; shift
    "$cc" -o "$tmp/$name" "$src" "$@" 2>"$tmp/$name.err" ||
        fail "$name: $cc $src $*: $(cat "$tmp/$name.err")"
}
run() { # name, then the environment
    local name=$1; shift
    rm -f "$tmp/store.db"
    env "$@" "$tmp/$name" "$tmp/store.db" >"$tmp/$name.out" 2>&1 || fail "$name: $(cat "$tmp/$name.out")"
    grep -q "works" "$tmp/$name.out" || fail "$name: $(cat "$tmp/$name.out")"
}

# shellcheck disable=SC2046 # pkg-config's output is meant to be split
build shared $(pkg-config --cflags --libs libwebhook)
run shared LD_LIBRARY_PATH="$stage$prefix/lib"
# shellcheck disable=SC2046
build static_flags $(pkg-config --static --cflags --libs libwebhook)
run static_flags LD_LIBRARY_PATH="$stage$prefix/lib"
# libwebhook.a itself, with every private dependency from --static
# shellcheck disable=SC2046
build static $(pkg-config --static --cflags --libs libwebhook | sed 's/-lwebhook\b/-l:libwebhook.a/')
if readelf -d "$tmp/static" | grep -q 'NEEDED.*libwebhook'; then fail "static: still needs libwebhook.so"; fi
run static

"$make" -s -C "$root" uninstall PREFIX=$prefix DESTDIR="$stage" >/dev/null
[ ! -e "$stage" ] || fail "uninstall left $(cd "$stage" && find . | head -5 | tr '\n' ' ')"

# A staging root whose /opt existed before: twice installed, once uninstalled, /opt stays.
mkdir -p "$tmp/pre/opt"
"$make" -s -C "$root" install PREFIX=$prefix DESTDIR="$tmp/pre" >/dev/null
"$make" -s -C "$root" install PREFIX=$prefix DESTDIR="$tmp/pre" >/dev/null
"$make" -s -C "$root" uninstall PREFIX=$prefix DESTDIR="$tmp/pre" >/dev/null
left=$(cd "$tmp/pre" && find . | sort | tr '\n' ' ')
[ "$left" = ". ./opt " ] || fail "uninstall: expected only ./opt left, found $left"
echo "check_install: install, pkg-config (shared, --static, libwebhook.a) and uninstall ok"
