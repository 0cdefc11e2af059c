#!/bin/bash
# The bisect check's own failure paths that need no build: a copy of the
# project whose libvirt series has a first patch that does not apply makes
# 'tools/pq check' fail and name that patch; an empty series and a
# libvirt-only option given for QEMU are refused. (A patch that breaks the
# build or the tests is named the same way, at its position; the bisect
# suite runs the real series.) Needs the imported trees (DIH_WORK, default
# <source>/work); the check's worktree, work/bisect/libvirt, is left at
# the pinned base.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
export DIH_WORK=${DIH_WORK:-$top/work}
[ -d "$DIH_WORK/libvirt/.git" ] ||
    { echo "no $DIH_WORK/libvirt: import it first (tools/pq ensure libvirt)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bisect-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/copy"
cp -a "$top/tools" "$top/patches" "$tmp/copy/"
pq=$tmp/copy/tools/pq

# shellcheck source=lib.sh
. "$top/tests/unit/lib.sh"

# The first context line of the first patch's first hunk no longer matches
# the base.
mapfile -t queue < <(. "$top/tools/lib.sh"; read_series "$top/patches/libvirt"
                     printf '%s\n' "${SERIES[@]}")
first=${queue[0]} total=${#queue[@]}
awk '!done && hunk && /^ / { print " DIH-MUTATION"; done = 1; next }
     /^@@ / { hunk = 1 } { print }' "$top/patches/libvirt/$first" \
    > "$tmp/copy/patches/libvirt/$first"
expect "the mutation changed $first" \
    not cmp -s "$top/patches/libvirt/$first" "$tmp/copy/patches/libvirt/$first"

"$pq" check libvirt --no-syntax-check > "$tmp/out" 2>&1
rc=$?
expect "a patch that does not apply fails the check (exit status $rc)" [ $rc != 0 ]
expect "the failure names patch 1/$total, $first" \
    grep -qxF "bisect check libvirt: FAILED: patch 1/$total $first does not apply" "$tmp/out"
expect "no position is reported as passed" not grep -q '^ok ' "$tmp/out"
expect "the check's worktree is left at the base" \
    [ "$(git -C "$DIH_WORK/bisect/libvirt" rev-parse HEAD)" = \
      "$(git -C "$DIH_WORK/libvirt" rev-parse base)" ]
expect "no 'git am' is left in progress there" \
    not test -d "$(git -C "$DIH_WORK/bisect/libvirt" rev-parse --path-format=absolute --git-path rebase-apply)"

printf '# no patch\n' > "$tmp/copy/patches/qemu/series"
"$pq" check qemu > "$tmp/out" 2>&1
rc=$?
expect "an empty series is refused (exit status $rc)" [ $rc != 0 ]
expect "the refusal says the series lists no patch" \
    grep -q "patches/qemu/series lists no patch" "$tmp/out"

"$pq" check qemu --no-syntax-check > "$tmp/out" 2>&1
rc=$?
expect "--no-syntax-check is refused for QEMU (exit status $rc)" [ $rc = 2 ]
expect "the refusal prints the usage" grep -qF 'tools/pq check' "$tmp/out"

[ $fail = 0 ] && echo "bisect check: failure paths OK"
exit $fail
