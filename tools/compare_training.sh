#!/usr/bin/env bash
# Time one training epoch in heft and in PyTorch on the same machine and
# print one table of medians:
#   - mlp: 784-128-10 MLP, 48,000 Fashion-MNIST images, batch 100, Adam;
#   - lstm: the LSTM classifier on the embedded sentiment corpus's training
#     part (4,800 texts), batch 32, Adam;
# each with 1 and 2 threads (rayon pool size in heft, torch.set_num_threads
# in PyTorch). PyTorch reads preloaded tensors, with no DataLoader.
#
# What it installs, outside the repository (reused when present): a Python
# virtual environment in ${HEFT_TOOLS_VENV_TORCH:-~/.cache/heft/venv-torch}
# with torch and numpy from PyPI (the CPU wheels, several hundred MB). An
# existing environment with torch, e.g. HEFT_TOOLS_VENV_TORCH=/tmp/torchenv,
# is used as it is.
# heft is built with `cargo build --release -p heft-nn --example train_epoch`
# into ${CARGO_TARGET_DIR:-<repository>/target}.
#
# Usage: tools/compare_training.sh
# HEFT_COMPARE_RUNS (default 5) sets the timed epochs per figure, after one
# untimed warm-up epoch.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${HEFT_TOOLS_VENV_TORCH:-$HOME/.cache/heft/venv-torch}
RUNS=${HEFT_COMPARE_RUNS:-5}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}

STEP="starting"
trap 'echo "compare_training.sh: failed while $STEP (exit $?); see the output above." >&2' ERR
die() { echo "compare_training.sh: $*" >&2; exit 1; }

case "$(realpath -m "$VENV")/" in
    "$REPO"/*) die "$VENV is inside the repository; point HEFT_TOOLS_VENV_TORCH elsewhere." ;;
esac
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "HEFT_COMPARE_RUNS=$RUNS is invalid; expected an integer of at least 1."
command -v cargo >/dev/null || die "cargo not found; install a Rust toolchain (1.89 or later)."
command -v python3 >/dev/null || die "python3 not found; install Python 3 with the venv module."

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

STEP="preparing the PyTorch environment in $VENV"
if ! "$VENV/bin/python" -c "import torch, numpy" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet --index-url https://download.pytorch.org/whl/cpu torch \
        || "$VENV/bin/pip" install --quiet torch
    "$VENV/bin/pip" install --quiet numpy
fi

STEP="building heft (cargo build --release -p heft-nn --example train_epoch)"
(cd "$REPO" && cargo build --quiet --release -p heft-nn --example train_epoch)
HEFT="$TARGET/release/examples/train_epoch"

STEP="exporting the sentiment training sequences"
"$HEFT" --export-sequences "$WORK/sequences.u32"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores online"
echo "torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'), $(rustc --version)"
echo "median of $RUNS epochs after one warm-up epoch"

STEP="timing heft"
"$HEFT" "$RUNS" >"$WORK/results.txt"
STEP="timing PyTorch"
"$VENV/bin/python" "$REPO/tools/compare_training/torch_epoch.py" "$REPO" "$WORK/sequences.u32" "$RUNS" \
    >>"$WORK/results.txt"

STEP="printing the table"
awk '
{
    split($3, t, "="); split($4, s, "=");
    key = $2 " " t[2]; time[$1, key] = s[2];
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
}
END {
    printf "| %-6s | %-7s | %-10s | %-13s | %-15s |\n", "epoch", "threads", "heft (s)", "PyTorch (s)", "PyTorch / heft"
    print "|--------|---------|------------|---------------|-----------------|"
    for (i = 1; i <= n; i++) {
        split(order[i], k, " ");
        h = time["heft", order[i]]; p = time["torch", order[i]];
        printf "| %-6s | %-7s | %-10s | %-13s | %-15.2f |\n", k[1], k[2], h, p, p / h
    }
}' "$WORK/results.txt"
