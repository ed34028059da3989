"""Time one training epoch in PyTorch with preloaded tensors.

Prints one line per case, `torch <case> threads=<n> median_s=<seconds> runs=<n>`,
for the same workloads as heft's `examples/train_epoch.rs`:

- mlp: 784-128-10 MLP, 48,000 Fashion-MNIST images (the first 48,000 of
  the complete training set in FULL_DIR if present, else the embedded
  12,000-image subset repeated), batch 100, Adam with default settings.
- lstm: Embedding(vocab, 32, padding_idx=0), LSTM(32, 64, batch_first),
  the hidden state at each sequence's last true token, Linear(64, classes);
  batch 32, Adam lr 5e-3, each batch cut to its longest sequence.

Usage: torch_epoch.py REPO SEQUENCES_FILE RUNS
"""

import gzip
import os
import struct
import sys
import time

import numpy as np
import torch
from torch import nn

FULL_DIR = "/usr/share/datasets/fashion-mnist"
MLP_ROWS = 48_000


def read_idx(path):
    """Return the payload of an IDX file (optionally gzip-compressed) as a uint8 array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_mnist_48k(repo):
    full = os.path.join(FULL_DIR, "train-images-idx3-ubyte.gz")
    folder = FULL_DIR if os.path.exists(full) else os.path.join(repo, "datasets", "fashion-mnist")
    images = read_idx(os.path.join(folder, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(folder, "train-labels-idx1-ubyte.gz"))
    rows = np.arange(MLP_ROWS) % len(labels)
    x = torch.from_numpy(images[rows].reshape(MLP_ROWS, -1).astype(np.float32) / 255.0)
    y = torch.from_numpy(labels[rows].astype(np.int64))
    return x, y


def read_sequences(path):
    words = np.fromfile(path, dtype="<u4")
    count, seq_len, vocab, classes = (int(v) for v in words[:4])
    start = 4
    ids = words[start : start + count * seq_len].reshape(count, seq_len)
    start += count * seq_len
    lengths = words[start : start + count]
    labels = words[start + count : start + 2 * count]
    return (
        torch.from_numpy(ids.astype(np.int64)),
        torch.from_numpy(lengths.astype(np.int64)),
        torch.from_numpy(labels.astype(np.int64)),
        vocab,
        classes,
    )


class LstmClassifier(nn.Module):
    def __init__(self, vocab, classes):
        super().__init__()
        self.emb = nn.Embedding(vocab, 32, padding_idx=0)
        self.rnn = nn.LSTM(32, 64, batch_first=True)
        self.fc = nn.Linear(64, classes)

    def forward(self, ids, lengths):
        out, _ = self.rnn(self.emb(ids))
        last = out[torch.arange(ids.shape[0]), lengths - 1]
        return self.fc(last)


def mlp_epoch(model, optimiser, x, y):
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(x.shape[0])
    for start in range(0, x.shape[0], 100):
        batch = order[start : start + 100]
        optimiser.zero_grad()
        loss = loss_fn(model(x[batch]), y[batch])
        loss.backward()
        optimiser.step()


def lstm_epoch(model, optimiser, ids, lengths, labels):
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(ids.shape[0])
    for start in range(0, ids.shape[0], 32):
        batch = order[start : start + 32]
        batch_lengths = lengths[batch]
        longest = int(batch_lengths.max())
        optimiser.zero_grad()
        loss = loss_fn(model(ids[batch, :longest], batch_lengths), labels[batch])
        loss.backward()
        optimiser.step()


def median_seconds(runs, epoch):
    epoch()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def main():
    repo, sequences_file, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    x, y = fashion_mnist_48k(repo)
    ids, lengths, labels, vocab, classes = read_sequences(sequences_file)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        mlp = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
        adam = torch.optim.Adam(mlp.parameters())
        seconds = median_seconds(runs, lambda: mlp_epoch(mlp, adam, x, y))
        print(f"torch mlp threads={threads} median_s={seconds:.4f} runs={runs}", flush=True)

        lstm = LstmClassifier(vocab, classes)
        adam = torch.optim.Adam(lstm.parameters(), lr=5e-3)
        seconds = median_seconds(runs, lambda: lstm_epoch(lstm, adam, ids, lengths, labels))
        print(f"torch lstm threads={threads} median_s={seconds:.4f} runs={runs}", flush=True)


if __name__ == "__main__":
    main()
