#!/usr/bin/env bash
# Compare a heft built for generic x86-64 (the default build) with one built
# for this CPU (`-C target-cpu=native`), shape by shape, and print the median
# GFLOP/s of each and the median and quartiles of the per-pair ratios
# native / generic.
#
# The kernels are chosen at run time and compiled for their instruction set
# in both builds, so the two should run alike; this checks it. On a machine
# whose speed drifts within seconds, two runs one after the other compare
# two moments more than two builds. With two or more CPUs available, each
# pair therefore runs both builds at the same time, one thread each, pinned
# with taskset to the first two of those CPUs, and the next pair swaps
# them. Both builds then meet the same drift and share the same caches and
# memory, so a shape bound by memory runs slower than alone but alike in
# both. With one CPU, or without taskset, the pairs run one build after
# the other, in alternating order.
#
# What it builds, outside the repository: the native heft in
# ${HEFT_NATIVE_TARGET:-~/.cache/heft/native-target}. The generic heft is
# built with `cargo build --release -p heft-cli` into
# ${CARGO_TARGET_DIR:-<repository>/target}. Both builds take the caller's
# RUSTFLAGS, the native one with `-C target-cpu=native` added, so RUSTFLAGS
# must not set a target CPU itself.
#
# Usage: tools/compare_native.sh [FILTER...]
# Each FILTER selects the `heft bench gemm` rows whose label contains it
# (default: the square and project shapes and the fused count on A packed
# in advance). HEFT_COMPARE_PAIRS (default 8) sets the pairs per filter and
# HEFT_COMPARE_SAMPLES (default 9) the samples per figure. An unknown
# filter is reported once both builds are done.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# Absolute paths, since cargo runs from the repository and would resolve a
# relative target directory there.
NATIVE=$(realpath -m -- "${HEFT_NATIVE_TARGET:-$HOME/.cache/heft/native-target}")
GENERIC_TARGET=$(realpath -m -- "${CARGO_TARGET_DIR:-$REPO/target}")
PAIRS=${HEFT_COMPARE_PAIRS:-8}
SAMPLES=${HEFT_COMPARE_SAMPLES:-9}
if [ $# -gt 0 ]; then
    FILTERS=("$@")
else
    FILTERS=(64x64x64 256x256x256 1024x1024x1024 12000x128x320 12000x784x128
        100x784x128 100x128x10 1x784x128 "argmax/10 A packed")
fi

STEP="starting"
trap 'echo "compare_native.sh: failed while $STEP (exit $?); see the output above." >&2' ERR
die() { echo "compare_native.sh: $*" >&2; exit 1; }

case "$NATIVE/" in
    "$REPO"/*) die "$NATIVE is inside the repository; point HEFT_NATIVE_TARGET elsewhere." ;;
esac
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || die "HEFT_COMPARE_PAIRS=$PAIRS is invalid; expected a positive integer such as 8."
[[ $SAMPLES =~ ^[1-9][0-9]*$ ]] || die "HEFT_COMPARE_SAMPLES=$SAMPLES is invalid; expected a positive integer such as 9."
[[ ${RUSTFLAGS:-} != *target-cpu* ]] ||
    die "RUSTFLAGS=$RUSTFLAGS sets a target CPU, so the generic build would not be generic; unset it."
command -v cargo >/dev/null || die "cargo not found; install a Rust toolchain (1.89 or later)."
command -v python3 >/dev/null || die "python3 not found; install Python 3."
[ "$(uname -m)" = x86_64 ] || die "this compares x86-64 builds; this machine is $(uname -m)."

STEP="building the generic heft (cargo build --release -p heft-cli) into $GENERIC_TARGET"
(cd "$REPO" && CARGO_TARGET_DIR="$GENERIC_TARGET" cargo build --release --quiet -p heft-cli)
STEP="building the native heft into $NATIVE"
(cd "$REPO" && RUSTFLAGS="${RUSTFLAGS:-} -C target-cpu=native" CARGO_TARGET_DIR="$NATIVE" \
    cargo build --release --quiet -p heft-cli)

TASKSET=$(command -v taskset || true)
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs available to this script"

STEP="timing the two builds"
python3 - "$TASKSET" "$PAIRS" "$SAMPLES" "$GENERIC_TARGET/release/heft" "$NATIVE/release/heft" \
    "${FILTERS[@]}" <<'PY'
import os, re, statistics, subprocess, sys

taskset, pairs, samples, generic, native, *filters = sys.argv[1:]
pairs = int(pairs)
builds = {"generic": generic, "native": native}
cpus = sorted(os.sched_getaffinity(0))[:2]
mode = "simultaneous" if taskset and len(cpus) == 2 else "alternating"
where = f" on CPUs {cpus[0]} and {cpus[1]}" if mode == "simultaneous" else ""
print(f"{pairs} pairs per filter, run {mode}{where}; median of {samples} samples per figure, one thread")
print(flush=True)
row = re.compile(r"^(\S.*?)\s{2,}1\s+[\d.]+\s+([\d.]+)\s")
figures = {}

def command(name, label_filter, cpu):
    base = [builds[name], "bench", "gemm", "--threads", "1", "--samples", samples, "--filter", label_filter]
    return base if cpu is None else [taskset, "-c", str(cpu)] + base

def failed(name, label_filter):
    sys.exit(f"compare_native.sh: heft bench gemm --filter {label_filter!r} ({name} build) failed; "
             "see its message above (for an unknown filter it lists the valid labels).")

def record(name, output):
    for line in output.splitlines():
        match = row.match(line)
        if match:
            figures.setdefault(match.group(1), {}).setdefault(name, []).append(float(match.group(2)))

for label_filter in filters:
    for pair in range(pairs):
        order = ["generic", "native"] if pair % 2 == 0 else ["native", "generic"]
        if mode == "simultaneous":
            runs = {name: subprocess.Popen(command(name, label_filter, cpu), stdout=subprocess.PIPE, text=True)
                    for cpu, name in zip(cpus, order)}
            outputs = {name: run.communicate()[0] for name, run in runs.items()}
            for name, run in runs.items():
                if run.returncode != 0:
                    failed(name, label_filter)
                record(name, outputs[name])
        else:
            for name in order:
                run = subprocess.run(command(name, label_filter, None), stdout=subprocess.PIPE, text=True)
                if run.returncode != 0:
                    failed(name, label_filter)
                record(name, run.stdout)

if not figures:
    sys.exit("compare_native.sh: no table row of heft bench gemm was recognised; has its format changed?")
print(f"{'shape (m x k x n)':36s} {'generic':>8s} {'native':>8s} {'native/generic':>15s} {'q1':>6s} {'q3':>6s}")
for shape, by_build in figures.items():
    generic_runs, native_runs = by_build.get("generic", []), by_build.get("native", [])
    ratios = [b / a for a, b in zip(generic_runs, native_runs)]
    if not ratios:
        continue
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
    print(f"{shape:36s} {statistics.median(generic_runs):8.1f} {statistics.median(native_runs):8.1f} "
          f"{statistics.median(ratios):15.3f} {q1:6.3f} {q3:6.3f}")
print("GFLOP/s: the median over the pairs of each run's median sample. Ratios: one per pair, with")
print("their median and quartiles (Python's statistics.quantiles, inclusive method).")
PY
echo "Other processes running at the same time lower the figures."
