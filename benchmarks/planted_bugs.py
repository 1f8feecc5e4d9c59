"""How fast ``check_op`` catches each planted backward bug of tests/planted_ops.py, over seeds.

    OPENBLAS_NUM_THREADS=1 python benchmarks/planted_bugs.py [--seeds 20] [--max-examples 100]

For every bug: on how many seeds it was caught, the examples run up to the first failing one
(min / median / max), and the seconds of the whole call (search and shrinking); for every correct
version: false alarms and seconds. No example database, so every seed starts afresh.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hypothesis import settings  # noqa: E402
from planted_ops import PAIRS, run  # noqa: E402

from tinygrad_cnn.testing import GradcheckError  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--max-examples", type=int, default=100)
    args = parser.parse_args()
    settings.register_profile("bench", max_examples=args.max_examples, database=None, deadline=None)
    settings.load_profile("bench")
    print(
        "| planted bug | caught | examples to first failure (min / median / max) | s per call (median) "
        "| correct version: false alarms, s |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, (correct, buggy, kwargs) in PAIRS.items():
        firsts, times, alarms, good_times = [], [], 0, []
        for seed in range(args.seeds):
            start = time.perf_counter()
            try:
                run(buggy, kwargs, seed=seed)
            except GradcheckError as e:
                firsts.append(e.examples_to_first_failure)  # type: ignore[attr-defined]
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
            try:
                run(correct, kwargs, seed=seed)
            except GradcheckError:
                alarms += 1
            good_times.append(time.perf_counter() - start)
        spread = f"{min(firsts)} / {statistics.median(firsts):g} / {max(firsts)}" if firsts else "-"
        print(
            f"| {name} | {len(firsts)}/{args.seeds} | {spread} | {statistics.median(times):.2f} | "
            f"{alarms}/{args.seeds}, {statistics.median(good_times):.2f} |"
        )


if __name__ == "__main__":
    main()
