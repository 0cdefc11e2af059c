# shellcheck shell=bash disable=SC2034
# Shared settings for the project's tools. Sourced, not executed.

# Use the distribution's toolchain, whatever a login shell puts first.
export PATH=/usr/lib/ccache:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C.UTF-8
# set -e does not reach into command substitutions without this: in
# 'n=$(format_queue ...)' a failing git inside the function would be
# ignored and the assignment would succeed with whatever it printed.
# (It still does not reach into a command that is tested, as in 'if f' or
# 'f || ...': there the tools check each step themselves.)
shopt -s inherit_errexit

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

log() { printf '[dih] %s\n' "$*" >&2; }
die() { printf '[dih] error: %s\n' "$*" >&2; exit 1; }

# The neutral project identity the series' commits carry (the submission
# tooling re-signs them with the submitter's own).
DIH_NAME="Disk I/O Hang"
DIH_EMAIL="disk-io-hang@example.org"

# --- components ---------------------------------------------------------
# Everything the tools know about a component is in its descriptor,
# tools/components/NAME.sh: the pinned sources and their sha256s, the
# base commit, how to unpack, configure, build and test it, which files
# the base leaves out, the mailing lists (the two patched components,
# COMP_KIND=series), or the pinned guest kernel (COMP_KIND=guest-kernel).
# load_component reads one; see tools/components/qemu.sh for what a
# series component defines.
COMPONENTS_DIR=$TOP/tools/components

# All a descriptor may define: cleared before one is loaded, so that
# nothing of the previously loaded component is left over.
comp_vars=(COMP_KIND COMP_TITLE COMP_VERSION COMP_DEB_SOURCE COMP_DEB_VERSION
           COMP_DEB_SUITE COMP_DEB_PACKAGE COMP_DEB_ARCH COMP_SHA256
           COMP_APT_SOURCES COMP_PINNED COMP_FETCHED COMP_BUILD_DEPS
           COMP_BASE_DATE COMP_BASE_MESSAGE COMP_BASE_UNTRACKED
           COMP_WORKTREE_COPY COMP_CHECK_OPTIONS COMP_MAIL_TO COMP_CC_COMMAND
           COMP_STABLE_CC COMP_BLAME_TESTS COMP_REGRESS_BASE CONFIGURE_ARGS)
comp_funcs=(comp_unpack comp_configure_args comp_configure comp_post_build
            comp_test comp_blame_command comp_position_check)
comp_required_series=(COMP_TITLE COMP_VERSION COMP_DEB_SOURCE COMP_DEB_VERSION
                      COMP_DEB_SUITE COMP_PINNED COMP_BASE_DATE COMP_BASE_MESSAGE
                      COMP_MAIL_TO)
comp_required_guest_kernel=(COMP_DEB_PACKAGE COMP_VERSION COMP_DEB_ARCH
                            COMP_SHA256 COMP_APT_SOURCES)

# The patched components, one a line, in name order: the descriptors that
# say COMP_KIND=series (read as text: loading one here could recurse
# through load_component's error message).
series_components() {
    local f n
    for f in "$COMPONENTS_DIR"/*.sh; do
        grep -qx 'COMP_KIND=series' "$f" || continue
        n=${f##*/}; echo "${n%.sh}"
    done
}

