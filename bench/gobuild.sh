#!/bin/sh
# bench/gobuild.sh OUT: builds the Go half of the experiment (bench/go) into
# the test binary OUT, offline (standard library only), with GOPATH and
# GOCACHE under OUT's folder. Without `go`, says so and builds nothing.
out=$1
if ! command -v go >/dev/null 2>&1; then
    echo "bench: go not found (apt-get install golang-go): the Go rows are skipped"
    exit 0
fi
dir=$(cd "$(dirname "$out")" && pwd)
cd "$(dirname "$0")/go" &&
    GOPROXY=off GOFLAGS=-mod=mod GO111MODULE=on GOPATH="$dir/gopath" GOCACHE="$dir/gocache" \
        go test -c -o "$dir/$(basename "$out")" . ||
    echo "bench: the Go benchmark did not build: the Go rows are skipped"
