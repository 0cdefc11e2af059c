#!/bin/bash
# The upstream submission kit: tools/submit for both components, into a
# temporary directory, as a test submitter. Checks the output of each
# series (numbering within it, its version, From: and Signed-off-by
# rewritten, cover letter with shortlog and diffstat, QEMU's Cc list from
# scripts/get_maintainer.pl, the send-email command), that it applies
# onto the pinned base giving exactly the tree that patches/<component>
# gives (tools/submit checks that with 'git am' itself; this test checks
# it again without a checkout), and that a missing, malformed or the
# project's identity is refused. Then the same for a QEMU queue of three
# series (tests/unit/multi-series.sh): a stable one, one at version 2,
# one of a single patch; --series, get_maintainer.pl missing or failing,
# --onto with the earlier series as prerequisites. Needs the imported
# trees (DIH_WORK, default <source>/work).
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

# expect, refused, not, not_grep (and $fail, this script's exit status)
# shellcheck source=lib.sh
. "$top/tests/unit/lib.sh"
series_of() { # comp [dir]: the patches of the queue, in order
    read_series "${2:-$top/patches/$1}"
    printf '%s\n' "${SERIES[@]}"
}
cover_of() { # dir: its cover letter
    local f
    for f in "$1"/0000-cover-letter.patch "$1"/v*-0000-cover-letter.patch; do
        [ ! -e "$f" ] || { echo "$f"; return 0; }
    done
    echo "$1/0000-cover-letter.patch"
}
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

