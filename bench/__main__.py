"""`python -m bench [NAME ...]`: run the named benchmarks (all by default)."""

from __future__ import annotations

import argparse
import importlib
import sys

BENCHMARKS = {
    "insert_rls": "bench.insert_rls",
    "webhook": "bench.webhook",
    "persist": "bench.persist",
    "pipeline": "bench.pipeline",
    "relay": "bench.relay",
    "scaleout": "bench.scaleout",
    "browser": "bench.browser",
    "archive": "bench.archive",
    "jwks_flood": "bench.jwks_flood",
    "incident_latency": "bench.incident_latency",
    "analytics": "bench.analytics",
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="benchmarks to run")
    parser.add_argument("--quick", action="store_true", help="fewer rows, for a smoke run")
    args = parser.parse_args()
    for name in args.names or list(BENCHMARKS):
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(BENCHMARKS[name]).run(quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
