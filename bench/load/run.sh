#!/bin/bash
# bench/load/run.sh BUILD_DIR: `make bench-load`, wpool under load. Writes
# BUILD_DIR/bench/{load,latency}.{csv,json,txt}, latency-windows.csv and the
# plots bench-load.png and bench-latency.png there (gnuplot).
#
# Closed loop: wrk (bench/load/wrk.lua: one request mix, its latency
# percentiles printed by done()) against each server at each connection
# count, with and without wait=2 (2 ms blocked in the request, a stand-in
# for a database call). A fresh server per cell, so its peak RSS (VmHWM,
# read from /proc just before it is stopped) is that cell's alone:
#   httpd/pool       examples/httpd --mode pool: the work on a wpool, shed
#                    with 503 when its queue is full
#   httpd/inline     the same server doing the work on its loop thread
#   httpd/thread     the same server starting a thread per request
#   Go/net-http      Go's net/http, the work in the handler (a goroutine per
#                    request; bench/load/go/httpd --mode goroutine)
#   Go/WorkerPool    net/http handlers passing jobs over a channel to the
#                    seed's pool of goroutines (--mode pool)
# Open loop: bench/load/openloop.c (and its Go twin bench/load/go/openloop)
# submit jobs of seed jobs at Poisson arrival rates of a share of the
# capacity measured first in this run (C rows: of WorkerPool/block's, Go
# rows: of Go/WorkerPool's; Go's SHA-256 is slower), each (row, load) in its
# own process.
#
# Knobs (environment):
#   WPOOL_LOAD_SECONDS      seconds per closed-loop cell (5)
#   WPOOL_LOAD_CONNS        connection counts (16,256,2048)
#   WPOOL_LOAD_WAITS        wait= values, ms (0,2)
#   WPOOL_LOAD_WORK         work= rounds per request (250: the example's
#                           default, ~20 us)
#   WPOOL_LOAD_QUEUE        queue of httpd --mode pool and the Go pool (1024)
#   WPOOL_LOAD_SERVERS      comma list of the servers above (all)
#   WPOOL_LOAD_POOL_FLAGS   more flags for httpd --mode pool (none)
#   WPOOL_LOAD_TIMEOUT      wrk's --timeout, s (10)
#   WPOOL_LOAD_PARTS        closed,open (both)
#   WPOOL_OPENLOOP_SECONDS  seconds per open-loop cell (5), and per window 1
#   WPOOL_OPENLOOP_LOADS    % of capacity (50,90,110,150)
#   WPOOL_OPENLOOP_ROWS     rows, NAME or NAME@QUEUE (WorkerPool/reject,
#                           WorkerPool/reject@64, WorkerPool/block,
#                           UnboundedThreads, CThreadPool, Go/GoroutinePerJob,
#                           Go/WorkerPool)
#   WPOOL_OPENLOOP_WORK     seed jobs per job (100: ~12-20 us)
#   WPOOL_OPENLOOP_QUEUE    queue of the wpool rows and the Go pool (1024)
#   WPOOL_LOAD_DOCS=1       also copy the plots to docs/bench-load.png and
#                           docs/bench-latency.png (from a quiet machine only)
#
# Every server listens on 127.0.0.1 on a free port and is stopped by pid, on
# failure too (trap); every wait is bounded in count and time.
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "$1" && pwd)
out=$build/bench
logs=$out/load-logs
mkdir -p "$out" "$logs"

