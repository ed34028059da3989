"""Print PyTorch's and heft's candidates per second in one table.

Arguments: the JSON written by torch_objective.py and the stdout of
`heft bench tune`.
"""

import json
import re
import sys

# A row of `heft bench tune`: case label, threads, candidates/s, pruned
# share ("34.3%", or "n/a" where pruning does not apply).
ROW = re.compile(r"^mlp (\S+) P=(\d+) prune (on|off)\s+(\d+)\s+([\d.]+)\s+(n/a|[\d.]+%)")


def main():
    torch_run = json.load(open(sys.argv[1]))
    heft = {}
    for line in open(sys.argv[2]):
        match = ROW.match(line)
        if match:
            tensor, population, prune, threads, rate, pruned = match.groups()
            share = 0.0 if pruned == "n/a" else float(pruned.rstrip("%"))
            heft[(tensor, int(population), prune, int(threads))] = (float(rate), share)
    print(f"{'tensor':<11} {'P':>3} {'threads':>7} {'torch/s':>9} {'heft off/s':>11} "
          f"{'heft on/s':>10} {'pruned':>7} {'on / torch':>10}")
    for r in torch_run["results"]:
        key = (r["tensor"], r["population"])
        off = heft.get((*key, "off", r["threads"]), (float("nan"), 0.0))
        on = heft.get((*key, "on", r["threads"]), (float("nan"), 0.0))
        ratio = on[0] / r["candidates_per_second"]
        print(f"{r['tensor']:<11} {r['population']:>3} {r['threads']:>7} "
              f"{r['candidates_per_second']:>9.1f} {off[0]:>11.1f} {on[0]:>10.1f} "
              f"{on[1]:>6.1f}% {ratio:>9.1f}x")


if __name__ == "__main__":
    main()
