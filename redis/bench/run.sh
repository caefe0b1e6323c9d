#!/bin/sh
# redis/bench/run.sh BUILD: make bench-redis. The seed job through Redis on
# this machine (loopback), against a private redis-server (free 127.0.0.1
# port, temporary directory; stopped by pid on every exit):
#   push      N seed jobs with `wpool-redis push --seed N` (pipelined XADDs)
#   serve 1   one `wpool-redis work --seed --drain` process on the full stream
#   serve 2   two such processes sharing the stream
#   latency   push-to-ack at a fixed rate (wpool_redis_latency: scheduled push
#             time to the XACK's server timestamp, seen through MONITOR)
#   peers     RQ, Celery (Debian python3-rq, python3-celery: peers.py) and
#             Sidekiq (ruby-sidekiq: sidekiq_seed.rb), BullMQ (npm bullmq@5,
#             installed under BUILD/bench/bullmq: bullmq_seed.cjs) with the
#             same jobs and worker count, results checked against the serial
#             SHA-256
#   limit     redis-benchmark, pipelined, for XADD and XACK on the same server
# and the server's commands per job (INFO commandstats calls, pushes
# included; the --drain monitor's XINFO polling left out). Writes a table,
# redis.csv, redis.json and (gnuplot) redis.png under BUILD/bench/. Each serve checks its result:
# every job done, none pending, none dead.
#
# Knobs: WPOOL_REDIS_BENCH_JOBS (100000), _WORKERS (usable CPUs, per
# consumer process), _PREFETCH (256), _RATE (jobs/s for latency, 10000),
# _LAT_JOBS (20000), _PEER_JOBS (2000: RQ forks a process per job), _AOF (no | everysec | always: the server's appendfsync;
# default no AOF, as a stock redis-server).
set -eu
build=$1
cli=$build/redis/wpool-redis
lat=$build/redis/wpool_redis_latency
out=$build/bench
mkdir -p "$out"
N=${WPOOL_REDIS_BENCH_JOBS:-100000}
W=${WPOOL_REDIS_BENCH_WORKERS:-$(nproc)}
P=${WPOOL_REDIS_BENCH_PREFETCH:-256}
RATE=${WPOOL_REDIS_BENCH_RATE:-10000}
LN=${WPOOL_REDIS_BENCH_LAT_JOBS:-20000}
PN=${WPOOL_REDIS_BENCH_PEER_JOBS:-2000}
AOF=${WPOOL_REDIS_BENCH_AOF:-no}
for p in redis-server redis-cli redis-benchmark; do
    command -v $p >/dev/null 2>&1 || { echo "bench-redis: skipped: $p not found (apt-get install redis-server redis-tools)"; exit 0; }
done
[ -x "$cli" ] || { echo "bench-redis: $cli not built (needs libhiredis-dev)"; exit 1; }