no_project_identity() { # dir
    ls "$1"/*.patch > /dev/null 2>&1 &&
        ! grep -q -e "$DIH_EMAIL" -e "$DIH_NAME <" "$1"/*.patch
}
shortlog_complete() { # outdir n
    local cover p s
    cover=$(cover_of "$1")
    grep -qxF "Test Submitter ($2):" "$cover" || return 1
    while read -r p; do
        s=$(sed -n 's/^Subject: \[PATCH [v0-9 ]*\/[0-9]*\] //p' "$p" | cut -c1-40)
        grep -qF "  $s" "$cover" || { echo "not in the shortlog: $s"; return 1; }
    done < <(patches_of "$1")
}

# The Cc addresses of a mail, lowercase, sorted, on one line.
cc_of() { # mail
    python3 - "$1" <<'PY'
import email, email.utils, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"))
print(" ".join(sorted(a.lower() for _, a in email.utils.getaddresses(m.get_all("Cc", [])))))
PY
}
# The addresses that get_maintainer.pl of TREE names for PATCHES..., not
# those of TO (space-separated), and EXTRA: the Cc of a series, one a line.
maintainers() { # tree to extra patches...
    local tree=$1 to=$2 extra=$3; shift 3
    { (cd "$tree" && scripts/get_maintainer.pl --noroles --norolestats --nogit \
           --nogit-fallback "$@") | sed 's/.*<\(.*\)>.*/\1/'
      [ -z "$extra" ] || echo "$extra"; } |
        tr '[:upper:]' '[:lower:]' | grep -vxF -f <(tr ' ' '\n' <<<"$to") | sort -u
}
every_mail_cc() { # dir addresses...
    local f
    for f in "$1"/*.patch; do
        [ "$(cc_of "$f")" = "${*:2}" ] || { echo "$f: Cc: $(cc_of "$f")"; return 1; }
    done
}
# CMD is one line, a send-email command of the mails in DIR.
one_send_email_of() { # cmd dir
    [ "$(wc -l <<<"$1")" = 1 ] && [[ $1 == *" $2/*.patch" ]]
}
send_email_ok() { # line to dir addresses...: with a --cc= of each address
    local line=$1 to=$2 dir=$3 a; shift 3
    [[ $line == "git send-email $to --cc="*" $dir/*.patch" ]] || return 1
    [ "$(grep -o -- ' --cc=' <<<"$line" | wc -l)" = $# ] || return 1
    for a; do grep -qiF -- "$a" <<<"$line" || return 1; done
}

# check_output COMP PDIR TREE OUT CMD: the output of 'tools/submit COMP' in
# OUT, of the queue in PDIR whose patches give the git tree TREE, and CMD,
# the send-email commands it printed: each series of PDIR/series in
# OUT/NAME, its subjects numbered within it, at its version, a cover
# letter or (one patch) the cover letter's text below the '---' line,
# all from the submitter; for QEMU every mail with the Cc list of
# get_maintainer.pl over the series' patches, and the stable list for a
# stable series; a send-email command per series, in order.
check_output() { # comp pdir tree out cmd
    local comp=$1 pdir=$2 tree=$3 out=$4 cmd=$5 i s n v p first=0 line what
    local to extra cover text list=() ccs=()
    to=$(printf -- '--to=%s ' "${COMP_MAIL_TO[@]}"); to=${to% }
    read_series "$pdir"
    expect "$comp: one send-email command per series (${#SERIES_NAMES[@]})" \
        [ "$(wc -l <<<"$cmd")" = ${#SERIES_NAMES[@]} ]
    for ((i = 0; i < ${#SERIES_NAMES[@]}; i++)); do
        s=${SERIES_NAMES[i]} n=${SERIES_COUNTS[i]} v=${SERIES_VERSIONS[i]}
        what="$comp $s" p="" cover=$pdir/$s/cover-letter.txt
        [ "$v" = 1 ] || p="v$v-"
        text=$(sed -n 3p "$cover")
        if [ "$n" = 1 ]; then
            expect "$what: one mail, no cover letter" \
                [ "$(find "$out/$s" -maxdepth 1 -name '*.patch' | wc -l)" = 1 ]
            expect "$what: '[PATCH${p:+ v$v}] ...' in ${p}0001-..." \
                grep -qE "^Subject: \[PATCH${p:+ v$v}\] " "$out/$s/${p}"0001-*.patch
            expect "$what: the cover letter's text below the '---' line" \
                grep -qxF "$text" <(grep -xF -A1 -- "---" "$out/$s/${p}"0001-*.patch)
        else
            expect "$what: a cover letter and $n numbered patches" \
                [ "$(find "$out/$s" -maxdepth 1 -name '*.patch' | wc -l)" = $((n + 1)) ]
            expect "$what: the cover letter's subject comes from $s/cover-letter.txt, with the version" \
                grep -qxF "Subject: [PATCH${p:+ v$v} $(printf "%0${#n}d" 0)/$n] $(sed -n '1s/^Subject: //p' "$cover")" \
                "$out/$s/${p}0000-cover-letter.patch"
            expect "$what: its text too" grep -qxF "$text" "$out/$s/${p}0000-cover-letter.patch"
            expect "$what: the shortlog names the submitter and every patch" \
                shortlog_complete "$out/$s" "$n"
        fi
        expect "$what: numbering, version $v, prefixes, From: and Signed-off-by of the submitter" \
            "$check" "$comp" --sent "$out/$s" --identity "$me" --version "$v"
        expect "$what: the project identity is gone" no_project_identity "$out/$s"
        line=$(sed -n "$((i + 1))p" <<<"$cmd")
        if [ ${#COMP_CC_COMMAND[@]} = 0 ]; then
            expect "$what: its send-email command" [ "$line" = "git send-email $to $out/$s/*.patch" ]
        else
            list=("${SERIES[@]:first:n}")
            extra=""
            [ "${SERIES_STABLE[i]}" = no ] || extra=$COMP_STABLE_CC
            mapfile -t ccs < <(maintainers "$tree" "${COMP_MAIL_TO[*]}" "$extra" "${list[@]/#/$pdir/}")
            expect "$what: every mail has in Cc: the ${#ccs[@]} addresses of get_maintainer.pl${extra:+ and $extra}" \
                every_mail_cc "$out/$s" "${ccs[@]}"
            expect "$what: its send-email command, with the same Cc" \
                send_email_ok "$line" "$to" "$out/$s" "${ccs[@]}"
        fi
        first=$((first + n))
    done
}

for comp in libvirt qemu; do
    [ -d "$WORK/$comp/.git" ] ||
        { echo "no $WORK/$comp: import it first (tools/pq ensure $comp)"; exit 1; }
    load_component $comp series
    out=$tmp/out-$comp
    read_series "$top/patches/$comp"
    echo "== $comp (${#SERIES[@]} patches, series ${SERIES_NAMES[*]})"

    cmd=$("$submit" $comp --out "$out" 2> "$tmp/submit-$comp.log"); rc=$?
    [ $rc = 0 ] || cat "$tmp/submit-$comp.log"
    expect "$comp: tools/submit succeeds with the user's git identity" [ $rc = 0 ]
    check_output $comp "$top/patches/$comp" "$WORK/$comp" "$out" "$cmd"
    expect "$comp: tools/submit checked that its output applies with git am" \
        grep -q "the output applies with git am onto the pinned base" \
        "$tmp/submit-$comp.log"
    mapfile -t queue < <(series_of $comp | sed "s|^|$top/patches/$comp/|")
    mails=()
    for s in "${SERIES_NAMES[@]}"; do mapfile -t -O ${#mails[@]} mails < <(patches_of "$out/$s"); done
    want=$(tree_of $comp "${queue[@]}")
    got=$(tree_of $comp "${mails[@]}")
    expect "$comp: the output applied to the pinned base gives the tree of patches/$comp" \
        [ -n "$want" -a "$want" = "$got" ]
    if [ $comp = qemu ]; then
        expect "qemu: the Cc of the retry series names the block layer's maintainer" \
            grep -q "^Cc: .*Kevin Wolf <kwolf@redhat.com>" "$(cover_of "$out/retry")"
    fi

    msg=$("$submit" $comp --from "$DIH_NAME <$DIH_EMAIL>" --out "$tmp/x" 2>&1); rc=$?
    expect "$comp: the project identity is refused" \
        refused $rc 'neutral project identity' "$msg"
    msg=$(HOME=$tmp/nobody "$submit" $comp --out "$tmp/x" 2>&1); rc=$?
    expect "$comp: no identity at all is refused" refused $rc 'who is submitting' "$msg"
    msg=$("$submit" $comp --from "submitter@example.com" --out "$tmp/x" 2>&1); rc=$?
    expect "$comp: a malformed --from is refused" refused $rc 'must look like' "$msg"
done

# Another version, deliberately under the project identity, to oneself.
out=$tmp/v3
cmd=$("$submit" libvirt -v 3 --allow-project-identity --to me@example.com \
          --out "$out" 2> "$tmp/submit-v3.log"); rc=$?
[ $rc = 0 ] || cat "$tmp/submit-v3.log"
expect "libvirt -v 3 --allow-project-identity --to: accepted" [ $rc = 0 ]
expect "libvirt v3: -v overrides the series file's version: '[PATCH v3 n/N]' subjects and v3- file names" \
    grep -qE '^Subject: \[PATCH v3 0*1/' "$out"/retry/v3-0001-*.patch
read_series "$top/patches/libvirt"
expect "libvirt v3: --to replaces the recipients, one command per series" \
    [ "$cmd" = "$(for s in "${SERIES_NAMES[@]}"; do
                      echo "git send-email --to=me@example.com $out/$s/*.patch"
                  done)" ]

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
series = [l.split("#")[0].split() for l in open(os.path.join(pdir, "series"))]
series = [l[0] for l in series if len(l) == 1]
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
    grep -qxF "base-commit: $head" "$(cover_of "$tmp/onto/retry")"
expect "--onto: the output is checked against the upstream commit" \
    grep -qF "the output applies with git am onto $head" "$tmp/onto.log"
mapfile -t mails < <(patches_of "$tmp/onto/retry")
expect "--onto: the output applies with plain git am onto the upstream" \
    git -C "$up" -c user.name=T -c user.email=t@e.org am -q "${mails[@]}"
expect "--onto: the upstream file is still there after it" test -f "$up/UPSTREAM-FILE"
expect "without --onto there is no base-commit (the pinned base is no upstream commit)" \
    not_grep '^base-commit:' "$(cover_of "$tmp/out-libvirt/retry")"

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
    grep -qxF "base-commit: $head" "$(cover_of "$tmp/onto3/retry")"
expect "--onto: the upstream's change is in the submitted context" \
    grep -qF "DIH-UPSTREAM" "$tmp/onto3"/retry/*.patch
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

# --- a QEMU queue of three series ------------------------------------------
# tests/unit/multi-series.sh: fixes (2 patches, stable), retry (all but the
# first two and the last, version 2), early (1), exported from a clone of
# work/qemu; tools/submit of that copy, over that clone.
echo "== qemu in three series"
. "$top/tests/unit/multi-series.sh"
multi=$tmp/multi
multi_series "$multi" > "$tmp/multi.log" 2>&1 && multi_series_export "$multi" >> "$tmp/multi.log" 2>&1
rc=$?
[ $rc = 0 ] || cat "$tmp/multi.log"
expect "a copy of the QEMU queue split into fixes, retry and early" [ $rc = 0 ]
msubmit() { DIH_WORK=$multi/work "$multi/copy/tools/submit" qemu "$@"; }
mq=$multi/copy/patches/qemu
load_component qemu series
cmd=$(msubmit --out "$tmp/m-all" 2> "$tmp/m-all.log"); rc=$?
[ $rc = 0 ] || cat "$tmp/m-all.log"
expect "three series: tools/submit succeeds" [ $rc = 0 ]
check_output qemu "$mq" "$multi/work/qemu" "$tmp/m-all" "$cmd"
expect "qemu fixes: the stable list is in its Cc (it is marked stable)" \
    grep -q "qemu-stable@nongnu.org" <(cc_of "$tmp/m-all/fixes/0001-"*.patch)
expect "qemu retry: the stable list is not (it is not)" \
    not_grep "qemu-stable@nongnu.org" <(cc_of "$tmp/m-all/retry/v2-0001-"*.patch)
expect "each series' output applies onto the pinned base and the series before it" \
    grep -qF "retry: the output applies with git am onto the pinned base and series fixes and gives" "$tmp/m-all.log"
mapfile -t queue < <(series_of qemu "$mq" | sed "s|^|$mq/|")
mails=()
for s in fixes retry early; do mapfile -t -O ${#mails[@]} mails < <(patches_of "$tmp/m-all/$s"); done
expect "the three outputs applied in order to the pinned base give the tree of the queue" \
    [ "$(tree_of qemu "${queue[@]}")" = "$(tree_of qemu "${mails[@]}")" ]

cmd=$(msubmit --series retry --out "$tmp/m-retry" 2> "$tmp/m-retry.log"); rc=$?
[ $rc = 0 ] || cat "$tmp/m-retry.log"
expect "--series retry: accepted" [ $rc = 0 ]
expect "--series retry: only retry is written" [ "$(ls "$tmp/m-retry")" = retry ]
expect "--series retry: fixes is applied first, as its prerequisite" \
    grep -qF "series fixes applied: a prerequisite of retry" "$tmp/m-retry.log"
expect "--series retry: one send-email command, of retry" \
    one_send_email_of "$cmd" "$tmp/m-retry/retry"
expect "--series retry: the same mails as the whole run's retry" \
    diff -r -I '^From [0-9a-f]\{40\} ' -I '^Date: ' "$tmp/m-all/retry" "$tmp/m-retry/retry"
msg=$(msubmit --series bogus --out "$tmp/x" 2>&1); rc=$?
expect "--series of a series the file does not name: refused, naming those it does" \
    refused $rc "patches/qemu/series has no series 'bogus' (fixes retry early)" "$msg"

# get_maintainer.pl missing, or failing: no output without the Cc list.
cp "$multi/copy/tools/components/qemu.sh" "$tmp/qemu.sh"
sed -i 's|^COMP_CC_COMMAND=(scripts/get_maintainer.pl|COMP_CC_COMMAND=(scripts/no-such-script.pl|' \
    "$multi/copy/tools/components/qemu.sh"
msg=$(msubmit --series fixes --out "$tmp/m-x" 2>&1); rc=$?
expect "a tree without the Cc command: refused, naming it" \
    refused $rc "no scripts/no-such-script.pl in the tree the series is applied to" "$msg"
cp "$tmp/qemu.sh" "$multi/copy/tools/components/qemu.sh"
sed -i 's|^COMP_CC_COMMAND=(scripts/get_maintainer.pl|COMP_CC_COMMAND=(scripts/get_maintainer.pl --no-such-option|' \
    "$multi/copy/tools/components/qemu.sh"
msg=$(msubmit --series fixes --out "$tmp/m-x" 2>&1); rc=$?
expect "get_maintainer.pl failing: refused, saying so" \
    refused $rc "'scripts/get_maintainer.pl --no-such-option --noroles --norolestats --nogit --nogit-fallback' failed over the patches of series fixes: no Cc list" "$msg"
expect "and no mail is left of it" not compgen -G "$tmp/m-x/fixes/*.patch"
cp "$tmp/qemu.sh" "$multi/copy/tools/components/qemu.sh"

# --onto: retry against an upstream with a commit of its own, fixes applied
# first; its cover letter names the upstream commit and the fixes it needs.
up=$tmp/up-qemu
git clone -q --shared "$multi/work/qemu" "$up" && git -C "$up" checkout -q -B upstream base &&
    echo "upstream" > "$up/UPSTREAM-FILE" && commit_all "$up" "upstream: a new file"
head=$(git -C "$up" rev-parse HEAD)
msubmit --series retry --onto "$up" --out "$tmp/m-onto" > /dev/null 2> "$tmp/m-onto.log"; rc=$?
[ $rc = 0 ] || cat "$tmp/m-onto.log"
expect "--series retry --onto an upstream: accepted" [ $rc = 0 ]
cover=$tmp/m-onto/retry/v2-0000-cover-letter.patch
expect "--onto: retry's cover letter ends with base-commit: of the upstream commit" \
    grep -qxF "base-commit: $head" "$cover"
expect "--onto: and a prerequisite-patch-id: for each of the 2 patches of fixes" \
    [ "$(grep -c '^prerequisite-patch-id: ' "$cover")" = 2 ]

echo "submission kit: $([ $fail = 0 ] && echo OK || echo FAILED)"
exit $fail