secs=${WPOOL_LOAD_SECONDS:-5}
conns_list=${WPOOL_LOAD_CONNS:-16,256,2048}
waits_list=${WPOOL_LOAD_WAITS:-0,2}
work=${WPOOL_LOAD_WORK:-250}
queue=${WPOOL_LOAD_QUEUE:-1024}
servers=${WPOOL_LOAD_SERVERS:-httpd/pool,httpd/inline,httpd/thread,Go/net-http,Go/WorkerPool}
pool_flags=${WPOOL_LOAD_POOL_FLAGS:-}
wrk_timeout=${WPOOL_LOAD_TIMEOUT:-10}
parts=${WPOOL_LOAD_PARTS:-closed,open}
ol_secs=${WPOOL_OPENLOOP_SECONDS:-5}
ol_loads=${WPOOL_OPENLOOP_LOADS:-50,90,110,150}
ol_rows=${WPOOL_OPENLOOP_ROWS:-WorkerPool/reject,WorkerPool/reject@64,WorkerPool/block,UnboundedThreads,CThreadPool,Go/GoroutinePerJob,Go/WorkerPool}
ol_work=${WPOOL_OPENLOOP_WORK:-100}
ol_queue=${WPOOL_OPENLOOP_QUEUE:-1024}

httpd=$build/examples/httpd
openloop=$out/wpool_openloop
go_httpd=$out/load_go_httpd
go_openloop=$out/load_go_openloop
failed=0

