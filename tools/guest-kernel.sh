#!/bin/bash
# Fetch the pinned Debian cloud kernel the test guests boot into the cache
# (verified by sha256, never installed) and unpack its vmlinuz and
# modules. Prints the unpacked directory.
#
# The package comes through a private apt configuration under
# $CACHE/apt-kernel, as the sources do (tools/sources.sh): nothing of the
# system's apt setup is used or touched.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

# What kernel, which version and sha256, from which suites: the
# descriptor tools/components/guest-kernel.sh.
load_component guest-kernel guest-kernel
KERNEL_PKG=$COMP_DEB_PACKAGE
KERNEL_VERSION=$COMP_VERSION
KERNEL_DEB=${KERNEL_PKG}_${KERNEL_VERSION}_${COMP_DEB_ARCH}.deb
KERNEL_SHA256=$COMP_SHA256
KERNEL_RELEASE=${KERNEL_PKG#linux-image-}

kdir=$CACHE/kernel
aptdir=$CACHE/apt-kernel
out=$kdir/$KERNEL_RELEASE
stamp=$out/.sha256

# The pinned package into $kdir, through the private apt configuration.
download() {
    local opts tmp
    mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" \
             "$aptdir/parts"
    printf '%s\n' "${COMP_APT_SOURCES[@]}" > "$aptdir/sources.list"
    opts=(-o "Dir::Etc::sourcelist=$aptdir/sources.list"
          -o "Dir::Etc::sourceparts=$aptdir/parts"
          -o "Dir::State::Lists=$aptdir/lists"
          -o "Dir::Cache=$aptdir/cache"
          -o "APT::Sandbox::User=root"
          -o "Acquire::Languages=none")
    log "updating the private index of the guest kernel ($(printf '%s\n' "${COMP_APT_SOURCES[@]}" | cut -d' ' -f3 | paste -sd, -))"
    apt-get "${opts[@]}" update -q >/dev/null ||
        die "apt-get update of the guest kernel's private index failed (is the Debian archive reachable?)"
    tmp=$(mktemp -d "$kdir/dl.XXXXXX")
    log "downloading $KERNEL_PKG=$KERNEL_VERSION (not installed)"
    if ! (cd "$tmp" && apt-get "${opts[@]}" download -q \
              "$KERNEL_PKG=$KERNEL_VERSION") > "$tmp/apt.log" 2>&1; then
        sed 's/^/    /' "$tmp/apt.log" >&2
        rm -rf "$tmp"
        die "$KERNEL_DEB could not be downloaded. The pinned version may no longer be in the Debian archive: put a copy of $KERNEL_DEB with sha256 $KERNEL_SHA256 into $kdir/ and run again."
    fi
    if ! sha256_ok "$tmp/$KERNEL_DEB" "$KERNEL_SHA256"; then
        rm -rf "$tmp"
        die "$KERNEL_DEB: sha256 mismatch (want $KERNEL_SHA256). Refusing to use it."
    fi
    mv "$tmp/$KERNEL_DEB" "$kdir/$KERNEL_DEB"
    rm -rf "$tmp"
}

mkdir -p "$kdir"
if [ "$(cat "$stamp" 2>/dev/null)" = "$KERNEL_SHA256" ] &&
   [ -f "$out/vmlinuz" ] && [ -d "$out/modules" ]; then
    echo "$out"
    exit 0
fi
sha256_ok "$kdir/$KERNEL_DEB" "$KERNEL_SHA256" || download
tmp=$(mktemp -d "$kdir/unpack.XXXXXX")
dpkg-deb -x "$kdir/$KERNEL_DEB" "$tmp"
rm -rf "$out"
mkdir -p "$out"
cp "$tmp/boot/vmlinuz-$KERNEL_RELEASE" "$out/vmlinuz"
mv "$tmp/lib/modules/$KERNEL_RELEASE" "$out/modules"
rm -rf "$tmp"
echo "$KERNEL_SHA256" > "$stamp"
log "guest kernel $KERNEL_PKG $KERNEL_VERSION (sha256 verified) in $out"
echo "$out"
