"""The scikit-learn / XGBoost-Python baseline for `steward train`: the same protocol on Cleveland.

Binary target (num > 0), stratified 5-fold CV (shuffle, seed 42), median/most-frequent
imputation, standardised numerics and one-hot categoricals fitted on each training fold,
LogisticRegression(C=1), RandomForestClassifier(200 trees, max_features=0.5) and XGBClassifier
with Steward's default [training.xgb] (200 rounds, depth 3, eta 0.05, subsample and colsample
0.8, hist). The fold assignment is scikit-learn's own, so it differs from Steward's; the
protocol is the same.

    pip install scikit-learn==1.5.2 xgboost pandas && python3 bench/compare_sklearn.py
"""
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from xgboost import XGBClassifier

names = "age sex cp trestbps chol fbs restecg thalach exang oldpeak slope ca thal num".split()
categorical = ["sex", "cp", "fbs", "restecg", "exang", "slope", "thal"]
numeric = [c for c in names[:-1] if c not in categorical]
df = pd.read_csv("data/uci-heart-disease/processed.cleveland.data", names=names, na_values="?")
X, y = df[names[:-1]], (df["num"] > 0).astype(int)

pre = ColumnTransformer([
    ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
    ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                          OneHotEncoder(handle_unknown="ignore")), categorical),
])
models = {
    "logistic regression": LogisticRegression(C=1.0, max_iter=1000),
    "random forest": RandomForestClassifier(n_estimators=200, max_features=0.5, random_state=42),
    "XGBoost": XGBClassifier(n_estimators=200, max_depth=3, learning_rate=0.05, subsample=0.8,
                             colsample_bytree=0.8, min_child_weight=1, reg_lambda=1,
                             tree_method="hist", random_state=42),
}
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
for name, model in models.items():
    scores = cross_validate(Pipeline([("pre", pre), ("model", model)]), X, y, cv=cv,
                            scoring=["accuracy", "f1", "roc_auc"])
    row = "  ".join(f"{m} {scores['test_' + m].mean():.3f} ± {scores['test_' + m].std(ddof=1):.3f}"
                    for m in ["accuracy", "f1", "roc_auc"])
    print(f"{name:<20} {row}")
