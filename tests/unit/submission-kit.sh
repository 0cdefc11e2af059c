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

not_grep() { ! grep -q "$@"; }
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
    load_component $comp series
    to=$(printf -- '--to=%s ' "${COMP_MAIL_TO[@]}"); to=${to% }
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

# --- --onto: an upstream checkout newer than the pinned base -------------
# Three upstreams, each the pinned base plus one commit of its own, in
# clones of work/libvirt: one that adds a file; one that changes a context
# line of a hunk (plain 'git am' refuses the patch, 'git am -3' merges it);
# one that changes a line a patch removes (a real conflict).
upstream() { # dir
    git clone -q --shared "$WORK/libvirt" "$1" && git -C "$1" checkout -q -B upstream base
}
commit_all() { # dir message
    git -C "$1" add -A && git -C "$1" -c user.name=Upstream \
        -c user.email=upstream@example.org commit -q -m "$2"
}
# mutate DIR MODE: change, in DIR, the line that MODE picks in the first
# patch of the libvirt series that has one, and print 'PATCH_NUMBER FILE'.
# MODE context: the first line of a hunk, followed by two more unchanged
# lines; MODE removed: a non-blank line the patch removes.
mutate() { # dir mode
    python3 - "$1" "$2" "$top/patches/libvirt" <<'PY'
import os, re, sys
up, mode, pdir = sys.argv[1:]
series = [l.split("#")[0].strip() for l in open(os.path.join(pdir, "series"))]
series = [l for l in series if l]
for n, name in enumerate(series, 1):
    path = None
    lines = open(os.path.join(pdir, name), encoding="utf-8").read().split("\n")
    for i, l in enumerate(lines):
        if l.startswith("+++ b/"):
            path = l[6:]
        m = re.match(r"^@@ -(\d+)", l)
        if not m or path is None:
            continue
        hunk, old = lines[i + 1:], int(m.group(1))
        if mode == "context":
            if (len(hunk) >= 3 and all(h.startswith(" ") for h in hunk[:3])
                    and hunk[0].strip()):
                target, at = hunk[0][1:], old
            else:
                continue
        else:
            ln, target = old, None
            for h in hunk:
                if h.startswith("@@") or not h[:1] in (" ", "-", "+"):
                    break
                if h.startswith("-") and h[1:].strip():
                    target, at = h[1:], ln
                    break
                if not h.startswith("+"):
                    ln += 1
            if target is None:
                continue
        f = os.path.join(up, path)
        text = open(f, encoding="utf-8").read().split("\n")
        assert text[at - 1] == target, (path, at, target)
        text[at - 1] = target + " /* DIH-UPSTREAM */"
        open(f, "w", encoding="utf-8").write("\n".join(text))
        print(n, path)
        sys.exit(0)
sys.exit("no hunk to mutate")
PY
}

# submit_onto UPSTREAM OUT: tools/submit libvirt --onto, its log in OUT.log.
submit_onto() {
    "$submit" libvirt --onto "$1" --out "$2" > /dev/null 2> "$2.log"; rc=$?
    [ $rc = 0 ] || cat "$2.log"
}

echo "== libvirt --onto"
up=$tmp/up-new
upstream "$up" && echo "upstream" > "$up/UPSTREAM-FILE" && commit_all "$up" "upstream: a new file"
head=$(git -C "$up" rev-parse HEAD)
submit_onto "$up" "$tmp/onto"
expect "--onto a newer upstream: accepted" [ $rc = 0 ]
expect "--onto: the cover letter ends with base-commit: of the upstream commit" \
    grep -qxF "base-commit: $head" "$tmp/onto/0000-cover-letter.patch"
expect "--onto: the output is checked against the upstream commit" \
    grep -qF "the output applies with git am onto $head" "$tmp/onto.log"
mapfile -t mails < <(patches_of "$tmp/onto")
expect "--onto: the output applies with plain git am onto the upstream" \
    git -C "$up" -c user.name=T -c user.email=t@e.org am -q "${mails[@]}"
expect "--onto: the upstream file is still there after it" test -f "$up/UPSTREAM-FILE"
expect "without --onto there is no base-commit (the pinned base is no upstream commit)" \
    not_grep '^base-commit:' "$tmp/out-libvirt/0000-cover-letter.patch"

up=$tmp/up-context
upstream "$up" && read -r cn cfile < <(mutate "$up" context) && commit_all "$up" "upstream: a context line"
head=$(git -C "$up" rev-parse HEAD)
status=$(git -C "$up" status --porcelain)
mapfile -t queue < <(series_of libvirt | sed "s|^|$top/patches/libvirt/|")
idx=$tmp/plain.index
GIT_INDEX_FILE=$idx git -C "$up" read-tree HEAD
GIT_INDEX_FILE=$idx git -C "$up" apply --cached "${queue[@]:0:$cn}" > /dev/null 2>&1; rc=$?
expect "a context line changed upstream ($cfile, patch $cn): plain git apply refuses patch $cn" [ $rc != 0 ]
submit_onto "$up" "$tmp/onto3"
expect "--onto merges it with git am -3" [ $rc = 0 ]
expect "--onto: base-commit: names that upstream commit" \
    grep -qxF "base-commit: $head" "$tmp/onto3/0000-cover-letter.patch"
expect "--onto: the upstream's change is in the submitted context" \
    grep -qF "DIH-UPSTREAM" "$tmp/onto3"/*.patch
expect "--onto: the upstream checkout is not changed" \
    [ "$(git -C "$up" rev-parse HEAD)" = "$head" -a "$(git -C "$up" status --porcelain)" = "$status" ]

up=$tmp/up-conflict
upstream "$up" && read -r xn xfile < <(mutate "$up" removed) && commit_all "$up" "upstream: a removed line"
head=$(git -C "$up" rev-parse HEAD)
xname=$(series_of libvirt | sed -n "${xn}p")
msg=$("$submit" libvirt --onto "$up" --out "$tmp/ontox" 2>&1); rc=$?
expect "a line the series removes changed upstream: refused" [ $rc != 0 ]
expect "the refusal names patch $xn, $xname, and the conflicting file $xfile" \
    grep -qF "patch $xn/$(series_of libvirt | wc -l), $xname, does not apply onto $up ($head); conflicts in: $xfile" <<<"$msg"
expect "the refused upstream checkout is not changed" \
    [ "$(git -C "$up" rev-parse HEAD)" = "$head" -a -z "$(git -C "$up" status --porcelain)" ]
msg=$("$submit" libvirt --onto "$tmp/nowhere" --out "$tmp/x" 2>&1); rc=$?
expect "--onto a directory that is no git checkout: refused" refused $rc 'not a git checkout' "$msg"

echo "submission kit: $([ $fail = 0 ] && echo OK || echo FAILED)"
exit $fail
