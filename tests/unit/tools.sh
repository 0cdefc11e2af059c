#!/bin/bash
# The workflow tools' own behaviour, on a copy of the project's tools and
# patches over the imported trees (DIH_WORK, default <source>/work):
# - the component descriptors: every tool reads them, a bad name or an
#   incomplete descriptor is refused with what is wrong;
# - 'tools/pq export' replaces the queue only once git has written all of
#   it: a failing 'git format-patch' leaves patches/ as it was;
# - 'tools/pq blame' names the first failing patch, walks in its worktree
#   and never touches work/<component> or its branch, and leaves the
#   worktree at the base also when a signal ends it;
# - './dih blame' derives the blame commands from a failed run's
#   testlog.json (the tools never call back into the tests);
# - tools/testlog.py, the one reader of testlog.json.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
export DIH_WORK=${DIH_WORK:-$top/work}
for c in libvirt qemu; do
    [ -d "$DIH_WORK/$c/.git" ] ||
        { echo "no $DIH_WORK/$c: import it first (tools/pq ensure $c)" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tools-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
copy=$tmp/copy
mkdir -p "$copy"
cp -a "$top/tools" "$top/patches" "$top/dih" "$copy/"
pq=$copy/tools/pq

# shellcheck source=lib.sh
. "$top/tests/unit/lib.sh"

# --- descriptors -----------------------------------------------------------
out=$("$pq" build bogus 2>&1); rc=$?
expect "an unknown component is refused, naming the known ones" \
    refused $rc "unknown component 'bogus' (libvirt qemu)" "$out"
out=$("$pq" build guest-kernel 2>&1); rc=$?
expect "the guest kernel is no series component" \
    refused $rc "component 'guest-kernel' is a guest-kernel, not a series" "$out"
out=$("$copy/tools/sources.sh" bogus 2>&1); rc=$?
expect "tools/sources.sh refuses an unknown component too" \
    refused $rc "unknown component 'bogus'" "$out"
out=$("$copy/tools/submit" bogus 2>&1); rc=$?
expect "so does tools/submit" refused $rc "unknown component 'bogus'" "$out"
cp "$copy/tools/components/qemu.sh" "$tmp/qemu.sh"
sed -i '/^COMP_BASE_DATE=/d' "$copy/tools/components/qemu.sh"
out=$("$pq" build qemu 2>&1); rc=$?
expect "a descriptor without COMP_BASE_DATE is refused, naming it" \
    refused $rc "tools/components/qemu.sh: COMP_BASE_DATE is not set" "$out"
cp "$tmp/qemu.sh" "$copy/tools/components/qemu.sh"
sed -i 's/^comp_test() {/comp_tst() {/' "$copy/tools/components/qemu.sh"
out=$("$pq" build qemu 2>&1); rc=$?
expect "a descriptor without comp_test is refused, naming it" \
    refused $rc "tools/components/qemu.sh: no function comp_test" "$out"
cp "$tmp/qemu.sh" "$copy/tools/components/qemu.sh"
sed -i 's/^\(COMP_PINNED=(\)/\1 extra-file/' "$copy/tools/components/qemu.sh"
out=$("$pq" build qemu 2>&1); rc=$?
expect "COMP_PINNED must be pairs of file and sha256" \
    refused $rc "COMP_PINNED must be pairs of file name and sha256" "$out"
cp "$tmp/qemu.sh" "$copy/tools/components/qemu.sh"
kernel=$("$copy/tools/guest-kernel.sh" 2>&1 | tail -1)
want=$(. "$top/tools/lib.sh"; load_component guest-kernel guest-kernel
       echo "$CACHE/kernel/${COMP_DEB_PACKAGE#linux-image-}")
expect "tools/guest-kernel.sh unpacks the kernel its descriptor pins ($want)" \
    [ "$kernel" = "$want" ]

# --- export ----------------------------------------------------------------
# One checksum of every file of the copy's patches/qemu.
queue_sum() { (cd "$copy/patches/qemu" && find . -type f -print0 | sort -z |
                   xargs -0 sha256sum | sha256sum); }
before=$(queue_sum)
out=$(GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=format.filenameMaxLength \
      GIT_CONFIG_VALUE_0=bogus "$pq" export qemu 2>&1); rc=$?
expect "a failing git format-patch fails the export" \
    refused $rc "exporting work/qemu failed; patches/qemu is unchanged" "$out"
expect "and leaves every file of patches/qemu as it was" \
    [ "$(queue_sum)" = "$before" ]
expect "and no temporary queue behind" \
    not compgen -G "$copy/patches/.qemu.export.*"
out=$("$pq" export qemu 2>&1); rc=$?
expect "the same export without the fault succeeds" [ $rc = 0 ]
expect "and reproduces patches/qemu" \
    [ "$(queue_sum)" = "$before" ]

# --- blame -----------------------------------------------------------------
branch=$(git -C "$DIH_WORK/qemu" symbolic-ref -q HEAD)
head=$(git -C "$DIH_WORK/qemu" rev-parse HEAD)
base=$(git -C "$DIH_WORK/qemu" rev-parse base)
mapfile -t queue < <(. "$top/tools/lib.sh"; read_series "$top/patches/qemu"
                     printf '%s\n' "${SERIES[@]}")
# The first patch that adds hw/block/retry.c.
first=0
for ((i = 0; i < ${#queue[@]}; i++)); do
    if grep -qxF '+++ b/hw/block/retry.c' "$top/patches/qemu/${queue[i]}"; then
        first=$((i + 1)); break
    fi
done
out=$("$pq" blame qemu --no-build -- sh -c '! test -e @TREE@/hw/block/retry.c' 2>&1); rc=$?
expect "blame names patch $first/${#queue[@]}, which adds hw/block/retry.c, as the first that fails" \
    refused $rc "qemu: patch $first/${#queue[@]} ${queue[first - 1]} is the first that fails" "$out"
expect "blame tested the base first" has "$out" "blame: the base passes"
expect "work/qemu is on its branch, at its commit" \
    [ "$(git -C "$DIH_WORK/qemu" symbolic-ref -q HEAD)" = "$branch" -a \
      "$(git -C "$DIH_WORK/qemu" rev-parse HEAD)" = "$head" ]
expect "blame's worktree is back at the base" \
    [ "$(git -C "$DIH_WORK/bisect/qemu" rev-parse HEAD)" = "$base" ]
out=$("$pq" blame qemu --no-build -- test -e @TREE@/hw/block 2>&1); rc=$?
expect "a command that passes everywhere: no patch blamed" \
    succeeded $rc "no patch of ${#queue[@]} fails" "$out"
out=$("$pq" blame qemu --no-build -- test -e @TREE@/no-such-file 2>&1); rc=$?
expect "a command that fails on the base is not pinned on a patch" \
    refused $rc "fails already at the base, without the series" "$out"
out=$("$pq" blame qemu -- ls "$DIH_WORK/build/qemu" 2>&1); rc=$?
expect "a command naming the tip's build is refused" \
    refused $rc "write @BUILD@ for the build of the position under test" "$out"

# A blame ended by SIGTERM (as a timeout ends it) while a patch is being
# tested: the command waits, at the patch that adds hw/block/retry.c, for
# a file that never comes.
marker=$tmp/at-retry
setsid "$pq" blame qemu --no-build -- sh -c \
    "if test -e @TREE@/hw/block/retry.c; then touch $marker; sleep 120; fi" \
    > "$tmp/killed.log" 2>&1 &
pid=$!
for ((i = 0; i < 300; i++)); do
    [ ! -e "$marker" ] || break
    sleep 0.1
done
expect "the blame to be killed reached patch $first" test -e "$marker"
kill -TERM -- "-$pid" 2>/dev/null
wait "$pid"; rc=$?
expect "SIGTERM ends it (exit status $rc)" [ $rc != 0 ]
expect "and its worktree is back at the base" \
    [ "$(git -C "$DIH_WORK/bisect/qemu" rev-parse HEAD)" = "$base" -a \
      -z "$(git -C "$DIH_WORK/bisect/qemu" status --porcelain)" ]
out=$("$pq" blame qemu --no-build -- test -e @TREE@/hw/block 2>&1); rc=$?
expect "and the next blame can run (the lock went with the process)" [ $rc = 0 ]
expect "work/qemu is still on its branch, at its commit" \
    [ "$(git -C "$DIH_WORK/qemu" symbolic-ref -q HEAD)" = "$branch" -a \
      "$(git -C "$DIH_WORK/qemu" rev-parse HEAD)" = "$head" ]

# --- ./dih blame and testlog.py ------------------------------------------
log=$tmp/testlog.json
{
    echo '{"name": "disk-io-hang / libvirt-test-suite", "result": "FAIL", "stdout": "libvirt test suite: 3 tests, 2 fail, 1 ok\nfailing: virschematest qemuxmlconftest\n"}'
    echo '{"name": "disk-io-hang / qemu-tests", "result": "TIMEOUT", "stdout": ""}'
    echo '{"name": "disk-io-hang / probe", "result": "FAIL", "stdout": "probe: bad\n"}'
    echo '{"name": "disk-io-hang / retry.short_outage", "result": "SKIP", "stdout": "skipped: no kvm\n"}'
    echo '{"name": "disk-io-hang / qemu-checkpatch", "result": "OK", "stdout": "checkpatch: 13 patches clean\n"}'
} > "$log"
out=$("$copy/dih" blame --dry-run "$log" 2>&1); rc=$?
expect "./dih blame: libvirt's failed tests, by name" \
    has "$out" "tools/pq blame libvirt -- meson test -C @BUILD@ --no-rebuild --print-errorlogs virschematest qemuxmlconftest"
expect "./dih blame: QEMU's tests" \
    has "$out" "tools/pq blame qemu -- $copy/tools/components/tests/qemu-tests.sh @BUILD@"
expect "./dih blame: nothing for a test no component runs" \
    [ "$(grep -c '^tools/pq blame' <<<"$out")" = 2 ]
sed -i 's/\\nfailing: [^\\]*//' "$log"
out=$("$copy/dih" blame --dry-run "$log" 2>&1)
expect "./dih blame: libvirt's whole suite when no test is named" \
    has "$out" "tools/pq blame libvirt -- $copy/tools/components/tests/libvirt-tests.sh @BUILD@ full"
out=$(grep -v '"FAIL"\|"TIMEOUT"' "$log" > "$tmp/ok.json"; "$copy/dih" blame "$tmp/ok.json" 2>&1); rc=$?
expect "./dih blame: a run without failures blames nothing" \
    succeeded $rc "no failed test" "$out"
out=$("$copy/tools/testlog.py" summary "$log")
expect "testlog.py: the closing line counts passes, failures (a timeout too) and skips" \
    [ "$(tail -1 <<<"$out")" = "1 passed, 3 failed, 1 skipped" ]
expect "testlog.py: each test with its last line" \
    has "$out" "SKIP  retry.short_outage: skipped: no kvm"
expect "testlog.py: the failed tests" \
    [ "$("$copy/tools/testlog.py" failed "$log" | paste -sd' ' -)" = "libvirt-test-suite qemu-tests probe" ]
echo '{"name": broken' >> "$log"
out=$("$copy/tools/testlog.py" summary "$log" 2>&1); rc=$?
expect "testlog.py: a corrupt line is an error naming it" \
    refused $rc "testlog.json:6: not a testlog.json line" "$out"

[ $fail = 0 ] && echo "tools: OK"
exit $fail
