#!/usr/bin/env python3
"""Write the PyTorch golden fixtures for heft-nn's tests.

Run from the repository root with a Python that has torch and safetensors
(`python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch
safetensors`):

    /tmp/torchenv/bin/python tools/gen_nn_fixtures.py

It writes, under crates/heft-nn/tests/fixtures/:

- mlp_state_dict.safetensors: a 6-5-3 MLP's state_dict as
  safetensors.torch.save_file writes it, without heft's metadata.
- lstm_state_dict.safetensors: the state_dict of the Embedding-LSTM-Linear
  classifier below, also without metadata.
- golden.safetensors: for that MLP, an input `mlp.x`, labels `mlp.labels`,
  PyTorch's logits `mlp.logits` and the parameters after one Adam step with
  default settings on the mean cross-entropy (`mlp.adam.<name>`).
  For an Embedding-LSTM-Linear classifier, its parameters (`seq.<name>`),
  padded token ids `seq.ids`, lengths `seq.lengths` and labels `seq.labels`
  (stored as F32, which is exact for small integers), the LSTM hidden
  states at every step `seq.hidden` ([batch, seq_len, H]), the logits at
  each sequence's last true token `seq.logits`, and the parameters after
  one Adam step (`seq.adam.<name>`).
"""

import pathlib

import torch
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/heft-nn/tests/fixtures"


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(6, 5)
        self.fc2 = torch.nn.Linear(5, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class SequenceClassifier(torch.nn.Module):
    def __init__(self, vocab=10, embed=4, hidden=3, classes=2):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, embed, padding_idx=0)
        self.rnn = torch.nn.LSTM(embed, hidden, batch_first=True)
        self.fc = torch.nn.Linear(hidden, classes)

    def forward(self, ids, lengths):
        hidden, _ = self.rnn(self.emb(ids))
        last = hidden[torch.arange(ids.shape[0]), lengths - 1]
        return self.fc(last), hidden


def adam_step(model, loss):
    optimiser = torch.optim.Adam(model.parameters())
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()


def main():
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    tensors = {}

    mlp = Mlp()
    save_file(
        {k: v.contiguous() for k, v in mlp.state_dict().items()},
        str(OUT / "mlp_state_dict.safetensors"),
    )
    x = torch.randn(4, 6)
    labels = torch.tensor([0, 2, 1, 2])
    logits = mlp(x)
    tensors["mlp.x"] = x
    tensors["mlp.labels"] = labels.float()
    tensors["mlp.logits"] = logits.detach().clone()
    adam_step(mlp, torch.nn.functional.cross_entropy(logits, labels))
    for name, value in mlp.state_dict().items():
        tensors[f"mlp.adam.{name}"] = value.clone()

    seq = SequenceClassifier()
    save_file(
        {k: v.contiguous() for k, v in seq.state_dict().items()},
        str(OUT / "lstm_state_dict.safetensors"),
    )
    for name, value in seq.state_dict().items():
        tensors[f"seq.{name}"] = value.clone()
    ids = torch.tensor([[1, 2, 3, 4, 5], [6, 1, 0, 0, 0], [3, 9, 2, 0, 0]])
    lengths = torch.tensor([5, 2, 3])
    seq_labels = torch.tensor([1, 0, 1])
    logits, hidden = seq(ids, lengths)
    tensors["seq.ids"] = ids.float()
    tensors["seq.lengths"] = lengths.float()
    tensors["seq.labels"] = seq_labels.float()
    tensors["seq.hidden"] = hidden.detach().clone()
    tensors["seq.logits"] = logits.detach().clone()
    adam_step(seq, torch.nn.functional.cross_entropy(logits, seq_labels))
    for name, value in seq.state_dict().items():
        tensors[f"seq.adam.{name}"] = value.clone()

    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(OUT / "golden.safetensors"),
        metadata={"generator": "tools/gen_nn_fixtures.py", "torch": torch.__version__},
    )


if __name__ == "__main__":
    main()
