#!/usr/bin/env python3
"""Estimates the size of a Python image of the seed's stack (reference/seed-technology-stack.md):
python:3.11-slim plus the wheels pip would install for its runtime packages (the testing and
quality tools left out), resolved for CPython 3.11 on manylinux x86_64.

Resolution: `pip install --dry-run --report` (no download of the wheels); sizes: the
Content-Length of a HEAD request for each chosen wheel's URL. Wheels are zip files, so the installed size is larger (typically
1.5 to 3 times): the sum is a lower bound. The base image's size is Docker Hub's published
uncompressed size of python:3.11-slim-bookworm, passed as --base-mb (no registry access here).

dvc and dvc-s3 are left out: a dependency of theirs ships no wheel for this platform, which
`--only-binary` (needed to resolve for another platform) refuses; leaving them out keeps the
figure a lower bound.

Usage: python3 bench/python_image_estimate.py [--base-mb 130]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.request

SEED = [
    "numpy>=1.24.0", "pandas>=2.0.0", "scikit-learn>=1.3.0", "xgboost>=2.0.0", "lightgbm>=4.0.0",
    "imbalanced-learn>=0.11.0", "mlflow>=2.8.0",
    "great-expectations>=0.18.0", "evidently>=0.4.0", "fastapi>=0.104.0", "uvicorn[standard]>=0.24.0",
    "streamlit>=1.28.0", "pydantic>=2.4.0", "pydantic-settings>=2.0.0", "python-multipart>=0.0.6",
    "prometheus-client>=0.18.0", "prometheus-fastapi-instrumentator>=6.1.0", "sqlalchemy>=2.0.0",
    "alembic>=1.12.0", "psycopg2-binary>=2.9.0", "jinja2>=3.1.2", "weasyprint>=60.0",
    "matplotlib>=3.8.0", "seaborn>=0.13.0", "plotly>=5.17.0", "python-dotenv>=1.0.0",
    "requests>=2.31.0", "python-dateutil>=2.8.2", "pyyaml>=6.0.1", "click>=8.1.0", "rich>=13.6.0",
    "loguru>=0.7.0",
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-mb", type=float, default=130.0,
                        help="python:3.11-slim-bookworm's uncompressed size in MB")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
             "--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--platform",
             "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp",
             "--target", tempfile.mkdtemp(), "--report", report.name] + SEED,
            check=True,
        )
        chosen = json.load(open(report.name))["install"]
    total, rows = 0, []
    for item in chosen:
        url = item["download_info"]["url"]
        meta = item["metadata"]
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=30) as r:
            size = int(r.headers["Content-Length"])
        total += size
        rows.append((size, f"{meta['name']}=={meta['version']}"))
    rows.sort(reverse=True)
    for size, name in rows[:12]:
        print(f"{size / 1e6:9.1f} MB  {name}")
    print(f"{len(rows)} wheels, {total / 1e6:.1f} MB compressed")
    print(f"python:3.11-slim ({args.base_mb:.0f} MB) + wheels >= {args.base_mb + total / 1e6:.0f} MB "
          f"(installed wheels are larger than their zip files)")


if __name__ == "__main__":
    main()
