# shellcheck shell=bash disable=SC2034
# The QEMU component: everything the tools know about QEMU. Sourced by
# load_component (tools/lib.sh), which checks that every variable and
# function a series component needs is here. Plain assignments only: the
# file is sourced inside a function, where 'declare' would make a
# variable local.
COMP_KIND=series
COMP_TITLE=QEMU

# --- the pinned base (tools/sources.sh fetches and verifies it) ----------
COMP_VERSION=10.2.2
# The Debian source package: its orig tarball is upstream's minus the
# prebuilt blobs, and Debian's patches make that build.
COMP_DEB_SOURCE=qemu
COMP_DEB_VERSION=1:10.2.2+ds-1
COMP_DEB_SUITE=sid
# File name and sha256 of each pinned file.
COMP_PINNED=(
    qemu_10.2.2+ds.orig.tar.xz be05230fe47a6937cd29f28f562932c8125f9c93c2a82c625198f7a4aa601dfb
    qemu_10.2.2+ds-1.debian.tar.xz ddf75aceab4f8f77374f3cb34fc97b41514895aeb293ce8b2ddd5e072bb0f5c0
)
# Fetched with them and needed, but not pinned: the .dsc of some revisions
# is missing from the mirror (its contents are the two pinned files).
COMP_FETCHED=(qemu_10.2.2+ds-1.dsc)

# Build dependencies of QEMU 10.2 (x86_64-softmmu, tools, qemu-pr-helper),
# for tools/deps.sh.
COMP_BUILD_DEPS=(python3-venv python3-setuptools python3-wheel libpixman-1-dev
    zlib1g-dev libaio-dev liburing-dev libfdt-dev libcap-ng-dev libseccomp-dev
    libsystemd-dev libzstd-dev flex bison bzip2 sed libiscsi-dev)

# --- the base commit of work/qemu (tools/pq import) ----------------------
# A fixed date makes the imported tree's commit ids reproducible; it is
# not QEMU's release date.
COMP_BASE_DATE=2026-03-01T12:00:00Z
COMP_BASE_MESSAGE="QEMU 10.2.2 (Debian source 1:10.2.2+ds-1)"
# Debian's packaging and quilt state are not part of the base.
COMP_BASE_UNTRACKED=(debian .pc)

# --- submission (tools/submit) -------------------------------------------
COMP_MAIL_TO=(qemu-devel@nongnu.org qemu-block@nongnu.org)
# The Cc list of a series: this command, run in the tree the series is
# applied to with the series' patches as arguments, prints the maintainers
# and lists of the files they change, one a line (QEMU's
# docs/devel/submitting-a-patch.rst).
COMP_CC_COMMAND=(scripts/get_maintainer.pl --noroles --norolestats --nogit
                 --nogit-fallback)
# A series marked 'stable' in the series file goes to the stable list too,
# and each of its commit messages carries 'Cc: <this>' (tools/series-check
# reads this line).
COMP_STABLE_CC=qemu-stable@nongnu.org

# --- tests ---------------------------------------------------------------
# The project's meson tests that run QEMU's tests on the patched build:
# when one fails, './dih test' names the first patch at which it fails
# (tools/pq blame qemu -- its command).
COMP_BLAME_TESTS=(qemu-tests)
# The regression net (tests/unit/qemu-regress.py) runs QEMU's own tests on
# the unpatched base too: tools/pq base-dir and base-build.
COMP_REGRESS_BASE=yes

# The unpacked base, from the pinned files in SRCDIR, into DEST (which
# does not exist yet).
comp_unpack() { # SRCDIR DEST
    local src=$1 dest=$2 tmp
    tmp=$(mktemp -d "$dest.unpack.XXXXXX") || return 1
    # dpkg-source applies Debian's patches, which the +ds tarball needs
    # to build (it strips prebuilt blobs and some bundled modules).
    if ! (cd "$tmp" && dpkg-source --no-check -x "$src/${COMP_FETCHED[0]}" qemu) \
            > "$tmp/unpack.log" 2>&1; then
        cat "$tmp/unpack.log" >&2
        rm -rf "$tmp"
        die "dpkg-source -x ${COMP_FETCHED[0]} failed"
    fi
    mv "$tmp/qemu" "$dest" && rm -rf "$tmp"
}

# QEMU's configure options, one definition for the patched build and for
# the unpatched base the regression net builds (tools/pq base-build
# qemu), into the array CONFIGURE_ARGS. WORKDIR is the directory that
# holds the build: the install prefix lies inside it (nothing is
# installed; QEMU runs from its build). The base's cache directory is
# keyed by these words joined with spaces, with WORKDIR '@WORK@': a
# change here builds the base anew.
comp_configure_args() { # WORKDIR
    # Only what the tests use; GnuTLS for migration over TLS, libiscsi
    # for QEMU's iSCSI client (the end-to-end tests' tgt target).
    CONFIGURE_ARGS=(--python=/usr/bin/python3 "--prefix=$1/install/qemu"
        --without-default-features --target-list=x86_64-softmmu
        --enable-tools --enable-linux-aio --enable-linux-io-uring
        --enable-cap-ng --enable-seccomp --enable-attr --enable-gnutls
        --enable-libiscsi
        --disable-docs --disable-install-blobs --disable-werror
        --disable-download)
}

comp_configure() { # TREE BUILD: configure BUILD with CONFIGURE_ARGS
    (cd "$2" && "$1/configure" "${CONFIGURE_ARGS[@]}")
}

# A QEMU built with --disable-install-blobs looks for firmware in its
# build's qemu-bundle: give it Debian's SeaBIOS, option ROMs and iPXE ROMs.
comp_post_build() { # BUILD
    local build=$1 datadir fw f
    datadir=$(sed -n 's/^#define CONFIG_QEMU_DATADIR "\(.*\)"$/\1/p' \
                  "$build/config-host.h") || return 1
    [ -n "$datadir" ] || die "qemu: no CONFIG_QEMU_DATADIR in $build/config-host.h"
    fw=$build/qemu-bundle$datadir
    mkdir -p "$fw" || return 1
    for f in /usr/share/seabios/* /usr/share/qemu/* /usr/lib/ipxe/qemu/*; do
        [ -f "$f" ] || continue
        [ -e "$fw/${f##*/}" ] || ln -s "$f" "$fw/${f##*/}" || return 1
    done
    [ -e "$fw/bios-256k.bin" ] ||
        die "qemu: no bios-256k.bin for $fw (Debian's seabios package)"
}

# The component's tests on BUILD. WHAT is 'all' (tools/pq test, the
# series' tip in the bisect check), 'full' or 'selected' (each position
# before the tip): QEMU's tests covering the series take seconds, so
# they run in full everywhere.
comp_test() { # BUILD all|full|selected
    "$COMPONENTS_DIR/tests/qemu-tests.sh" "$1"
}

# The command that 'tools/pq blame qemu' runs at each position when the
# meson test TEST failed, into the array BLAME_COMMAND (@BUILD@: the build
# of the position). qemu-tests.sh passes on the base (the series' retry
# tests are required only once the tree registers them).
comp_blame_command() { # TEST FILE
    BLAME_COMMAND=("$COMPONENTS_DIR/tests/qemu-tests.sh" @BUILD@)
}

# comp_position_check BUILD TREE (optional; none for QEMU): a check that
# the bisect check runs at every position after the tests, on the build
# BUILD of the tree TREE at that position.
