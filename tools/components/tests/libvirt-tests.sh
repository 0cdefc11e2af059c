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

top=$(cd "$(dirname "$0")/../../.." && pwd)
testlog=$top/tools/testlog.py

rc=0
# The failing tests, by name: './dih test' gives them to 'tools/pq blame
# libvirt' when this suite fails (the descriptor's comp_blame_command).
failing() { # testlog.json
    local failed
    failed=$("$testlog" failed "$1" | paste -sd' ' -)
    [ -z "$failed" ] || echo "failing: $failed"
}

run() { # name meson-test-args...
    local name=$1; shift
    local log=$build/meson-logs/testlog.json
    if meson test -C "$build" --no-rebuild --print-errorlogs -q "$@" \
            > "$build/dih-$name.log" 2>&1; then
        "$testlog" counts "$log" "libvirt $name"
    else
        rc=1
        tail -80 "$build/dih-$name.log"
        "$testlog" counts "$log" "libvirt $name"
        failing "$log"
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
