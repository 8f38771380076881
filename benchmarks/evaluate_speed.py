"""Time `kresnet evaluate` of one run with this tree's code and with an older tree's, side by side.

Before models carried their preprocessing, `kresnet evaluate` rebuilt the run's
datasets, and for ``normalization: dataset`` decoded the whole train split to
recompute its channel statistics before reading the test split. Now only the
evaluated split is read. Both versions evaluate the same run directory (a run
saved by the older code: the new code wraps its model), alternately, in fresh
processes, so machine noise hits both alike; the figures are wall-clock seconds
per whole command (Python start and TensorFlow import included) and the top-1
each printed (they must agree).

Usage (the older tree is a git worktree of the commit to compare with)::

    git worktree add /tmp/oldtree c825a85
    PYTHONPATH=/tmp/oldtree kresnet train --dataset cifar10 \\
        --data-dir ../shared/datasets/cifar10 --epochs 1 --run-dir /tmp/old_run
    python benchmarks/evaluate_speed.py --run /tmp/old_run --old-tree /tmp/oldtree --rounds 2
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

EVALUATE = "import sys; sys.argv = ['kresnet', 'evaluate', sys.argv[1], '--no-write']; import keras_resnet.cli as c; c.main()"


def time_evaluate(run: str, tree: str | None) -> tuple[float, str]:
    """Seconds of one ``kresnet evaluate RUN --no-write`` and its summary line.

    Args:
        run: The run directory.
        tree: A source tree to import keras_resnet from (PYTHONPATH), or None for the installed one.

    Returns:
        (wall-clock seconds, the line with "top-1").
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if tree:
        env["PYTHONPATH"] = tree
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", EVALUATE, run], env=env, capture_output=True, text=True, cwd="/tmp")
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"evaluate failed ({tree or 'this tree'}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    line = next((row for row in done.stdout.splitlines() if "top-1" in row), "")
    return seconds, line


def main(argv=None) -> dict:
    """Alternate old and new evaluations; print each and the median ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="Run directory to evaluate (saved by the older code).")
    parser.add_argument("--old-tree", required=True, help="Source tree of the older code (a git worktree).")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {"old": [], "new": []}
    for round_ in range(1, args.rounds + 1):
        for which, tree in (("old", args.old_tree), ("new", None)):
            seconds, line = time_evaluate(args.run, tree)
            times[which].append(seconds)
            top1 = re.search(r"top-1 (\S+)", line)
            print(f"{which} round {round_}: {seconds:.1f} s  top-1 {top1.group(1) if top1 else '?'}", flush=True)
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    print(f"median: old {old:.1f} s, new {new:.1f} s, new is {old / new:.2f}x faster ({Path(args.run)})")
    return {"old": times["old"], "new": times["new"]}


if __name__ == "__main__":
    main()
