#!/bin/bash
# The guest I/O probe on a host file: writes, reads back and verifies;
# detects corruption; refuses bad parameters.
set -u
probe=${1:?usage: test-probe.sh PROBE}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
img=$dir/disk.img
truncate -s 4M "$img"
fail=0
expect() { # description condition...
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}

out=$("$probe" --blocks=16 --passes=2 "$img"); rc=$?
expect "clean run exits 0" [ $rc = 0 ]
expect "64 I/Os logged with latency and result" \
    [ "$(grep -c '^DIH io dev=disk.img op=\(write\|read\) blk=[0-9]* t=[0-9.]* lat_ms=[0-9.]* res=ok$' <<<"$out")" = 64 ]
expect "summary counts every block verified" \
    grep -qx 'DIH summary dev=disk.img writes=32 reads=32 errors=0 verified=32 bad=0' <<<"$out"

# The last pass wrote generation 1; write generation 0 again, then
# corrupt one byte of block 5.
"$probe" --blocks=16 "$img" > /dev/null
printf 'X' | dd of="$img" bs=1 seek=$((5 * 4096 + 100)) conv=notrunc status=none
out=$("$probe" --blocks=16 --mode=read "$img"); rc=$?
expect "corruption makes it exit 1" [ $rc = 1 ]
expect "the corrupted block is named" grep -qx 'DIH bad dev=disk.img blk=5 pass=0' <<<"$out"
expect "summary shows 15 verified, 1 bad" \
    grep -qx 'DIH summary dev=disk.img writes=0 reads=16 errors=0 verified=15 bad=1' <<<"$out"

err=$("$probe" --bs=1000 "$img" 2>&1); rc=$?
expect "a block size not a multiple of 4096 is refused" [ $rc = 2 ]
err=$("$probe" --blocks=abc "$img" 2>&1); rc=$?
expect "a malformed number is refused by name" grep -q "bad value for --blocks: 'abc'" <<<"$err"
err=$("$probe" --mode=sideways "$img" 2>&1); rc=$?
expect "an unknown mode is refused" [ $rc = 2 ]

exit $fail
