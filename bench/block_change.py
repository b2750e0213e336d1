#!/usr/bin/python3
"""BWCache's U-shape question on an `analyze` run: the per-block change over the sampling steps.

    /usr/bin/python3 bench/block_change.py DIR [DIR ...]

DIR is an output folder of `blockdance analyze` (its block_similarity.csv: relative L1 change of every block's output
against the previous step). For each DIR it prints, as Markdown, the mean over blocks of that change per step (BWCache's
Eq. 6 divided by the depth) in five phases of the run, and the ratios that decide the shape: the change at the start
and at the end against the quietest phase of the middle. A U has both arms (start and end well above the middle); the
inverted L that BWCache reports for class-conditional image models has only the left one.
"""
import csv
import sys

import numpy as np


def per_step(path):
    rows = list(csv.DictReader(open(path)))
    steps = sorted({int(r["step"]) for r in rows})
    return steps, np.array([np.mean([float(r["rel_l1"]) for r in rows if int(r["step"]) == s]) for s in steps])


def describe(folder):
    steps, change = per_step(f"{folder}/block_similarity.csv")
    n = len(change)
    tenth = max(1, n // 10)
    start, end = change[:tenth].mean(), change[-tenth:].mean()
    middle = change[tenth:n - tenth]
    window = max(1, n // 5)
    quiet = min(middle[i:i + window].mean() for i in range(len(middle) - window + 1))
    quiet_at = steps[tenth + int(np.argmin([middle[i:i + window].mean() for i in range(len(middle) - window + 1)]))]
    left, right = start / quiet, end / quiet
    shape = ("U" if left >= 2 and right >= 2 else "inverted L (left arm only)" if left >= 2
             else "rising (right arm only)" if right >= 2 else "flat")
    phases = np.array_split(np.arange(n), 5)
    lines = [f"### {folder}\n",
             "| steps | " + " | ".join(f"{steps[p[0]]}–{steps[p[-1]]}" for p in phases) + " |",
             "|---|" + "---|" * len(phases),
             "| mean relative L1 over blocks | " + " | ".join(f"{change[p].mean():.4f}" for p in phases) + " |", "",
             f"First {tenth} step(s): {start:.4f}; last {tenth}: {end:.4f}; quietest {window}-step stretch of the middle "
             f"(from step {quiet_at}): {quiet:.4f}. Start / middle = {left:.1f}, end / middle = {right:.1f}: **{shape}**.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print("\n".join(describe(d) for d in sys.argv[1:]))
