#!/usr/bin/env bash
# `make test-cmake`: configures, builds and runs tests/cmake/ (find_package(libwebhook), the
# imported target libwebhook::webhook) against a `make install DESTDIR=STAGE` already done, and
# checks the version file: the installed version is found when asked for, a newer major or minor
# one is refused.
#
#   tests/cmake/run.sh STAGE PREFIX LIBDIR VERSION SONAME
set -euo pipefail

stage=$1 prefix=$2 libdir=$3 version=$4 soname=$5
src=$(cd "$(dirname "$0")" && pwd)
work=$(dirname "$stage")
pkgdir=$stage$libdir/cmake/libwebhook
major=${version%%.*}
minor=${version#*.}
minor=${minor%%.*}

for f in libwebhookConfig.cmake libwebhookConfigVersion.cmake; do
    [[ -f $pkgdir/$f ]] || { echo "test-cmake: FAILED: make install did not install $pkgdir/$f" >&2; exit 1; }
done

# configure DIR [cmake args...]: 0 when CMake configured the project
configure() {
    local dir=$1
    shift
    cmake -S "$src" -B "$work/$dir" -DCMAKE_PREFIX_PATH="$stage$prefix" -DEXPECT_DIR="$pkgdir" "$@" \
        >"$work/$dir.log" 2>&1
}

if ! configure build -DWANT_VERSION="$major.$minor"; then
    echo "test-cmake: FAILED: find_package(libwebhook $major.$minor) against $stage$prefix:" >&2
    cat "$work/build.log" >&2
    exit 1
fi
if ! cmake --build "$work/build" >"$work/build-make.log" 2>&1; then
    echo "test-cmake: FAILED: building against libwebhook::webhook:" >&2
    cat "$work/build-make.log" >&2
    exit 1
fi
# it must run with the staged library, not one installed elsewhere
LD_LIBRARY_PATH=$stage$libdir "$work/build/consumer" "$version"
if ! LD_LIBRARY_PATH=$stage$libdir ldd "$work/build/consumer" | grep "=> $stage$libdir/$soname " >/dev/null; then
    echo "test-cmake: FAILED: the consumer does not link $stage$libdir/$soname" >&2
    exit 1
fi

for v in "$((major + 1))" "$major.$((minor + 1))"; do
    if configure "build-want-$v" -DWANT_VERSION="$v"; then
        echo "test-cmake: FAILED: find_package(libwebhook $v) accepted version $version" >&2
        exit 1
    fi
done
for v in "" "$version" "$major" "$major.$minor...<$((major + 1))"; do
    if ! configure "build-want-${v//[^0-9.]/_}" -DWANT_VERSION="$v"; then
        echo "test-cmake: FAILED: find_package(libwebhook $v) refused version $version:" >&2
        cat "$work/build-want-${v//[^0-9.]/_}.log" >&2
        exit 1
    fi
done
echo "test-cmake: find_package(libwebhook) finds $version in $pkgdir; the consumer builds and runs"
