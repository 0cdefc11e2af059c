#!/usr/bin/python3
"""The soak's oracle on the real probe, without a guest.

    soak-oracle.py PROBE

The probe (PROBE, built from src/dih-probe.c) writes and reads back a
file at queue depth 8 for 3 passes; the soak's Ledger reads its output
and its check_image() must find every block of the file holding the
generation of its last acknowledged write. Then each way the image can
lose a write must be found: a block rolled back to an older generation,
a block of another block's data, a zeroed block, a flipped bit. And the
leak judgement (growth()) must tell a warm-up that levels off from RSS
and open files that keep growing.
"""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "soak"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))

import soak  # noqa: E402
from dih.console import Console  # noqa: E402

PASSES = 3


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    return condition


def main(probe):
    ok = True
    d = tempfile.mkdtemp(dir=os.environ.get("TMPDIR", "/var/tmp"))
    try:
        img = os.path.join(d, "disk.img")
        with open(img, "wb") as f:
            f.truncate(soak.BLOCKS * soak.BS)
        out = subprocess.run(
            [probe, f"--blocks={soak.BLOCKS}", f"--bs={soak.BS}",
             f"--depth={soak.DEPTH}", f"--passes={PASSES}", img],
            capture_output=True, text=True)
        console_path = os.path.join(d, "console")
        with open(console_path, "w") as f:
            f.write(out.stdout)
        ok &= check(out.returncode == 0, f"the probe ran ({out.returncode})")
        ledger = soak.Ledger("disk.img")
        ledger.feed(Console(console_path))
        ok &= check(ledger.passes == PASSES and
                    sorted(ledger.acked) == list(range(soak.BLOCKS)) and
                    set(ledger.acked.values()) == {PASSES - 1},
                    f"the ledger has every block at pass {PASSES - 1}")
        checked, bad = ledger.check_image(img)
        ok &= check(checked == soak.BLOCKS and not bad,
                    f"the image holds every acknowledged write ({bad})")

        with open(img, "rb") as f:
            data = f.read()

        def block(i):
            return data[i * soak.BS:(i + 1) * soak.BS]

        old = bytearray(block(5))
        # An older generation of block 5: what fill() wrote a pass before
        old[16:24] = (PASSES - 2).to_bytes(8, "little")
        flipped = bytearray(block(7))
        flipped[1000] ^= 1
        for name, blk, content in (
                ("rolled back to its previous pass", 5, None),
                ("holding block 6's data", 6, block(5)),
                ("zeroed", 9, bytes(soak.BS)),
                ("with a flipped bit", 7, bytes(flipped))):
            broken = os.path.join(d, "broken.img")
            shutil.copy(img, broken)
            if content is None:
                content = soak.probe_block(blk, PASSES - 2)
            with open(broken, "r+b") as f:
                f.seek(blk * soak.BS)
                f.write(content)
            _, bad = ledger.check_image(broken)
            ok &= check([b[0] for b in bad] == [blk],
                        f"a block {name} is found ({bad})")
        ok &= check(soak.block_generation(old, 5) is None,
                    "a header's generation that its pattern does not "
                    "follow is no block")

        def samples(rss, fds):
            return [(i + 1, 100, r, f) for i, (r, f) in
                    enumerate(zip(rss, fds))]
        warm = [200_000 + min(i, 6) * 2048 for i in range(20)]
        _, rise, fd = soak.growth(samples(warm, [26] * 20))
        ok &= check(rise <= soak.RSS_LEAK_MIB and fd == 0,
                    f"a warm-up that levels off is no leak ({rise:.1f} MiB)")
        leak = [200_000 + i * 1024 for i in range(20)]
        _, rise, _ = soak.growth(samples(leak, [26] * 20))
        ok &= check(rise > soak.RSS_LEAK_MIB,
                    f"1 MiB more each outage is a leak ({rise:.1f} MiB)")
        _, _, fd = soak.growth(samples([200_000] * 20, range(20, 40)))
        ok &= check(fd > soak.FD_LEAK,
                    f"one more open file each outage is a leak ({fd})")
        ok &= check(soak.growth(samples(leak[:5], [26] * 5)) ==
                    (None, None, None),
                    "too few samples are not judged")
    finally:
        shutil.rmtree(d)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
