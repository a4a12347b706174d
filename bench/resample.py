"""Writes ROWS rows drawn with replacement from the Cleveland file (seed 42) to OUT, as CSV
without a header: the 1,000,000-row input of bench/data_1m.sh and bench/train.sh.

    python3 bench/resample.py ROWS OUT
"""
import random
import sys

rows, out = int(sys.argv[1]), sys.argv[2]
src = open("data/uci-heart-disease/processed.cleveland.data").read().splitlines()
random.seed(42)
with open(out, "w") as f:
    for _ in range(rows):
        f.write(random.choice(src) + "\n")
