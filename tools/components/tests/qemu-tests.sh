#!/bin/bash
# QEMU tests covering the series, run on the patched tree's build.
# Usage: qemu-tests.sh BUILD_DIR
#
# 1. smoke: the binaries run and the disk devices the series extends exist;
# 2. qos-test: every virtio-blk and SCSI test of QEMU's own qtest suite
#    (virtio-blk, virtio-scsi, megasas, ...), which includes the series'
#    retry-* and probe-* tests once they exist in the tree;
# 3. QEMU's standalone SCSI qtests that the build has.
# Prints each test with its result and the counts; exits non-zero on any
# failure. When the tree has the series' own qtests (qos_add_test of a
# "retry-*" or "probe-*" test), every qos path with 'retry' or '/probe-' in
# it must have run and passed: a SKIP of one, or fewer such paths than the
# tree registers, is a failure too.
set -uo pipefail
build=${1:?usage: qemu-tests.sh BUILD_DIR}
build=$(cd "$build" && pwd)
export PATH=/usr/lib/ccache:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C.UTF-8
[ -x "$build/qemu-system-x86_64" ] || { echo "no QEMU build in $build" >&2; exit 1; }

fail=0
pass_n=0 fail_n=0 skip_n=0
failed=()
# The outcome of each qos path run: PASS, FAIL or SKIP.
declare -A qos_result=()

# --- 1. smoke -------------------------------------------------------------
for b in qemu-system-x86_64 qemu-img qemu-io qemu-pr-helper; do
    if ! "$build/$b" --version > /dev/null; then
        echo "qemu: $b does not run"; fail=1
    fi
done
# The disk devices the series extends must still be usable.
for d in virtio-blk-pci scsi-hd scsi-cd scsi-block; do
    if ! "$build/qemu-system-x86_64" -nodefaults -machine none \
            -device "$d,help" > /dev/null; then
        echo "qemu: -device $d,help failed"; fail=1
    fi
done
[ $fail = 0 ] && echo "qemu: binaries and disk device types OK"

# --- 2./3. qtests ---------------------------------------------------------
standalone=(am53c974-test fuzz-lsi53c895a-test fuzz-megasas-test
            fuzz-scsi-disk-test fuzz-virtio-scsi-test)
targets=(tests/qtest/qos-test)
for t in "${standalone[@]}"; do
    if ninja -C "$build" -t query "tests/qtest/$t" > /dev/null 2>&1; then
        targets+=("tests/qtest/$t")
    fi
done
if ! ninja -C "$build" "${targets[@]}" > "$build/qemu-tests-build.log" 2>&1; then
    grep -E 'error|FAILED' "$build/qemu-tests-build.log" | head -20
    echo "qemu: building the qtests failed (log: $build/qemu-tests-build.log)"
    exit 1
fi

# The build has no firmware (--disable-install-blobs): tools/pq links
# Debian's SeaBIOS and ROMs into its qemu-bundle.
datadir=$(sed -n 's/^#define CONFIG_QEMU_DATADIR "\(.*\)"$/\1/p' \
              "$build/config-host.h")
if [ ! -e "$build/qemu-bundle$datadir/bios-256k.bin" ]; then
    echo "qemu: no firmware in $build/qemu-bundle$datadir (build with tools/pq build qemu)"
    exit 1
fi

export QTEST_QEMU_BINARY="$build/qemu-system-x86_64"
export QTEST_QEMU_IMG="$build/qemu-img"
export QTEST_QEMU_STORAGE_DAEMON_BINARY="$build/storage-daemon/qemu-storage-daemon"
export G_TEST_DBUS_DAEMON=/bin/true
export MALLOC_PERTURB_=$((RANDOM % 255 + 1))
logdir=$(mktemp -d "${TMPDIR:-/tmp}/qemu-tests.XXXXXX")
trap 'rm -rf "$logdir"' EXIT

# record NAME RESULT TAP_LINE: remember the outcome of a qos-test path.
record() {
    local path
    [ "$1" = qos-test ] || return 0
    path=$(printf '%s\n' "$3" | sed -E 's/^(not )?ok [0-9]+ ([^ ]+).*/\2/')
    qos_result[$path]=$2
}

# run_gtest NAME BINARY [ARGS...]: run a GTest binary in TAP mode, count.
run_gtest() {
    local name=$1 bin=$2 rc line; shift 2
    echo "== $name"
    timeout 900 "$bin" --tap -k "$@" > "$logdir/$name.log" 2>&1
    rc=$?
    while IFS= read -r line; do
        case $line in
        "ok "*"# SKIP"*) skip_n=$((skip_n + 1)); echo "  SKIP ${line#ok }"
                         record "$name" SKIP "$line";;
        "ok "*) pass_n=$((pass_n + 1)); echo "  PASS ${line#ok }"
                record "$name" PASS "$line";;
        "not ok "*) fail_n=$((fail_n + 1)); failed+=("$name: ${line#not ok }")
                    echo "  FAIL ${line#not ok }"
                    record "$name" FAIL "$line";;
        esac
    done < "$logdir/$name.log"
    if [ $rc != 0 ]; then
        echo "  $name exited with status $rc; last lines of its output:"
        tail -20 "$logdir/$name.log" | sed 's/^/    /'
        fail=1
    fi
}

qos="$build/tests/qtest/qos-test"
mapfile -t paths < <("$qos" -l 2>/dev/null |
                     grep -E '^/x86_64/.*(virtio-blk|scsi|megasas|retry)' |
                     grep -vE 'vhost-user|vhost-scsi' | sort -u)
if [ ${#paths[@]} = 0 ]; then
    echo "qemu: qos-test lists no virtio-blk or SCSI test"; fail=1
else
    args=()
    for p in "${paths[@]}"; do args+=(-p "$p"); done
    run_gtest qos-test "$qos" "${args[@]}"
fi
for t in "${targets[@]:1}"; do
    run_gtest "${t##*/}" "$build/$t"
done

# The series' own tests must have run and passed when they are in the tree:
# each qos_add_test("retry-...") or ("probe-...") gives one path per machine
# and device that has the node, so at least that many.
src=$(sed -n "s/^SRC_PATH=//p" "$build/config-host.mak" 2>/dev/null)
registered=0
if [ -n "$src" ]; then
    registered=$(cat "$src"/tests/qtest/*.c | grep -cE 'qos_add_test\("(retry|probe)-' || true)
fi
if [ "$registered" -gt 0 ]; then
    retry_pass=0 retry_bad=()
    for p in "${paths[@]}"; do
        case $p in *retry*|*/probe-*) ;; *) continue;; esac
        r=${qos_result[$p]:-NOT RUN}
        if [ "$r" = PASS ]; then
            retry_pass=$((retry_pass + 1))
        else
            retry_bad+=("$r $p")
        fi
    done
    echo "qemu: $retry_pass retry and probe tests passed ($registered registered in the tree)"
    for b in "${retry_bad[@]}"; do echo "  retry test not passed: $b"; done
    if [ ${#retry_bad[@]} != 0 ] || [ "$retry_pass" -lt "$registered" ]; then
        echo "qemu: the series' retry and probe tests must all run and pass (at least $registered)"
        fail=1
    fi
fi

echo "qemu qtests: $pass_n passed, $fail_n failed, $skip_n skipped"
for f in "${failed[@]}"; do echo "  failed: $f"; done
[ $fail_n = 0 ] || fail=1
exit $fail
