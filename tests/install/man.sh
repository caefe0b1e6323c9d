#!/bin/sh
# Checks the man pages as `cmake --install` puts them, from the build in $1:
#   - every symbol that an installed shared library exports (nm -D) has a
#     page in man3, a file or a link (and, checked first, a missing page
#     does make this check fail);
#   - every name a page's NAME line lists is exported: no page documents a
#     function that does not exist;
#   - every man3 page's SYNOPSIS declares each of its names, and every
#     SYNOPSIS and EXAMPLE compiles as C against the installed headers;
#   - groff -ww reports no warning and man -l renders each page (wpool-redis(1)
#     too, where the CLI is built).
set -eu
build=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
man3=$(find "$prefix" -type d -name man3 | head -n 1)
man7=$(dirname "$man3")/man7
man1=$(dirname "$man3")/man1
test -d "$man3" && test -d "$man7"
cc=${CC:-cc}
failed=0
fail() {
    echo "man: $*" >&2
    failed=$((failed + 1))
}

# The text of a page, plain or gzipped.
page() {
    case $1 in
    *.gz) gzip -dc "$1" ;;
    *) cat "$1" ;;
    esac
}

# C from the first .nf/.fi or .EX/.EE block of section $2 of a page: font
# escapes dropped, \- \e \(dq \& undone, .B/.BI/... arguments joined.
extract() {
    page "$1" | awk -v want="$2" '
    function unesc(s) {
        gsub(/\\f(\(..|\[[^]]*\]|.)/, "", s)
        gsub(/\\-/, "-", s)
        gsub(/\\\(dq/, "\"", s)
        gsub(/\\&/, "", s)
        gsub(/\\e/, "\\", s)
        return s
    }
    function args(s, sep,    n, i, c, cur, inq, started, a, out) {
        n = 0; cur = ""; inq = 0; started = 0
        for (i = 1; i <= length(s); i++) {
            c = substr(s, i, 1)
            if (inq) {
                if (c == "\"") {
                    if (substr(s, i + 1, 1) == "\"") { cur = cur "\""; i++ }
                    else inq = 0
                } else cur = cur c
            } else if (c == "\"") { inq = 1; started = 1 }
            else if (c == " " || c == "\t") {
                if (started) { a[++n] = cur; cur = ""; started = 0 }
            } else { cur = cur c; started = 1 }
        }
        if (started) a[++n] = cur
        out = ""
        for (i = 1; i <= n; i++) out = out (i > 1 ? sep : "") a[i]
        return out
    }
    /^\.SH/ { sec = $2; done = done || blk; blk = 0; next }
    sec != want || done { next }
    /^\.(nf|EX)$/ { blk = 1; next }
    /^\.(fi|EE)$/ { if (blk) done = 1; blk = 0; next }
    !blk { next }
    /^\.(PP|P|LP|br|sp)( |$)/ { print ""; next }
    /^\.(B|I) / { print unesc(args(substr($0, 4), " ")); next }
    /^\.(BI|IB|BR|RB|IR|RI) / { print unesc(args(substr($0, 5), "")); next }
    /^\./ { next }
    { print unesc($0) }'
}

# The names of a page's NAME line.
names() {
    page "$1" | awk '/^\.SH NAME/ { getline; sub(/ \\- .*/, ""); gsub(/,/, ""); print; exit }'
}

exported() {
    for lib in "$prefix"/lib*/libwpool*.so "$prefix"/lib*/*/libwpool*.so; do
        [ -e "$lib" ] || continue
        nm -D --defined-only "$lib" | awk 'NF == 3 && $3 !~ /^_(init|fini)$/ { print $3 }'
    done | sort -u
}

# Fails, naming them, when a symbol of $2 (a list) has no page in dir $1.
check_pages() {
    missing=""
    for sym in $2; do
        [ -e "$1/$sym.3" ] || [ -e "$1/$sym.3.gz" ] || missing="$missing $sym"
    done
    [ -z "$missing" ] || {
        echo "no man page for:$missing"
        return 1
    }
}

syms=$(exported)
[ -n "$syms" ] || fail "no exported symbols found under $prefix"
nsyms=$(echo "$syms" | wc -l)

# The check must notice a missing page: hide one and expect a failure.
victim=$(echo "$syms" | head -n 1)
mkdir "$tmp/short"
for f in "$man3"/*; do
    case $(basename "$f") in "$victim".3 | "$victim".3.gz) continue ;; esac
    ln -s "$f" "$tmp/short/"
done
if check_pages "$tmp/short" "$syms" >/dev/null; then
    fail "the check passed with $victim's page missing"
fi

check_pages "$man3" "$syms" >&2 || fail "exported symbols without a page"

incs="-I$prefix/include -I$prefix/include/wpool-thpool"
npages=0
for f in "$man3"/* "$man7"/* "$man1"/*; do
    [ -e "$f" ] || continue # no man1 (no CLI built)
    [ -L "$f" ] && continue # an alias: its target is checked
    npages=$((npages + 1))
    name=$(basename "$f")
    case $f in
    */man3/*)
        extract "$f" SYNOPSIS >"$tmp/synopsis.c"
        for n in $(names "$f"); do
            echo "$syms" | grep -qx "$n" || fail "$name documents $n, which no library exports"
            grep -q "[ *]$n(" "$tmp/synopsis.c" || fail "$name: $n is not in its SYNOPSIS"
        done
        $cc -std=c11 -Wall -Wextra -Werror -fsyntax-only $incs -x c "$tmp/synopsis.c" ||
            fail "$name: SYNOPSIS does not compile:" "$(cat "$tmp/synopsis.c")"
        ;;
    esac
    extract "$f" EXAMPLE >"$tmp/example.c"
    [ -s "$tmp/example.c" ] || fail "$name: no EXAMPLE"
    case $f in
    */man1/*) ;; # a shell example
    *)
        $cc -std=c11 -Wall -Wextra -Werror -fsyntax-only $incs -x c "$tmp/example.c" ||
            fail "$name: EXAMPLE does not compile"
        ;;
    esac
    if command -v groff >/dev/null 2>&1; then
        out=$(page "$f" | groff -ww -man -z 2>&1) || fail "$name: groff failed"
        [ -z "$out" ] || fail "$name: groff: $out"
    fi
    if command -v man >/dev/null 2>&1; then
        out=$(MANWIDTH=80 man -l "$f" 2>&1 >/dev/null) || fail "$name: man -l failed"
        [ -z "$out" ] || fail "$name: man -l: $out"
    fi
done
command -v groff >/dev/null 2>&1 || echo "man: groff not found: rendering not checked"

if [ "$failed" -ne 0 ]; then
    echo "man test: $failed failed"
    exit 1
fi
echo "man test: $nsyms exported symbols each have a page; $npages pages compile and render"
