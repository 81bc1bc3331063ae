"""Wall-clock timings of the four steps, as a user runs them (median of N runs).

    .venv/bin/python bench/lifecycle.py [--runs 5]

Speed is measured here, never asserted in the tests. Compare with the easy-rsa and
raw-openssl timings in the project's peer notes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--key-type", default="ec:P-256")
    args = parser.parse_args()
    certwiz = [sys.executable, "-m", "certwiz"]
    steps: dict[str, list[float]] = {
        "python start (baseline)": [],
        "ca init": [],
        "server issue": [],
        "client issue -u": [],
        "revoke + CRL": [],
        "list (3 certs)": [],
    }
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, CERTWIZ_HOME=str(Path(tmp) / "certs"))
            p = f"bench{run}"
            steps["python start (baseline)"].append(timed([sys.executable, "-c", "pass"], env))
            steps["ca init"].append(
                timed([*certwiz, "ca", "init", "-p", p, "--key-type", args.key_type], env)
            )
            steps["server issue"].append(
                timed(
                    [
                        *certwiz,
                        "server",
                        "issue",
                        "-p",
                        p,
                        "-n",
                        "s.local",
                        "--key-type",
                        args.key_type,
                    ],
                    env,
                )
            )
            steps["client issue -u"].append(
                timed(
                    [
                        *certwiz,
                        "client",
                        "issue",
                        "-p",
                        p,
                        "-n",
                        "bot",
                        "-u",
                        "--key-type",
                        args.key_type,
                    ],
                    env,
                )
            )
            steps["revoke + CRL"].append(timed([*certwiz, "revoke", "-p", p, "-n", "bot"], env))
            steps["list (3 certs)"].append(timed([*certwiz, "list", "-p", p], env))
    print(f"certwiz timings, {args.key_type}, median of {args.runs} runs (seconds)")
    for name, values in steps.items():
        print(f"  {name:26} {statistics.median(values):.3f}")


if __name__ == "__main__":
    main()
