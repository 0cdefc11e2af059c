#!/bin/bash
# Fetch the pinned sources of the patched components (SPEC §2) into the
# cache, verify them by sha256 and reuse them on the next run.
#
#   tools/sources.sh [COMPONENT]...     (default: every series component)
#
# What is fetched is in each component's descriptor
# (tools/components/NAME.sh): the Debian source package and version, the
# pinned files with their sha256 (COMP_PINNED) and the files that must come
# with them (COMP_FETCHED). Source packages come through a private apt
# configuration under $CACHE/apt: nothing of the system's apt setup is
# touched.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

srcdir=$CACHE/src
aptdir=$CACHE/apt

# The private deb-src index of the suites of every series component.
apt_private() {
    local c suites=() s
    mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" \
             "$aptdir/parts"
    for c in $(series_components); do
        # A subshell: the component being fetched stays loaded.
        s=$(load_component "$c" series; echo "$COMP_DEB_SUITE")
        [[ " ${suites[*]} " = *" $s "* ]] || suites+=("$s")
    done
    for s in "${suites[@]}"; do
        echo "deb-src http://deb.debian.org/debian $s main"
    done > "$aptdir/sources.list.new"
    # A changed list of suites needs a new index.
    if ! cmp -s "$aptdir/sources.list.new" "$aptdir/sources.list"; then
        mv "$aptdir/sources.list.new" "$aptdir/sources.list"
        rm -f "$aptdir/updated"
    else
        rm -f "$aptdir/sources.list.new"
    fi
    APT_OPTS=(-o "Dir::Etc::sourcelist=$aptdir/sources.list"
              -o "Dir::Etc::sourceparts=$aptdir/parts"
              -o "Dir::State::Lists=$aptdir/lists"
              -o "Dir::Cache=$aptdir/cache"
              -o "APT::Sandbox::User=root")
    if [ ! -e "$aptdir/updated" ] ||
       [ -n "$(find "$aptdir/updated" -mmin +720)" ]; then
        log "updating the private deb-src index (${suites[*]})"
        apt-get "${APT_OPTS[@]}" update -q >/dev/null ||
            die "apt-get update of the private deb-src index failed (is the Debian archive reachable?)"
        touch "$aptdir/updated"
    fi
}

# The loaded component's pinned files into $srcdir, verified.
download() {
    local spec=$COMP_DEB_SOURCE=$COMP_DEB_VERSION all=1 f s i tmp
    for ((i = 0; i < ${#COMP_PINNED[@]}; i += 2)); do
        sha256_ok "$srcdir/${COMP_PINNED[i]}" "${COMP_PINNED[i + 1]}" || all=0
    done
    for f in "${COMP_FETCHED[@]}"; do
        [ -f "$srcdir/$f" ] || all=0
    done
    [ $all = 1 ] && return 0
    apt_private
    tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
    log "downloading source package $spec"
    # The .dsc of some revisions is missing from the mirror while the
    # tarballs arrive: apt's exit status is not trusted, the pinned sha256
    # of each needed file is.
    (cd "$tmp" && apt-get "${APT_OPTS[@]}" source --download-only -q "$spec") \
        >"$tmp/apt.log" 2>&1 || true
    for ((i = 0; i < ${#COMP_PINNED[@]}; i += 2)); do
        f=${COMP_PINNED[i]} s=${COMP_PINNED[i + 1]}
        if sha256_ok "$srcdir/$f" "$s"; then continue; fi
        if [ ! -f "$tmp/$f" ]; then
            sed 's/^/    /' "$tmp/apt.log" >&2
            rm -rf "$tmp"
            die "$f (source package $spec) could not be downloaded. The pinned version may no longer be in the Debian archive: put a copy of $f with sha256 $s into $srcdir/ and run again."
        fi
        if ! sha256_ok "$tmp/$f" "$s"; then
            rm -rf "$tmp"
            die "$f: sha256 mismatch (want $s). Refusing to use it."
        fi
        mv "$tmp/$f" "$srcdir/$f"
    done
    # Unpinned companions (the .dsc) are kept when they came along.
    for f in "$tmp"/*.dsc; do
        if [ -f "$f" ]; then mv "$f" "$srcdir/"; fi
    done
    rm -rf "$tmp"
    for f in "${COMP_FETCHED[@]}"; do
        [ -f "$srcdir/$f" ] ||
            die "$f (source package $spec) is missing from $srcdir: put a copy there and run again"
    done
}

mkdir -p "$srcdir"
if [ $# = 0 ]; then
    list=$(series_components)
    mapfile -t comps <<<"$list"
else
    comps=("$@")
fi
for c in "${comps[@]}"; do
    load_component "$c" series
    download
    pinned=()
    for ((i = 0; i < ${#COMP_PINNED[@]}; i += 2)); do
        pinned+=("${COMP_PINNED[i]}")
    done
    log "$c $COMP_DEB_VERSION: ${pinned[*]} in $srcdir (sha256 verified)"
done
