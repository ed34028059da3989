"""Time float32 `a @ b` with numpy for each shape given on the command line.

Usage: bench_numpy.py THREADS SAMPLES SAMPLE_MS MxKxN...

Prints one tab-separated line per shape to stdout: numpy, m, k, n, threads,
median GFLOP/s. OpenBLAS reads OPENBLAS_NUM_THREADS once at load time, so the
caller sets it (and OMP_NUM_THREADS) to THREADS before starting Python.
"""

import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info


def time_product(a, b, samples, sample_s):
    """Return the median seconds per product. Each sample lasts at least sample_s."""
    start = time.perf_counter()
    a @ b
    a @ b
    per_call = (time.perf_counter() - start) / 2
    reps = max(1, int(-(-sample_s // max(per_call, 1e-9))))
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        times.append((time.perf_counter() - start) / reps)
    return statistics.median(times)


def main():
    threads, samples, sample_ms = (int(x) for x in sys.argv[1:4])
    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    if not blas:
        sys.exit("bench_numpy.py: threadpoolctl found no BLAS library loaded by numpy")
    for p in blas:
        print(
            f"numpy {np.__version__}: {p['internal_api']} {p['version']}, "
            f"kernel {p.get('architecture')}, {p['num_threads']} thread(s)",
            file=sys.stderr,
        )
        if p["num_threads"] != threads:
            sys.exit(f"bench_numpy.py: BLAS runs {p['num_threads']} threads, expected {threads}")

    rng = np.random.default_rng(0)
    for label in sys.argv[4:]:
        m, k, n = (int(d) for d in label.split("x"))
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        seconds = time_product(a, b, samples, sample_ms / 1e3)
        print(f"numpy\t{m}\t{k}\t{n}\t{threads}\t{2 * m * k * n / seconds / 1e9:.2f}", flush=True)


if __name__ == "__main__":
    main()
