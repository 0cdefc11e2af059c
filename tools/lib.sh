# Shared settings for the project's tools. Sourced, not executed.

# Use the distribution's toolchain, whatever a login shell puts first.
export PATH=/usr/lib/ccache:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C.UTF-8

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Verified tarballs, ccache and the guest kernel live here, outside the work
# tree, so a second run (or a fresh clone on the same machine) downloads
# nothing.
CACHE=${DIH_CACHE:-/var/cache/disk-io-hang}
# Unpacked, patched and built trees: ignored by git.
WORK=${DIH_WORK:-$TOP/work}
export CCACHE_DIR=${CCACHE_DIR:-$CACHE/ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# Hits across clones in other directories: paths under the work directory
# are hashed relative to it, and the compiler's working directory is not
# hashed.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$WORK}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}

LIBVIRT_VERSION=11.3.0
LIBVIRT_DEB=11.3.0-3+deb13u3
LIBVIRT_SUITE=trixie
LIBVIRT_ORIG=libvirt_11.3.0.orig.tar.xz
LIBVIRT_ORIG_SHA256=6bcb0c42c4580436fea262ced56f68a6afe20f7390b1bea2116718cc034a0283

QEMU_VERSION=10.2.2
QEMU_DEB=1:10.2.2+ds-1
QEMU_SUITE=sid
QEMU_ORIG=qemu_10.2.2+ds.orig.tar.xz
QEMU_ORIG_SHA256=be05230fe47a6937cd29f28f562932c8125f9c93c2a82c625198f7a4aa601dfb
QEMU_DEBIAN=qemu_10.2.2+ds-1.debian.tar.xz
QEMU_DEBIAN_SHA256=ddf75aceab4f8f77374f3cb34fc97b41514895aeb293ce8b2ddd5e072bb0f5c0
QEMU_DSC=qemu_10.2.2+ds-1.dsc

log() { printf '[dih] %s\n' "$*" >&2; }
die() { printf '[dih] error: %s\n' "$*" >&2; exit 1; }

# The neutral project identity the series' commits carry (the submission
# tooling re-signs them with the submitter's own).
DIH_NAME="Disk I/O Hang"
DIH_EMAIL="disk-io-hang@example.org"

# QEMU's configure options, one definition for the patched build and for
# the unpatched base the regression net builds (tools/pq base-build qemu).
# WORKDIR is the directory that holds the build: the install prefix lies
# inside it (nothing is installed; QEMU runs from its build).
qemu_configure_args() { # WORKDIR
    # Only what the tests use; GnuTLS for migration over TLS.
    echo --python=/usr/bin/python3 "--prefix=$1/install/qemu" \
        --without-default-features --target-list=x86_64-softmmu \
        --enable-tools --enable-linux-aio --enable-linux-io-uring \
        --enable-cap-ng --enable-seccomp --enable-attr --enable-gnutls \
        --disable-docs --disable-install-blobs --disable-werror \
        --disable-download
}

# A QEMU built with --disable-install-blobs looks for firmware in its
# build's qemu-bundle: give it Debian's SeaBIOS, option ROMs and iPXE ROMs.
qemu_link_firmware() { # BUILD_DIR
    local build=$1 datadir fw f
    datadir=$(sed -n 's/^#define CONFIG_QEMU_DATADIR "\(.*\)"$/\1/p' \
                  "$build/config-host.h")
    [ -n "$datadir" ] || die "qemu: no CONFIG_QEMU_DATADIR in $build/config-host.h"
    fw=$build/qemu-bundle$datadir
    mkdir -p "$fw"
    for f in /usr/share/seabios/* /usr/share/qemu/* /usr/lib/ipxe/qemu/*; do
        [ -f "$f" ] || continue
        [ -e "$fw/${f##*/}" ] || ln -s "$f" "$fw/${f##*/}"
    done
    [ -e "$fw/bios-256k.bin" ] ||
        die "qemu: no bios-256k.bin for $fw (Debian's seabios package)"
}
