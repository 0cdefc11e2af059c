#!/bin/bash
# Build the test guests' initramfs: the probe as /init, plus the kernel
# modules it needs (with their dependencies, in load order) from the
# cached Debian cloud kernel.   mkinitramfs.sh PROBE OUTPUT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
probe=${1:?usage: mkinitramfs.sh PROBE OUTPUT}
out=${2:?usage: mkinitramfs.sh PROBE OUTPUT}

kdir=$("$here/guest-kernel.sh")
mods=$kdir/modules
wanted="virtio_pci virtio_blk virtio_scsi sd_mod"

declare -A seen=()
order=()
path_of() {
    find "$mods/kernel" -name "$1.ko" -o -name "$1.ko.xz" | head -1
}
add() { # module name, dependencies first
    local m=${1//-/_} f d deps
    [ -z "${seen[$m]:-}" ] || return 0
    seen[$m]=1
    f=$(path_of "$m")
    [ -z "$f" ] && f=$(path_of "${1//_/-}")
    if [ -z "$f" ]; then
        # Built into the kernel: nothing to load.
        grep -q "/$m.ko$" "$mods/modules.builtin" 2>/dev/null ||
            die "kernel module $m not found in $kdir"
        return 0
    fi
    deps=$(/sbin/modinfo -F depends "$f") || die "modinfo $f failed"
    for d in ${deps//,/ }; do
        add "$d"
    done
    order+=("$f")
}
for m in $wanted; do add "$m"; done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib/modules"
cp "$probe" "$stage/init"
: > "$stage/modules"
for f in "${order[@]}"; do
    cp "$f" "$stage/lib/modules/"
    echo "/lib/modules/${f##*/}" >> "$stage/modules"
done
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
    gzip -9n > "$out.tmp"
mv "$out.tmp" "$out"
cp "$kdir/vmlinuz" "$(dirname "$out")/vmlinuz"
