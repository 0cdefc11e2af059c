#!/bin/bash
# libvirt's own test suite and its syntax-check suite, run on the patched
# tree's build, or some of its tests.
# Usage: libvirt-tests.sh BUILD_DIR [full|syntax-check|all|selected TEST...]
set -uo pipefail
build=${1:?usage: libvirt-tests.sh BUILD_DIR [full|syntax-check|all|selected TEST...]}
what=${2:-all}
export PATH=/usr/lib/ccache:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C.UTF-8
[ -f "$build/build.ninja" ] || { echo "no libvirt build in $build" >&2; exit 1; }

rc=0
summary() { # name logfile
    python3 - "$1" "$2" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
res = {}
with open(path) as f:
    for line in f:
        t = json.loads(line)
        res[t["result"]] = res.get(t["result"], 0) + 1
total = sum(res.values())
print(f"libvirt {name}: {total} tests, " +
      ", ".join(f"{v} {k.lower()}" for k, v in sorted(res.items())))
PY
}

# Name the patch of the queue that makes the failing tests fail.
blame() { # testlog.json
    local failed
    failed=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    t = json.loads(line)
    if t["result"] not in ("OK", "SKIP", "EXPECTEDFAIL"):
        print(t["name"].split(" / ")[-1])' "$1")
    [ -n "$failed" ] || return 0
    echo "failing: $(echo $failed)"
    [ -n "${DIH_BLAME:-}" ] || return 0
    "$DIH_BLAME" libvirt -- meson test -C "$build" --no-rebuild $failed
    # blame leaves the tip built; rerun nothing here
}

run() { # name meson-test-args...
    local name=$1; shift
    local log=$build/meson-logs/testlog.json
    if meson test -C "$build" --no-rebuild --print-errorlogs -q "$@" \
            > "$build/dih-$name.log" 2>&1; then
        summary "$name" "$log"
    else
        rc=1
        tail -80 "$build/dih-$name.log"
        summary "$name" "$log"
        blame "$log"
    fi
}

case $what in
full|all) run "test suite" --no-suite syntax-check;;
selected) shift 2; run "selected tests" "$@";;
esac
case $what in
syntax-check|all) run syntax-check --suite syntax-check;;
esac
exit $rc
