#!/bin/sh
# bench/deps.sh PKG...: makes sure the Debian packages the peers (or tests) need are
# installed. As root, installs the missing ones (apt-get update once, then
# apt-get install -y); otherwise names each missing one and carries on, so
# that its peer is left out of the run rather than failing it.
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing$missing"
    apt-get update -qq >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null &&
        exit 0
    echo "deps: apt-get install$missing failed; what it needs is left out"
else
    for p in $missing; do echo "deps: package $p is not installed (and not root): what needs it is skipped"; done
fi
exit 0
