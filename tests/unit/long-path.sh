#!/bin/bash
# A newcomer may clone anywhere (SPEC section 10): './dih demo', the end of
# './dih main' (an isolated daemon, the seed's disk on a host block device
# over nbdkit and nbdfuse, a TCG guest through an outage, then a 60 s outage
# that pauses it and its resuming by itself), run from a copy
# of this source tree at a path of more than 100 characters, with TMPDIR
# under it too, on the patched builds of DIH_WORK (nothing of them is
# rebuilt). Everything that ends in a UNIX socket path (108 bytes at most)
# must live in a short directory of its own: the harness's under /tmp,
# libvirt's state directory (the domains' monitor sockets, QEMU's
# capability probe) at a path compiled in that does not depend on the work
# directory, which is under the clone by default.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../tools/lib.sh"

fail() { echo "FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "skipped: needs root (namespaces, loop devices)"; exit 77; }

# libvirt's compiled-in state and runtime directories: not under the work
# directory or the source tree, whose paths can be of any length.
configmake=$WORK/build/libvirt/configmake.h
[ -f "$configmake" ] || fail "no libvirt build in $WORK (tools/pq ensure libvirt)"
for d in LOCALSTATEDIR RUNSTATEDIR; do
    v=$(sed -n "s/^#define $d \"\\(.*\\)\"\$/\\1/p" "$configmake")
    [ -n "$v" ] || fail "$configmake defines no $d"
    case $v/ in
    "$WORK"/*|"$TOP"/*)
        fail "libvirt's $d $v is in the work directory or the source tree: its sockets (e.g. $v/lib/libvirt/qemu/domain-1-NAME/monitor.sock) get longer than 108 bytes from a long clone path";;
    esac
    [ ${#v} -le 32 ] || fail "libvirt's $d $v is longer than 32 characters"
done

base=$(mktemp -d /tmp/dih-long-path.XXXXXX)
on_exit "rm -rf '$base'"
clone=$base/a-clone-of-disk-io-hang-at-a-path-longer-than-one-hundred-characters
while [ ${#clone} -lt 100 ]; do clone+=-x; done
clone+=/disk-io-hang
mkdir -p "$clone/tmp"
# The source tree as it is (committed or not), as a clone checks it out.
(cd "$TOP" && git ls-files -z --cached --others --exclude-standard |
     while IFS= read -r -d '' f; do [ ! -e "$f" ] || printf '%s\0' "$f"; done |
     tar --null -T - -cf -) | tar -xf - -C "$clone"
echo "clone: $clone (${#clone} characters)"

out=$base/demo.out
rc=0
DIH_WORK=$WORK TMPDIR=$clone/tmp "$clone/dih" demo > "$out" 2>&1 || rc=$?
cat "$out"
[ $rc = 0 ] || fail "'./dih demo' from $clone exited $rc"
grep -q '^== result: the guest saw 0 errors' "$out" ||
    fail "the demo's guest did not end without errors"
grep -q '^== result: paused for a [0-9]* s outage, resumed [0-9]* ms after .*; the guest saw 0 errors' "$out" ||
    fail "the demo's domain did not resume by itself without guest errors"
! grep -qi 'too long' "$out" || fail "a path was too long"
echo "PASSED: './dih demo' from a clone at a ${#clone}-character path"
