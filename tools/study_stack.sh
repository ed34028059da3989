#!/usr/bin/env bash
# Run the study's own software stack on fc2.weight of the MLP that
# `heft train --epochs 1` writes: PyTorch with Opytimizer 2.1.4 from PyPI,
# PSO and the study's DataLoader objective. Print its accuracies and
# candidates per second beside `heft tune` on the same checkpoint, data,
# bound, agents, iterations and seed. The two searches draw different random numbers, so
# only the speed and the order of magnitude of the accuracy change compare.
#
# The study's objective is 1 - the mean of the per-batch accuracies over the
# validation split (DataLoader, batch 100); heft's is 1 - the accuracy over
# the split. With 12,000 rows in batches of 100 both are the same number.
#
# What it installs, outside the repository (reused when present): a Python
# virtual environment in
# ${HEFT_TOOLS_VENV_OPYTIMIZER:-~/.cache/heft/venv-opytimizer} with
# opytimizer==2.1.4 (and what it pulls: numpy, matplotlib, opytimark, ...)
# plus torch and safetensors, all from PyPI. If opytimizer 2.1.4 cannot be
# installed the script stops and prints pip's error; it never falls back to
# another version.
#
# Usage: tools/study_stack.sh
# HEFT_FASHION_MNIST (default /usr/share/datasets/fashion-mnist) is the IDX
# directory; HEFT_STUDY_ITERATIONS (default 3) the PSO iterations after the
# initial population; HEFT_STUDY_THREADS (default 2) the thread count of
# both sides.
set -Eeuo pipefail
# Keep Python's bytecode caches out of tools/.
export PYTHONDONTWRITEBYTECODE=1

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${HEFT_TOOLS_VENV_OPYTIMIZER:-$HOME/.cache/heft/venv-opytimizer}
DATA=${HEFT_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
ITERATIONS=${HEFT_STUDY_ITERATIONS:-3}
THREADS=${HEFT_STUDY_THREADS:-2}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
AGENTS=10
SEED=0

STEP="starting"
trap 'echo "study_stack.sh: failed while $STEP (exit $?); see the output above." >&2' ERR
die() { echo "study_stack.sh: $*" >&2; exit 1; }

case "$(realpath -m "$VENV")/" in
    "$REPO"/*) die "$VENV is inside the repository; point HEFT_TOOLS_VENV_OPYTIMIZER elsewhere." ;;
esac
[[ $ITERATIONS =~ ^[1-9][0-9]*$ ]] || die "HEFT_STUDY_ITERATIONS=$ITERATIONS is invalid; expected an integer of at least 1."
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "HEFT_STUDY_THREADS=$THREADS is invalid; expected an integer of at least 1."
[[ -d $DATA ]] || die "$DATA not found; install the complete Fashion-MNIST (apt-get install dataset-fashion-mnist) or set HEFT_FASHION_MNIST."
command -v cargo >/dev/null || die "cargo not found; install a Rust toolchain (1.89 or later)."
command -v python3 >/dev/null || die "python3 not found; install Python 3 with the venv module."

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

STEP="preparing the Opytimizer 2.1.4 environment in $VENV"
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
if ! (cd "$WORK" && "$VENV/bin/python" -c "import opytimizer, sys; sys.exit(opytimizer.__version__ != '2.1.4')") 2>/dev/null; then
    if ! "$VENV/bin/pip" install --quiet "opytimizer==2.1.4" 2>"$WORK/pip.err"; then
        cat "$WORK/pip.err" >&2
        die "pip could not install opytimizer==2.1.4 (its error is above); no other version is substituted."
    fi
fi
if ! "$VENV/bin/python" -c "import torch, safetensors" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet torch safetensors
fi

STEP="building heft (cargo build --release -p heft-cli)"
(cd "$REPO" && cargo build --quiet --release -p heft-cli)
HEFT="$TARGET/release/heft"

STEP="training the MLP for one epoch (heft train --epochs 1)"
(cd "$WORK" && "$HEFT" train --epochs 1 --data "$DATA" --out "$WORK/mlp.safetensors" 2>/dev/null)

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores online, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "PSO, $AGENTS agents, $ITERATIONS iterations, bound 0.01, seed $SEED, $THREADS threads, fc2.weight"

STEP="running Opytimizer 2.1.4 (the study's objective)"
# Opytimizer 2.1.4 writes opytimizer.log into the working directory, so it
# runs inside the scratch directory.
(cd "$WORK" && "$VENV/bin/python" "$REPO/tools/study_stack/run_opytimizer.py" \
    --checkpoint "$WORK/mlp.safetensors" --data "$DATA" --agents "$AGENTS" \
    --iterations "$ITERATIONS" --seed "$SEED" --threads "$THREADS" --out "$WORK/study.json" >"$WORK/study.log" 2>&1) \
    || { tail -20 "$WORK/study.log" >&2; false; }

STEP="running heft tune"
"$HEFT" tune --checkpoint "$WORK/mlp.safetensors" --data "$DATA" --tensor fc2.weight \
    --algorithm pso --mode opytimizer-2.1.4 --agents "$AGENTS" --iterations "$ITERATIONS" \
    --seed "$SEED" --threads "$THREADS" --out "$WORK/heft-run" --json >"$WORK/heft.json" 2>/dev/null

"$VENV/bin/python" "$REPO/tools/study_stack/table.py" "$WORK/study.json" "$WORK/heft.json"
