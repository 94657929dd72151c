"""Instructions the worker executes per event, counted by valgrind: the steady instrument.

    python -m bench.instructions [--compiled] [--workload mixed|uniform] [--events 4000]

Wall and CPU times on a shared machine move by a factor of two from run to run, which hides a
change of 10%. An instruction count does not: this runs bench.backlog under valgrind's cachegrind
(counting only, no cache simulation) twice, with `events` and 3 x `events` events, and
divides the difference by the extra events, so start-up, imports and the warm-up cancel out. The
process writing the backlog is not counted (valgrind does not follow child processes). Run it
with each version of the code in turn to compare them; instructions are not time (a cache miss
costs more than an add), but on this code the two have moved together. Needs valgrind on PATH.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys

from bench.compiled import ensure_compiled
from bench.workload import MIXED, WORKLOADS

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(events: int, *, compiled: bool, workload: str) -> int:
    """Instructions executed by one bench.backlog run draining `events` events."""
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    cmd += [sys.executable, "-m", "bench.backlog", "--repeats", "1", "--events", str(events), "--workload", workload]
    if compiled:
        cmd.append("--compiled")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind run failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=4_000, help="events in the smaller run (the larger has 3x)")
    p.add_argument("--workload", choices=WORKLOADS, default=MIXED)
    p.add_argument("--compiled", action="store_true", help="count the mypyc-compiled router/ and streams/")
    args = p.parse_args()
    if shutil.which("valgrind") is None:
        print("bench.instructions needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    if args.events <= 0:
        print("--events must be positive", file=sys.stderr)
        return 2
    if args.compiled:
        ensure_compiled()  # built here, not under valgrind (fifty times slower)
    small = instructions(args.events, compiled=args.compiled, workload=args.workload)
    large = instructions(3 * args.events, compiled=args.compiled, workload=args.workload)
    per_event = (large - small) / (2 * args.events)
    print(f"compiled={args.compiled} workload={args.workload} instructions per event: {per_event:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
