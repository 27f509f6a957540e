#!/usr/bin/env bash
# `make test-deb` (as root, after `make deb`; .ci/run does both): installs the .debs of
# build/deb/ (libwebhook1, libwebhook-dev, webhookctl), checks what they put where, builds
# examples from examples/ against the installed packages only (with pkg-config, and with
# CMake's find_package), runs them against the example receiver, which checks every
# signature, and removes the packages again, checking that nothing of them is left.
#
#   tests/deb/check_packages.sh [DEB_DIR]      (default: build/deb)
#
# The receiver is built the same way (it links the installed library too). It refuses to run
# when one of the packages is installed already: it would remove it at the end.
set -euo pipefail

cd "$(dirname "$0")/../.."
debs=${1:-build/deb}
abi=$(sed -n 's/^#define WH_ABI_VERSION \([0-9]*\)/\1/p' include/webhook/webhook.h)
pkgs=("libwebhook$abi" libwebhook-dev webhookctl)
fail() { echo "check_packages: FAILED: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || fail "installing packages needs root"
version=$(sed -n 's/^#define WH_VERSION_STRING "\(.*\)"/\1/p' include/webhook/webhook.h)
soname=libwebhook.so.$abi
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
libdir=/usr/lib/$multiarch
files=()
for p in "${pkgs[@]}"; do
    f=$(compgen -G "$debs/${p}_${version}_*.deb" | head -n 1) || fail "no $debs/${p}_${version}_*.deb: run make deb"
    files+=("$(realpath "$f")")
    if dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        fail "$p is installed already; remove it first"
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/webhook-deb.XXXXXX")
installed=
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    if [[ -n $installed ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y "${pkgs[@]}" >/dev/null 2>&1 ||
            dpkg --purge "${pkgs[@]}" >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

echo "check_packages: installing ${files[*]##*/}"
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${files[@]}" >"$tmp/apt.log" 2>&1 ||
    { cat "$tmp/apt.log" >&2; fail "apt-get install"; }
installed=1

# ---- what the packages hold -----------------------------------------------------------------
for f in /usr/include/webhook/webhook.h /usr/include/webhook/adapters/libuv.h \
         "$libdir/libwebhook.so.$version" "$libdir/$soname" "$libdir/libwebhook.so" \
         "$libdir/libwebhook.a" "$libdir/pkgconfig/libwebhook.pc" \
         "$libdir/cmake/libwebhook/libwebhookConfig.cmake" /usr/bin/webhookctl; do
    [[ -e $f ]] || fail "$f is not installed"
done
[[ ! -e /usr/share/libwebhook ]] || fail "/usr/share/libwebhook (make install's own record) was packaged"
[[ $(pkg-config --modversion libwebhook) == "$version" ]] || fail "pkg-config --modversion libwebhook"
[[ $(pkg-config --variable=libdir libwebhook) == "$libdir" ]] || fail "pkg-config: libdir is not $libdir"
[[ $(webhookctl --version) == "webhookctl (libwebhook) $version" ]] || fail "webhookctl --version"
# the manual pages, in the packages (a minimal image's dpkg may be told not to unpack them)
for page in webhookctl:man1/webhookctl.1 libwebhook-dev:man3/wh_emit.3 \
            libwebhook-dev:man3/wh_metrics_write.3 libwebhook-dev:man7/libwebhook.7; do
    contents=$(dpkg-deb -c "$debs/${page%%:*}_${version}_"*.deb)
    grep -q "/usr/share/man/${page#*:}.gz" <<<"$contents" ||
        fail "${page%%:*} has no /usr/share/man/${page#*:}.gz"
done

# links_installed BINARY: the program uses the packaged library, not a build tree's (/lib is
# /usr/lib on a merged-/usr system, so the paths are compared resolved)
links_installed() {
    local found
    found=$(ldd "$1" | awk -v so="$soname" '$1 == so { print $3 }')
    [[ -n $found && $(realpath "$found") == $(realpath "$libdir/$soname") ]] ||
        fail "$1 does not link $libdir/$soname: $(ldd "$1" | grep webhook)"
}

# ---- pkg-config ---------------------------------------------------------------------------
# No -I or -L of the source tree: the headers and the library come from the packages.
mkdir -p "$tmp/pc"
cflags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2)
read -ra webhook <<<"$(pkg-config --cflags --libs libwebhook)"
read -ra mhd <<<"$(pkg-config --cflags --libs libmicrohttpd)"
read -ra cjson <<<"$(pkg-config --cflags --libs libcjson)"
for ex in drive_poll receiver metrics_http; do
    extra=() # what an example uses itself: the receiver parses the body with cJSON
    case $ex in
    receiver) extra=("${mhd[@]}" "${cjson[@]}") ;;
    metrics_http) extra=("${mhd[@]}") ;;
    esac
    cc "${cflags[@]}" -o "$tmp/pc/$ex" "examples/$ex.c" "${webhook[@]}" "${extra[@]}" -lpthread ||
        fail "examples/$ex.c does not build with pkg-config --cflags --libs libwebhook"
    links_installed "$tmp/pc/$ex"
done
WH_EXAMPLES_BIN=$tmp/pc bash examples/run_examples.sh drive_poll
WH_EXAMPLES_BIN=$tmp/pc bash examples/run_metrics_example.sh

# ---- CMake ---------------------------------------------------------------------------------
cmake -S tests/deb -B "$tmp/cmake" -DEXAMPLES_DIR="$PWD/examples" \
    -DEXPECT_DIR="$libdir/cmake/libwebhook" >"$tmp/cmake.log" 2>&1 ||
    { cat "$tmp/cmake.log" >&2; fail "find_package(libwebhook) against the packages"; }
cmake --build "$tmp/cmake" >"$tmp/cmake-build.log" 2>&1 ||
    { cat "$tmp/cmake-build.log" >&2; fail "building examples/drive_thread.c with libwebhook::webhook"; }
links_installed "$tmp/cmake/drive_thread"
cp "$tmp/pc/receiver" "$tmp/cmake/"
WH_EXAMPLES_BIN=$tmp/cmake bash examples/run_examples.sh drive_thread

# ---- removal --------------------------------------------------------------------------------
DEBIAN_FRONTEND=noninteractive apt-get purge -y "${pkgs[@]}" >"$tmp/apt.log" 2>&1 ||
    { cat "$tmp/apt.log" >&2; fail "apt-get purge"; }
installed=
for p in "${pkgs[@]}"; do
    ! dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'installed' || fail "$p is still installed"
done
for f in /usr/include/webhook "$libdir/$soname" "$libdir/cmake/libwebhook" /usr/bin/webhookctl; do
    [[ ! -e $f ]] || fail "$f is left after the packages were removed"
done
! pkg-config --exists libwebhook || fail "pkg-config still finds libwebhook"
echo "check_packages: the packages install, build and run the examples (pkg-config and CMake), and remove cleanly"
