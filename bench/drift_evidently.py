"""Evidently 0.7.23's DataDriftPreset on two files of bench/drift.sh (categorical columns
declared as in config/default.toml), timed by the caller from the start of this process: reads
both CSVs, runs the report, prints each column's stattest, score and verdict as JSON.

    DO_NOT_TRACK=1 bench/.venv/bin/python bench/drift_evidently.py REF CUR
"""
import json
import sys

import pandas as pd
from evidently.legacy.metric_preset import DataDriftPreset
from evidently.legacy.pipeline.column_mapping import ColumnMapping
from evidently.legacy.report import Report

COLUMNS = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang",
           "oldpeak", "slope", "ca", "thal", "num"]
CATEGORICAL = ["sex", "cp", "fbs", "restecg", "exang", "slope", "thal"]
FEATURES = COLUMNS[:-1]


def read(path):
    return pd.read_csv(path, header=None, names=COLUMNS, na_values=["?"])[FEATURES]


reference, current = read(sys.argv[1]), read(sys.argv[2])
mapping = ColumnMapping(target=None, prediction=None,
                        numerical_features=[f for f in FEATURES if f not in CATEGORICAL],
                        categorical_features=CATEGORICAL)
report = Report(metrics=[DataDriftPreset()])
report.run(reference_data=reference, current_data=current, column_mapping=mapping)
table = [m for m in report.as_dict()["metrics"] if m["metric"] == "DataDriftTable"][0]["result"]
print(json.dumps({
    "drift_share": table["share_of_drifted_columns"],
    "dataset_drift": table["dataset_drift"],
    "features": {c: {"stattest": v["stattest_name"], "score": v["drift_score"],
                     "drifted": v["drift_detected"]}
                 for c, v in table["drift_by_columns"].items()},
}))
