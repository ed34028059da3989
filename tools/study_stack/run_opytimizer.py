"""Run the study's own stack on fc2.weight: PyTorch with Opytimizer 2.1.4,
PSO, and bounds of +-bound around the pre-trained weights.

The objective is the one the study wrote: 1 - the mean per-batch accuracy
over the validation split, read through a DataLoader with batch 100, with
the model's forward pass on every batch. The accuracies and candidates per
second go to --out as JSON, because Opytimizer's logger writes to stdout.

The model is the MLP 784-128-10 from heft's checkpoint (layers fc1 and
fc2, the names heft writes). The validation split is heft's, cut as in
tools/compare_scoring/torch_objective.py.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "compare_scoring"))
from torch_objective import find, load_validation, read_idx  # noqa: E402

import opytimizer  # noqa: E402
from opytimizer import Opytimizer  # noqa: E402
from opytimizer.core.function import Function  # noqa: E402
from opytimizer.optimizers.swarm.pso import PSO  # noqa: E402
from opytimizer.spaces.search import SearchSpace  # noqa: E402


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def mean_batch_accuracy(model, loader):
    """Return the mean over batches of the per-batch accuracy."""
    accuracies = []
    with torch.no_grad():
        for x, y in loader:
            accuracies.append((model(x).argmax(dim=1) == y).float().mean().item())
    return float(np.mean(accuracies))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--bound", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    x_valid, y_valid = load_validation(args.data)
    test_images = read_idx(find(args.data, "t10k-images-idx3-ubyte"))
    x_test = test_images.reshape(test_images.shape[0], -1).float() / 255.0
    y_test = read_idx(find(args.data, "t10k-labels-idx1-ubyte")).long()
    valid_loader = DataLoader(TensorDataset(x_valid, y_valid), batch_size=100, shuffle=False)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=100, shuffle=False)

    model = Mlp()
    model.load_state_dict(load_file(args.checkpoint))
    model.eval()
    w0 = model.fc2.weight.detach().clone()
    shape = tuple(w0.shape)
    flat = w0.numpy().ravel().astype(np.float64)

    calls = {"count": 0}

    def objective(x):
        """Write the agent into fc2 and return the study's fitness."""
        calls["count"] += 1
        weights = torch.from_numpy(np.asarray(x, dtype=np.float32).reshape(shape))
        model.fc2.weight = nn.Parameter(weights)
        return 1.0 - mean_batch_accuracy(model, valid_loader)

    space = SearchSpace(n_agents=args.agents, n_variables=flat.size,
                        n_iterations=args.iterations,
                        lower_bound=tuple(flat - args.bound),
                        upper_bound=tuple(flat + args.bound))
    optimizer = PSO()
    task = Opytimizer(space=space, optimizer=optimizer, function=Function(pointer=objective))

    pretrained_valid = mean_batch_accuracy(model, valid_loader)
    pretrained_test = mean_batch_accuracy(model, test_loader)
    calls["count"] = 0
    start = time.perf_counter()
    task.start()
    seconds = time.perf_counter() - start

    best = np.asarray(space.best_agent.position, dtype=np.float32).reshape(shape)
    model.fc2.weight = nn.Parameter(torch.from_numpy(best))
    Path(args.out).write_text(json.dumps({
        "opytimizer": opytimizer.__version__,
        "torch": torch.__version__,
        "threads": args.threads,
        "agents": args.agents,
        "iterations": args.iterations,
        "evaluations": calls["count"],
        "seconds": seconds,
        "candidates_per_second": calls["count"] / seconds,
        "pretrained_valid": pretrained_valid,
        "pretrained_test": pretrained_test,
        "tuned_valid": mean_batch_accuracy(model, valid_loader),
        "tuned_test": mean_batch_accuracy(model, test_loader),
        "best_fitness": float(space.best_agent.fit),
    }))


if __name__ == "__main__":
    main()
