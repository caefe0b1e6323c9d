#!/bin/bash
# bench/io/run.sh BUILD_DIR: `make bench-io`, tasks that block in the kernel.
# Writes BUILD_DIR/bench/io.{csv,json,txt}, io-samples.csv, io-windows.csv
# and the plot bench-io.png there (gnuplot).
#
# The task (bench/io/io.c, bench/io/go): A: poll() on a timerfd for 1 ms,
# then ~50 us of SHA-256 (the seed job repeated; the count calibrated once
# per program at the start and printed); B: one seed job (~100-190 ns); C: A
# and B alternating every 2 s for 12 s. One producer keeps at most 1024
# tasks queued. Rows, each (row, shape) in its own process:
#   wpool/fixed-N          wp_pool of N workers, N in 1,2,4,...,512
#   wpool/adaptive         workers = wp_cpu_count(), max_workers = 512, no hints
#   wpool/adaptive+hints   the same, wp_blocking_begin/end around the poll
#   Go/goroutine-per-task  Go 1.19, a goroutine per task (its runtime adapts)
#   Go/pool-2, Go/pool-42  the seed's Go pool: N goroutines over a channel
#   GThreadPool/42         GLib, max_threads 42, shared threads
#   thread-per-task        a detached pthread per task (1024 at most)
#   libuv/4                uv_queue_work, libuv's default 4 threads
# Every 10 ms each row records finished tasks and threads (wpool:
# stats.threads; peers: the process's threads); bench/io/analyze.awk makes
# the rates, the cold start (t90), C's 100 ms windows and the settle times.
# Shape idle (wpool/adaptive, +hints, fixed-2): CPU over 1 s, fresh and
# after 300 ms of A.
#
# Knobs (environment):
#   WPOOL_IO_SECONDS        seconds per A and B cell (3)
#   WPOOL_IO_C_SECONDS      seconds of C (12)
#   WPOOL_IO_PHASE_MS       C's phase (2000)
#   WPOOL_IO_SWEEP          fixed sizes (1,2,4,8,16,32,64,128,256,512)
#   WPOOL_IO_ROWS           comma list of row names (all)
#   WPOOL_IO_SHAPES         comma list of A,B,C,idle (all)
#   WPOOL_IO_WAIT_US        A's wait (1000)
#   WPOOL_IO_TARGET_US      A's hashing (50)
#   WPOOL_IO_INFLIGHT       tasks queued at most (1024)
#   WPOOL_IO_IDLE_TIMEOUT_MS  the elastic rows' idle_timeout_ns (library default, 5 s)
#   WPOOL_IO_DOCS=1         also copy the plot to docs/bench-io.png (quiet machine only)
# Full run: about 6-7 minutes on 2 CPUs.
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "$1" && pwd)
out=$build/bench
logs=$out/io-logs
mkdir -p "$out" "$logs"

secs=${WPOOL_IO_SECONDS:-3}
csecs=${WPOOL_IO_C_SECONDS:-12}
phase=${WPOOL_IO_PHASE_MS:-2000}
sweep=${WPOOL_IO_SWEEP:-1,2,4,8,16,32,64,128,256,512}
shapes=${WPOOL_IO_SHAPES:-A,B,C,idle}
wait_us=${WPOOL_IO_WAIT_US:-1000}
target_us=${WPOOL_IO_TARGET_US:-50}
inflight=${WPOOL_IO_INFLIGHT:-1024}
idle_to=${WPOOL_IO_IDLE_TIMEOUT_MS:-}
sample_ms=10
io=$out/wpool_io
go_io=$out/wpool_io_go
unset UV_THREADPOOL_SIZE

all_rows=""
for n in ${sweep//,/ }; do all_rows="$all_rows,wpool/fixed-$n"; done
all_rows="${all_rows#,},wpool/adaptive,wpool/adaptive+hints,Go/goroutine-per-task,Go/pool-2,Go/pool-42,GThreadPool/42,thread-per-task,libuv/4"
rows=${WPOOL_IO_ROWS:-$all_rows}
has() { case ",$1," in *",$2,"*) return 0 ;; esac; return 1; }

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
ncpu=$(nproc)
machine="$cpu; $ncpu CPUs; $(uname -sr)"
load_now() { cut -d' ' -f1 /proc/loadavg; }

