#!/bin/bash
# Run libvirt-argv-check.py (what it checks: its header) on a libvirt build:
# through the build's 'run' script, in a mount namespace whose /dev has no
# kvm (SPEC section 10: with a /dev/kvm whose guests cannot run, libvirt
# probes a KVM-capable QEMU again on every call), with the embedded
# driver's root and the cache of realized devices beside the build.
# Usage: libvirt-argv-check.sh BUILD_DIR BUILD_TREE INPUTS_TREE PATCHED_QEMU STOCK_QEMU
set -euo pipefail
[ $# = 5 ] || { echo "usage: $0 BUILD_DIR BUILD_TREE INPUTS_TREE PATCHED_QEMU STOCK_QEMU" >&2; exit 2; }
build=$1
[ -x "$build/run" ] || { echo "no libvirt build in $build" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
# The embedded driver's state, QMP sockets included: a short path.
root=$(mktemp -d /tmp/dih-argv.XXXXXX)
ovl=$(mktemp -d /tmp/dih-argv-dev.XXXXXX)
trap 'rm -rf "$root" "$ovl"' EXIT
# shellcheck disable=SC2016 # expanded by the inner shell
unshare -m -- sh -ec '
    ovl=$1; shift
    mount --make-rprivate /
    mount -t tmpfs dih-dev "$ovl"
    mkdir "$ovl/upper" "$ovl/work"
    mount -t overlay dih-dev -o "lowerdir=/dev,upperdir=$ovl/upper,workdir=$ovl/work" /dev
    rm -f /dev/kvm
    exec "$@"' sh "$ovl" \
    "$build/run" /usr/bin/python3 "$here/libvirt-argv-check.py" "$2" "$3" "$4" "$5" \
    "$root" "$build/dih-argv-check-cache.json"
