#!/bin/bash
# Fetch the pinned libvirt and QEMU sources (SPEC §2) into the cache,
# verify them by sha256 and reuse them on the next run.
#
#   tools/sources.sh [libvirt|qemu]...
#
# Source packages come through a private apt configuration under
# $CACHE/apt: nothing of the system's apt setup is touched.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

srcdir=$CACHE/src
aptdir=$CACHE/apt

sha_ok() { # file sha256
    [ -f "$1" ] && [ "$(sha256sum < "$1" | cut -d' ' -f1)" = "$2" ]
}

apt_private() {
    mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" \
             "$aptdir/parts"
    cat > "$aptdir/sources.list" <<SRC
deb-src http://deb.debian.org/debian $LIBVIRT_SUITE main
deb-src http://deb.debian.org/debian $QEMU_SUITE main
SRC
    APT_OPTS=(-o "Dir::Etc::sourcelist=$aptdir/sources.list"
              -o "Dir::Etc::sourceparts=$aptdir/parts"
              -o "Dir::State::Lists=$aptdir/lists"
              -o "Dir::Cache=$aptdir/cache"
              -o "APT::Sandbox::User=root")
    if [ ! -e "$aptdir/updated" ] ||
       [ -n "$(find "$aptdir/updated" -mmin +720)" ]; then
        log "updating the private deb-src index ($LIBVIRT_SUITE, $QEMU_SUITE)"
        apt-get "${APT_OPTS[@]}" update -q >/dev/null ||
            die "apt-get update of the private deb-src index failed (is the Debian archive reachable?)"
        touch "$aptdir/updated"
    fi
}

# download PKG=VERSION FILE SHA256 [FILE SHA256]...
download() {
    local spec=$1; shift
    local all=1 f s
    local args=("$@")
    while [ $# -gt 0 ]; do
        sha_ok "$srcdir/$1" "$2" || all=0
        shift 2
    done
    [ $all = 1 ] && return 0
    apt_private
    local tmp
    tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
    log "downloading source package $spec"
    # The .dsc of some revisions is missing from the mirror while the
    # tarballs arrive: apt's exit status is not trusted, the pinned sha256
    # of each needed file is.
    (cd "$tmp" && apt-get "${APT_OPTS[@]}" source --download-only -q "$spec") \
        >"$tmp/apt.log" 2>&1 || true
    set -- "${args[@]}"
    while [ $# -gt 0 ]; do
        f=$1 s=$2; shift 2
        if sha_ok "$srcdir/$f" "$s"; then continue; fi
        if [ ! -f "$tmp/$f" ]; then
            sed 's/^/    /' "$tmp/apt.log" >&2
            rm -rf "$tmp"
            die "$f (source package $spec) could not be downloaded. The pinned version may no longer be in the Debian archive: put a copy of $f with sha256 $s into $srcdir/ and run again."
        fi
        if ! sha_ok "$tmp/$f" "$s"; then
            rm -rf "$tmp"
            die "$f: sha256 mismatch (want $s). Refusing to use it."
        fi
        mv "$tmp/$f" "$srcdir/$f"
    done
    # Unpinned companions (the .dsc) are kept when they came along.
    for f in "$tmp"/*.dsc; do
        [ -f "$f" ] && mv "$f" "$srcdir/"
    done
    rm -rf "$tmp"
}

mkdir -p "$srcdir"
[ $# -gt 0 ] || set -- libvirt qemu
for c in "$@"; do
    case $c in
    libvirt)
        download "libvirt=$LIBVIRT_DEB" "$LIBVIRT_ORIG" "$LIBVIRT_ORIG_SHA256"
        log "libvirt $LIBVIRT_VERSION: $srcdir/$LIBVIRT_ORIG (sha256 verified)";;
    qemu)
        download "qemu=$QEMU_DEB" "$QEMU_ORIG" "$QEMU_ORIG_SHA256" \
                 "$QEMU_DEBIAN" "$QEMU_DEBIAN_SHA256"
        [ -f "$srcdir/$QEMU_DSC" ] ||
            die "$QEMU_DSC is missing from $srcdir (needed by dpkg-source -x)"
        log "qemu $QEMU_DEB: $srcdir/$QEMU_ORIG + $QEMU_DEBIAN (sha256 verified)";;
    *) die "unknown component '$c' (libvirt or qemu)";;
    esac
done
