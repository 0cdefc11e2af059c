#!/bin/bash
# The lanes in which './dih test' runs the suites unit, e2e and bisect
# ('./dih lanes': each lane's name and its options of 'meson test') run
# every test of these suites exactly once, the e2e scenarios in the
# guests' lane, the tests that walk work/bisect/qemu in one lane, those
# that walk work/bisect/libvirt in one lane, and the two bisect checks in
# two lanes other than the guests', on the build directory BUILD of this
# project.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: lanes.sh BUILD}

# shellcheck source=lib.sh
. "$top/tests/unit/lib.sh"

# The names of the tests that 'meson test' selects with the options given.
tests_of() {
    meson test -C "$build" --no-rebuild --list "$@" 2>/dev/null |
        sed 's|^.* / ||' | sort
}

lanes=$("$top/dih" lanes)
expect "./dih lanes names three lanes" [ "$(wc -l <<<"$lanes")" = 3 ]
in_lanes=$(while read -r lane args; do
               # shellcheck disable=SC2086 # the options' words
               tests_of $args | sed "s|^|$lane |"
           done <<<"$lanes")
all=$(tests_of --suite unit --suite e2e --suite bisect)
expect "the lanes run tests" [ -n "$in_lanes" ]
expect "every test of the suites unit, e2e and bisect is in a lane" \
    [ "$(cut -d' ' -f2- <<<"$in_lanes" | sort -u)" = "$all" ]
expect "no test is in two lanes" \
    [ -z "$(cut -d' ' -f2- <<<"$in_lanes" | sort | uniq -d)" ]
expect "each e2e scenario runs in the guests' lane" \
    [ "$(tests_of --suite e2e)" = "$(sed -n 's/^guests //p' <<<"$in_lanes" | sort)" ]
# The lanes that TEST... run in, one a line.
lanes_of() {
    local t
    for t in "$@"; do
        sed -n "s/^\([a-z]*\) $t\$/\1/p" <<<"$in_lanes"
    done | sort -u
}
expect "the tests that walk work/bisect/qemu run in one lane" \
    [ "$(lanes_of tools bisect-qemu | wc -l)" = 1 ]
expect "the tests that walk work/bisect/libvirt run in one lane" \
    [ "$(lanes_of bisect-check bisect-libvirt | wc -l)" = 1 ]
expect "the two bisect checks run in two lanes beside the guests' lane" \
    [ "$(lanes_of bisect-qemu bisect-libvirt | grep -vc '^guests$')" = 2 ]
exit $fail
