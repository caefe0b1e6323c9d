#!/bin/sh
# tests/httpd/run.sh HTTPD: drives examples/httpd with real requests (curl).
#   - digests of GET /hash/N for work=1, a chain of rounds, the default
#     work and a wait, checked against `openssl dgst -sha256`;
#   - 400 with a one-line reason for each kind of bad input, 404, 405;
#   - 503 with Retry-After under a flood (1 worker, a queue of 1, wait=200);
#   - SIGTERM: a request in flight is still answered, the exit is clean (0)
#     and the sojourn percentiles per status are printed;
#   - --mode inline, --mode thread and an elastic pool (--max-workers).
# Servers listen on 127.0.0.1 on a port the kernel picks, run in a temp dir
# and are killed by pid on any exit. HTTPD_WRAP (e.g. "valgrind -q ...")
# runs the server under a tool; its exit code is then the tool's.
# Exit 77 (skipped) when curl or openssl is missing.
set -u
httpd=${1:?usage: run.sh path/to/httpd}
for tool in curl openssl; do
    command -v $tool >/dev/null 2>&1 || { echo "httpd test skipped: $tool not installed"; exit 77; }
done
case "$httpd" in /*) ;; *) httpd=$(pwd)/$httpd ;; esac
tmp=$(mktemp -d)
pid=""
trap 'if [ -n "$pid" ]; then kill -9 $pid 2>/dev/null; fi; rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# start NAME ARGS...: starts httpd, sets pid and url once it listens.
start() {
    name=$1
    shift
    : >"$name.out"
    ${HTTPD_WRAP:-} "$httpd" --port 0 "$@" >"$name.out" 2>"$name.err" &
    pid=$!
    i=0
    while ! grep -q '^listening on ' "$name.out"; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! kill -0 $pid 2>/dev/null; then
            echo "FAIL: $name did not start"; cat "$name.err"; exit 1
        fi
        sleep 0.1
    done
    url="http://$(sed -n 's/^listening on //p' "$name.out")"
}

# stop NAME: SIGTERM, then waits (bounded) for a clean exit.
stop() {
    kill -TERM $pid
    i=0
    while kill -0 $pid 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 600 ]; then fail "$1 did not exit on SIGTERM"; kill -9 $pid; break; fi
        sleep 0.1
    done
    wait $pid
    rc=$?
    pid=""
    [ $rc -eq 0 ] || { fail "$1 exited with $rc"; cat "$1.err"; }
}

get() { curl -s -m 30 "$url$1"; }
code() { curl -s -m 30 -o /dev/null -w '%{http_code}' "$url$1"; }
# sha N ROUNDS: the expected answer, hashing with openssl.
sha() {
    printf 'payload-%s' "$1" >d
    r=1
    while [ $r -lt "$2" ]; do openssl dgst -sha256 -binary d >d2 && mv d2 d; r=$((r + 1)); done
    openssl dgst -sha256 d | sed 's/.*= //'
}

# ------------------------------------------------------------- answers --
start main --workers 2 --queue 64 --max-work 5000 --max-wait 1000
for n in 0 7 42 18446744073709551615; do
    [ "$(get "/hash/$n?work=1")" = "$(sha $n 1)" ] || fail "digest of payload-$n"
done
[ "$(get '/hash/9?work=3')" = "$(sha 9 3)" ] || fail "digest of payload-9, 3 rounds"
[ "$(get '/hash/9?work=3&wait=20')" = "$(sha 9 3)" ] || fail "digest after a wait"
[ "$(get '/hash/5')" = "$(get '/hash/5?work=250')" ] || fail "default work is 250 rounds"
[ "$(get '/hash/5')" != "$(get '/hash/5?work=1')" ] || fail "work changes the digest"
# keep-alive: several requests on one connection
[ "$(curl -s -m 30 "$url/hash/1?work=1" "$url/hash/1?work=1" | sort -u | wc -l)" -eq 1 ] ||
    fail "two answers on one connection"

# ----------------------------------------------------------- bad input --
for q in '/hash/' '/hash/x' '/hash/-1' '/hash/1.5' '/hash/%31' '/hash/1/2' \
    '/hash/18446744073709551616' '/hash/1?work=0' '/hash/1?work=5001' '/hash/1?work=-1' \
    '/hash/1?work=1e3' '/hash/1?work=' '/hash/1?wait=1001' '/hash/1?wait=99999999999999999999' \
    '/hash/1?wait=5ms'; do
    [ "$(code "$q")" = 400 ] || fail "400 for $q (got $(code "$q"))"
    [ "$(get "$q" | wc -l)" -eq 1 ] || fail "one-line reason for $q"
done
get '/hash/1?work=5001' | grep -q 'max-work' || fail "the reason names the cap"
[ "$(code /nope)" = 404 ] || fail "404 for /nope"
[ "$(curl -s -m 30 -o /dev/null -w '%{http_code}' -X POST "$url/hash/1")" = 405 ] ||
    fail "405 for POST"

# a request in flight when SIGTERM comes is still answered (or, if it had
# not even connected yet, refused): never cut off
curl -s -m 30 -o inflight.out -w '%{http_code}' "$url/hash/3?work=1&wait=500" >inflight.code &
cpid=$!
sleep 0.2
stop main
wait $cpid
crc=$?
if [ $crc -eq 0 ]; then
    [ "$(cat inflight.code)" = 200 ] && [ "$(cat inflight.out)" = "$(sha 3 1)" ] ||
        fail "in-flight request answered at stop (got $(cat inflight.code))"
elif [ $crc -ne 7 ]; then
    fail "in-flight request cut off at stop (curl exit $crc)"
fi
grep -q '^sojourn' main.out || fail "no sojourn printout"
for s in 200 400 404 405; do
    grep -Eq "^ *$s +[0-9]+ +[0-9.]+ +[0-9.]+ +[0-9.]+$" main.out || fail "no percentiles for $s"
done

# --------------------------------------------------------------- flood --
start flood --workers 1 --queue 1
got503=0
for attempt in 1 2 3; do
    urls=""
    for i in $(seq 1 24); do urls="$urls $url/hash/$i?work=1&wait=200"; done
    # shellcheck disable=SC2086
    curl -s -m 60 --parallel --parallel-immediate --parallel-max 24 -o /dev/null \
        -w '%{http_code} %header{retry-after}\n' $urls >codes 2>/dev/null
    grep -q '^200 ' codes || fail "flood: no request served"
    if grep -Eq '^503 [0-9]+$' codes; then got503=1; break; fi
done
[ $got503 -eq 1 ] || fail "flood: no 503 with Retry-After ($(sort codes | uniq -c | tr '\n' ' '))"
stop flood
grep -Eq '^ *503 +[0-9]+ ' flood.out || fail "flood: no percentiles for 503"

# ---------------------------------- the other modes, an elastic pool --
for mode in inline thread elastic; do
    case $mode in
    elastic) start $mode --workers 1 --max-workers 4 ;;
    *) start $mode --mode $mode --workers 1 ;;
    esac
    [ "$(get '/hash/11?work=2&wait=5')" = "$(sha 11 2)" ] || fail "$mode: digest"
    [ "$(code '/hash/x')" = 400 ] || fail "$mode: 400"
    stop $mode
done

cat main.out flood.out
if [ $fails -ne 0 ]; then echo "httpd test: $fails failed"; exit 1; fi
echo "httpd test: all passed"
