"""Print PyTorch's and heft's candidates per second in one table.

Arguments: the stdout of `heft bench tune`, then one or more JSON files
written by torch_objective.py or torch_sequence.py.
"""

import json
import re
import sys

# A row of `heft bench tune`: case label (model, tensor, population,
# pruning), threads, candidates/s, pruned share ("34.3%", or "n/a" where
# pruning does not apply).
ROW = re.compile(r"^(mlp|lstm) (\S+) P=(\d+) prune (on|off)\s+(\d+)\s+([\d.]+)\s+(n/a|[\d.]+%)")


def main():
    heft = {}
    for line in open(sys.argv[1]):
        match = ROW.match(line)
        if match:
            model, tensor, population, prune, threads, rate, pruned = match.groups()
            share = 0.0 if pruned == "n/a" else float(pruned.rstrip("%"))
            heft[(model, tensor, int(population), prune, int(threads))] = (float(rate), share)
    results = [r for path in sys.argv[2:] for r in json.load(open(path))["results"]]
    print(f"{'model':<5} {'tensor':<16} {'P':>3} {'threads':>7} {'torch/s':>10} "
          f"{'heft off/s':>11} {'heft on/s':>10} {'pruned':>7} {'on / torch':>10}")
    for r in results:
        key = (r.get("model", "mlp"), r["tensor"], r["population"])
        off = heft.get((*key, "off", r["threads"]), (float("nan"), 0.0))
        on = heft.get((*key, "on", r["threads"]), (float("nan"), 0.0))
        ratio = on[0] / r["candidates_per_second"]
        print(f"{key[0]:<5} {r['tensor']:<16} {r['population']:>3} {r['threads']:>7} "
              f"{r['candidates_per_second']:>10.1f} {off[0]:>11.1f} {on[0]:>10.1f} "
              f"{on[1]:>6.1f}% {ratio:>9.1f}x")


if __name__ == "__main__":
    main()