base=/tmp
[ -w /dev/shm ] && base=/dev/shm
dir=$(mktemp -d "$base/wpool-redis-bench-XXXXXX")
spid=
cleanup() {
    if [ -n "$spid" ]; then kill -9 "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
aof="--appendonly no"
[ "$AOF" != no ] && aof="--appendonly yes --appendfsync $AOF"
for try in 1 2 3 4 5; do
    port=$(( ( $(od -An -N2 -tu2 /dev/urandom) % 30000 ) + 20000 ))
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" $aof --save "" \
        --daemonize no --logfile "$dir/log" &
    spid=$!
    for i in $(seq 200); do
        kill -0 "$spid" 2>/dev/null || { spid=; break; }
        [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break 2
        sleep 0.05
    done
    [ -n "$spid" ] && kill -9 "$spid" && wait "$spid" 2>/dev/null
    spid=
done
[ -n "$spid" ] || { echo "bench-redis: could not start redis-server"; exit 1; }
url="redis://127.0.0.1:$port/0"
rc() { redis-cli -p "$port" "$@"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
# commands since the last CONFIG RESETSTAT, harness commands left out
commands() {
    rc INFO commandstats | tr -d '\r' | awk -F'[:=,]' '
        /^cmdstat_/ && $1 !~ /^cmdstat_(info|config|xinfo|ping|monitor|del|command)/ { s += $3 }
        END { print s + 0 }'
}
check_drained() { # STREAM: all delivered, none pending, none dead
    [ "$(rc XPENDING "$1" wpool | head -n 1)" = 0 ] && [ "$(rc XLEN "$1:dead")" = 0 ] || {
        echo "bench-redis: $1 not drained"; exit 1; }
}

echo "bench-redis: $N seed jobs, $W workers per consumer, prefetch $P, AOF $AOF, redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $(nproc) CPUs"
rows=""
row() { rows="$rows$1,$2,$3,$4,$5,$6
"; printf '%-22s %10s %10s %10s %10s %14s\n' "$1" "$2" "$3" "$4" "$5" "$6"; }
printf '%-22s %10s %10s %10s %10s %14s\n' name consumers jobs seconds jobs/s commands/job

# push + serve with 1, then 2, consumer processes
for c in 1 2; do
    s="bench$c"
    rc DEL "$s" "$s:dead" >/dev/null
    rc CONFIG RESETSTAT >/dev/null
    t0=$(now)
    "$cli" --url "$url" push "$s" --seed "$N"
    t1=$(now)
    pids=""
    for k in $(seq "$c"); do
        "$cli" --url "$url" work "$s" --seed --drain --workers "$W" --prefetch "$P" \
            >"$dir/seed$c.$k" 2>"$dir/err$c.$k" &
        pids="$pids $!"
    done
    for p in $pids; do wait "$p"; done
    t2=$(now)
    done_jobs=$(cat "$dir"/seed$c.* | sed -n 's/^seed: \([0-9]*\) jobs.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
    [ "$done_jobs" = "$N" ] || { echo "bench-redis: $done_jobs of $N jobs done"; cat "$dir"/err$c.*; exit 1; }
    check_drained "$s"
    cmds=$(commands)
    cpj=$(awk -v c="$cmds" -v n="$N" 'BEGIN { printf "%.3f", c / n }')
    [ "$c" = 1 ] && row push 0 "$N" "$(secs "$t0" "$t1")" "$(rate "$N" "$(secs "$t0" "$t1")")" -
    row "serve" "$c" "$N" "$(secs "$t1" "$t2")" "$(rate "$N" "$(secs "$t1" "$t2")")" -
    row "push+serve" "$c" "$N" "$(secs "$t0" "$t2")" "$(rate "$N" "$(secs "$t0" "$t2")")" "$cpj"
    rc DEL "$s" >/dev/null
done

# push-to-ack latency at a fixed rate
if [ -x "$lat" ]; then
    rc DEL lat >/dev/null
    line=$("$lat" "$url" lat "$RATE" "$LN" "$W")
    echo "$line"
    p50=$(echo "$line" | sed -n 's/.*p50 \([0-9]*\) us.*/\1/p')
    p99=$(echo "$line" | sed -n 's/.*p99 \([0-9]*\) us.*/\1/p')
    rows="${rows}latency p50 us,1,$LN,,$p50,
latency p99 us,1,$LN,,$p99,
"
fi

# peers on the same server, the same jobs and worker count, results checked
here=$(dirname "$0")
# BullMQ from npm, once, under the build directory
if command -v npm >/dev/null 2>&1 && [ ! -d "$out/bullmq/node_modules/bullmq" ]; then
    mkdir -p "$out/bullmq"
    npm install --prefix "$out/bullmq" --no-audit --no-fund --loglevel=error bullmq@5 >/dev/null 2>&1 ||
        echo "bench-redis: npm install bullmq failed"
fi
for peer in rq celery sidekiq bullmq; do
    case $peer in
    sidekiq) have="ruby -e 'require \"sidekiq\"'"; cmd="ruby $here/sidekiq_seed.rb"; pkg=ruby-sidekiq ;;
    bullmq) have="[ -d '$out/bullmq/node_modules/bullmq' ] && command -v node"
        cmd="env NODE_PATH=$out/bullmq/node_modules node $here/bullmq_seed.cjs"; pkg="nodejs npm (then npm bullmq)" ;;
    *) have="/usr/bin/python3 -c 'import $peer'"; cmd="/usr/bin/python3 $here/peers.py $peer"; pkg=python3-$peer ;;
    esac
    if eval "$have" >/dev/null 2>&1; then
        rc FLUSHDB >/dev/null
        rc CONFIG RESETSTAT >/dev/null
        line=$($cmd "$url" "$PN" "$W" 2>/dev/null) ||
            { echo "bench-redis: $peer failed: $line"; continue; }
        secs=$(echo "$line" | sed -n 's/.* \([0-9.]*\) s, .*/\1/p')
        cpj=$(awk -v c="$(commands)" -v n="$PN" 'BEGIN { printf "%.3f", c / n }')
        row "$peer" "$W" "$PN" "$secs" "$(rate "$PN" "$secs")" "$cpj"
    else
        echo "bench-redis: $peer left out (apt-get install $pkg)"
    fi
done

# the limit: the server alone, pipelined
rc DEL rb >/dev/null
rc XGROUP CREATE rb g '$' MKSTREAM >/dev/null
for cmd in "XADD rb * data 1" "XACK rb g 0-1"; do
    name=$(echo "$cmd" | cut -d' ' -f1)
    set -f # the * of XADD is no glob
    rps=$(redis-benchmark -p "$port" -n 200000 -P 64 -q $cmd 2>/dev/null | tr '\r' '\n' |
        sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1)
    set +f
    row "redis-benchmark $name" - 200000 - "${rps%.*}" 1
done

printf 'name,consumers,jobs,seconds,jobs_per_s,commands_per_job\n%s' "$rows" >"$out/redis.csv"
awk -F, 'NR > 1 { printf "%s{\"name\":\"%s\",\"consumers\":\"%s\",\"jobs\":\"%s\",\"seconds\":\"%s\",\"jobs_per_s\":\"%s\",\"commands_per_job\":\"%s\"}", (NR > 2 ? ",\n " : "[\n "), $1, $2, $3, $4, $5, $6 }
    END { print "\n]" }' "$out/redis.csv" >"$out/redis.json"
echo "bench-redis: wrote $out/redis.csv and $out/redis.json"
if command -v gnuplot >/dev/null 2>&1; then
    awk -F, 'NR > 1 && $1 !~ /^latency/ && $5 != "" {
        print $1 ($2 ~ /^[1-9]/ ? " (" $2 " consumer" ($2 > 1 ? "s" : "") ")" : "") "," $5 }' \
        "$out/redis.csv" >"$dir/plot.csv"
    gnuplot -e "csv='$dir/plot.csv'; out='$out/redis.png'; subtitle='$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $N jobs'" \
        "$(dirname "$0")/redis.gp" && echo "bench-redis: wrote $out/redis.png"
else
    echo "bench-redis: gnuplot not found (apt-get install gnuplot-nox): no plot"
fi
