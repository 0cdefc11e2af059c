#!/bin/bash
# The migration cookie parser of the libvirt series under AddressSanitizer
# (with LeakSanitizer): tests/unit/libvirt-cookie-fuzz.c, a libvirt test
# program, feeds the parser and the migration check of the disks that
# retry 100000 cookies, each a valid one with 1 to 4 random mutations
# (FUZZ_COOKIES, FUZZ_SEED; fixed seed by default, so runs are
# reproducible). Every cookie has to be parsed or refused with an error,
# and what is parsed has to pass or fail the check with an error; ASan
# fails the run on any invalid access in the instrumented code and LSan on
# any leak in the whole process.
#
# The driver is compiled with the compile command of libvirt's
# tests/qemumigrationcookiexmltest.c (same includes, defines, data
# directory) and linked with that test's link command, the driver's object
# in place of the test's. The driver, src/qemu/qemu_migration_cookie.c
# (parser and check) and src/qemu/qemu_domain.c (the per-disk comparison)
# are compiled with -fsanitize=address; the executable's instrumented
# copies of their functions take precedence over the ones in
# libtest_qemu_driver.so. Only these three files are rebuilt (seconds, not
# a whole ASan build of libvirt); the rest of libvirt is checked for leaks,
# not for invalid accesses.
#
# Usage: libvirt-cookie-asan.sh [BUILD_DIR]  (default work/build/libvirt)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../tools/lib.sh"
build=${1:-$WORK/build/libvirt}
[ -f "$build/build.ninja" ] || { echo "no libvirt build in $build" >&2; exit 1; }
cd "$build"
ninja -C "$build" tests/qemumigrationcookiexmltest > /dev/null

test_obj=tests/qemumigrationcookiexmltest.p/qemumigrationcookiexmltest.c.o
out=tests/qemumigrationcookiefuzz-asan
objdir=tests/qemumigrationcookiefuzz-asan.p
mkdir -p "$objdir"
asan="-fsanitize=address -fno-omit-frame-pointer"
t0=$SECONDS

# compile OBJECT OUTPUT [SOURCE]: the compile command of OBJECT in this
# build, with ASan, writing OUTPUT, of SOURCE instead of its own if given
compile() {
    python3 - "$1" "$2" "${3:-}" "$asan" <<'PY'
import json, shlex, subprocess, sys
obj, out, source, asan = sys.argv[1:5]
for e in json.load(open("compile_commands.json")):
    if e["output"] == obj:
        args = shlex.split(e["command"])
        break
else:
    sys.exit("no compile command for " + obj)
args[args.index("-o") + 1] = out
if source:
    args[args.index("-c") + 1] = source
# drop the dependency file options and ccache: the result is not cached
clean, skip = [], False
for a in args:
    if skip:
        skip = False
        continue
    if a == "-MD":
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

impl=src/qemu/libvirt_driver_qemu_impl.a.p
compile "$test_obj" "$build/$objdir/fuzz.o" "$here/libvirt-cookie-fuzz.c"
compile "$impl/qemu_migration_cookie.c.o" "$build/$objdir/cookie.o"
compile "$impl/qemu_domain.c.o" "$build/$objdir/domain.o"

# The link command of the test, with the instrumented objects.
link=$(ninja -t commands tests/qemumigrationcookiexmltest | tail -1)
link=${link/" -o tests/qemumigrationcookiexmltest "/" -o $out "}
link=${link/" $test_obj "/" $objdir/fuzz.o $objdir/cookie.o $objdir/domain.o "}
case $link in
*" -o $out "*"$objdir/fuzz.o"*|*"$objdir/fuzz.o"*" -o $out "*) ;;
*) echo "cannot rewrite the link command: $link" >&2; exit 1;;
esac
eval "cc $asan ${link#cc }"
t1=$SECONDS

# The program re-executes itself with its mocks preloaded, which come
# after the ASan runtime then.
log=$objdir/run.log
if ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:verify_asan_link_order=0:exitcode=23 \
   LSAN_OPTIONS=exitcode=24 VIR_TEST_DEBUG=1 \
   "./$out" > "$log" 2>&1; then
    rc=0
else
    rc=$?
fi
t2=$SECONDS

summary=$(grep -a 'mutated cookies' "$log" || true)
if [ $rc != 0 ] || [ -z "$summary" ] ||
   grep -aq 'ERROR: \(Address\|Leak\)Sanitizer' "$log"; then
    grep -a -A40 'Sanitizer\|FAIL' "$log" | head -120
    echo "libvirt cookie parser under ASan: FAILED (exit status $rc; log: $build/$log)"
    exit 1
fi
echo "$summary"
echo "libvirt cookie parser under ASan: no ASan or LSan report (build $((t1 - t0)) s, run $((t2 - t1)) s)"
