# shellcheck shell=bash disable=SC2034
# The libvirt component: everything the tools know about libvirt. Sourced
# by load_component (tools/lib.sh), which checks that every variable and
# function a series component needs is here; see qemu.sh for what each
# means. Plain assignments only (sourced inside a function).
COMP_KIND=series
COMP_TITLE=libvirt

# --- the pinned base (tools/sources.sh fetches and verifies it) ----------
COMP_VERSION=11.3.0
# Debian's source package carries upstream's release tarball unchanged.
COMP_DEB_SOURCE=libvirt
COMP_DEB_VERSION=11.3.0-3+deb13u3
COMP_DEB_SUITE=trixie
COMP_PINNED=(
    libvirt_11.3.0.orig.tar.xz 6bcb0c42c4580436fea262ced56f68a6afe20f7390b1bea2116718cc034a0283
)

# Build dependencies of libvirt 11.3 (qemu driver, remote driver, daemons,
# tests, docs checks), for tools/deps.sh.
COMP_BUILD_DEPS=(gcc make pkgconf ninja-build xsltproc libxml2-utils
    python3-docutils libxml2-dev libglib2.0-dev libgnutls28-dev libtirpc-dev
    libjson-c-dev libnl-3-dev libnl-route-3-dev libdevmapper-dev libudev-dev
    libpciaccess-dev libselinux1-dev libcap-ng-dev libacl1-dev libattr1-dev
    libreadline-dev libsasl2-dev libnuma-dev libparted-dev libyajl-dev
    libblkid-dev libssh2-1-dev libcurl4-gnutls-dev augeas-tools dnsmasq-base
    iproute2 perl python3-pytest bash-completion gettext)

# --- the base commit of work/libvirt (tools/pq import) -------------------
# A fixed date makes the imported tree's commit ids reproducible; it is
# not libvirt's release date.
COMP_BASE_DATE=2025-05-01T12:00:00Z
COMP_BASE_MESSAGE="libvirt 11.3.0 (libvirt_11.3.0.orig.tar.xz)"
# The release tarball ships keycodemapdb's files, which upstream git
# tracks as a submodule: leave them untracked (syntax-check relies on
# 'git ls-files' matching upstream). The build needs them, so a worktree
# of work/libvirt (the bisect check's) gets a copy.
COMP_BASE_UNTRACKED=(subprojects/keycodemapdb)
COMP_WORKTREE_COPY=(subprojects/keycodemapdb)

# --- submission (tools/submit) -------------------------------------------
COMP_MAIL_TO=(devel@lists.libvirt.org)

# --- tests ---------------------------------------------------------------
# The project's meson tests that run libvirt's test suite on the patched
# build: when one fails, './dih test' names the first patch at which it
# fails (tools/pq blame libvirt -- the command comp_blame_command gives).
# Not syntax-check: at every position it would add about 14 minutes.
COMP_BLAME_TESTS=(libvirt-test-suite)
# Options of 'tools/pq check libvirt', OPTION=WHAT: with --no-syntax-check
# the series' tip runs comp_test's 'full' (the test suite without
# syntax-check) instead of 'all'.
COMP_CHECK_OPTIONS=(--no-syntax-check=full)

comp_unpack() { # SRCDIR DEST
    local src=$1 dest=$2 tmp
    tmp=$(mktemp -d "$dest.unpack.XXXXXX") || return 1
    tar -C "$tmp" --no-same-owner -xJf "$src/${COMP_PINNED[0]}" ||
        { rm -rf "$tmp"; die "cannot unpack ${COMP_PINNED[0]}"; }
    mv "$tmp/libvirt-$COMP_VERSION" "$dest" && rm -rf "$tmp"
}

