#!/bin/sh
# bench/icount.sh BUILD_DIR: the pool's cost per task in instructions
# (wpool_icount under valgrind's callgrind; see bench/icount.c). Instruction
# counts are stable where times are not: use them to judge a change to the
# hot path before timing it. Skips with a message when valgrind is missing.
set -eu
build=${1:-build-release}
exe="$build/bench/wpool_icount"
if ! command -v valgrind >/dev/null 2>&1; then
    echo "bench-icount: skipped: valgrind is not installed (apt-get install -y valgrind)"
    exit 0
fi
[ -x "$exe" ] || { echo "bench-icount: $exe not built" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-8s %12s   %s\n' phase "instr/task" "what is counted"
for phase in submit batch worker; do
    out="$tmp/$phase.out"
    valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file="$out" \
        "$exe" "$phase" >"$tmp/$phase.log" 2>&1 || { cat "$tmp/$phase.log" >&2; exit 1; }
    tasks=$(sed -n 's/^tasks //p' "$tmp/$phase.log")
    total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p;s/^summary: *\([0-9]*\).*/\1/p' "$out" | head -n 1)
    case $phase in
    submit) what="one wp_submit into a paused pool (the submitting thread)" ;;
    batch) what="one task of a wp_submit_batch of 1024 (the submitting thread)" ;;
    worker) what="one queued task on the worker: claim, take, run, count" ;;
    esac
    awk -v t="$total" -v n="$tasks" -v p="$phase" -v w="$what" \
        'BEGIN { printf "%-8s %12.1f   %s\n", p, t / n, w }'
done
