#!/bin/sh
# Runs every unit test program and example of build dir $1 under valgrind
# memcheck; fails on any error or leak (definite, indirect or possible).
set -u
dir=${1:-build}
if ! command -v valgrind >/dev/null 2>&1; then
    echo "memcheck skipped: valgrind is not installed (apt-get install -y valgrind)"
    exit 0
fi
export WPOOL_TEST_SMALL=1
fail=0 n=0
for t in "$dir"/tests/test_* "$dir"/examples/*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    case "$t" in *test_fault*|*.cmake|*CMakeFiles*) continue ;; esac
    n=$((n + 1))
    log=$(mktemp)
    vg="valgrind -q --error-exitcode=99 --leak-check=full
        --show-leak-kinds=definite,indirect,possible
        --errors-for-leak-kinds=definite,indirect,possible --fair-sched=yes"
    if [ "${t##*/}" = httpd ]; then # a server: its test script drives it (77: skipped)
        HTTPD_WRAP="$vg" sh "$(dirname "$0")/httpd/run.sh" "$t" >"$log" 2>&1
    else
        $vg "$t" >"$log" 2>&1
    fi
    rc=$?
    if [ $rc -eq 0 ] || [ $rc -eq 77 ]; then
        echo "memcheck ok   $t"
    else
        echo "memcheck FAIL $t"; cat "$log"; fail=$((fail + 1))
    fi
    rm -f "$log"
done
echo "memcheck: $((n - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
