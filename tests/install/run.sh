#!/bin/sh
# Installs the build in $1 to a temporary prefix, then builds and runs a
# small program against it through pkg-config and through find_package.
set -eu
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -n 1)
test -f "$tmp/prefix/include/wpool.h"
test -f "$libdir/pkgconfig/wpool.pc"
test -f "$libdir/cmake/wpool/wpoolConfig.cmake"

# pkg-config, shared and static
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -o "$tmp/pc_shared" "$here/consumer.c" $(pkg-config --cflags --libs wpool)
LD_LIBRARY_PATH="$libdir" "$tmp/pc_shared"
cc -std=c11 -o "$tmp/pc_static" "$here/consumer.c" $(pkg-config --cflags wpool) "$libdir/libwpool.a" -pthread
"$tmp/pc_static"

# find_package
cmake -S "$here" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/cm/consumer_shared"
"$tmp/cm/consumer_static"
n=4
if [ -f "$libdir/pkgconfig/wpool-thpool.pc" ]; then
    cc -std=c11 -o "$tmp/thpool" "$here/thpool_consumer.c" $(pkg-config --cflags --libs wpool-thpool)
    LD_LIBRARY_PATH="$libdir" "$tmp/thpool"
    n=5
fi
echo "install test: $n passed, 0 failed"
