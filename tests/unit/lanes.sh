#!/bin/bash
# The lanes in which './dih test' runs the suites unit, e2e and bisect
# ('./dih lanes': each lane's name and its options of 'meson test') run
# every test of these suites exactly once, the e2e scenarios in the
# guests' lane and the bisect check in the bisect lane, on the build
# directory BUILD of this project.
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
expect "the bisect checks run in the bisect lane" \
    has "$(sed -n 's/^bisect //p' <<<"$in_lanes")" bisect-libvirt
exit $fail
