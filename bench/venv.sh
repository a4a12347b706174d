#!/usr/bin/env bash
# The Python venv of the drift benchmarks and golden values (bench/.venv, git-ignored):
# Evidently 0.7.23 with pandas < 3 (its import fails with pandas 3), and the SciPy it brings.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet 'evidently==0.7.23' 'pandas<3'
.venv/bin/python -c 'import evidently, scipy, pandas; print("evidently", evidently.__version__, "scipy", scipy.__version__, "pandas", pandas.__version__)'
