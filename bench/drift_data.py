"""Writes the two 1,000,000-row files of bench/drift.sh, as CSV without a header, in the UCI
column order: REF and CUR are Cleveland rows drawn with replacement (seeds 1 and 2); every
numeric feature (age, trestbps, chol, thalach, oldpeak, ca) is jittered by a normal draw with a
tenth of its Cleveland standard deviation and written with one decimal; categorical features and
the target are kept as they are ('?' stays missing); in CUR, age, chol and thalach are also
shifted up by half their standard deviation.

    python3 bench/drift_data.py ROWS REF CUR
"""
import random
import statistics
import sys

NUMERIC = {0: "age", 3: "trestbps", 4: "chol", 7: "thalach", 9: "oldpeak", 11: "ca"}
SHIFTED = {0, 4, 7}

rows, ref_out, cur_out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
src = [line.split(",") for line in
       open("data/uci-heart-disease/processed.cleveland.data").read().splitlines()]
std = {i: statistics.pstdev(float(r[i]) for r in src if r[i] != "?") for i in NUMERIC}


def write(path, seed, shift):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(rows):
            row = list(rng.choice(src))
            for i in NUMERIC:
                if row[i] == "?":
                    continue
                v = float(row[i]) + rng.gauss(0.0, std[i] / 10)
                if shift and i in SHIFTED:
                    v += std[i] / 2
                row[i] = f"{v:.1f}"
            f.write(",".join(row) + "\n")


write(ref_out, 1, False)
write(cur_out, 2, True)
