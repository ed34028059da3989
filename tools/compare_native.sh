#!/usr/bin/env bash
# Compare a heft built for generic x86-64 (the default build) with one built
# for this CPU (`-C target-cpu=native`), shape by shape, and print the median
# GFLOP/s of each and the median and quartiles of the per-pair ratios
# native / generic.
#
# The kernels are chosen at run time and compiled for their instruction set
# in both builds, so the two should run alike; this checks it. On a machine
# whose speed drifts within seconds, two runs one after the other compare
# two moments more than two builds. With two or more CPUs, each pair
# therefore runs both builds at the same time, one thread each, pinned to
# CPUs 0 and 1 with taskset, and the next pair swaps the CPUs. Both builds
# then meet the same drift and share the same caches and memory, so a
# shape bound by memory runs slower than alone but alike in both. With one
# CPU, or without taskset, the pairs run one build after the other, in
# alternating order.
#
# What it builds, outside the repository: the native heft in
# ${HEFT_NATIVE_TARGET:-~/.cache/heft/native-target}. The generic heft is
# built with `cargo build --release -p heft-cli` into
# ${CARGO_TARGET_DIR:-<repository>/target}.
#
# Usage: tools/compare_native.sh [FILTER...]
# Each FILTER selects the `heft bench gemm` rows whose label contains it
# (default: the square and project shapes and the fused count on A packed
# in advance). HEFT_COMPARE_PAIRS (default 8) sets the pairs per filter and
# HEFT_COMPARE_SAMPLES (default 9) the samples per figure.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NATIVE=${HEFT_NATIVE_TARGET:-$HOME/.cache/heft/native-target}
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

case "$(realpath -m "$NATIVE")/" in
    "$REPO"/*) die "$NATIVE is inside the repository; point HEFT_NATIVE_TARGET elsewhere." ;;
esac
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || die "HEFT_COMPARE_PAIRS=$PAIRS is invalid; expected an integer of at least 1."
[[ $SAMPLES =~ ^[1-9][0-9]*$ ]] || die "HEFT_COMPARE_SAMPLES=$SAMPLES is invalid; expected an integer of at least 1."
command -v cargo >/dev/null || die "cargo not found; install a Rust toolchain (1.89 or later)."
command -v python3 >/dev/null || die "python3 not found; install Python 3."
[ "$(uname -m)" = x86_64 ] || die "this compares x86-64 builds; this machine is $(uname -m)."

STEP="building the generic heft (cargo build --release -p heft-cli)"
(cd "$REPO" && cargo build --release --quiet -p heft-cli)
GENERIC="${CARGO_TARGET_DIR:-$REPO/target}/release/heft"
STEP="building the native heft into $NATIVE"
(cd "$REPO" && RUSTFLAGS="${RUSTFLAGS:-} -C target-cpu=native" CARGO_TARGET_DIR="$NATIVE" \
    cargo build --release --quiet -p heft-cli)

if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    MODE=simultaneous
else
    MODE=alternating
fi
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs online"
echo "$PAIRS pairs per filter, run $MODE; median of $SAMPLES samples per figure, one thread"
echo

STEP="timing the two builds"
python3 - "$MODE" "$PAIRS" "$SAMPLES" "$GENERIC" "$NATIVE/release/heft" "${FILTERS[@]}" <<'EOF'
import re, statistics, subprocess, sys

mode, pairs, samples, generic, native, *filters = sys.argv[1:]
pairs = int(pairs)
builds = {"generic": generic, "native": native}
row = re.compile(r"^(\S.*?)\s{2,}1\s+[\d.]+\s+([\d.]+)\s")
figures = {}

def command(name, label_filter, cpu):
    base = [builds[name], "bench", "gemm", "--threads", "1", "--samples", samples, "--filter", label_filter]
    return base if cpu is None else ["taskset", "-c", str(cpu)] + base

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
                    for cpu, name in enumerate(order)}
            for name, run in runs.items():
                output, _ = run.communicate()
                if run.returncode != 0:
                    sys.exit(f"heft bench gemm --filter {label_filter!r} ({name}) failed")
                record(name, output)
        else:
            for name in order:
                record(name, subprocess.run(command(name, label_filter, None), stdout=subprocess.PIPE,
                                            text=True, check=True).stdout)

print(f"{'shape (m x k x n)':36s} {'generic':>8s} {'native':>8s} {'native/generic':>15s} {'q1':>6s} {'q3':>6s}")
for shape, by_build in figures.items():
    generic_runs, native_runs = by_build.get("generic", []), by_build.get("native", [])
    ratios = sorted(b / a for a, b in zip(generic_runs, native_runs))
    if not ratios:
        continue
    quartile = lambda f: ratios[round(f * (len(ratios) - 1))]
    print(f"{shape:36s} {statistics.median(generic_runs):8.1f} {statistics.median(native_runs):8.1f} "
          f"{statistics.median(ratios):15.3f} {quartile(0.25):6.3f} {quartile(0.75):6.3f}")
print("GFLOP/s: the median over the pairs of each run's median sample; ratios: per pair.")
EOF
echo "Other processes running at the same time lower the figures."
