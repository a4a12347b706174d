# Steward's two everyday commands:
#   make run    build and serve on the embedded defaults (SQLite and artifacts under var/)
#   make test   fmt, clippy, the Rust suite on SQLite, the dashboard in headless Chromium,
#               MLflow's own Python client against `steward serve`, then the integration
#               suite again on PostgreSQL
# Both first install missing Debian packages (scripts/install-deps).

SHELL := /bin/bash
PG_TEST_URL := postgres://steward:steward@127.0.0.1:5432/postgres

.PHONY: run test deps lint test-sqlite test-e2e test-mlflow test-postgres build

run: deps
	cargo build --release
	scripts/stage-xgboost release
	target/release/steward serve

test: deps lint test-sqlite test-e2e test-mlflow test-postgres

deps:
	@scripts/install-deps

build: deps
	cargo build --release
	scripts/stage-xgboost release

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

test-sqlite:
	cargo test

# The dashboard in Debian's headless Chromium, driven by playwright-core (tests/e2e/).
# `cargo test --no-run` builds target/debug/steward with the test build's features, so after
# `cargo test` it compiles nothing (a plain `cargo build` would resolve features anew).
test-e2e:
	cargo test --no-run --quiet
	scripts/stage-xgboost debug
	scripts/mlflow-venv
	cd tests/e2e && npm ci --silent --no-audit --no-fund
	node --test tests/e2e/

# MLflow's own client (mlflow-skinny, pinned in tests/mlflow/requirements.txt) against
# `steward serve`: scoring with missing values, /ping, and a tracking and registry session.
test-mlflow:
	cargo test --no-run --quiet
	scripts/stage-xgboost debug
	scripts/mlflow-venv
	tests/mlflow/.venv/bin/python tests/mlflow/test_mlflow_client.py

# The integration suite again, each test on a fresh database of a real PostgreSQL 15.
test-postgres:
	scripts/postgres-up
	TEST_DATABASE_URL=$(PG_TEST_URL) cargo test --test api
