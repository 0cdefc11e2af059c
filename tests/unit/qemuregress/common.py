"""What every module of the net shares: the paths and log() and die()."""

import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
WORK = os.environ.get("DIH_WORK", os.path.join(TOP, "work"))
PQ = os.path.join(TOP, "tools", "pq")
PATH = "/usr/lib/ccache:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log(msg):
    print(f"[regress] {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"[regress] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)