comp_configure_args() { # WORKDIR: into the array CONFIGURE_ARGS
    # no_git: libvirt's meson would otherwise run 'git submodule update'.
    # Drivers the project does not use are left out, but not LXC: the
    # check-driverimpls and check-aclrules tests need its generated
    # protocol files. The state directory (LOCALSTATEDIR: the domains'
    # monitor sockets, QEMU's capability probe) is a short path of its
    # own under /run, whatever the work directory: a UNIX socket path has
    # at most 108 bytes. Only the test library's isolated daemons use
    # it, each with its own directory mounted there (tests/dih/host.py).
    CONFIGURE_ARGS=(-Dno_git=true "-Dprefix=$1/install/libvirt"
        -Dlocalstatedir=/run/dih-libvirt
        -Ddriver_qemu=enabled -Ddriver_remote=enabled
        -Ddriver_libvirtd=enabled -Ddriver_network=enabled
        -Dtests=enabled -Ddocs=enabled
        -Ddriver_libxl=disabled
        -Ddriver_vbox=disabled -Ddriver_esx=disabled
        -Ddriver_hyperv=disabled -Ddriver_openvz=disabled
        -Ddriver_vmware=disabled -Ddriver_ch=disabled
        -Ddriver_vz=disabled -Ddriver_bhyve=disabled
        -Dstorage_iscsi=disabled -Dstorage_iscsi_direct=disabled
        -Dstorage_rbd=disabled -Dstorage_gluster=disabled
        -Dstorage_zfs=disabled -Dstorage_vstorage=disabled)
}

comp_configure() { # TREE BUILD
    meson setup "$2" "$1" "${CONFIGURE_ARGS[@]}"
}

# The libvirt tests that the bisect check runs at each position of the
# queue but the last: those of the areas the series touches (domain XML,
# capabilities, command line, hotplug, monitor events, status XML, the
# migration cookie, the schemas and the documentation's references), plus
# every test whose tests/NAME.c a patch of patches/libvirt/ changes. They
# take seconds where the whole suite takes a minute; the tip runs the
# whole suite.
libvirt_bisect_tests() {
    local p SERIES SERIES_NAMES SERIES_VERSIONS SERIES_STABLE SERIES_COUNTS
    read_series "$TOP/patches/libvirt"
    {
        printf '%s\n' qemuxmlconftest qemuxmlactivetest genericxml2xmltest \
            qemuhotplugtest qemumonitorjsontest qemumigrationcookiexmltest \
            qemucapabilitiestest qemucaps2xmltest domaincapstest \
            virschematest check-html-references
        for p in "${SERIES[@]}"; do
            sed -n 's|^+++ b/tests/\([a-z0-9]*test\)\.c$|\1|p' \
                "$TOP/patches/libvirt/$p" || return 1
        done
    } | sort -u
}

# libvirt's tests on BUILD: 'all' (the test suite and syntax-check),
# 'full' (the test suite only) or 'selected' (libvirt_bisect_tests).
comp_test() { # BUILD all|full|selected
    local list tests
    if [ "$2" = selected ]; then
        list=$(libvirt_bisect_tests) || return 1
        mapfile -t tests <<<"$list"
        "$COMPONENTS_DIR/tests/libvirt-tests.sh" "$1" selected "${tests[@]}"
    else
        "$COMPONENTS_DIR/tests/libvirt-tests.sh" "$1" "$2"
    fi
}

# The command that 'tools/pq blame libvirt' runs at each position when the
# meson test TEST failed with the output in FILE, into the array
# BLAME_COMMAND (@BUILD@: the build of the position): the libvirt tests
# that failed (tools/components/tests/libvirt-tests.sh names them on its last
# 'failing:' line), or the whole suite.
comp_blame_command() { # TEST FILE
    local names=()
    read -ra names <<<"$(sed -n 's/^failing: //p' "$2" | tail -1)"
    if [ ${#names[@]} -gt 0 ]; then
        BLAME_COMMAND=(meson test -C @BUILD@ --no-rebuild --print-errorlogs "${names[@]}")
    else
        BLAME_COMMAND=("$COMPONENTS_DIR/tests/libvirt-tests.sh" @BUILD@ full)
    fi
}

# At every position of the bisect check: each domain XML of the series'
# tests (those of the tip, work/libvirt) is either refused by the build
# under test or becomes a command line whose disks the patched QEMU (the
# series' target, work/build/qemu) and a stock one (Debian's, without
# retries) realize; a disk asking for retries never loses them silently
# (tools/components/tests/libvirt-argv-check.py).
comp_position_check() { # BUILD TREE
    local qemu=$WORK/build/qemu/qemu-system-x86_64
    [ -x "$qemu" ] || die "no patched QEMU in $qemu: run 'tools/pq ensure qemu' first"
    "$COMPONENTS_DIR/tests/libvirt-argv-check.sh" "$1" "$2" "$WORK/libvirt" \
        "$qemu" /usr/bin/qemu-system-x86_64
}
