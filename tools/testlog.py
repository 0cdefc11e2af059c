#!/usr/bin/python3
"""Read meson's testlog.json (one JSON object a line, one a test).

  tools/testlog.py summary LOG        each test's result and closing line,
                                      then 'N passed, N failed, N skipped'
  tools/testlog.py counts LOG TITLE   'TITLE: N tests, N ok, N fail, ...'
  tools/testlog.py failed LOG         the failed tests' names, one a line
  tools/testlog.py stdout LOG NAME    the output of test NAME

A test's name is meson's without the project prefix ('qemu-tests', not
'disk-io-hang / qemu-tests'). A log that does not exist reads as empty.
"""

import json
import sys

PASSED = ("OK", "EXPECTEDFAIL")
SKIPPED = ("SKIP",)


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return []
    tests = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            t = json.loads(line)
        except ValueError as e:
            sys.exit(f"{path}:{n}: not a testlog.json line: {e}")
        t["short"] = t["name"].split(" / ")[-1]
        tests.append(t)
    return tests


def summary(tests):
    ok = bad = skip = 0
    for t in tests:
        r = t["result"]
        last = [l for l in t.get("stdout", "").splitlines() if l.strip()]
        print(f"{r:5} {t['short']}: {last[-1] if last else ''}")
        if r in PASSED:
            ok += 1
        elif r in SKIPPED:
            skip += 1
        else:
            bad += 1
    print(f"{ok} passed, {bad} failed, {skip} skipped")


def counts(tests, title):
    res = {}
    for t in tests:
        res[t["result"]] = res.get(t["result"], 0) + 1
    print(f"{title}: {len(tests)} tests, " +
          ", ".join(f"{v} {k.lower()}" for k, v in sorted(res.items())))


def main(argv):
    if len(argv) < 3 or argv[1] not in ("summary", "counts", "failed", "stdout"):
        sys.exit(__doc__.strip())
    verb, tests = argv[1], read(argv[2])
    if verb == "summary" and len(argv) == 3:
        summary(tests)
    elif verb == "counts" and len(argv) == 4:
        counts(tests, argv[3])
    elif verb == "failed" and len(argv) == 3:
        for t in tests:
            if t["result"] not in PASSED + SKIPPED:
                print(t["short"])
    elif verb == "stdout" and len(argv) == 4:
        found = [t for t in tests if t["short"] == argv[3]]
        if not found:
            sys.exit(f"{argv[2]}: no test named {argv[3]}")
        sys.stdout.write(found[-1].get("stdout", ""))
    else:
        sys.exit(__doc__.strip())


if __name__ == "__main__":
    main(sys.argv)