[ -x "$io" ] || { echo "bench-io: $io not built"; exit 1; }
built=$("$io" --list)
if command -v go >/dev/null 2>&1; then
    (cd "$here/go" && GOPROXY=off GOFLAGS=-mod=mod GO111MODULE=on GOTOOLCHAIN=local \
        GOPATH="$out/gopath" GOCACHE="$out/gocache" go build -o "$go_io" .) ||
        { echo "bench-io: the Go program did not build: the Go rows are left out"; rm -f "$go_io"; }
else
    echo "bench-io: go not found (apt-get install golang-go): the Go rows are left out"
    rm -f "$go_io"
fi

# The hashing of A, calibrated once per program.
cal=$("$io" --calibrate --target-us "$target_us")
reps=$(echo "$cal" | sed -n 's/.*reps=\([0-9]*\).*/\1/p')
echo "bench-io: C: $cal"
go_reps=""
if [ -x "$go_io" ]; then
    gcal=$("$go_io" -calibrate -target-us "$target_us")
    go_reps=$(echo "$gcal" | sed -n 's/.*reps=\([0-9]*\).*/\1/p')
    echo "bench-io: Go: $gcal"
fi

# cmd_for ROW: the command line of a row, empty when it is not built.
cmd_for() {
    local common="--reps $reps --wait-us $wait_us --inflight $inflight --sample-ms $sample_ms"
    [ -n "$idle_to" ] && common="$common --idle-timeout-ms $idle_to"
    local gocommon="-reps $go_reps -wait-us $wait_us -inflight $inflight -sample-ms $sample_ms"
    case $1 in
    wpool/fixed-*) echo "$io --row wpool --workers ${1#wpool/fixed-} $common" ;;
    wpool/adaptive) echo "$io --row adaptive --max-workers 512 $common" ;;
    wpool/adaptive+hints) echo "$io --row hints --max-workers 512 $common" ;;
    thread-per-task) echo "$io --row thread $common" ;;
    GThreadPool/42) echo "$built" | grep -qx glib && echo "$io --row glib --workers 42 $common" ;;
    libuv/4) echo "$built" | grep -qx uv && echo "$io --row uv $common" ;;
    Go/goroutine-per-task) [ -x "$go_io" ] && echo "$go_io -mode goroutine $gocommon" ;;
    Go/pool-*) [ -x "$go_io" ] && echo "$go_io -mode pool -workers ${1#Go/pool-} $gocommon" ;;
    esac
    return 0
}
for r in ${rows//,/ }; do
    if [ -z "$(cmd_for "$r")" ]; then
        case $r in
        GThreadPool/*) echo "bench-io: $r left out (apt-get install libglib2.0-dev pkg-config, then rebuild)" ;;
        libuv/*) echo "bench-io: $r left out (apt-get install libuv1-dev pkg-config, then rebuild)" ;;
        *) echo "bench-io: $r left out (not built)" ;;
        esac
    fi
done

results=$out/io-results.txt samples=$out/io-samples.csv
: >"$results"
echo "name,shape,t_ms,jobs,threads" >"$samples"
failed=0
t_start=$(date +%s)
for s in A B C idle; do
    has "$shapes" "$s" || continue
    d=$secs
    [ "$s" = C ] && d=$csecs
    for r in ${rows//,/ }; do
        cmd=$(cmd_for "$r")
        [ -n "$cmd" ] || continue
        if [ "$s" = idle ]; then
            case $r in wpool/adaptive | wpool/adaptive+hints | wpool/fixed-2) ;; *) continue ;; esac
        fi
        case $cmd in
        "$go_io"*) cmd="$cmd -shape $s -seconds $d -phase-ms $phase" ;;
        *) cmd="$cmd --shape $s --seconds $d --phase-ms $phase" ;;
        esac
        printf '  %-5s %-24s' "$s" "$r"
        log=$logs/$(echo "$r-$s" | tr '/+' '__').log
        rc=0
        timeout -k 5 $((${d%.*} + 60)) $cmd >"$log" 2>&1 || rc=$?
        line=$(grep '^RESULT ' "$log" || true)
        if [ -z "$line" ]; then
            line="RESULT status=FAILED:exit-$rc"
            failed=1
        elif [ $rc != 0 ]; then failed=1; fi
        echo "$r,$s,$line load1=$(load_now)" >>"$results"
        awk -v name="$r" -v s="$s" '$1 == "SAMPLE" {
            for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            print name "," s "," f["t_ms"] "," f["jobs"] "," f["threads"] }' "$log" >>"$samples"
        echo "$line" | awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            if (f["idle_ms"] != "") printf " idle %s ms (fresh %s ms)", f["idle_ms"], f["idle_fresh_ms"]
            else if (f["seconds"] > 0) printf " %9.0f jobs/s", f["completed"] / f["seconds"]
            printf " %s\n", f["status"] }'
    done
done

csv=$out/io.csv txt=$out/io.txt wcsv=$out/io-windows.csv
awk -f "$here/analyze.awk" -v phase_ms="$phase" -v windows="$wcsv" \
    "$results" "$samples" >"$csv"

# ----------------------------------------------------------------- table --
{
    echo "bench-io: a task = poll() on a timerfd for $wait_us us, then $reps seed jobs (C; Go: ${go_reps:-none}) of SHA-256 (~$target_us us); B: one seed job"
    echo "A and B: ${secs} s per cell; C: A/B alternating every $phase ms for ${csecs} s; at most $inflight tasks queued"
    echo "machine: $machine; load $(load_now)"
    awk -F, -v ncpu="$ncpu" -v idle_to="${idle_to:-5000}" '
    NR == 1 { next }
    { k = $1 "," $2; name[NR] = $1; sh[NR] = $2; n = NR; for (i = 1; i <= NF; i++) v[k, i] = $i
      if ($26 == "ok" && $3 == "fixed" && $2 == "A" && $12 > bestA) { bestA = $12; bestAn = $1 }
      if ($26 == "ok" && $1 == "wpool/fixed-2" && $2 == "B") fix2B = $12 }
    function x(a, b) { return b > 0 ? sprintf("%.2fx", a / b) : "-" }
    function pf(ok) { return ok ? "PASS" : "MISS" }
    END {
        printf "\nA (1 ms wait + hashing): best fixed %s\n", bestAn
        printf "%-24s %8s %11s %8s %8s %8s %8s\n", "name", "workers", "jobs/s", "vs best", "t90 ms", "threads", "max cpu"
        for (i = 2; i <= n; i++) if (sh[i] == "A") { k = name[i] ",A"
            if (v[k, 26] != "ok") { printf "%-24s %s\n", name[i], v[k, 26]; continue }
            printf "%-24s %8s %11.0f %8s %8s %8s %8s\n", name[i], v[k, 4] (v[k, 5] != v[k, 4] ? "/" v[k, 5] : ""),
                   v[k, 12], x(v[k, 12], bestA), v[k, 13], v[k, 15], v[k, 14] }
        printf "(jobs/s: the second half of the run; t90: when the last 20 ms first ran at >= 90%% of that;\n"
        printf " threads: most seen, stats.threads for wpool, the whole process for peers; max cpu: most\n"
        printf " tasks inside their CPU part at once, a preempted one included)\n"
        printf "\nB (one seed job, CPU only): vs wpool/fixed-2\n"
        printf "%-24s %8s %11s %8s %8s\n", "name", "workers", "jobs/s", "vs fix-2", "max cpu"
        for (i = 2; i <= n; i++) if (sh[i] == "B") { k = name[i] ",B"
            if (v[k, 26] != "ok") { printf "%-24s %s\n", name[i], v[k, 26]; continue }
            printf "%-24s %8s %11.0f %8s %8s\n", name[i], v[k, 4] (v[k, 5] != v[k, 4] ? "/" v[k, 5] : ""),
                   v[k, 12], x(v[k, 12], fix2B), v[k, 14] }
        printf "\nC (A/B alternating): phase means from 200 ms after each switch; settle: ms after each switch to a 100 ms window at >= 0.9x the best fixed pool of that phase\n"
        printf "%-24s %11s %11s %9s %-26s %8s\n", "name", "A jobs/s", "B jobs/s", "settle", "per switch", "back ms"
        for (i = 2; i <= n; i++) if (sh[i] == "C") { k = name[i] ",C"
            if (v[k, 26] != "ok") { printf "%-24s %s\n", name[i], v[k, 26]; continue }
            printf "%-24s %11.0f %11.0f %9s %-26s %8s\n", name[i], v[k, 17], v[k, 18],
                   v[k, 19] == "-1" ? "never" : v[k, 19], v[k, 20], v[k, 21] == "" ? "-" : v[k, 21] }
        printf "\nidle: CPU of the whole process over 1 s (getrusage), fresh and after 300 ms of A\n"
        for (i = 2; i <= n; i++) if (sh[i] == "idle") { k = name[i] ",idle"
            printf "%-24s fresh %7.3f ms   after load %7.3f ms (%s threads)\n", name[i], v[k, 22], v[k, 23], v[k, 24] }
        printf "\ntargets (ratios from this run):\n"
        a = "wpool/adaptive"; h = a "+hints"
        if ((a ",A", 26) in v && v[a ",A", 26] == "ok") {
            printf "  A: adaptive %.2fx best fixed (>= 0.9): %s\n", v[a ",A", 12] / bestA, pf(v[a ",A", 12] >= 0.9 * bestA)
            g = "Go/goroutine-per-task,A"
            if ((g, 12) in v && v[g, 12] > 0)
                printf "  A: adaptive %.2fx Go goroutine-per-task (>= 1): %s\n", v[a ",A", 12] / v[g, 12], pf(v[a ",A", 12] >= v[g, 12])
            printf "  A: adaptive cold start to 90%% in %s ms (<= 100): %s\n", v[a ",A", 13], pf(v[a ",A", 13] >= 0 && v[a ",A", 13] <= 100)
        }
        if ((a ",B", 26) in v && v[a ",B", 26] == "ok" && fix2B > 0) {
            printf "  B: adaptive %.3fx fixed-2 (>= 0.97): %s\n", v[a ",B", 12] / fix2B, pf(v[a ",B", 12] >= 0.97 * fix2B)
            printf "  B: adaptive max tasks in their CPU part at once %s (<= %s): %s\n", v[a ",B", 14], v[a ",B", 4], pf(v[a ",B", 14] <= v[a ",B", 4])
        }
        if ((a ",C", 26) in v && v[a ",C", 26] == "ok") {
            printf "  C: adaptive settles within %s ms of each switch (<= 200): %s\n", v[a ",C", 19], pf(v[a ",C", 19] >= 0 && v[a ",C", 19] <= 200)
            printf "  C: adaptive threads back to workers %s ms after the end of load (<= idle_timeout %d + 100): %s\n", v[a ",C", 21], idle_to, pf(v[a ",C", 21] != "" && v[a ",C", 21] <= idle_to + 100)
        }
        if ((a ",idle", 26) in v)
            printf "  idle: adaptive %s ms over 1 s after load (< 1): %s\n", v[a ",idle", 23], pf(v[a ",idle", 23] < 1)
    }' "$csv"
} | tee "$txt"
echo "wrote $csv"
echo "wrote $wcsv"
echo "wrote $samples"
echo "wrote $txt"

awk -F, -v machine="$machine" \
    -v config="{\"seconds\": $secs, \"c_seconds\": $csecs, \"phase_ms\": $phase, \"wait_us\": $wait_us, \"reps\": $reps, \"go_reps\": ${go_reps:-0}, \"inflight\": $inflight, \"sample_ms\": $sample_ms}" '
    function q(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
    NR == 1 { for (i = 1; i <= NF; i++) k[i] = $i; n = NF; next }
    { row = ""
      for (i = 1; i <= n; i++) {
          v = $i
          if (v == "") v = "null"
          else if (v !~ /^-?[0-9]+(\.[0-9]+)?$/) v = q(v)
          row = row (i > 1 ? ", " : "") q(k[i]) ": " v
      }
      rows = rows (NR > 2 ? ",\n" : "") "    {" row "}" }
    END { printf "{\n  \"machine\": %s,\n  \"config\": %s,\n  \"rows\": [\n%s\n  ]\n}\n",
                 q(machine), config, rows }' "$csv" >"$out/io.json"
echo "wrote $out/io.json"

# ------------------------------------------------------------------ plot --
if command -v gnuplot >/dev/null 2>&1; then
    png=$out/bench-io.png
    if gnuplot -e "csv='$csv'; samples='$samples'; out='$png'; phase=$phase; subtitle='$cpu, $ncpu CPUs, $(date -u +%Y-%m-%d)'" \
        "$here/io.gp"; then
        echo "wrote $png"
        if [ "${WPOOL_IO_DOCS:-0}" = 1 ]; then
            cp "$png" "$root/docs/bench-io.png" && echo "wrote docs/bench-io.png"
        fi
    else
        echo "bench-io: gnuplot failed"
    fi
else
    echo "bench-io: gnuplot not found (apt-get install gnuplot-nox): no plot"
fi
echo "bench-io: done in $(($(date +%s) - t_start)) s"
exit $failed