# load_component NAME [KIND]: read tools/components/NAME.sh into COMP (the
# name), the COMP_* variables and the comp_* functions; with KIND, refuse a
# component of another kind. For a series component it also sets
# NAME_VERSION, NAME_DEB and NAME_SUITE (e.g. LIBVIRT_VERSION, QEMU_DEB),
# the names scripts print.
load_component() { # NAME [KIND]
    local name=$1 kind=${2:-} f=$COMPONENTS_DIR/$1.sh v fn req alias
    if [[ ! $name =~ ^[a-z][a-z0-9-]*$ ]] || [ ! -f "$f" ]; then
        die "unknown component '$name' ($(series_components | paste -sd' ' -))"
    fi
    unset "${comp_vars[@]}"
    unset -f "${comp_funcs[@]}"
    # Optional parts: empty unless the descriptor says otherwise.
    COMP_PINNED=() COMP_FETCHED=() COMP_BUILD_DEPS=() COMP_BASE_UNTRACKED=()
    COMP_WORKTREE_COPY=() COMP_CHECK_OPTIONS=() COMP_MAIL_TO=()
    COMP_CC_COMMAND=() COMP_STABLE_CC=""
    COMP_BLAME_TESTS=() COMP_APT_SOURCES=() COMP_REGRESS_BASE=no
    comp_post_build() { :; }
    comp_blame_command() { return 1; }
    comp_position_check() { :; }
    # shellcheck source=/dev/null
    . "$f" || die "$f: could not be read"
    COMP=$name
    [ -n "${COMP_KIND:-}" ] || die "$f: no COMP_KIND"
    if [ -n "$kind" ] && [ "$COMP_KIND" != "$kind" ]; then
        die "component '$name' is a $COMP_KIND, not a $kind ($kind components: $(series_components | paste -sd' ' -))"
    fi
    req=comp_required_${COMP_KIND//-/_}
    declare -p "$req" > /dev/null 2>&1 || die "$f: unknown COMP_KIND '$COMP_KIND'"
    local -n required=$req
    for v in "${required[@]}"; do
        # Set and not empty (for an array: its first element).
        [ -n "${!v:-}" ] || die "$f: $v is not set"
    done
    if [ "$COMP_KIND" = series ]; then
        for fn in "${comp_funcs[@]}"; do
            declare -F "$fn" > /dev/null || die "$f: no function $fn"
        done
        [ $((${#COMP_PINNED[@]} % 2)) = 0 ] ||
            die "$f: COMP_PINNED must be pairs of file name and sha256"
        alias=${name^^}; alias=${alias//-/_}
        declare -g "${alias}_VERSION=$COMP_VERSION" \
                   "${alias}_DEB=$COMP_DEB_VERSION" "${alias}_SUITE=$COMP_DEB_SUITE"
    fi
}

# read_series DIR: the series file DIR/series. It lists every patch of
# the component in 'git am' order, grouped by series: a line 'series NAME
# VERSION [stable]' starts one (VERSION: its reroll count; 'stable': a fix
# for the stable branches), the lines after it name its patches, relative
# to DIR (NAME/0001-....patch, NAME/v2-0001-....patch). Into the arrays
# SERIES (every patch, in order), and per series, in order, SERIES_NAMES,
# SERIES_VERSIONS, SERIES_STABLE (yes or no) and SERIES_COUNTS (its
# number of patches). All empty without a series file; '#' starts a
# comment.
read_series() { # DIR
    local f=$1/series line n=0 words stable
    SERIES=() SERIES_NAMES=() SERIES_VERSIONS=() SERIES_STABLE=() SERIES_COUNTS=()
    [ -f "$f" ] || return 0
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        read -ra words <<<"${line%%#*}"
        if [ ${#words[@]} = 0 ]; then
            continue
        elif [ "${words[0]}" = series ]; then
            [[ ${words[1]:-} =~ ^[a-z0-9][a-z0-9._-]*$ && ${words[2]:-} =~ ^[1-9][0-9]*$ ]] &&
                { [ ${#words[@]} = 3 ] || [ "${words[*]:3}" = stable ]; } ||
                die "$f:$n: expected 'series NAME VERSION [stable]', not '$line'"
            [[ " ${SERIES_NAMES[*]} " != *" ${words[1]} "* ]] ||
                die "$f:$n: a second series '${words[1]}'"
            stable=no
            [ ${#words[@]} = 3 ] || stable=yes
            SERIES_NAMES+=("${words[1]}") SERIES_VERSIONS+=("${words[2]}")
            SERIES_STABLE+=("$stable") SERIES_COUNTS+=(0)
        elif [ ${#words[@]} = 1 ] && [ ${#SERIES_NAMES[@]} -gt 0 ]; then
            SERIES+=("${words[0]}")
            SERIES_COUNTS[-1]=$((SERIES_COUNTS[-1] + 1))
        else
            die "$f:$n: expected a patch of a series after its 'series NAME VERSION' line, not '$line'"
        fi
    done < "$f" || die "cannot read $f"
}

sha256_ok() { # FILE SHA256
    local got
    [ -f "$1" ] || return 1
    got=$(sha256sum < "$1") || return 1
    [ "${got%% *}" = "$2" ]
}

# on_exit COMMAND: run COMMAND when the shell exits, also when SIGINT,
# SIGTERM or SIGHUP ends it (each is made an exit, so that the EXIT trap
# runs whatever bash would do with the signal itself). In a subshell this
# covers the subshell.
on_exit() { # COMMAND
    # shellcheck disable=SC2064
    trap "$1" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}
