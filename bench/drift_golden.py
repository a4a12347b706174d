#!/usr/bin/env python3
"""Golden values for Steward's drift statistics, computed by Evidently itself.

Makes tests/fixtures/drift_golden.json: for Cleveland (reference) against each of Hungary,
Switzerland and VA (current), per feature, every stattest Steward implements, computed by
Evidently 0.7.23's own functions (evidently.legacy.calculations.stattests, SciPy 1.17.1 under
them), plus the test Evidently picks by default (its get_stattest) and the drift share of its
DataDriftPreset report with the categorical columns declared.

Run with the venv that bench/venv.sh makes (evidently==0.7.23, pandas<3):
    bench/venv.sh && DO_NOT_TRACK=1 bench/.venv/bin/python bench/drift_golden.py
"""
import json
import os
import sys

import numpy as np
import pandas as pd
import scipy
import scipy.stats
import evidently
from evidently.legacy.core import ColumnType
from evidently.legacy.calculations import stattests
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.report import Report
from evidently.legacy.metric_preset import DataDriftPreset
from evidently.legacy.pipeline.column_mapping import ColumnMapping

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data", "uci-heart-disease")
COLUMNS = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang",
           "oldpeak", "slope", "ca", "thal", "num"]
# Steward's config/default.toml kinds.
CATEGORICAL = ["sex", "cp", "fbs", "restecg", "exang", "slope", "thal"]
FEATURES = COLUMNS[:-1]
CURRENT = {"hungary": "processed.hungarian.data", "switzerland": "processed.switzerland.data",
           "va": "processed.va.data"}
STATTESTS = {"ks": stattests.ks_stat_test, "chisquare": stattests.chi_stat_test,
             "z": stattests.z_stat_test, "wasserstein": stattests.wasserstein_stat_test,
             "jensenshannon": stattests.jensenshannon_stat_test, "psi": stattests.psi_stat_test}
THRESHOLDS = {"ks": 0.05, "chisquare": 0.05, "z": 0.05, "wasserstein": 0.1,
              "jensenshannon": 0.1, "psi": 0.1}


def seq(n, a, m, shift):
    return np.array([((i * a) % m) / 100.0 + shift for i in range(n)])


def read(name):
    return pd.read_csv(os.path.join(DATA, name), header=None, names=COLUMNS, na_values=["?"])


def main():
    reference = read("processed.cleveland.data")
    out = {"source": f"evidently {evidently.__version__}, scipy {scipy.__version__}, "
                     f"pandas {pd.__version__}, numpy {np.__version__}",
           "script": "bench/drift_golden.py", "reference": "cleveland", "pairs": {}}
    for label, file in CURRENT.items():
        current = read(file)
        features = []
        for name in FEATURES:
            kind = ColumnType.Categorical if name in CATEGORICAL else ColumnType.Numerical
            ref = reference[name].replace([-np.inf, np.inf], np.nan).dropna()
            cur = current[name].replace([-np.inf, np.inf], np.nan).dropna()
            row = {"feature": name, "kind": "categorical" if name in CATEGORICAL else "numeric",
                   "reference_rows": int(len(ref)), "current_rows": int(len(cur)),
                   "missing_reference": int(reference[name].isna().sum()),
                   "missing_current": int(current[name].isna().sum())}
            if len(ref) == 0 or len(cur) == 0:
                row["empty"] = True
                features.append(row)
                continue
            row["n_unique"] = int(pd.concat([ref, cur]).nunique())
            row["default_stattest"] = get_stattest(ref, cur, kind, None).name
            scores = {}
            for test in ["ks", "chisquare", "z", "wasserstein", "jensenshannon", "psi"]:
                if test in ("ks", "wasserstein") and kind != ColumnType.Numerical:
                    continue
                if test == "z" and row["n_unique"] != 2:
                    continue
                # The bare function, as `drift compare --stattest` applies it to any column.
                score, drifted = STATTESTS[test].func(ref, cur, kind, THRESHOLDS[test])
                scores[test] = {"score": float(score), "drifted": bool(drifted)}
            row["scores"] = scores
            features.append(row)
        mapping = ColumnMapping(target=None, prediction=None, numerical_features=
                                [f for f in FEATURES if f not in CATEGORICAL],
                                categorical_features=CATEGORICAL)
        report = Report(metrics=[DataDriftPreset()])
        report.run(reference_data=reference[FEATURES], current_data=current[FEATURES],
                   column_mapping=mapping)
        drift = [m for m in report.as_dict()["metrics"] if m["metric"] == "DataDriftTable"][0]["result"]
        preset = {c: {"stattest": v["stattest_name"], "score": float(v["drift_score"]),
                      "drifted": bool(v["drift_detected"])}
                  for c, v in drift["drift_by_columns"].items()}
        out["pairs"][label] = {"features": features, "preset": preset,
                               "drift_share": float(drift["share_of_drifted_columns"]),
                               "dataset_drift": bool(drift["dataset_drift"])}
    # ks_2samp's every regime (exact equal and unequal sizes, asymptotic through kstwo's
    # branches) on samples both languages build the same way: x_i = ((i * a) mod m) / 100 + shift.
    out["ks_cases"] = []
    for n1, n2, shift in [(303, 303, 3.0), (50, 60, 0.0), (303, 294, 5.0), (10000, 9000, 0.5),
                          (303, 20000, 2.0), (120, 12000, 30.0), (120, 12000, 1.0),
                          (120, 12000, 5.0), (120, 12000, 10.0), (303, 20000, 8.0),
                          (303, 20000, 15.0), (303, 20000, 40.0), (20000, 30000, 0.1),
                          (20000, 30000, 1.0), (20000, 30000, 1.5), (20000, 30000, 2.5),
                          (20000, 30000, 5.0), (20000, 30000, 60.0),
                          (15000, 20000, 0.0), (250000, 300000, 0.2)]:
        x = seq(n1, 7919, 10007, 0.0)
        y = seq(n2, 104729, 10009, shift)
        r = scipy.stats.ks_2samp(x, y)
        out["ks_cases"].append({"n1": n1, "n2": n2, "shift": shift,
                                "statistic": float(r.statistic), "pvalue": float(r.pvalue)})
    path = os.path.join(ROOT, "tests", "fixtures", "drift_golden.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
