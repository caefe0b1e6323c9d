#!/bin/sh
# bench/chan/run.sh BUILD_DIR: wpool's channels against Go's, one table.
#
# Builds the library (Release, -O2) and chan_bench.c under BUILD_DIR/chan-bench,
# runs them, runs chan_test.go (the same three benchmarks in Go) when a Go
# toolchain is there (as root it installs Debian's golang-go first), and
# prints the median of RUNS (default 5) runs of each:
#
#   benchmark   wpool ns/op   Go ns/op   ratio (wpool / Go)
#
# Go runs offline: GOPROXY=off, GOPATH and GOCACHE under BUILD_DIR.
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)/chan-bench
runs=${RUNS:-5}
mkdir -p "$out"

# ---------------------------------------------------------------- wpool --
gen=
command -v ninja >/dev/null 2>&1 && gen="-G Ninja"
if ! { cmake -S "$root" -B "$out/lib" $gen -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" -DWPOOL_BUILD_TESTS=OFF \
        -DWPOOL_BUILD_EXAMPLES=OFF -DWPOOL_BUILD_THPOOL=OFF &&
       cmake --build "$out/lib" --target wpool_static &&
       ${CC:-cc} -std=c11 -O2 -D_GNU_SOURCE -I"$root/include" "$here/chan_bench.c" \
           "$out/lib/libwpool.a" -lpthread -o "$out/chan_bench"; } >"$out/build.log" 2>&1; then
    cat "$out/build.log" >&2
    echo "chan bench: build failed" >&2
    exit 1
fi
echo "chan bench: wpool, $runs runs of each benchmark..."
"$out/chan_bench" "$runs" 300 >"$out/wpool.txt"

# ------------------------------------------------------------------- Go --
if ! command -v go >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "chan bench: installing golang-go (apt-get)..."
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y golang-go; } \
        >"$out/apt.log" 2>&1 || echo "chan bench: installing golang-go failed, see $out/apt.log"
fi
: >"$out/go.txt"
if command -v go >/dev/null 2>&1; then
    echo "chan bench: Go ($(go version | awk '{print $3}')), $runs runs of each benchmark..."
    mkdir -p "$out/go"
    cp "$here/chan_test.go" "$out/go/"
    printf 'module chanbench\n\ngo 1.19\n' >"$out/go/go.mod"
    if (cd "$out/go" && GOPATH="$out/gopath" GOCACHE="$out/gocache" GOPROXY=off \
            GOFLAGS=-mod=mod GO111MODULE=on GOTOOLCHAIN=local \
            go test -bench . -benchmem -count "$runs" -benchtime 0.3s) >"$out/go.log" 2>&1; then
        awk '/^Benchmark/ { n = $1; sub(/^Benchmark/, "", n); sub(/-[0-9]+$/, "", n); print n, $3 }' \
            "$out/go.log" >"$out/go.txt"
    else
        cat "$out/go.log" >&2
        echo "chan bench: the Go benchmark failed; Go column left empty"
    fi
else
    echo "chan bench: Go skipped: no go command (install the golang-go package)"
fi

# ---------------------------------------------------------------- table --
median() { # median NAME FILE: median of the values on lines "NAME value", or -
    awk -v n="$1" '$1 == n { print $2 }' "$2" | sort -g |
        awk '{ a[NR] = $1 } END { if (NR == 0) print "-";
              else printf "%.1f\n", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
echo
printf '%-18s %12s %12s %8s\n' benchmark "wpool ns/op" "Go ns/op" ratio
for b in PingPong Buffered128_1x1 Buffered128_4x4; do
    w=$(median "$b" "$out/wpool.txt")
    g=$(median "$b" "$out/go.txt")
    r=$(awk -v w="$w" -v g="$g" 'BEGIN { if (w == "-" || g == "-" || g + 0 == 0) print "-";
                                          else printf "%.2f", w / g }')
    printf '%-18s %12s %12s %8s\n' "$b" "$w" "$g" "$r"
done
echo "(median of $runs runs; ratio = wpool / Go, below 1 is faster; $(nproc) CPUs;"
echo " PingPong: one unbuffered round trip; Buffered128_SxR: one element through a"
echo " capacity-128 channel with S senders and R receivers)"
