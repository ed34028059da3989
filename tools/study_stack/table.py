"""Print the study stack's run (run_opytimizer.py JSON) beside heft tune's
summary (`heft tune --json`)."""

import json
import sys


def main():
    study = json.load(open(sys.argv[1]))
    heft = json.load(open(sys.argv[2]))
    rows = [
        ("pre-trained valid accuracy", study["pretrained_valid"], heft["pretrained_valid"]["accuracy"]),
        ("pre-trained test accuracy", study["pretrained_test"], heft["pretrained_test"]["accuracy"]),
        ("tuned valid accuracy", study["tuned_valid"], heft["tuned_valid"]["accuracy"]),
        ("tuned test accuracy", study["tuned_test"], heft["tuned_test"]["accuracy"]),
    ]
    label = f"opytimizer {study['opytimizer']} + torch {study['torch']}"
    print(f"{'':<28} {label:>36} {'heft tune':>12}")
    for name, left, right in rows:
        print(f"{name:<28} {left:>36.4f} {right:>12.4f}")
    print(f"{'evaluations':<28} {study['evaluations']:>36} {heft['evaluations']:>12}")
    print(f"{'search seconds':<28} {study['seconds']:>36.2f} {heft['search_seconds']:>12.4f}")
    print(f"{'candidates per second':<28} {study['candidates_per_second']:>36.1f} "
          f"{heft['candidates_per_second']:>12.1f}")
    print(f"speed ratio heft / study: {heft['candidates_per_second'] / study['candidates_per_second']:.0f}x")


if __name__ == "__main__":
    main()
