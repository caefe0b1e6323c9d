#!/bin/sh
# cmake/deb.sh SRC BUILD: configures the source tree SRC in BUILD for /usr,
# builds the libraries (no tests, examples or benchmarks) and makes the
# Debian packages with cpack (cmake/packaging.cmake); prints their paths.
set -eu
src=$(cd "$1" && pwd)
build=$2
gen=""
command -v ninja >/dev/null 2>&1 && gen="-G Ninja"
cmake -S "$src" -B "$build" $gen -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
    -DWPOOL_BUILD_TESTS=OFF -DWPOOL_BUILD_EXAMPLES=OFF -DWPOOL_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
rm -f "$build"/*.deb
(cd "$build" && cpack -G DEB >/dev/null)
ls "$build"/*.deb
