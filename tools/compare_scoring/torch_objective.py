"""Time the fastest PyTorch form of heft's tuning objective for fc2.weight
and fc1.weight of an MLP 784-128-10, and write the medians as JSON.

The objective is 1 - accuracy on the validation split. Candidates are
random, uniform in the box of half-width --bound around the pre-trained
weights. The validation split is the one heft cuts: the first 20 % of a
SplitMix64 (seed 0) Fisher-Yates shuffle of the training images, sorted,
with pixels divided by 255.
"""

import argparse
import gzip
import json
import statistics
import struct
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

MASK64 = (1 << 64) - 1


class SplitMix64:
    """The generator of heft-data's split (same constants and order)."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, bound):
        threshold = ((-bound) & MASK64) % bound
        while True:
            product = self.next_u64() * bound
            if (product & MASK64) >= threshold:
                return product >> 64


def validation_indices(count, share=0.2, seed=0):
    """Return heft's sorted validation indices for `count` training images."""
    valid_count = round(count * share)
    order = list(range(count))
    rng = SplitMix64(seed)
    for i in range(count - 1, 0, -1):
        j = rng.below(i + 1)
        order[i], order[j] = order[j], order[i]
    return sorted(order[:valid_count])


def read_idx(path):
    """Read an IDX file (gzip when the name ends in .gz) as a uint8 tensor."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    _, _, dtype, ndim = struct.unpack(">BBBB", data[:4])
    if dtype != 0x08:
        raise ValueError(f"{path}: expected unsigned-byte IDX data, got type {dtype:#x}")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    flat = torch.frombuffer(bytearray(data[4 + 4 * ndim :]), dtype=torch.uint8)
    return flat.reshape(dims)


def find(directory, stem):
    for name in (stem + ".gz", stem):
        path = Path(directory) / name
        if path.exists():
            return path
    raise FileNotFoundError(f"{stem}[.gz] not found in {directory}")


def load_validation(directory):
    images = read_idx(find(directory, "train-images-idx3-ubyte"))
    labels = read_idx(find(directory, "train-labels-idx1-ubyte"))
    index = torch.tensor(validation_indices(images.shape[0]))
    x = images[index].reshape(len(index), -1).float() / 255.0
    y = labels[index].long()
    return x, y


def random_population(w0, population, bound, generator):
    """Return `population` candidates uniform in [w0 - bound, w0 + bound],
    shape [population, *w0.shape]."""
    noise = torch.rand((population, *w0.shape), generator=generator) * (2 * bound) - bound
    return w0.unsqueeze(0) + noise


def fc2_scorer(h, y, b2):
    """Score candidates of fc2.weight: one addmm of the cached hidden
    activations with all candidates side by side, argmax per candidate."""

    def score(w2s):
        p, classes, hidden = w2s.shape
        weights = w2s.reshape(p * classes, hidden).t()
        logits = torch.addmm(b2.repeat(p), h, weights).view(h.shape[0], p, classes)
        correct = (logits.argmax(dim=2) == y.unsqueeze(1)).sum(dim=0)
        return 1.0 - correct.double() / h.shape[0]

    return score


def fc1_scorer(x, y, b1, w2, b2, chunk):
    """Score candidates of fc1.weight: per chunk of candidates, one addmm
    of the inputs with the stacked first layers, ReLU, one bmm through the
    fixed head, argmax."""

    def score(w1s):
        p, hidden, inputs = w1s.shape
        errors = []
        for start in range(0, p, chunk):
            part = w1s[start : start + chunk]
            c = part.shape[0]
            weights = part.reshape(c * hidden, inputs).t()
            h = torch.addmm(b1.repeat(c), x, weights).clamp_(min=0.0)
            h = h.view(x.shape[0], c, hidden).transpose(0, 1)
            logits = torch.baddbmm(b2.view(1, 1, -1), h, w2.t().expand(c, -1, -1))
            correct = (logits.argmax(dim=2) == y.unsqueeze(0)).sum(dim=1)
            errors.append(1.0 - correct.double() / x.shape[0])
        return torch.cat(errors)

    return score


def time_scorer(score, population, samples, min_seconds):
    """Return candidates per second: median over `samples` timed samples of
    whole populations, after two warm-up calls."""
    score(population)
    start = time.perf_counter()
    score(population)
    per_call = time.perf_counter() - start
    reps = max(1, int(min_seconds / max(per_call, 1e-9) + 0.999))
    seconds = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(reps):
            score(population)
        seconds.append((time.perf_counter() - start) / reps)
    return population.shape[0] / statistics.median(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="MLP safetensors written by heft train")
    parser.add_argument("--data", required=True, help="directory with the Fashion-MNIST IDX files")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--sample-seconds", type=float, default=0.2)
    parser.add_argument("--bound", type=float, default=0.01)
    parser.add_argument("--fc1-chunk", type=int, default=8,
                        help="fc1 candidates per addmm (memory: 12,000 x 128 x chunk floats)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    x, y = load_validation(args.data)
    state = load_file(args.checkpoint)
    w1, b1 = state["fc1.weight"], state["fc1.bias"]
    w2, b2 = state["fc2.weight"], state["fc2.bias"]
    h = torch.relu(torch.addmm(b1, x, w1.t()))
    accuracy = ((h @ w2.t() + b2).argmax(dim=1) == y).double().mean().item()
    print(f"torch {torch.__version__}: {len(y)} validation rows, pre-trained accuracy {accuracy:.4f}",
          file=sys.stderr)

    generator = torch.Generator().manual_seed(1)
    fc2 = fc2_scorer(h, y, b2)
    fc1 = fc1_scorer(x, y, b1, w2, b2, args.fc1_chunk)
    cases = [
        ("fc2.weight", 64, fc2, w2),
        ("fc2.weight", 10, fc2, w2),
        ("fc1.weight", 64, fc1, w1),
        ("fc1.weight", 8, fc1, w1),
    ]
    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for tensor, population, score, w0 in cases:
            candidates = random_population(w0, population, args.bound, generator)
            rate = time_scorer(score, candidates, args.samples, args.sample_seconds)
            print(f"torch {tensor} P={population} threads {threads}: {rate:.1f} candidates/s",
                  file=sys.stderr)
            results.append({"tensor": tensor, "population": population,
                            "threads": threads, "candidates_per_second": rate})
    Path(args.out).write_text(json.dumps({"torch": torch.__version__, "rows": len(y),
                                          "accuracy": accuracy, "results": results}))


if __name__ == "__main__":
    main()
