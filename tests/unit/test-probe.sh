#!/bin/bash
# The guest I/O probe on host files: its log format (src/dih-probe.c),
# write, read back and verify; corruption detected; failed writes not
# mistaken for corruption; a disk reported only once it is there; several
# I/Os in flight, several disks at once; persistent reservation commands
# on what is no SCSI device; bad parameters refused.   test-probe.sh PROBE
set -u
probe=${1:?usage: test-probe.sh PROBE}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
img=$dir/disk.img
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# Every line is a probe line of a form the one grammar defines
# (tests/dih/probe.py's FORMS), which the C file's header documents.
probe_py=$(dirname "$0")/../dih/probe.py
source=$(dirname "$0")/../../src/dih-probe.c
well_formed() { "$probe_py" --lines <<<"$1"; }

expect "the header of src/dih-probe.c documents the forms and parameters of tests/dih/probe.py, set_param() knows exactly those parameters" \
    "$probe_py" --check-source "$source"

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
expect "one I/O at a time: each pass writes blocks 0 to 15, then reads them" \
    [ "$(grep -o ' op=[a-z]* blk=[0-9]*' <<<"$out" | tr -d '\n')" = \
      "$(for p in 0 1; do for op in write read; do
             for b in $(seq 0 15); do printf ' op=%s blk=%s' $op $b; done
         done; done)" ]

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

# Each pass (the io lines before its pass line) writes every one of BLOCKS
# blocks exactly once, then reads every one exactly once.
once_per_pass() { # BLOCKS PASSES OUTPUT
    awk -v blocks="$1" -v passes="$2" '
        / io / {
            split($4, op, "="); split($5, blk, "=")
            if (op[2] == "write" && reads) bad = 1
            reads += op[2] == "read"
            n[op[2] " " blk[2]]++; ios++
        }
        /^DIH pass / {
            for (b = 0; b < blocks; b++)
                if (n["write " b] != 1 || n["read " b] != 1) bad = 1
            if (ios != 2 * blocks) bad = 1
            delete n; ios = reads = 0; seen++
        }
        END { exit bad || seen != passes }' <<<"$3"
}
# --depth: I/Os in flight, each block still written and read once a pass.
deep=$dir/deep.img
truncate -s 256K "$deep"
for depth in 4 16; do
    out=$("$probe" --depth=$depth --blocks=64 --passes=3 "$deep"); rc=$?
    expect "depth=$depth: a clean run exits 0" [ $rc = 0 ]
    expect "depth=$depth: every line has the documented format" well_formed "$out"
    expect "depth=$depth: each block written, then read, once per pass" \
        once_per_pass 64 3 "$out"
    expect "depth=$depth: the counts of all workers after each pass" \
        grep -qx 'DIH pass dev=deep.img pass=1 writes=128 reads=128 errors=0 verified=128 bad=0 unknown=0' <<<"$out"
    expect "depth=$depth: every block verified" \
        grep -qx 'DIH summary dev=deep.img writes=192 reads=192 errors=0 verified=192 bad=0 unknown=0' <<<"$out"
done
# Four workers pausing 300 ms after each I/O: the first four writes start
# at once, the fifth only after a pause.
out=$("$probe" --depth=4 --blocks=8 --pause_ms=300 "$deep")
starts=$(grep -o '^DIH io dev=deep.img op=write blk=[0-9]* t=[0-9.]*' <<<"$out" |
         sed 's/.*t=//' | sort -n)
expect "depth=4: four I/Os in flight at once" \
    awk 'NR == 1 { t = $1 } NR == 4 { a = $1 - t } NR == 5 { b = $1 - t }
         END { exit !(a < 0.15 && b >= 0.3) }' <<<"$starts"
"$probe" --blocks=16 "$img" > /dev/null
printf 'X' | dd of="$img" bs=1 seek=$((5 * 4096 + 100)) conv=notrunc status=none
out=$("$probe" --blocks=16 --mode=read --depth=4 "$img")
expect "depth=4: the corrupted block is named" \
    grep -qx 'DIH bad dev=disk.img blk=5 pass=0' <<<"$out"
"$probe" --blocks=16 "$img" > /dev/null
out=$(limited --blocks=16 --passes=2 --depth=4 "$img")
expect "depth=4: no block is reported bad after failed writes" \
    grep -qx 'DIH summary dev=disk.img writes=32 reads=32 errors=16 verified=32 bad=0 unknown=0' <<<"$out"

# --parallel: the disks at the same time, done after all of them.
clean16='writes=16 reads=16 errors=0 verified=16 bad=0 unknown=0'
other=$dir/other.img
truncate -s 64K "$other"
lines_of() { grep -En "^DIH [a-z]+ dev=$1( |\$)" <<<"$out" | cut -d: -f1; }
out=$("$probe" --blocks=16 "$img" "$other")
expect "by default one disk after the other" \
    [ "$(lines_of disk.img | tail -1)" -lt "$(lines_of other.img | head -1)" ]
