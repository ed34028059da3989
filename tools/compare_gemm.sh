#!/usr/bin/env bash
# Compare heft's f32 GEMM with OpenBLAS (through numpy), the `gemm` crate and
# the `matrixmultiply` crate in one run, and print two tables per shape
# (m, k, n) and thread count (1 and 2). The first gives the median GFLOP/s
# of each library (heft's from `heft bench gemm`). The second gives the
# ratios of heft to `gemm` and to `matrixmultiply` timed in one process,
# sample by sample in turn.
#
# What it installs, all outside the repository (reused when present):
#   - a Python virtual environment in ${HEFT_TOOLS_VENV:-~/.cache/heft/venv-gemm}
#     with numpy and threadpoolctl from PyPI;
#   - a scratch Cargo project in ${HEFT_TOOLS_BUILD:-~/.cache/heft/compare-gemm}
#     (with its own empty [workspace] and its target/ inside it) that depends on
#     gemm 0.19 and matrixmultiply 0.3 from crates.io and on this repository's
#     crates/heft-kernels; cargo keeps the downloaded crates in ~/.cargo as
#     usual.
# heft itself is built with `cargo build --release -p heft-cli` into
# ${CARGO_TARGET_DIR:-<repository>/target}.
#
# Usage: tools/compare_gemm.sh
# HEFT_COMPARE_SAMPLES (default 7) and HEFT_COMPARE_SAMPLE_MS (default 50) set
# the number of samples per figure and the minimum duration of one sample.
# HEFT_COMPARE_ROUNDS (default 2) runs every library that many times, in
# alternating order: numpy, the crates and heft, then the reverse. The first
# table keeps each library's best median. On a machine whose speed
# drifts over minutes, one library measured in a fast phase and another in
# a slow one would otherwise differ by the drift. The second table does
# not depend on that drift. The scratch program times heft, gemm and
# matrixmultiply one sample each in turn, in a random order per turn. It
# reports the median of the per-turn ratios, and the table the lowest and
# highest of those medians over the rounds.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS="$REPO/tools/compare_gemm"
VENV=${HEFT_TOOLS_VENV:-$HOME/.cache/heft/venv-gemm}
BUILD=${HEFT_TOOLS_BUILD:-$HOME/.cache/heft/compare-gemm}
SAMPLES=${HEFT_COMPARE_SAMPLES:-7}
SAMPLE_MS=${HEFT_COMPARE_SAMPLE_MS:-50}
ROUNDS=${HEFT_COMPARE_ROUNDS:-2}
THREADS=(1 2)
SHAPES=(64x64x64 128x128x128 256x256x256 512x512x512 1024x1024x1024 2048x2048x2048
    12000x128x10 12000x128x320 12000x784x128 100x784x128 100x128x10 1x784x128)

STEP="starting"
trap 'echo "compare_gemm.sh: failed while $STEP (exit $?); see the output above." >&2' ERR
die() { echo "compare_gemm.sh: $*" >&2; exit 1; }

