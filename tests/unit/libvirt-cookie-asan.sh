#!/bin/bash
# The migration cookie parser of the libvirt series under AddressSanitizer
# (with LeakSanitizer): build qemumigrationcookiexmltest once more, with
# the test program and src/qemu/qemu_migration_cookie.c compiled with
# -fsanitize=address and linked against the uninstrumented libraries of the
# patched build, then run it with VIR_TEST_EXPENSIVE=1, which feeds the
# cookie parser and the migration check 100000 mutated cookies besides the
# test's fixed cases. Every cookie has to be parsed or refused with an
# error; ASan fails the run on any invalid access in the instrumented code
# and LSan on any leak in the whole process.
#
# Only these two files are rebuilt (seconds, not a whole ASan build of
# libvirt): the parser and the check live in qemu_migration_cookie.c, and
# the executable's instrumented copies of its functions take precedence
# over the ones in libtest_qemu_driver.so. Memory that the uninstrumented
# libraries handle is checked for leaks, not for invalid accesses.
#
# Usage: libvirt-cookie-asan.sh [BUILD_DIR]  (default work/build/libvirt)
set -euo pipefail
. "$(dirname "$0")/../../tools/lib.sh"
build=${1:-$WORK/build/libvirt}
[ -f "$build/build.ninja" ] || { echo "no libvirt build in $build" >&2; exit 1; }
cd "$build"
ninja -C "$build" tests/qemumigrationcookiexmltest > /dev/null

test_obj=tests/qemumigrationcookiexmltest.p/qemumigrationcookiexmltest.c.o
cookie_obj=src/qemu/libvirt_driver_qemu_impl.a.p/qemu_migration_cookie.c.o
out=tests/qemumigrationcookiexmltest-asan
objdir=tests/qemumigrationcookiexmltest-asan.p
mkdir -p "$objdir"

asan="-fsanitize=address -fno-omit-frame-pointer"
t0=$SECONDS

# The compile command of OBJECT in this build, with ASan, writing to OUTPUT.
compile() { # object output
    python3 - "$1" "$2" "$asan" <<'PY'
import json, shlex, subprocess, sys
obj, out, asan = sys.argv[1], sys.argv[2], sys.argv[3]
for e in json.load(open("compile_commands.json")):
    if e["output"] == obj:
        args = shlex.split(e["command"])
        break
else:
    sys.exit("no compile command for " + obj)
i = args.index("-o")
args[i + 1] = out
# drop the dependency file options and ccache: the result is not cached
clean = []
skip = False
for a in args:
    if skip:
        skip = False
        continue
    if a in ("-MD",):
        continue
    if a in ("-MQ", "-MF"):
        skip = True
        continue
    clean.append(a)
if clean[0] == "ccache":
    clean = clean[1:]
clean[1:1] = shlex.split(asan)
subprocess.run(clean, check=True, cwd=e["directory"])
PY
}

compile "$test_obj" "$build/$objdir/test.o"
compile "$cookie_obj" "$build/$objdir/cookie.o"

# The link command of the test, with the instrumented objects.
link=$(ninja -t commands tests/qemumigrationcookiexmltest | tail -1)
link=${link/" -o tests/qemumigrationcookiexmltest "/" -o $out "}
link=${link/" $test_obj "/" $objdir/test.o $objdir/cookie.o "}
case $link in
*"$objdir/cookie.o"*" -o $out "*|*" -o $out "*"$objdir/cookie.o"*) ;;
*) echo "cannot rewrite the link command: $link" >&2; exit 1;;
esac
eval "cc $asan ${link#cc }"
t1=$SECONDS

# The test re-executes itself with its mocks preloaded, which come after
# the ASan runtime then.
log=$objdir/run.log
if ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:verify_asan_link_order=0:exitcode=23 \
   LSAN_OPTIONS=exitcode=24 VIR_TEST_EXPENSIVE=1 VIR_TEST_DEBUG=1 \
   "./$out" > "$log" 2>&1; then
    rc=0
else
    rc=$?
fi
t2=$SECONDS

grep -a 'mutated cookies' "$log" || true
if [ $rc != 0 ] || grep -aq 'ERROR: \(Address\|Leak\)Sanitizer' "$log"; then
    grep -a -A40 'Sanitizer\|FAILED' "$log" | head -120
    echo "libvirt cookie parser under ASan: FAILED (exit status $rc; log: $build/$log)"
    exit 1
fi
tests=$(grep -ac '\.\.\. OK' "$log" || true)
echo "libvirt cookie parser under ASan: $tests tests OK, no ASan or LSan report (build $((t1 - t0)) s, run $((t2 - t1)) s)"