out=$("$probe" --parallel=1 --blocks=16 --pause_ms=10 --depth=2 "$img" "$other"); rc=$?
expect "parallel: a clean run exits 0" [ $rc = 0 ]
expect "parallel: every line has the documented format" well_formed "$out"
expect "parallel: the disks' I/Os interleave" \
    [ "$(lines_of other.img | head -1)" -lt "$(lines_of disk.img | tail -1)" ]
for f in disk.img other.img; do
    expect "parallel: $f announced before its I/O, all its blocks verified" \
        [ "$(grep -E "dev=$f( |\$)" <<<"$out" | sed -n '1p;$p')" = "DIH disk dev=$f"$'\n'"DIH summary dev=$f $clean16" ]
done
expect "parallel: done last, rc=0" [ "$(tail -1 <<<"$out")" = "DIH done rc=0" ]

# --pr on a file: every PR command fails, logged, and the I/O goes on.
out=$("$probe" --pr=0123abcd --pr_read=1 --blocks=4 "$img"); rc=$?
expect "pr: a failed PR command does not fail the run" [ $rc = 0 ]
expect "pr: every line has the documented format" well_formed "$out"
expect "pr: each PR command logged as failed, before the I/O" \
    [ "$(sed -n 2,5p <<<"$out")" = "$(for op in register reserve read_keys read_reservation; do
         echo "DIH pr dev=disk.img op=$op res=ENOTTY"; done)" ]
expect "pr: no keys are reported after failed reads" \
    not_grep '^DIH prin ' <<<"$out"
expect "pr: the I/O goes on" \
    grep -qx 'DIH summary dev=disk.img writes=4 reads=4 errors=0 verified=4 bad=0 unknown=0' <<<"$out"

# --reader_ms: reads beside the workers, logged when their result changes;
# --scsi_reset: resets of what is no SCSI device, each logged as failed.
out=$("$probe" --blocks=4 --seconds=1.2 --pause_ms=20 --reader_ms=5 --scsi_reset=1 "$img"); rc=$?
expect "reader, resets: a run with failing resets exits 0" [ $rc = 0 ]
expect "reader, resets: every line has the documented format" well_formed "$out"
expect "reader: only its first read is logged while its result stays ok" \
    [ "$(grep '^DIH reader ' <<<"$out" | sed 's/ t=.* res=/ res=/')" = "DIH reader dev=disk.img res=ok" ]
expect "reader: its reads are not in the counts" \
    grep -qE "^DIH summary dev=disk.img writes=([0-9]+) reads=\\1 errors=0 verified=\\1 bad=0 unknown=0\$" <<<"$out"
expect "resets: one after 1 s, failing on a file" \
    [ "$(grep '^DIH reset ' <<<"$out" | sed 's/ t=.* res=/ res=/')" = "DIH reset dev=disk.img res=ENOTTY" ]
expect "resets: the first one 1 s after the workers start" \
    awk '/^DIH reset / { sub("t=", "", $4); exit !($4 >= 1 && $4 < 1.2) }' <<<"$out"
# The reader's block lies past the disk's end: each of its reads fails
# (a short read counts as EIO), logged once, and the run's rc stays 0.
truncate -s 16K "$dir/small.img"
out=$("$probe" --blocks=4 --seconds=0.3 --pause_ms=20 --reader_ms=5 "$dir/small.img"); rc=$?
expect "reader: its failures are logged once and leave rc 0" \
    [ $rc = 0 -a "$(grep '^DIH reader ' <<<"$out" | sed 's/ t=.* res=/ res=/')" = "DIH reader dev=small.img res=EIO" ]

# --seconds: passes until the time is up.
out=$("$probe" --blocks=4 --seconds=0.5 --pause_ms=10 "$img"); rc=$?
expect "a time-bound run exits 0 after more than one pass" \
    [ $rc = 0 -a "$(grep -c '^DIH pass ' <<<"$out")" -gt 1 ]

probe_refuses() { # description args...
    local what=$1 err rc; shift
    err=$("$probe" "$@" "$img" 2>&1); rc=$?
    expect "$what" [ $rc = 2 ]
}
probe_refuses "a block size not a multiple of 4096 is refused" --bs=1000
probe_refuses "an unknown mode is refused" --mode=sideways
probe_refuses "an empty number is refused" --blocks=
probe_refuses "an empty --seconds is refused" --seconds=
probe_refuses "a negative --seconds is refused" --seconds=-1
probe_refuses "an unknown parameter is refused" --colour=blue
probe_refuses "depth=0 is refused" --depth=0
probe_refuses "depth=65 is refused" --depth=65
probe_refuses "a key not hex is refused" --pr=nothex
probe_refuses "a key of 0 is refused" --pr=0
probe_refuses "parallel other than 0 or 1 is refused" --parallel=2
probe_refuses "a SCSI timeout of 0 is refused" --scsi_timeout=0
probe_refuses "a negative reader period is refused" --reader_ms=-1
probe_refuses "a reset period not a number is refused" --scsi_reset=often
err=$("$probe" --blocks=abc "$img" 2>&1)
expect "a malformed number is refused by name" grep -q "bad value for --blocks: 'abc'" <<<"$err"

exit $fail
