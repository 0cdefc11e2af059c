#!/bin/bash
# The guest I/O probe on host files: its log format (src/dih-probe.c),
# write, read back and verify; corruption detected; failed writes not
# mistaken for corruption; a disk reported only once it is there; bad
# parameters refused.   test-probe.sh PROBE
set -u
probe=${1:?usage: test-probe.sh PROBE}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
img=$dir/disk.img
fail=0
expect() { # description condition...
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
# Every line matches one of the documented forms.
n='[0-9]+'
counts="writes=$n reads=$n errors=$n verified=$n bad=$n unknown=$n"
format="^DIH (disk dev=[^ ]+|io dev=[^ ]+ op=(write|read) blk=$n t=$n\\.[0-9]{6} lat_ms=$n\\.[0-9]{3} res=(ok|E[A-Z0-9]+)|bad dev=[^ ]+ blk=$n pass=$n|pass dev=[^ ]+ pass=$n $counts|summary dev=[^ ]+ $counts|error .+|warning .+|done rc=$n)\$"
well_formed() { ! grep -Evq "$format" <<<"$1"; }

truncate -s 64K "$img"
out=$("$probe" --blocks=16 --passes=2 "$img"); rc=$?
expect "clean run exits 0" [ $rc = 0 ]
expect "every line has the documented format" well_formed "$out"
expect "the disk is announced before its I/O" \
    [ "$(head -1 <<<"$out")" = "DIH disk dev=disk.img" ]
expect "64 I/Os logged with latency and result" \
    [ "$(grep -c '^DIH io dev=disk.img .* res=ok$' <<<"$out")" = 64 ]
expect "the counts after each pass" \
    grep -qx 'DIH pass dev=disk.img pass=0 writes=16 reads=16 errors=0 verified=16 bad=0 unknown=0' <<<"$out"
expect "summary counts every block verified" \
    grep -qx 'DIH summary dev=disk.img writes=32 reads=32 errors=0 verified=32 bad=0 unknown=0' <<<"$out"
expect "done last, rc=0" [ "$(tail -1 <<<"$out")" = "DIH done rc=0" ]

# Write generation 0 again, then corrupt one byte of block 5.
"$probe" --blocks=16 "$img" > /dev/null
printf 'X' | dd of="$img" bs=1 seek=$((5 * 4096 + 100)) conv=notrunc status=none
out=$("$probe" --blocks=16 --mode=read "$img"); rc=$?
expect "corruption makes it exit 1" [ $rc = 1 ]
expect "the corrupted block is named" grep -qx 'DIH bad dev=disk.img blk=5 pass=0' <<<"$out"
expect "summary shows 15 verified, 1 bad" \
    grep -qx 'DIH summary dev=disk.img writes=0 reads=16 errors=0 verified=15 bad=1 unknown=0' <<<"$out"

# Writes that fail (as with error_policy='report' during an outage) are
# not corruption: a read must return the last acknowledged write. A file
# size limit of 32 KiB makes the writes of blocks 8 to 15 fail (EFBIG)
# while their reads succeed.
limited() { (trap '' XFSZ; ulimit -f 32; "$probe" "$@"); }
"$probe" --blocks=16 "$img" > /dev/null
out=$(limited --blocks=16 --passes=2 "$img"); rc=$?
expect "failed writes make it exit 1" [ $rc = 1 ]
expect "failed writes are logged as such" \
    [ "$(grep -c '^DIH io dev=disk.img op=write blk=\([89]\|1[0-5]\) .* res=EFBIG$' <<<"$out")" = 16 ]
expect "no block is reported bad after failed writes" \
    grep -qx 'DIH summary dev=disk.img writes=32 reads=32 errors=16 verified=32 bad=0 unknown=0' <<<"$out"
# A block no write ever reached holds data the probe cannot check.
rm -f "$img"; truncate -s 64K "$img"
out=$(limited --blocks=16 "$img")
expect "blocks no write reached are unknown, not bad" \
    grep -qx 'DIH summary dev=disk.img writes=16 reads=16 errors=8 verified=8 bad=0 unknown=8' <<<"$out"

# A disk is announced only once it is there.
out=$("$probe" --wait=1 "$dir/absent"); rc=$?
expect "a disk that never appears fails" [ $rc = 1 ]
expect "a disk that never appears is not announced" \
    [ "$out" = "DIH error dev=absent did not appear within 1 s"$'\n'"DIH done rc=1" ]
(sleep 1; truncate -s 64K "$dir/late.tmp"; mv "$dir/late.tmp" "$dir/late") &
out=$("$probe" --wait=10 --blocks=4 "$dir/late"); rc=$?
wait
expect "a disk that appears late is probed" [ $rc = 0 ]
expect "it is announced once it is there" \
    [ "$(head -1 <<<"$out")" = "DIH disk dev=late" ]

# --seconds: passes until the time is up.
out=$("$probe" --blocks=4 --seconds=0.5 --pause_ms=10 "$img"); rc=$?
expect "a time-bound run exits 0 after more than one pass" \
    [ $rc = 0 -a "$(grep -c '^DIH pass ' <<<"$out")" -gt 1 ]

refused() { # description args...
    local what=$1 err rc; shift
    err=$("$probe" "$@" "$img" 2>&1); rc=$?
    expect "$what" [ $rc = 2 ]
}
refused "a block size not a multiple of 4096 is refused" --bs=1000
refused "an unknown mode is refused" --mode=sideways
refused "an empty number is refused" --blocks=
refused "an empty --seconds is refused" --seconds=
refused "a negative --seconds is refused" --seconds=-1
refused "an unknown parameter is refused" --colour=blue
err=$("$probe" --blocks=abc "$img" 2>&1)
expect "a malformed number is refused by name" grep -q "bad value for --blocks: 'abc'" <<<"$err"

exit $fail
