#!/bin/bash
# The upstream submission kit: tools/submit for both series, into a
# temporary directory, as a test submitter. Checks the output (numbering,
# From: and Signed-off-by rewritten, cover letter with shortlog and
# diffstat, the send-email command), that it applies onto the pinned base
# giving exactly the tree that patches/<component> gives (tools/submit
# checks that with 'git am' itself; this test checks it again without a
# checkout), and that a missing, malformed or the project's identity is
# refused. Needs the imported trees (DIH_WORK, default <source>/work).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tools/lib.sh"
submit=$top/tools/submit check=$top/tools/series-check

tmp=$(mktemp -d "${TMPDIR:-/tmp}/submission-kit.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The invoking user, as far as the kit can see: a private global git config.
export HOME=$tmp/home GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME"
git config --global user.name "Test Submitter"
git config --global user.email "submitter@example.com"
me="Test Submitter <submitter@example.com>"

fail=0
expect() { # description command...
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
series_of() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$top/patches/$1/series"; }
patches_of() { # dir: its patches, one a line, without the cover letter
    local f
    for f in "$1"/*.patch; do
        case ${f##*/} in
        0000-cover-letter.patch|v*-0000-cover-letter.patch) ;;
        *) [ -e "$f" ] && echo "$f";;
        esac
    done
}

# The tree that applying PATCHES... to the base gives, in a private index:
# no checkout, nothing changes in the work tree.
tree_of() { # comp patches...
    local comp=$1 idx p; shift
    idx=$(mktemp "$tmp/index.XXXXXX")
    rm -f "$idx"
    GIT_INDEX_FILE=$idx git -C "$WORK/$comp" read-tree base || return 1
    for p in "$@"; do
        GIT_INDEX_FILE=$idx git -C "$WORK/$comp" apply --cached "$p" || return 1
    done
    GIT_INDEX_FILE=$idx git -C "$WORK/$comp" write-tree
}

refused() { # rc pattern message
    [ "$1" != 0 ] && grep -q "$2" <<<"$3"
}
no_project_identity() { # dir
    ls "$1"/*.patch > /dev/null 2>&1 &&
        ! grep -q -e "$DIH_EMAIL" -e "$DIH_NAME <" "$1"/*.patch
}
shortlog_complete() { # outdir n
    local cover=$1/0000-cover-letter.patch p s
    grep -qxF "Test Submitter ($2):" "$cover" || return 1
    while read -r p; do
        s=$(sed -n 's/^Subject: \[PATCH [0-9]*\/[0-9]*\] //p' "$p" | cut -c1-40)
        grep -qF "  $s" "$cover" || { echo "not in the shortlog: $s"; return 1; }
    done < <(patches_of "$1")
}

for comp in libvirt qemu; do
    [ -d "$WORK/$comp/.git" ] ||
        { echo "no $WORK/$comp: import it first (tools/pq ensure $comp)"; exit 1; }
    case $comp in
    libvirt) to="--to=devel@lists.libvirt.org";;
    qemu) to="--to=qemu-devel@nongnu.org --to=qemu-block@nongnu.org";;
    esac
    out=$tmp/out-$comp
    n=$(series_of $comp | wc -l)
    echo "== $comp ($n patches)"

    cmd=$("$submit" $comp --out "$out" 2> "$tmp/submit-$comp.log"); rc=$?
    [ $rc = 0 ] || cat "$tmp/submit-$comp.log"
    expect "$comp: tools/submit succeeds with the user's git identity" [ $rc = 0 ]
    expect "$comp: it prints the send-email command" \
        [ "$cmd" = "git send-email $to $out/*.patch" ]
    expect "$comp: a cover letter and $n numbered patches" \
        [ "$(find "$out" -maxdepth 1 -name '*.patch' | wc -l)" = $((n + 1)) ]
    expect "$comp: numbering, prefixes, From: and Signed-off-by of the submitter, cover letter with shortlog and diffstat" \
        "$check" $comp --sent "$out" --identity "$me"
    expect "$comp: the project identity is gone" no_project_identity "$out"
    subj=$(sed -n '1s/^Subject: //p' "$top/patches/$comp/cover-letter.txt")
    expect "$comp: the cover letter's subject comes from cover-letter.txt" \
        grep -qxF "Subject: [PATCH $(printf "%0${#n}d" 0)/$n] $subj" "$out/0000-cover-letter.patch"
    expect "$comp: its text too" \
        grep -qxF "$(sed -n 3p "$top/patches/$comp/cover-letter.txt")" \
        "$out/0000-cover-letter.patch"
    expect "$comp: the shortlog names the submitter and every patch" \
        shortlog_complete "$out" $n
    expect "$comp: tools/submit checked that its output applies with git am" \
        grep -q "the output applies with git am onto the pinned base" \
        "$tmp/submit-$comp.log"
    mapfile -t queue < <(series_of $comp | sed "s|^|$top/patches/$comp/|")
    mapfile -t mails < <(patches_of "$out")
    want=$(tree_of $comp "${queue[@]}")
    got=$(tree_of $comp "${mails[@]}")
    expect "$comp: the output applied to the pinned base gives the tree of patches/$comp" \
        [ -n "$want" -a "$want" = "$got" ]

    msg=$("$submit" $comp --from "$DIH_NAME <$DIH_EMAIL>" --out "$tmp/x" 2>&1); rc=$?
    expect "$comp: the project identity is refused" \
        refused $rc 'neutral project identity' "$msg"
    msg=$(HOME=$tmp/nobody "$submit" $comp --out "$tmp/x" 2>&1); rc=$?
    expect "$comp: no identity at all is refused" refused $rc 'who is submitting' "$msg"
    msg=$("$submit" $comp --from "submitter@example.com" --out "$tmp/x" 2>&1); rc=$?
    expect "$comp: a malformed --from is refused" refused $rc 'must look like' "$msg"
done

# A second version, deliberately under the project identity, to oneself.
out=$tmp/v2
cmd=$("$submit" libvirt -v 2 --allow-project-identity --to me@example.com \
          --out "$out" 2> "$tmp/submit-v2.log"); rc=$?
[ $rc = 0 ] || cat "$tmp/submit-v2.log"
expect "libvirt -v 2 --allow-project-identity --to: accepted" [ $rc = 0 ]
expect "libvirt v2: '[PATCH v2 n/N]' subjects and v2- file names" \
    grep -qE '^Subject: \[PATCH v2 0*1/' "$out"/v2-0001-*.patch
expect "libvirt v2: --to replaces the recipients" \
    [ "$cmd" = "git send-email --to=me@example.com $out/*.patch" ]

echo "submission kit: $([ $fail = 0 ] && echo OK || echo FAILED)"
exit $fail
