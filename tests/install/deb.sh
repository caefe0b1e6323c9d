#!/bin/sh
# The Debian packages, as a user gets them: builds them (cmake/deb.sh, in
# $1/deb), installs them with apt-get, builds the consumers against the
# system paths (pkg-config and find_package, no -I, -L or rpath of ours),
# runs them, checks a man page, runs lintian (no errors allowed) and removes
# the packages again, also when something failed. Needs root; skipped
# (exit 77) without it, or where the packages are installed already (a
# user's own install is not touched).
set -eu
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
pkgs="libwpool0 libwpool-dev wpool-redis"
skip() {
    echo "deb test: skipped ($*)"
    exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root to install packages"
for tool in apt-get dpkg-deb dpkg-shlibdeps file cpack; do
    command -v $tool >/dev/null 2>&1 || skip "$tool not found"
done
for p in $pkgs; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        skip "$p is installed already"
    fi
done

tmp=$(mktemp -d)
apt="apt-get -y -qq -o DPkg::Lock::Timeout=120"
cleanup() {
    installed=""
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" &&
            installed="$installed $p"
    done
    [ -z "$installed" ] || DEBIAN_FRONTEND=noninteractive $apt purge $installed >/dev/null 2>&1 ||
        echo "deb test: could not remove$installed" >&2
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

debs=$(sh "$src/cmake/deb.sh" "$src" "$build/deb")
echo "deb test: built" $(for d in $debs; do basename "$d"; done)
DEBIAN_FRONTEND=noninteractive $apt install $debs >/dev/null

# Against the system paths only.
unset PKG_CONFIG_PATH LD_LIBRARY_PATH CMAKE_PREFIX_PATH
n=0
cc -std=c11 -o "$tmp/pc" "$here/consumer.c" $(pkg-config --cflags --libs wpool)
"$tmp/pc" >/dev/null
n=$((n + 1))
cc -std=c11 -o "$tmp/pc_thpool" "$here/thpool_consumer.c" $(pkg-config --cflags --libs wpool-thpool)
"$tmp/pc_thpool" >/dev/null
n=$((n + 1))
if dpkg-query -W wpool-redis >/dev/null 2>&1; then
    cc -std=c11 -o "$tmp/pc_redis" "$here/redis_consumer.c" $(pkg-config --cflags --libs wpool-redis)
    "$tmp/pc_redis" >/dev/null
    n=$((n + 1))
fi
cmake -S "$here" -B "$tmp/cm" >/dev/null
cmake --build "$tmp/cm" >/dev/null
for prog in consumer_shared consumer_static thpool_shared thpool_static redis_shared; do
    if [ -x "$tmp/cm/$prog" ]; then
        "$tmp/cm/$prog" >/dev/null
        n=$((n + 1))
    fi
done

# A man page by an alias's name (where dpkg keeps man pages at all).
if [ -e /usr/share/man/man7/wpool.7.gz ] && command -v man >/dev/null 2>&1; then
    man -w wp_try_submit | grep -q 'man3/wp_submit.3.gz'
    MANWIDTH=80 man 3 wp_try_submit 2>/dev/null | col -b | grep -q 'wp_submit_timeout'
    n=$((n + 1))
fi

if command -v lintian >/dev/null 2>&1; then
    lintian --fail-on error $debs >"$tmp/lintian" 2>&1 || {
        cat "$tmp/lintian"
        echo "deb test: lintian reports errors"
        exit 1
    }
    echo "deb test: lintian: no errors, $(grep -c '^W:' "$tmp/lintian" || true) warnings" \
        "($(sed -n 's/^W: [^:]*: \([^ ]*\).*/\1/p' "$tmp/lintian" | sort -u | tr '\n' ' '))"
else
    echo "deb test: lintian not found (apt-get install lintian): not run"
fi
echo "deb test: $n passed, 0 failed"
