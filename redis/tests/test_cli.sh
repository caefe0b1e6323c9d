#!/bin/sh
# test_cli.sh WPOOL_REDIS: the wpool-redis command line against a private
# redis-server (free 127.0.0.1 port, temporary directory, AOF with
# appendfsync always; stopped by pid on every exit). Skipped (exit 77) where
# redis-server or redis-cli is missing. Every wait is bounded.
set -u
cli=$1
for p in redis-server redis-cli; do
    command -v $p >/dev/null 2>&1 || { echo "test_cli: skipped: $p not found (apt-get install redis-server)"; exit 77; }
done
base=/tmp
[ -w /dev/shm ] && base=/dev/shm
dir=$(mktemp -d "$base/wpool-redis-cli-XXXXXX")
spid=
cleanup() {
    [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

start_server() {
    for try in 1 2 3 4 5; do
        port=$(( ( $(od -An -N2 -tu2 /dev/urandom) % 30000 ) + 20000 ))
        redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
            --appendfsync always --save "" --daemonize no --logfile "$dir/log" $@ &
        spid=$!
        for i in $(seq 200); do
            if ! kill -0 "$spid" 2>/dev/null; then spid=; break; fi
            [ "$(redis-cli -p "$port" ${pass:+-a "$pass" --no-auth-warning} ping 2>/dev/null)" = PONG ] && return 0
            sleep 0.05
        done
        [ -n "$spid" ] && kill -9 "$spid" && wait "$spid" 2>/dev/null
        spid=
    done
    echo "test_cli: could not start redis-server"; exit 1
}

pass=
start_server
url="redis://127.0.0.1:$port/0"
rc() { redis-cli -p "$port" "$@"; }
passed=0 failed=0
check() { # check NAME CONDITION...
    name=$1; shift
    if "$@"; then passed=$((passed + 1)); else echo "FAIL: $name"; failed=$((failed + 1)); fi
}
wait_for() { # wait_for SECONDS COMMAND...: runs COMMAND every 50 ms until it succeeds
    n=$(( $1 * 20 )); shift
    while [ "$n" -gt 0 ]; do "$@" && return 0; sleep 0.05; n=$((n - 1)); done
    return 1
}
pending() { rc XPENDING "$1" wpool | head -n 1; }
xlen_is() { [ "$(rc XLEN "$1")" = "$2" ]; }

# push: a job per line of stdin; work: the command gets each on stdin
printf 'alpha\nbeta\ngamma\n' | "$cli" --url "$url" push s1
check "push counts lines" [ "$(rc XLEN s1)" = 3 ]
"$cli" --url "$url" work s1 --workers 2 --drain -- sh -c "d=\$(cat); echo \"\$d\" >> '$dir/out1'" 2>"$dir/err1"
check "work exit 0" [ $? = 0 ]
check "each job ran once with its data" [ "$(sort "$dir/out1" | tr '\n' ' ')" = "alpha beta gamma " ]
check "all acknowledged" [ "$(pending s1)" = 0 ]
check "summary line" grep -q "acked 3" "$dir/err1"

# the seed's jobs, handled in-process
"$cli" --url "$url" push s2 --seed 500
check "seed push" [ "$(rc XLEN s2)" = 500 ]
out=$("$cli" --url "$url" work s2 --seed --drain --prefetch 16 2>/dev/null)
check "seed work" [ "${out%%,*}" = "seed: 500 jobs" ]
"$cli" --url "$url" stats s2 > "$dir/stats2"
check "stats: length and dead" grep -q "^stream s2: length 500, dead 0$" "$dir/stats2"
check "stats: group drained" grep -q "^group wpool: pending 0, lag 0" "$dir/stats2"
check "stats: consumers" grep -q "^  consumer .*: pending 0" "$dir/stats2"

# a poison job: dead after --max-deliveries, listed, requeued
echo bad | "$cli" --url "$url" push s3
"$cli" --url "$url" work s3 --visibility 200 --max-deliveries 2 -- sh -c 'cat >/dev/null; exit 3' 2>/dev/null &
wpid=$!
wait_for 20 xlen_is s3:dead 1
check "poison is dead" [ "$(rc XLEN s3:dead)" = 1 ]
kill -TERM $wpid; wait $wpid
check "work stops on SIGTERM with 0" [ $? = 0 ]
"$cli" --url "$url" dead s3 > "$dir/dead3"
check "dead listing" grep -q " deliveries=2 result=3 data=bad$" "$dir/dead3"
check "requeue" [ "$("$cli" --url "$url" dead s3 --requeue)" = "requeued 1" ]
check "requeued out of dead" [ "$(rc XLEN s3:dead)" = 0 ]
check "requeued into the stream" [ "$(rc XLEN s3)" = 2 ]

# graceful stop: SIGTERM mid-run leaves nothing running or unacknowledged
"$cli" --url "$url" push s4 --seed 40
"$cli" --url "$url" work s4 --workers 2 --prefetch 2 -- sh -c "cat >/dev/null; sleep 0.2; echo done >> '$dir/out4'" 2>"$dir/err4" &
wpid=$!
wait_for 20 [ -s "$dir/out4" ]
kill -TERM $wpid; wait $wpid
check "graceful: exit 0" [ $? = 0 ]
check "graceful: nothing pending" [ "$(pending s4)" = 0 ]
done4=$(wc -l < "$dir/out4")
check "graceful: every finished job acknowledged" grep -q "acked $done4," "$dir/err4"
check "graceful: stopped early" [ "$done4" -lt 40 ]
sleep 0.3
check "graceful: no job still running" [ "$(wc -l < "$dir/out4")" = "$done4" ]

# errors: one line, with the address, never the password; nothing changed
bad=$(( port == 65535 ? port - 1 : port + 1 ))
while redis-cli -p $bad ping >/dev/null 2>&1; do bad=$((bad + 1)); done
"$cli" --url "redis://:hunter2@127.0.0.1:$bad/2" stats s1 2>"$dir/e1"
check "refused: exit 1" [ $? = 1 ]
check "refused: one line" [ "$(wc -l < "$dir/e1")" = 1 ]
check "refused: address" grep -q "redis://127.0.0.1:$bad/2: Connection refused" "$dir/e1"
check "refused: no password" sh -c "! grep -q hunter2 '$dir/e1'"
"$cli" --url "redis://:x@127.0.0.1:bad" push s1 </dev/null 2>"$dir/e2"
check "malformed url: exit 1" [ $? = 1 ]
check "malformed url: no secret" sh -c "! grep -q ':x@' '$dir/e2'"
rc SET s5 text >/dev/null
echo job | "$cli" --url "$url" push s5 2>"$dir/e3"
check "wrong type: exit 1" [ $? = 1 ]
check "wrong type: says so" grep -q "refused the command" "$dir/e3"
check "wrong type: key unchanged" [ "$(rc GET s5)" = text ]
"$cli" --url "$url" work s1 2>/dev/null
check "usage: exit 2" [ $? = 2 ]

# a password server: wrong password is refused, the right one works
kill -9 "$spid"; wait "$spid" 2>/dev/null; spid=
pass=s3cret
start_server --requirepass s3cret
echo x | "$cli" --url "redis://:badpw9@127.0.0.1:$port/0" push p 2>"$dir/e4"
check "wrong password: exit 1" [ $? = 1 ]
check "wrong password: says so" grep -q "authentication refused" "$dir/e4"
check "wrong password: no secret" sh -c "! grep -q badpw9 '$dir/e4'"
echo x | "$cli" --url "redis://:s3cret@127.0.0.1:$port/0" push p
check "right password" [ "$(redis-cli -p $port -a s3cret --no-auth-warning XLEN p)" = 1 ]

echo "test_cli: $passed passed, $failed failed"
[ "$failed" = 0 ]