for dir in "$VENV" "$BUILD"; do
    case "$(realpath -m "$dir")/" in
        "$REPO"/*) die "$dir is inside the repository; point HEFT_TOOLS_VENV and HEFT_TOOLS_BUILD elsewhere." ;;
    esac
done
[[ $SAMPLES =~ ^[1-9][0-9]*$ ]] || die "HEFT_COMPARE_SAMPLES=$SAMPLES is invalid; expected an integer of at least 1."
[[ $SAMPLE_MS =~ ^[1-9][0-9]*$ ]] || die "HEFT_COMPARE_SAMPLE_MS=$SAMPLE_MS is invalid; expected milliseconds, at least 1."
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "HEFT_COMPARE_ROUNDS=$ROUNDS is invalid; expected an integer of at least 1."
command -v cargo >/dev/null || die "cargo not found; install a Rust toolchain (1.89 or later)."
command -v python3 >/dev/null || die "python3 not found; install Python 3 with the venv module."

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RESULTS="$WORK/results.tsv"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores online"
echo "f32, row-major; median of $SAMPLES samples of at least $SAMPLE_MS ms each, best of $ROUNDS round(s)"
echo

# 1. numpy / OpenBLAS.
STEP="creating the Python virtual environment in $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
STEP="installing numpy and threadpoolctl from PyPI into $VENV"
"$VENV/bin/python" -m pip install --quiet numpy threadpoolctl

# A machine may set OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which can slow the
# OpenBLAS in a current numpy, so the numpy runs drop both. bench_numpy.py
# prints the kernel that OpenBLAS then selects (through threadpoolctl).
for var in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; do
    [ -z "${!var+set}" ] || echo "note: $var=${!var} is unset for the numpy runs"
done
time_numpy() {
    for t in "${THREADS[@]}"; do
        STEP="timing numpy with $t thread(s)"
        env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="$t" OMP_NUM_THREADS="$t" \
            "$VENV/bin/python" "$HELPERS/bench_numpy.py" "$t" "$SAMPLES" "$SAMPLE_MS" "${SHAPES[@]}" >>"$RESULTS"
    done
}

# 2. The gemm and matrixmultiply crates, built outside the heft workspace.
STEP="preparing the scratch Cargo project in $BUILD"
mkdir -p "$BUILD/src"
cmp -s "$HELPERS/main.rs" "$BUILD/src/main.rs" || cp "$HELPERS/main.rs" "$BUILD/src/main.rs"
STEP="querying crates.io with cargo info"
gemm_info=$(cd "$BUILD" && cargo info --quiet gemm@0.19)
mm_info=$(cd "$BUILD" && cargo info --quiet matrixmultiply@0.3)
gemm_features='"std", "rayon"'
grep -qE '^ *\+?x86-v4 ' <<<"$gemm_info" && gemm_features+=', "x86-v4"'
mm_features='"std"'
grep -qE '^ *\+?threading ' <<<"$mm_info" && mm_features+=', "threading"'
echo "gemm $(sed -n 's/^version: //p' <<<"$gemm_info") features [$gemm_features];" \
    "matrixmultiply $(sed -n 's/^version: //p' <<<"$mm_info") features [$mm_features]"
manifest="[package]
name = \"compare-gemm\"
version = \"0.0.0\"
edition = \"2021\"
publish = false

# An empty workspace keeps this project out of any enclosing workspace.
[workspace]

[dependencies]
gemm = { version = \"0.19\", default-features = false, features = [$gemm_features] }
matrixmultiply = { version = \"0.3\", features = [$mm_features] }
heft-kernels = { path = \"$REPO/crates/heft-kernels\" }

# The release profile of the heft workspace, so that heft builds as for
# \`heft bench gemm\`; the other libraries get the same settings.
[profile.release]
codegen-units = 1
lto = \"thin\""
[ "$(cat "$BUILD/Cargo.toml" 2>/dev/null)" = "$manifest" ] || printf '%s\n' "$manifest" >"$BUILD/Cargo.toml"
STEP="building the scratch Cargo project in $BUILD"
CARGO_TARGET_DIR="$BUILD/target" cargo build --release --quiet --manifest-path "$BUILD/Cargo.toml"
for t in "${THREADS[@]}"; do
    [ "$t" = 1 ] || grep -q threading <<<"$mm_features" ||
        echo "note: matrixmultiply has no threading feature, so its $t-thread figures run 1 thread"
done
time_crates() {
    for t in "${THREADS[@]}"; do
        STEP="timing heft, gemm and matrixmultiply in one process with $t thread(s)"
        MATMUL_NUM_THREADS="$t" RAYON_NUM_THREADS="$t" \
            "$BUILD/target/release/compare-gemm" "$t" "$SAMPLES" "$SAMPLE_MS" "${SHAPES[@]}" >>"$RESULTS"
    done
}

# 3. heft, built from this repository.
STEP="building heft (cargo build --release -p heft-cli)"
(cd "$REPO" && cargo build --release --quiet -p heft-cli)
heft_threads=$(IFS=,; echo "${THREADS[*]}")
time_heft() {
    STEP="running heft bench gemm"
    "${CARGO_TARGET_DIR:-$REPO/target}/release/heft" bench gemm --threads "$heft_threads" \
        --samples "$SAMPLES" --sample-ms "$SAMPLE_MS" >"$WORK/heft.txt"
    grep '^kernel ' "$WORK/heft.txt" | sed 's/^/heft /'
    # Keep the plain rows: label MxKxN, then the thread count and the other
    # columns. The B^T and argmax rows have a second word in their label.
    awk '$1 ~ /^[0-9]+x[0-9]+x[0-9]+$/ && $2 ~ /^[0-9]+$/ {
            split($1, d, "x"); printf "heft\t%s\t%s\t%s\t%s\t%s\n", d[1], d[2], d[3], $2, $4 }' \
        "$WORK/heft.txt" >>"$RESULTS"
}

for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
        time_numpy; time_crates; time_heft
    else
        time_heft; time_crates; time_numpy
    fi
done

# 4. The tables, where "-" marks a missing figure.
STEP="printing the tables"
echo
"$VENV/bin/python" - "$RESULTS" "$ROUNDS" "${SHAPES[@]}" <<'EOF'
import sys
figures = {}
ratios = {}
for line in open(sys.argv[1]):
    library, m, k, n, threads, *values = line.split("\t")
    key = library, f"{m}x{k}x{n}", int(threads)
    if library == "ratio":
        ratios.setdefault(key[1:], []).append([float(v) for v in values])
    else:
        figures[key] = max(figures.get(key, 0.0), float(values[0]))
libraries = ["heft", "numpy", "gemm", "matrixmultiply"]
print(f"{'m':>6} {'k':>5} {'n':>5} {'threads':>7} {'heft':>8} {'OpenBLAS':>9} {'gemm':>8} {'matrixmultiply':>15}")
for threads in sorted({key[2] for key in figures}):
    for shape in sys.argv[3:]:
        m, k, n = shape.split("x")
        row = [figures.get((lib, shape, threads)) for lib in libraries]
        cells = [f"{v:.1f}" if v is not None else "-" for v in row]
        print(f"{m:>6} {k:>5} {n:>5} {threads:>7} {cells[0]:>8} {cells[1]:>9} {cells[2]:>8} {cells[3]:>15}")
print(f"GFLOP/s, the best of {sys.argv[2]} round(s); OpenBLAS is numpy's a @ b, heft is heft bench gemm.")
print()
print("Timed in one process, sample by sample in turn: heft's best median GFLOP/s there and its ratios")
print("to gemm and matrixmultiply (the median of the per-turn ratios; lowest-highest over the rounds)")
print(f"{'m':>6} {'k':>5} {'n':>5} {'threads':>7} {'heft':>8} {'heft/gemm':>12} {'heft/matrixmultiply':>20}")
def span(values):
    low, high = min(values), max(values)
    return f"{low:.3f}" if low == high else f"{low:.3f}-{high:.3f}"
for threads in sorted({key[1] for key in ratios}):
    for shape in sys.argv[3:]:
        m, k, n = shape.split("x")
        rounds = ratios.get((shape, threads))
        if not rounds:
            continue
        heft = figures.get(("heft-inproc", shape, threads))
        heft = f"{heft:.1f}" if heft is not None else "-"
        print(f"{m:>6} {k:>5} {n:>5} {threads:>7} {heft:>8} {span([r[0] for r in rounds]):>12} "
              f"{span([r[1] for r in rounds]):>20}")
EOF
echo "Other processes running at the same time lower the figures."
