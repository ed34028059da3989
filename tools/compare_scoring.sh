#!/usr/bin/env bash
# Compare candidates scored per second by heft's tuning objective
# (`heft bench tune`) with the fastest way to write the same objective in
# PyTorch (tools/compare_scoring/torch_objective.py). The PyTorch version
# caches activations and scores a population with one matrix product,
# argmax and accuracy. Both score fc2.weight and fc1.weight of a 784-128-10
# MLP trained one epoch, on the 12,000-image validation split of the
# complete Fashion-MNIST, with 1 and 2 threads.
# tools/compare_scoring/torch_sequence.py does the same for the sequence
# classifier (embedding 32, LSTM 64, head on the state at each record's
# last true token) on the 1,200 validation records of the embedded
# sentiment corpus. It scores fc.weight from cached final hidden states
# with one matrix product per population, and rnn.weight_hh_l0 with one
# LSTM forward pass per candidate over the packed split.
# Both sides score the same models: heft trains them with
# `heft train --epochs 1` and `heft train --task text --epochs 1` (the same
# seeds and settings as `heft bench tune`) and PyTorch loads those
# safetensors files. PyTorch reads heft's encoded token ids, written by
# tools/compare_scoring/export_valid_tokens.rs (built as a throw-away
# package in the temporary directory, path dependency on crates/heft-data).
#
# What it installs, outside the repository (reused when present): a Python
# virtual environment in ${HEFT_TOOLS_VENV_TORCH:-~/.cache/heft/venv-torch}
# with torch, numpy and safetensors from PyPI. An existing environment with
# them, e.g. HEFT_TOOLS_VENV_TORCH=/tmp/torchenv, is used as it is.
#
# Usage: tools/compare_scoring.sh
# HEFT_FASHION_MNIST (default /usr/share/datasets/fashion-mnist) is the IDX
# directory; HEFT_COMPARE_SAMPLES (default 7) the timed samples per figure.
set -Eeuo pipefail
# Keep Python's bytecode caches out of tools/.
export PYTHONDONTWRITEBYTECODE=1

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${HEFT_TOOLS_VENV_TORCH:-$HOME/.cache/heft/venv-torch}
DATA=${HEFT_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
SAMPLES=${HEFT_COMPARE_SAMPLES:-7}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}

STEP="starting"
trap 'echo "compare_scoring.sh: failed while $STEP (exit $?); see the output above." >&2' ERR
die() { echo "compare_scoring.sh: $*" >&2; exit 1; }

case "$(realpath -m "$VENV")/" in
    "$REPO"/*) die "$VENV is inside the repository; point HEFT_TOOLS_VENV_TORCH elsewhere." ;;
esac
[[ $SAMPLES =~ ^[1-9][0-9]*$ ]] || die "HEFT_COMPARE_SAMPLES=$SAMPLES is invalid; expected an integer of at least 1."
[[ -d $DATA ]] || die "$DATA not found; install the complete Fashion-MNIST (apt-get install dataset-fashion-mnist) or set HEFT_FASHION_MNIST."
command -v cargo >/dev/null || die "cargo not found; install a Rust toolchain (1.89 or later)."
command -v python3 >/dev/null || die "python3 not found; install Python 3 with the venv module."

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

STEP="preparing the PyTorch environment in $VENV"
if ! "$VENV/bin/python" -c "import torch, numpy, safetensors" 2>/dev/null; then
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet torch numpy safetensors
fi

STEP="building heft (cargo build --release -p heft-cli)"
(cd "$REPO" && cargo build --quiet --release -p heft-cli)
HEFT="$TARGET/release/heft"

STEP="building the token exporter (tools/compare_scoring/export_valid_tokens.rs)"
mkdir -p "$WORK/export/src"
cp "$REPO/tools/compare_scoring/export_valid_tokens.rs" "$WORK/export/src/main.rs"
cp "$REPO/Cargo.lock" "$WORK/export/Cargo.lock"
cat >"$WORK/export/Cargo.toml" <<EOF
[package]
name = "export_valid_tokens"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
heft-data = { path = "$REPO/crates/heft-data" }

[workspace]
EOF
(cd "$WORK/export" && cargo build --quiet --release --target-dir "$TARGET")
"$TARGET/release/export_valid_tokens" "$WORK/valid_tokens.bin"

STEP="training the MLP for one epoch (heft train --epochs 1)"
(cd "$WORK" && "$HEFT" train --epochs 1 --data "$DATA" --out "$WORK/mlp.safetensors" 2>/dev/null)
STEP="training the LSTM classifier for one epoch (heft train --task text --epochs 1)"
(cd "$WORK" && "$HEFT" train --task text --epochs 1 --out "$WORK/lstm.safetensors" 2>/dev/null)

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores online, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'), $(rustc --version)"

STEP="timing the PyTorch objective"
"$VENV/bin/python" "$REPO/tools/compare_scoring/torch_objective.py" \
    --checkpoint "$WORK/mlp.safetensors" --data "$DATA" --threads 1,2 \
    --samples "$SAMPLES" --out "$WORK/torch.json"
"$VENV/bin/python" "$REPO/tools/compare_scoring/torch_sequence.py" \
    --checkpoint "$WORK/lstm.safetensors" --tokens "$WORK/valid_tokens.bin" --threads 1,2 \
    --samples "$SAMPLES" --out "$WORK/torch_lstm.json"

STEP="timing heft bench tune"
"$HEFT" bench tune --data "$DATA" --threads 1,2 --samples "$SAMPLES" --filter mlp \
    >"$WORK/heft.txt" 2>/dev/null
"$HEFT" bench tune --threads 1,2 --samples "$SAMPLES" --filter lstm \
    >"$WORK/heft_lstm.txt" 2>/dev/null
cat "$WORK/heft.txt" "$WORK/heft_lstm.txt"
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "candidates per second, median of $SAMPLES samples (heft: pruning off and on)"
cat "$WORK/heft.txt" "$WORK/heft_lstm.txt" >"$WORK/heft_all.txt"
"$VENV/bin/python" "$REPO/tools/compare_scoring/table.py" "$WORK/heft_all.txt" \
    "$WORK/torch.json" "$WORK/torch_lstm.json"
