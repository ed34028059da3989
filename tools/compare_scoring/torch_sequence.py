"""Time the fast PyTorch form of heft's tuning objective for the sequence
classifier (Embedding, LSTM, Linear on the hidden state at each sequence's
last true token): fc.weight with cached final hidden states, and
rnn.weight_hh_l0 with the LSTM forward per candidate. Writes the medians as
JSON in the layout of torch_objective.py.

The token ids are heft's encoded validation split, written by
export_valid_tokens.rs: little-endian u32 `count, seq_len, vocab,
classes`, then `count * seq_len` ids, `count` lengths and `count` labels.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from torch_objective import fc2_scorer, random_population, time_scorer


def read_tokens(path):
    words = np.fromfile(path, dtype="<u4")
    count, seq_len, vocab, classes = (int(v) for v in words[:4])
    ids_end = 4 + count * seq_len
    ids = torch.from_numpy(words[4:ids_end].astype(np.int64)).view(count, seq_len)
    lengths = torch.from_numpy(words[ids_end : ids_end + count].astype(np.int64))
    labels = torch.from_numpy(words[ids_end + count : ids_end + 2 * count].astype(np.int64))
    return ids, lengths, labels, vocab, classes


class SequenceClassifier(torch.nn.Module):
    def __init__(self, vocab, embed, hidden, classes):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, embed)
        self.rnn = torch.nn.LSTM(embed, hidden, batch_first=True)
        self.fc = torch.nn.Linear(hidden, classes)


def rnn_scorer(model, packed, y):
    """Score candidates of rnn.weight_hh_l0. Each candidate is copied into
    the LSTM, and one forward pass over the packed split (embeddings
    computed once) gives the hidden states at the last true tokens. The
    head and argmax follow."""
    weight = model.rnn.weight_hh_l0

    def score(candidates):
        errors = torch.empty(candidates.shape[0], dtype=torch.float64)
        for k, candidate in enumerate(candidates):
            weight.copy_(candidate)
            _, (h_n, _) = model.rnn(packed)
            correct = (model.fc(h_n[0]).argmax(dim=1) == y).sum()
            errors[k] = 1.0 - correct.double() / y.shape[0]
        return errors

    return score


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="LSTM safetensors written by heft train --task text")
    parser.add_argument("--tokens", required=True, help="validation split written by export_valid_tokens")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--sample-seconds", type=float, default=0.2)
    parser.add_argument("--bound", type=float, default=0.01)
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    ids, lengths, y, vocab, classes = read_tokens(args.tokens)
    state = load_file(args.checkpoint)
    embed = state["emb.weight"].shape[1]
    hidden = state["rnn.weight_hh_l0"].shape[1]
    model = SequenceClassifier(vocab, embed, hidden, classes)
    model.load_state_dict(state)
    model.eval()

    # Frozen prefix: embeddings once, packed by true length. h_n is the
    # state at each row's last true token, in the split's order.
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        model.emb(ids), lengths, batch_first=True, enforce_sorted=False)
    _, (h_n, _) = model.rnn(packed)
    h = h_n[0]
    accuracy = (model.fc(h).argmax(dim=1) == y).double().mean().item()
    print(f"torch {torch.__version__}: {len(y)} validation records, sequence length "
          f"{ids.shape[1]}, pre-trained accuracy {accuracy:.4f}", file=sys.stderr)

    generator = torch.Generator().manual_seed(1)
    fc = fc2_scorer(h, y, model.fc.bias)
    rnn = rnn_scorer(model, packed, y)
    w_hh = model.rnn.weight_hh_l0.detach().clone()
    if abs(rnn(w_hh.unsqueeze(0))[0].item() - (1.0 - accuracy)) > 1e-12:
        sys.exit("torch_sequence.py: the per-candidate LSTM forward disagrees with the cached states")
    cases = [
        ("fc.weight", 64, fc, model.fc.weight.detach().clone()),
        ("fc.weight", 10, fc, model.fc.weight.detach().clone()),
        ("rnn.weight_hh_l0", 10, rnn, w_hh),
    ]
    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for tensor, population, score, w0 in cases:
            candidates = random_population(w0, population, args.bound, generator)
            rate = time_scorer(score, candidates, args.samples, args.sample_seconds)
            print(f"torch lstm {tensor} P={population} threads {threads}: {rate:.1f} candidates/s",
                  file=sys.stderr)
            results.append({"model": "lstm", "tensor": tensor, "population": population,
                            "threads": threads, "candidates_per_second": rate})
    Path(args.out).write_text(json.dumps({"torch": torch.__version__, "rows": len(y),
                                          "accuracy": accuracy, "results": results}))


if __name__ == "__main__":
    main()
