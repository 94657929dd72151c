"""`python -m sim ...`: the same as `router simulate ...`."""

from __future__ import annotations

import argparse
import sys

from router.errors import RouterError
from sim.cli import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m sim", description="What-if simulator (see docs/simulator.md).")
    add_arguments(parser)
    try:
        return run(parser.parse_args())
    except RouterError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
