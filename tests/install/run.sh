#!/bin/sh
# Installs the build in $1 to a temporary prefix, then, for each library
# installed there (wpool, wpool-thpool, wpool-redis), builds a small program
# against it through pkg-config and through find_package, and runs it
# without LD_LIBRARY_PATH, as a user would: the program finds the prefix's
# libraries through its own rpath, and an add-on library finds libwpool
# through its $ORIGIN RUNPATH.
set -eu
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset LD_LIBRARY_PATH
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -n 1)
libdir=${libdir%/}
test -f "$tmp/prefix/include/wpool.h"
test -f "$libdir/pkgconfig/wpool.pc"
test -f "$libdir/cmake/wpool/wpoolConfig.cmake"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
rpath="-Wl,-rpath,$libdir"
n=0
ok() {
    "$@"
    n=$((n + 1))
}

# An add-on library must find libwpool beside it, wherever the prefix is.
origin() {
    readelf -d "$libdir/$1" | grep -q 'RUNPATH.*\$ORIGIN' || {
        echo "install test: $1 has no \$ORIGIN RUNPATH:" >&2
        readelf -d "$libdir/$1" | grep -i path >&2
        exit 1
    }
}

# wpool: pkg-config, shared and static
cc -std=c11 -o "$tmp/pc_shared" "$here/consumer.c" $(pkg-config --cflags --libs wpool) "$rpath"
ok "$tmp/pc_shared"
cc -std=c11 -o "$tmp/pc_static" "$here/consumer.c" $(pkg-config --cflags wpool) "$libdir/libwpool.a" -pthread
ok "$tmp/pc_static"

# wpool-thpool: linked --as-needed, so that the program itself does not
# need libwpool and only libwpool-thpool's RUNPATH can find it.
if [ -f "$libdir/pkgconfig/wpool-thpool.pc" ]; then
    origin libwpool-thpool.so
    cc -std=c11 -o "$tmp/pc_thpool" "$here/thpool_consumer.c" -Wl,--as-needed \
        $(pkg-config --cflags --libs wpool-thpool) "$rpath"
    ok "$tmp/pc_thpool"
fi

# wpool-redis, where it was built
if [ -f "$libdir/pkgconfig/wpool-redis.pc" ]; then
    origin libwpool-redis.so
    cc -std=c11 -o "$tmp/pc_redis" "$here/redis_consumer.c" \
        $(pkg-config --cflags --libs wpool-redis) "$rpath"
    ok "$tmp/pc_redis"
fi

# find_package(wpool COMPONENTS thpool redis): CMake puts the rpath in
cmake -S "$here" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
for prog in consumer_shared consumer_static thpool_shared thpool_static redis_shared; do
    if [ -x "$tmp/cm/$prog" ]; then ok "$tmp/cm/$prog"; fi
done
if [ -f "$libdir/pkgconfig/wpool-thpool.pc" ] && ! [ -x "$tmp/cm/thpool_shared" ]; then
    echo "install test: find_package(wpool COMPONENTS thpool) found no wpool::wpool_thpool" >&2
    exit 1
fi
if [ -f "$libdir/pkgconfig/wpool-redis.pc" ] && ! [ -x "$tmp/cm/redis_shared" ]; then
    echo "install test: find_package(wpool COMPONENTS redis) found no wpool::wpool_redis" >&2
    exit 1
fi
echo "install test: $n passed, 0 failed"
