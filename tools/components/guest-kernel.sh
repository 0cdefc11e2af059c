# shellcheck shell=bash disable=SC2034
# The test guests' kernel: the pinned Debian cloud kernel that
# tools/guest-kernel.sh fetches (verified by sha256, never installed).
# Sourced by load_component (tools/lib.sh).
COMP_KIND=guest-kernel

# The kernel the tests were developed with. A newer security release
# supersedes it in bookworm-security and the next point release moves it
# to bookworm, so both are searched; once it is gone from the archive, a
# copy of the .deb with this sha256 in $CACHE/kernel/ still does.
COMP_DEB_PACKAGE=linux-image-6.1.0-57-cloud-amd64
COMP_VERSION=6.1.192-3
COMP_DEB_ARCH=amd64
COMP_SHA256=4fdd0172a8c3f41a97e92465b2ac1867e1c10d82d7aeed3d26ee7a5d14df1754
COMP_APT_SOURCES=(
    "deb http://deb.debian.org/debian-security bookworm-security main"
    "deb http://deb.debian.org/debian bookworm main"
)
