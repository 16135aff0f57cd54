#!/usr/bin/python3
"""Two finishes or models, photo by photo: the paired bootstrap of B - A.

    tools/compare_evals.py EVAL_A EVAL_B

EVAL_A and EVAL_B are `colorize eval -o` folders over the same photos; their
per_image.csv are paired by name. For PSNR, CIEDE2000 and CF it prints the
mean change from A to B, its 95% interval over 2000 resamples of the photos
(seed 1, the same for each), and the share of photos on which B is better (for CF: higher).
models/README.md's comparisons of finishes come from it. Debian's
python3-numpy."""
import csv
import sys

import numpy as np


def rows(folder):
    with open(f"{folder}/per_image.csv", newline="") as f:
        return {r["name"]: r for r in csv.DictReader(f)}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = rows(sys.argv[1]), rows(sys.argv[2])
    names = sorted(a)
    if sorted(b) != names:
        sys.exit(f"{sys.argv[1]} and {sys.argv[2]} did not measure the same photos")
    for key, label, lower_is_better in [("psnr", "PSNR dB", False), ("delta_e", "CIEDE2000", True),
                                        ("cf", "CF", False)]:
        d = np.array([float(b[n][key]) - float(a[n][key]) for n in names])
        rng = np.random.default_rng(1)  # the same resamples for each number
        means = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(2000)]
        lo, hi = np.percentile(means, [2.5, 97.5])
        better = (d < 0 if lower_is_better else d > 0).mean()
        print(f"{label:10s} {d.mean():+.4f}  95% [{lo:+.4f}, {hi:+.4f}]  B better on {100 * better:.0f}% "
              f"of {len(d)} photos")


if __name__ == "__main__":
    main()
