#!/usr/bin/env python3
"""Print scipy's Wilcoxon, Friedman and incomplete-gamma values that
crates/heft-tune/tests/stats.rs pins.

Run it in a virtual environment outside the repository:

    python3 -m venv /tmp/statsenv && /tmp/statsenv/bin/pip install scipy
    /tmp/statsenv/bin/python tools/stats_reference.py

Wilcoxon values are two-sided. "auto" with ties or zeros and at most 13
pairs is scipy's permutation test, which enumerates all 2^n sign patterns
and is therefore the exact distribution over the tied ranks.
"""

import numpy as np
import scipy
from scipy import special, stats

print(f"# scipy {scipy.__version__}, numpy {np.__version__}")

WILCOXON = {
    # 10 pairs, no ties, no zeros.
    "plain": (
        [0.12, -0.31, 0.45, 0.08, 0.66, -0.02, 0.91, 0.27, -0.15, 0.39],
        None,
    ),
    # 10 differences with tied absolute values, no zeros.
    "ties": ([1, 2, -2, 3, 3, 3, -1, 4, 5, 5], None),
    # 12 differences with three zeros and ties.
    "zeros": ([0, 1, -1, 0, 2, 3, 3, -4, 0, 5, 6, 2], None),
    # 30 differences, no ties, for the exact and normal methods.
    "large": (
        [((i * 37) % 61 - 25) + 0.01 * i for i in range(30)],
        None,
    ),
    # 40 paired accuracies with ties and zeros (differences in 1/2000).
    "accuracy": (
        [0.8 + ((i * 7) % 11) / 2000 for i in range(40)],
        [0.8 + ((i * 5) % 9) / 2000 for i in range(40)],
    ),
}

for name, (x, y) in WILCOXON.items():
    x = np.asarray(x, dtype=float)
    y = None if y is None else np.asarray(y, dtype=float)
    for zero_method in ("wilcox", "pratt"):
        cases = [("approx", True), ("approx", False)]
        if len(x) <= 13 or name in ("plain", "large"):
            cases.insert(0, ("exact" if name in ("plain", "large") else "auto", True))
        for method, correction in cases:
            scipy_method = "asymptotic" if method == "approx" else method
            result = stats.wilcoxon(
                x, y, zero_method=zero_method, method=scipy_method, correction=correction
            )
            print(
                f"wilcoxon {name} {zero_method} {method} correction={correction}: "
                f"statistic={float(result.statistic)!r} p={float(result.pvalue)!r}"
            )

FRIEDMAN = {
    # 5 blocks x 3 treatments, no ties.
    "plain": [[0.81, 0.83, 0.80], [0.79, 0.84, 0.82], [0.85, 0.86, 0.83],
              [0.80, 0.82, 0.81], [0.78, 0.83, 0.79]],
    # 6 blocks x 4 treatments, ties within blocks.
    "ties": [[1, 2, 2, 3], [2, 2, 2, 1], [3, 1, 2, 2], [1, 1, 2, 3],
             [4, 3, 3, 1], [2, 3, 1, 3]],
    # 10 blocks x 5 treatments, no ties.
    "wide": [[((b * 13 + t * 7) % 17) + 0.1 * t for t in range(5)] for b in range(10)],
}

for name, rows in FRIEDMAN.items():
    columns = list(zip(*rows))
    result = stats.friedmanchisquare(*columns)
    ranks = np.mean([stats.rankdata(row) for row in rows], axis=0)
    print(
        f"friedman {name}: statistic={float(result.statistic)!r} p={float(result.pvalue)!r} "
        f"average_ranks={[float(r) for r in ranks]}"
    )

for a, x in [(0.5, 0.1), (0.5, 2.0), (1.0, 3.0), (2.5, 1.0), (3.0, 10.0),
             (10.0, 5.0), (10.0, 15.0), (50.0, 45.0), (0.1, 0.01), (7.5, 30.0)]:
    print(f"gammaincc a={a} x={x}: {float(special.gammaincc(a, x))!r}")

for x, df in [(3.841458820694124, 1), (5.991464547107979, 2), (7.814727903251178, 3),
              (12.5, 4), (0.3, 5), (40.0, 20)]:
    print(f"chi2.sf x={x} df={df}: {float(stats.chi2.sf(x, df))!r}")
