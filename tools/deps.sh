#!/bin/bash
# Install everything the builds and tests need on a Debian 12 machine.
# Idempotent: a second run with nothing missing installs nothing.
# The only apt source added to the system is bookworm-backports (for meson
# >= 1.5); source packages are fetched through a private apt configuration
# by tools/sources.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

[ "$(id -u)" = 0 ] || die "tools/deps.sh must run as root (it installs Debian packages)"

# Build dependencies of each patched component: its descriptor's
# COMP_BUILD_DEPS (tools/components/NAME.sh).
build_pkgs=""
for c in $(series_components); do
    load_component "$c" series
    build_pkgs+=" ${COMP_BUILD_DEPS[*]}"
done
# Workflow and end-to-end tests (python3-libvirt: the tests drive the
# patched libvirt through its Python binding; xorriso: QEMU's cdrom-test,
# which the regression net runs, registers no test without xorrisofs;
# libnbd-bin and fuse3: nbdfuse, the file under the tests' loop devices;
# tgt: the userspace iSCSI target the tests run on 127.0.0.1; valgrind:
# the device-path benchmark counts instructions with callgrind).
tool_pkgs="git ccache xz-utils dpkg-dev ca-certificates curl nbdkit cpio
 seabios qemu-system-data gnutls-bin util-linux procps psmisc file kmod
 qemu-system-x86 ipxe-qemu python3-matplotlib python3-libvirt xorriso
 libnbd-bin fuse3 tgt valgrind"

want="$build_pkgs $tool_pkgs"

bpo=/etc/apt/sources.list.d/bookworm-backports.sources
if [ ! -e "$bpo" ]; then
    log "adding bookworm-backports (meson >= 1.5)"
    cat > "$bpo" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
        missing="$missing $p"
done
meson_ok=0
if [ -x /usr/bin/meson ]; then
    ver=$(/usr/bin/meson --version)
    dpkg --compare-versions "$ver" ge 1.5 && meson_ok=1
fi

# The QEMU user and group libvirt is built to default to on Debian: its QEMU
# driver resolves them at start-up, before reading qemu.conf.
if ! getent passwd libvirt-qemu >/dev/null; then
    log "adding the system user libvirt-qemu"
    getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
    useradd --system --gid libvirt-qemu --no-create-home \
        --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
fi

if [ -z "$missing" ] && [ $meson_ok = 1 ]; then
    log "dependencies: all installed"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
apt-get update -q >/dev/null || die "apt-get update failed"
if [ -n "$missing" ]; then
    log "installing:$missing"
    apt-get install -y -q --no-install-recommends $missing ||
        die "installing Debian packages failed:$missing"
fi
if [ $meson_ok = 0 ]; then
    log "installing meson from bookworm-backports"
    apt-get install -y -q --no-install-recommends -t bookworm-backports meson ||
        die "meson >= 1.5 from bookworm-backports could not be installed"
fi
log "dependencies installed"