# ------------------------------------------------------------- cleanup --
# Every server and client started is in $pids until it is stopped or has
# ended; the trap stops what is left, however the script ends. Clients run
# in the background too (run_bounded), so that a signal is handled at once.
pids=""
forget() { pids=$(echo "$pids" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ' || true); }
stop_pid() { # stop_pid PID: SIGTERM, up to 10 s, then SIGKILL; reaps it
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do
        [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] ||
            break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}
cleanup() {
    for p in $pids; do stop_pid "$p"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run_bounded() { # run_bounded LIMIT_S OUT ERR CMD...: CMD's status, killed after LIMIT_S
    local limit=$1 o=$2 e=$3 pid rc=0
    shift 3
    timeout -k 5 "$limit" "$@" >"$o" 2>>"$e" &
    pid=$!
    pids="$pids $pid"
    wait "$pid" || rc=$?
    forget "$pid"
    return $rc
}

has() { case ",$1," in *",$2,"*) return 0 ;; esac; return 1; }

# ------------------------------------------------------------- machine --
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
ncpu=$(nproc)
machine="$cpu; $ncpu CPUs; $(uname -sr)"
load_now() { cut -d' ' -f1 /proc/loadavg; }

# JSON from a CSV: csv2json CSV JSON CONFIG, CONFIG a JSON object's text.
csv2json() {
    awk -F, -v machine="$machine" -v config="$3" '
        function q(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
        NR == 1 { for (i = 1; i <= NF; i++) k[i] = $i; n = NF; next }
        { row = ""
          for (i = 1; i <= n; i++) {
              v = $i
              if (v !~ /^-?[0-9]+(\.[0-9]+)?$/) v = q(v)
              row = row (i > 1 ? ", " : "") q(k[i]) ": " v
          }
          rows = rows (NR > 2 ? ",\n" : "") "    {" row "}" }
        END { printf "{\n  \"machine\": %s,\n  \"config\": %s,\n  \"rows\": [\n%s\n  ]\n}\n",
                     q(machine), config, rows }' "$1" >"$2"
    echo "wrote $2"
}

# -------------------------------------------------------------- Go side --
gobuild() { # gobuild PKG OUT: bench/load/go/PKG, offline, standard library only
    command -v go >/dev/null 2>&1 || return 1
    (cd "$here/go" && GOPROXY=off GOFLAGS=-mod=mod GO111MODULE=on GOTOOLCHAIN=local \
        GOPATH="$out/gopath" GOCACHE="$out/gocache" go build -o "$2" "./$1") ||
        { echo "bench-load: the Go program $1 did not build: its rows are left out"; return 1; }
}
command -v go >/dev/null 2>&1 ||
    echo "bench-load: go not found (apt-get install golang-go): the Go rows are left out"

# =========================================================== closed loop --
closed_loop() {
    if ! command -v wrk >/dev/null 2>&1; then
        echo "bench-load: wrk not found (apt-get install wrk): closed loop skipped"
        return
    fi
    [ -x "$httpd" ] ||
        echo "bench-load: $httpd not built (libevent-dev missing?): its rows are left out"
    gobuild httpd "$go_httpd" || rm -f "$go_httpd"

    # 2048 connections need as many descriptors in wrk and in the server.
    local need=0 c
    for c in ${conns_list//,/ }; do [ "$c" -gt "$need" ] && need=$c; done
    ulimit -n $((need + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    local nofile
    nofile=$(ulimit -n)

    # The answer to /hash/7?work=3, each server's checked against it.
    local expect=""
    command -v python3 >/dev/null 2>&1 ||
        echo "bench-load: no python3: the servers' digests are not checked"
    expect=$(python3 -c 'import hashlib
d = hashlib.sha256(b"payload-7").digest()
for _ in range(2): d = hashlib.sha256(d).digest()
print(d.hex())' 2>/dev/null || true)

    local csv=$out/load.csv txt=$out/load.txt
    echo "name,conns,wait_ms,work,seconds,requests,rps,ok_rps,p50_us,p90_us,p99_us,max_us,non2xx,non2xx_share,connect_errors,read_errors,write_errors,timeouts,peak_rss_kb,server_p99_us,load1,status" >"$csv"
    local cells=0
    for s in ${servers//,/ }; do for c in ${conns_list//,/ }; do for w in ${waits_list//,/ }; do
        cells=$((cells + 1))
    done; done; done
    echo "bench-load: closed loop, $cells cells of ${secs} s (wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), $ncpu CPUs, nofile $nofile)"

    local s c w cmd log pid port line hwm srvp99 status k=0
    for s in ${servers//,/ }; do
        case $s in
        httpd/pool) cmd="$httpd --port 0 --mode pool --queue $queue $pool_flags" ;;
        httpd/inline) cmd="$httpd --port 0 --mode inline" ;;
        httpd/thread) cmd="$httpd --port 0 --mode thread" ;;
        Go/net-http) cmd="$go_httpd --port 0 --mode goroutine" ;;
        Go/WorkerPool) cmd="$go_httpd --port 0 --mode pool --queue $queue" ;;
        *) echo "bench-load: no server $s"; failed=1; continue ;;
        esac
        if [ ! -x "${cmd%% *}" ]; then
            echo "$s,,,,,,,,,,,,,,,,,,,,,FAILED: not built" >>"$csv"
            continue
        fi
        for c in ${conns_list//,/ }; do for w in ${waits_list//,/ }; do
            k=$((k + 1))
            printf '  [%d/%d] %-14s %5s conns wait=%s\n' "$k" "$cells" "$s" "$c" "$w"
            if [ "$nofile" -lt $((c + 64)) ]; then
                echo "$s,$c,$w,$work,$secs,,,,,,,,,,,,,,,,,FAILED: ulimit -n $nofile" >>"$csv"
                failed=1
                continue
            fi
            log=$logs/$(echo "$s" | tr / _)-c$c-w$w.log
            $cmd >"$log" 2>&1 &
            pid=$!
            pids="$pids $pid"
            port=""
            for i in $(seq 100); do # up to 5 s to listen
                port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
                [ -n "$port" ] && break
                [ -d "/proc/$pid" ] || break
                sleep 0.05
            done
            status=ok
            if [ -z "$port" ]; then
                status="FAILED: server did not start (see $log)"
            elif [ -n "$expect" ] &&
                [ "$(curl -s --max-time 5 "http://127.0.0.1:$port/hash/7?work=3")" != "$expect" ]; then
                status="FAILED: wrong digest"
            fi
            line=""
            if [ "$status" = ok ]; then
                run_bounded $((secs + wrk_timeout + 30)) "$log.wrk" "$log" wrk -t"$ncpu" \
                    -c"$c" -d"${secs}s" --timeout "${wrk_timeout}s" -s "$here/wrk.lua" \
                    "http://127.0.0.1:$port" -- "$work" "$w" || true
                cat "$log.wrk" >>"$log"
                line=$(grep '^WRK ' "$log.wrk" || true)
                rm -f "$log.wrk"
                [ -n "$line" ] || status="FAILED: no result from wrk (see $log)"
            fi
            hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
            stop_pid "$pid"
            # httpd prints its own sojourn times on SIGTERM: the 200 row's p99
            srvp99=$(awk '/^sojourn/ {on = 1} on && $1 == 200 {print $4}' "$log")
            [ "$status" = ok ] || failed=1
            echo "$line" | awk -v name="$s" -v c="$c" -v w="$w" -v work="$work" -v secs="$secs" \
                -v hwm="$hwm" -v sp="$srvp99" -v load="$(load_now)" -v status="$status" '
                { for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
                END {
                    d = f["duration_us"] / 1e6
                    if (status != "ok" || d <= 0) {
                        printf "%s,%s,%s,%s,%s,,,,,,,,,,,,,,%s,,%s,%s\n", name, c, w, work, secs,
                               hwm, load, status; exit }
                    printf "%s,%s,%s,%s,%s,%d,%.1f,%.1f,%d,%d,%d,%d,%d,%.4f,%d,%d,%d,%d,%s,%s,%s,%s\n",
                        name, c, w, work, secs, f["requests"], f["requests"] / d,
                        (f["requests"] - f["non2xx"]) / d, f["p50_us"], f["p90_us"], f["p99_us"],
                        f["max_us"], f["non2xx"], f["requests"] ? f["non2xx"] / f["requests"] : 0,
                        f["connect"], f["read"], f["write"], f["timeout"], hwm, sp, load, status
                }' >>"$csv"
        done; done
    done

    {
        echo "bench-load, closed loop: wrk, ${secs} s per cell, GET /hash/N?work=$work[&wait=MS], a fresh server per cell"
        echo "machine: $machine; load $(load_now)"
        echo
        awk -F, 'NR == 1 { printf "%-16s %6s %5s %10s %10s %9s %9s %9s %7s %7s %9s %11s\n",
                           "name", "conns", "wait", "req/s", "2xx/s", "p50 ms", "p90 ms",
                           "p99 ms", "non-2xx", "errors", "peak RSS", "200 p99 ms"; next }
                 $22 != "ok" { printf "%-16s %6s %5s %s\n", $1, $2, $3, $22; next }
                 { printf "%-16s %6d %5s %10.0f %10.0f %9.2f %9.2f %9.2f %6.1f%% %7d %6.1f MB %11s\n",
                          $1, $2, $3, $7, $8, $9 / 1000, $10 / 1000, $11 / 1000, 100 * $14,
                          $15 + $16 + $17 + $18, $19 / 1024,
                          $20 == "" ? "-" : sprintf("%.2f", $20 / 1000) }' "$csv"
        echo "(req/s: every answer; 2xx/s: the successful ones; latencies: wrk's, of the answers"
        echo " received; errors: wrk's connect, read, write errors and timeouts (${wrk_timeout} s);"
        echo " peak RSS: the server's VmHWM; 200 p99: httpd's own count, request read to reply"
        echo " handed to the connection, of its 200 answers only)"
    } | tee "$txt"
    echo "wrote $csv"
    echo "wrote $txt"
    csv2json "$csv" "$out/load.json" "{\"seconds\": $secs, \"work\": $work, \"queue\": $queue, \"wrk_threads\": $ncpu, \"wrk_timeout_s\": $wrk_timeout}"
    plot load "$csv"
}

# ============================================================= open loop --
open_loop() {
    if [ ! -x "$openloop" ]; then
        echo "bench-load: $openloop not built: open loop skipped"
        failed=1
        return
    fi
    local go_ok=0
    gobuild openloop "$go_openloop" && go_ok=1
    local drain=$ol_secs cap_c cap_go=""
    run_bounded 60 "$logs/capacity.out" "$logs/openloop.err" "$openloop" --capacity \
        --seconds 2 --work "$ol_work" --queue "$ol_queue" || true
    cap_c=$(sed -n 's/^CAPACITY jobs_per_s=\([0-9]*\).*/\1/p' "$logs/capacity.out")
    if [ -z "$cap_c" ] || [ "$cap_c" -le 0 ]; then
        echo "bench-load: measuring the pool's capacity failed: open loop skipped"
        failed=1
        return
    fi
    if [ "$go_ok" = 1 ]; then
        run_bounded 60 "$logs/capacity.out" "$logs/openloop.err" "$go_openloop" --capacity \
            --seconds 2 --work "$ol_work" --queue "$ol_queue" || true
        cap_go=$(sed -n 's/^CAPACITY jobs_per_s=\([0-9]*\).*/\1/p' "$logs/capacity.out")
    fi
    echo "bench-load: open loop, capacity with the generator flat out: WorkerPool/block" \
        "$cap_c jobs/s${cap_go:+, Go/WorkerPool $cap_go jobs/s}; ${ol_secs} s per cell"

    local csv=$out/latency.csv wcsv=$out/latency-windows.csv txt=$out/latency.txt
    echo "name,load_pct,rate,capacity,work,threads,queue,seconds,scheduled,admitted,shed,shed_share,unsent,undrained,lower_bound,p50_us,p99_us,p999_us,max_us,lag_p99_us,peak_rss_kb,stopped,load1,status" >"$csv"
    echo "name,load_pct,window,t_s,count,p50_us,p99_us,rss_kb" >"$wcsv"
    local r name q prog cap pct rate res status
    for r in ${ol_rows//,/ }; do
        name=${r%@*}
        q=$ol_queue
        [ "$name" != "$r" ] && q=${r#*@} && name="$name/q=$q"
        case $r in
        Go/*) prog=$go_openloop cap=$cap_go ;;
        *) prog=$openloop cap=$cap_c ;;
        esac
        if [ -z "$cap" ] || [ ! -x "$prog" ] ||
            ! "$prog" --list 2>/dev/null | grep -qx "${r%@*}"; then
            echo "bench-load: open-loop row $name left out (not built)"
            continue
        fi
        for pct in ${ol_loads//,/ }; do
            rate=$((cap * pct / 100))
            printf '  %-24s %4s%% = %8s jobs/s\n' "$name" "$pct" "$rate"
            status=ok
            : >"$logs/openloop.err"
            run_bounded $((ol_secs + drain + 60)) "$logs/openloop.out" "$logs/openloop.err" \
                "$prog" --row "${r%@*}" --rate "$rate" --seconds "$ol_secs" --drain "$drain" \
                --work "$ol_work" --queue "$q" ||
                status="FAILED: exit $? ($(head -c 200 "$logs/openloop.err" | tr ',\n' '; '))"
            res=$(cat "$logs/openloop.out")
            echo "$res" | grep -q '^RESULT ' || { [ "$status" != ok ] || status="FAILED: no result"; }
            [ "$status" = ok ] || failed=1
            echo "$res" | awk -v name="$name" -v pct="$pct" -v cap="$cap" -v load="$(load_now)" \
                -v status="$status" -v wcsv="$wcsv" '
                { delete f; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
                $1 == "RESULT" {
                    lb = f["unsent"] + f["undrained"] > 0
                    printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%.4f,%s,%s,%d,%s,%s,%s,%s,%s,%s,%s,%s,%s\n",
                        name, pct, f["rate"], cap, f["work"], f["threads"], f["queue"],
                        f["seconds"], f["scheduled"], f["admitted"], f["shed"],
                        f["scheduled"] ? f["shed"] / f["scheduled"] : 0, f["unsent"],
                        f["undrained"], lb, f["p50_us"], f["p99_us"], f["p999_us"], f["max_us"],
                        f["lag_p99_us"], f["hwm_kb"], f["stopped"], load, status
                    done = 1 }
                $1 == "WINDOW" {
                    printf "%s,%s,%s,%s,%s,%s,%s,%s\n", name, pct, f["i"], f["t_s"], f["count"],
                           f["p50_us"], f["p99_us"], f["rss_kb"] >> wcsv }
                END { if (!done) printf "%s,%s,,%s,,,,,,,,,,,,,,,,,,,%s,%s\n", name, pct, cap,
                                        load, status }' >>"$csv"
        done
    done

    local top=${ol_loads##*,}
    {
        echo "bench-load, open loop: Poisson arrivals for ${ol_secs} s per cell, a job = $ol_work seed jobs"
        echo "capacity (jobs/s, generator flat out): WorkerPool/block $cap_c${cap_go:+, Go/WorkerPool $cap_go}; rates are a share of the row's family's"
        echo "machine: $machine; load $(load_now)"
        echo
        awk -F, 'NR == 1 { printf "%-24s %5s %9s %7s %6s %8s %10s %10s %10s %9s %10s %s\n", "name",
                           "load", "jobs/s", "threads", "shed", "late", "p50 us", "p99 us",
                           "p99.9 us", "lag p99", "peak RSS", ""; next }
                 $24 != "ok" { printf "%-24s %4s%% %s\n", $1, $2, $24; next }
                 { printf "%-24s %4s%% %9d %7s %5.1f%% %8d %10.0f %10.0f %10.0f %9.0f %7.1f MB %s%s\n",
                          $1, $2, $3, $6 == 0 ? "per job" : $6, 100 * $12, $13 + $14, $16, $17,
                          $18, $20, $21 / 1024, $15 ? " (>=: late jobs)" : "",
                          $22 != "no" ? " (stopped: " $22 ")" : "" }' "$csv"
        echo "(sojourn from each job's scheduled arrival to its end; shed: refused by a full queue;"
        echo " late: arrivals not submitted 0.1 s after the end, and jobs unfinished ${drain} s after"
        echo " it, counted with a lower bound of their sojourn; lag p99: the generator's own delay)"
        echo
        echo "per 1 s window of arrival (p99 us / largest VmRSS MB), at the highest load:"
        awk -F, -v top="$top" 'NR > 1 && $2 == top {
                 if (!($1 in seen)) { order[++n] = $1; seen[$1] = 1 }
                 cell[$1] = cell[$1] sprintf("  %9.0f/%5.1f", $7, $8 / 1024) }
             END { for (i = 1; i <= n; i++) printf "%-24s%s\n", order[i], cell[order[i]] }' "$wcsv"
    } | tee "$txt"
    echo "wrote $csv"
    echo "wrote $wcsv"
    echo "wrote $txt"
    csv2json "$csv" "$out/latency.json" "{\"seconds\": $ol_secs, \"work\": $ol_work, \"queue\": $ol_queue, \"capacity\": $cap_c${cap_go:+, \"capacity_go\": $cap_go}}"
    plot latency "$csv" "$wcsv" "$top"
}

# ----------------------------------------------------------------- plots --
plot() { # plot load CSV | plot latency CSV WINDOWS_CSV TOP_LOAD
    if ! command -v gnuplot >/dev/null 2>&1; then
        echo "bench-load: gnuplot not found (apt-get install gnuplot-nox): no plot"
        return
    fi
    local png=$out/bench-$1.png
    local sub="$cpu, $ncpu CPUs, $(date -u +%Y-%m-%d)"
    if [ "$1" = load ]; then
        gnuplot -e "csv='$2'; out='$png'; subtitle='$sub'" "$here/load.gp"
    else
        gnuplot -e "csv='$2'; wcsv='$3'; top='$4'; out='$png'; subtitle='$sub'" "$here/latency.gp"
    fi && echo "wrote $png" || { echo "bench-load: gnuplot failed"; return; }
    if [ "${WPOOL_LOAD_DOCS:-0}" = 1 ]; then
        cp "$png" "$root/docs/bench-$1.png" && echo "wrote docs/bench-$1.png"
    fi
}

t_start=$(date +%s)
if has "$parts" closed; then closed_loop; fi
if has "$parts" open; then open_loop; fi
echo "bench-load: done in $(($(date +%s) - t_start)) s"
exit $failed
