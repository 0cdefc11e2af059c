#!/bin/bash
# QEMU's scripts/checkpatch.pl over every patch of the QEMU series; any
# ERROR or WARNING fails (checkpatch itself fails on errors only), with
# one exception: "Macros with complex values" on a '#define
# DEFINE_..._PROPERTIES' list of qdev properties, which checkpatch reports
# for upstream's own DEFINE_BLOCK_PROPERTIES too (such a list of
# initializers cannot be put in parentheses). It is printed, not counted.
# Usage: qemu-checkpatch.sh QEMU_TREE PATCH_DIR
set -uo pipefail
tree=${1:?usage: qemu-checkpatch.sh QEMU_TREE PATCH_DIR}
pdir=${2:?usage: qemu-checkpatch.sh QEMU_TREE PATCH_DIR}
export LC_ALL=C.UTF-8
cp=$tree/scripts/checkpatch.pl
[ -f "$cp" ] || { echo "no $cp: import the QEMU tree first (tools/pq ensure qemu)" >&2; exit 1; }
[ -f "$pdir/series" ] || { echo "no series file in $pdir" >&2; exit 1; }

fail=0 n=0 bad=0
while read -r p; do
    n=$((n + 1))
    out=$(cd "$tree" && perl "$cp" --color=never --root="$tree" "$pdir/$p" 2>&1)
    rc=$?
    # The one accepted report: the ERROR line, its location and a context
    # that starts with the property list's #define.
    known=$(grep -A2 '^ERROR: Macros with complex values' <<<"$out" |
                grep -c '^+#define DEFINE_[A-Z0-9_]*_PROPERTIES(')
    if [ "$known" -gt 0 ] &&
       [ "$(grep -c '^ERROR:' <<<"$out")" = "$known" ] &&
       grep -qE "^total: $known errors, 0 warnings" <<<"$out"; then
        echo "ok   $p: checkpatch's known false positive on a qdev property list ($known)"
        continue
    fi
    if [ $rc != 0 ] || grep -qE '^(ERROR|WARNING):' <<<"$out"; then
        echo "FAIL $p"
        grep -E -A4 '^(ERROR|WARNING):' <<<"$out" | grep -v '^total:' | sed 's/^/    /'
        grep -E '^total:' <<<"$out" | sed 's/^/    /'
        fail=1 bad=$((bad + 1))
    else
        echo "ok   $p: $(grep -E '^total:' <<<"$out")"
    fi
done < <(. "$(dirname "$0")/../../tools/lib.sh"; read_series "$pdir"
         printf '%s\n' "${SERIES[@]}")
[ $n -gt 0 ] || { echo "the series lists no patch" >&2; exit 1; }
echo "checkpatch.pl: $n patches, $bad with errors or warnings"
exit $fail
