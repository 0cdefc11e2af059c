#!/bin/bash
# Fetch the Debian cloud kernel package the test guests boot (downloaded
# into the cache, never installed) and unpack its vmlinuz and modules.
# Prints the unpacked directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

kdir=$CACHE/kernel
mkdir -p "$kdir"
if [ -L "$kdir/current" ] && [ -f "$kdir/current/vmlinuz" ]; then
    readlink -f "$kdir/current"
    exit 0
fi
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
      sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1)
if [ -z "$pkg" ]; then
    apt-get update -q >/dev/null || true
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
          sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1)
fi
[ -n "$pkg" ] || die "no Debian cloud kernel package (linux-image-cloud-amd64) is known to apt"
log "downloading $pkg (not installed)"
tmp=$(mktemp -d "$kdir/dl.XXXXXX")
(cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1) ||
    { rm -rf "$tmp"; die "apt-get download $pkg failed"; }
deb=$(ls "$tmp"/*.deb)
dpkg-deb -x "$deb" "$tmp/root"
ver=${pkg#linux-image-}
out=$kdir/$ver
rm -rf "$out"
mkdir -p "$out"
cp "$tmp/root/boot/vmlinuz-$ver" "$out/vmlinuz"
mv "$tmp/root/lib/modules/$ver" "$out/modules"
rm -rf "$tmp"
ln -sfn "$ver" "$kdir/current"
log "guest kernel $ver in $out"
echo "$out"
