"""The real MLflow client (mlflow-skinny, pinned in requirements.txt) against Steward.

    tests/mlflow/.venv/bin/python tests/mlflow/test_mlflow_client.py           # the suite
    tests/mlflow/.venv/bin/python tests/mlflow/test_mlflow_client.py session   # one session

The suite starts `target/debug/steward serve` itself (as tests/e2e/dashboard.test.mjs does) on
a fresh SQLite store in a temporary folder, waits for /ready (the first start trains and
promotes a model), makes an admin API token with `steward tokens create`, and drives the MLflow
tracking, registry and scoring clients against it. STEWARD_BIN overrides the binary.

`session` runs the tracking and registry session against an already running server: it reads
MLFLOW_TRACKING_URI and the credentials (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME
and MLFLOW_TRACKING_PASSWORD) from the environment, and prints one JSON line
{"run_id", "experiment_id", "model", "version"} on stdout (everything else goes to stderr).
"""

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# Before mlflow is imported: no telemetry, and failures fail fast instead of being retried
# for minutes (the client retries 408/429/5xx with exponential backoff).
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.pyfunc.scoring_server.client import ScoringServerClient  # noqa: E402

MLMODEL_SKLEARN = (
    "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
    "  sklearn:\n    pickled_model: model.pkl\n    sklearn_version: 1.5.2\n"
    "mlflow_version: 3.17.2\n"
)
EXPERIMENT = "mlflow-client"
MODEL = "mlflow-client-model"
FEATURES = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang",
            "oldpeak", "slope", "ca", "thal"]
CRED_VARS = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
ADMIN_PASSWORD = "mlflow-admin-password"


@contextlib.contextmanager
def credentials(token=None, username=None, password=None):
    """The client reads these on every request: set exactly the given ones, then restore."""
    saved = {k: os.environ.get(k) for k in CRED_VARS}
    for k, v in zip(CRED_VARS, (token, username, password)):
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def param_value(params, key):
    """A param from Steward's run detail: an object of name -> value, or [{key, value}]."""
    if isinstance(params, dict):
        return params.get(key)
    if isinstance(params, list):
        for p in params:
            if p.get("key", p.get("name")) == key:
                return p.get("value")
    return None


def hungarian_rows(n=5):
    """The first n rows of the UCI Hungarian file ('?' = missing), as pandas reads them."""
    for folder in (ROOT / "data" / "uci-heart-disease",
                   Path("/work/shared/data/uci-heart-disease")):
        path = folder / "processed.hungarian.data"
        if path.exists():
            frame = pd.read_csv(path, header=None, names=FEATURES + ["num"], na_values=["?"])
            return frame[FEATURES].head(n).reset_index(drop=True)
    raise FileNotFoundError("processed.hungarian.data not found under data/uci-heart-disease")


def tracking_session(tc, tracking_uri):
    """The tracking and registry session: a run with params, stepped metrics, tags and a
    batch; searches; a refused param change; delete and restore; a registered version moved
    to Staging with an alias. `tc` is a TestCase whose assertions check each step.
    Returns {"run_id", "experiment_id", "model", "version"}."""
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()

    experiment = mlflow.set_experiment(EXPERIMENT)
    tc.assertEqual(experiment.name, EXPERIMENT)
    tc.assertIsInstance(experiment.experiment_id, str)
    tc.assertTrue(experiment.experiment_id)
    # A second set_experiment finds it by name (no second experiment).
    tc.assertEqual(mlflow.set_experiment(EXPERIMENT).experiment_id, experiment.experiment_id)

    run = mlflow.start_run(run_name="mlflow-client-lr")
    run_id = run.info.run_id
    try:
        tc.assertEqual(run.info.experiment_id, experiment.experiment_id)
        tc.assertEqual(run.info.status, "RUNNING")
        tc.assertEqual(run.info.run_name, "mlflow-client-lr")
        mlflow.log_param("model", "lr")
        mlflow.log_params({"C": 0.5, "penalty": "l2"})
        mlflow.log_metric("acc", 0.8)
        for step, loss in enumerate([0.9, 0.7, 0.5, 0.4, 0.3]):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.log_metrics({"f1": 0.75, "auc": 0.85})
        mlflow.set_tag("team", "ml")
        mlflow.set_tag("scratch", "to be deleted")
        client.log_batch(run_id, metrics=[Metric("precision", 0.7, int(time.time() * 1000), 0)],
                         params=[Param("max_iter", "200")], tags=[RunTag("source", "batch")])
        # A param is written once: another value is refused, the first one stays.
        with tc.assertRaises(MlflowException) as refused:
            mlflow.log_param("model", "rf")
        tc.assertIn("model", str(refused.exception))
        # The same value again is no change, so it is accepted (as MLflow does).
        mlflow.log_param("model", "lr")
        # Files go through Steward's artifact proxy (mlflow-artifacts:/...) into its blobs.
        mlflow.log_text("threshold: 0.5\n", "notes/decision.yaml")
        mlflow.log_dict({"features": FEATURES}, "schema.json")
        # The MLmodel file a scikit-learn model folder carries: its flavours name the version.
        mlflow.log_text(MLMODEL_SKLEARN, "model/MLmodel")
    finally:
        mlflow.end_run()

    listed = sorted(f.path for f in client.list_artifacts(run_id))
    tc.assertEqual(listed, ["model", "notes", "schema.json"])
    tc.assertEqual([f.path for f in client.list_artifacts(run_id, "notes")], ["notes/decision.yaml"])
    tc.assertEqual(mlflow.artifacts.load_text(f"runs:/{run_id}/notes/decision.yaml"),
                   "threshold: 0.5\n")
    tc.assertEqual(mlflow.artifacts.load_dict(f"runs:/{run_id}/schema.json"), {"features": FEATURES})

    got = client.get_run(run_id)
    tc.assertEqual(got.info.status, "FINISHED")
    tc.assertIsNotNone(got.info.end_time)
    tc.assertEqual(got.data.params["model"], "lr")
    tc.assertEqual(got.data.params["C"], "0.5")
    tc.assertEqual(got.data.params["max_iter"], "200")
    tc.assertAlmostEqual(got.data.metrics["acc"], 0.8)
    tc.assertAlmostEqual(got.data.metrics["loss"], 0.3, msg="a metric's value is its last step's")
    tc.assertAlmostEqual(got.data.metrics["precision"], 0.7)
    tc.assertEqual(got.data.tags["team"], "ml")
    tc.assertEqual(got.data.tags["source"], "batch")
    tc.assertTrue(got.info.artifact_uri, "runs have an artifact_uri")

    client.delete_tag(run_id, "scratch")
    tc.assertNotIn("scratch", client.get_run(run_id).data.tags)

    # Two more runs so the search has something to filter out and to order.
    for name, model, acc in (("mlflow-client-lr-low", "lr", 0.6), ("mlflow-client-rf", "rf", 0.95)):
        other = client.create_run(experiment.experiment_id, run_name=name)
        client.log_batch(other.info.run_id, metrics=[Metric("acc", acc, int(time.time() * 1000), 0)],
                         params=[Param("model", model)])
        client.set_terminated(other.info.run_id)

    frame = mlflow.search_runs(experiment_names=[EXPERIMENT],
                               filter_string="metrics.acc > 0.5 and params.model = 'lr'",
                               order_by=["metrics.acc DESC"])
    tc.assertIsInstance(frame, pd.DataFrame)
    tc.assertIn(run_id, list(frame["run_id"]))
    tc.assertTrue((frame["params.model"] == "lr").all(), "the filter keeps lr runs only")
    tc.assertTrue((frame["metrics.acc"] > 0.5).all())
    accs = list(frame["metrics.acc"])
    tc.assertGreaterEqual(len(accs), 2)
    tc.assertEqual(accs, sorted(accs, reverse=True), "ordered by metrics.acc DESC")

    found = client.search_runs([experiment.experiment_id],
                               filter_string="metrics.acc > 0.5 and params.model = 'lr'",
                               order_by=["metrics.acc DESC"], max_results=50)
    tc.assertIn(run_id, [r.info.run_id for r in found])
    tc.assertTrue(all(r.data.params.get("model") == "lr" for r in found))
    found_accs = [r.data.metrics["acc"] for r in found]
    tc.assertEqual(found_accs, sorted(found_accs, reverse=True))

    history = client.get_metric_history(run_id, "loss")
    tc.assertEqual([m.step for m in history], [0, 1, 2, 3, 4])
    tc.assertEqual([round(m.value, 6) for m in history], [0.9, 0.7, 0.5, 0.4, 0.3])

    client.delete_run(run_id)
    tc.assertEqual(client.get_run(run_id).info.lifecycle_stage, "deleted")
    active = client.search_runs([experiment.experiment_id], max_results=1000)
    tc.assertNotIn(run_id, [r.info.run_id for r in active], "a deleted run is not active")
    client.restore_run(run_id)
    tc.assertEqual(client.get_run(run_id).info.lifecycle_stage, "active")

    # The registry.
    try:
        client.create_registered_model(MODEL)
    except MlflowException as e:  # session mode against a store that has it already
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(MODEL, source=f"runs:/{run_id}/model", run_id=run_id)
    tc.assertEqual(version.name, MODEL)
    tc.assertEqual(version.run_id, run_id)
    tc.assertEqual(version.status, "READY")
    tc.assertTrue(version.version.isdigit(), version.version)
    staged = client.transition_model_version_stage(MODEL, version.version, "Staging",
                                                   archive_existing_versions=True)
    tc.assertEqual(staged.current_stage, "Staging")
    latest = client.get_latest_versions(MODEL, stages=["Staging"])
    tc.assertEqual([v.version for v in latest], [version.version],
                   "the new version is the one in Staging (earlier ones archived)")
    client.set_registered_model_alias(MODEL, "candidate", version.version)
    by_alias = client.get_model_version_by_alias(MODEL, "candidate")
    tc.assertEqual(by_alias.version, version.version)
    tc.assertEqual(by_alias.run_id, run_id)
    registered = client.get_registered_model(MODEL)
    tc.assertEqual(registered.aliases.get("candidate"), version.version)
    tc.assertIn(MODEL, [m.name for m in client.search_registered_models()])
    tc.assertIn(version.version,
                [v.version for v in client.search_model_versions(f"name = '{MODEL}'")])

    return {"run_id": run_id, "experiment_id": experiment.experiment_id, "model": MODEL,
            "version": version.version}


def start_server(work):
    """Starts Steward on a free port; returns (process, base URL, log path)."""
    log_path = work / "server.log"
    Server.log_file = log = open(log_path, "wb")
    env = dict(os.environ)
    for k in CRED_VARS + ("MLFLOW_TRACKING_URI",):
        env.pop(k, None)
    binary = Path(os.environ.get("STEWARD_BIN", ROOT / "target" / "debug" / "steward"))
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: build it first (cargo test --no-run)")
    env.update(server_env(work))
    cmd = [str(binary), "serve"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 60
    while time.time() < deadline:
        text = log_path.read_text(errors="replace")
        m = re.search(r"steward is serving port=(\d+)", text)
        if m:
            return proc, f"http://127.0.0.1:{m.group(1)}", log_path
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{text[-4000:]}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the server did not start:\n{log_path.read_text(errors='replace')[-4000:]}")


def server_env(work):
    return {
        "STEWARD__SERVER__PORT": "0",
        "STEWARD__SERVER__WORKERS": "1",
        "STEWARD__DATABASE__URL": f"sqlite://{work / 'steward.db'}",
        "STEWARD__STORAGE__DIR": str(work / "var"),
        "STEWARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "STEWARD__AUTH__LOGIN_ATTEMPTS_PER_MINUTE": "60",
        "RUST_LOG": "info",
    }


def wait_ready(base, timeout=300):
    """/ready answers 200 once a model is in Production (the first start trains one)."""
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/ready", timeout=10) as r:
                if r.status == 200:
                    return
        except urllib.error.HTTPError as e:
            last = f"{e.code} {e.read()[:300]!r}"
        except OSError as e:
            last = repr(e)
        time.sleep(0.5)
    raise RuntimeError(f"{base}/ready did not answer 200 within {timeout}s (last: {last})")


def admin_token(work, base):
    """An admin API token, made by the CLI on the server's store:
    `steward tokens create --user admin --name ...` prints `token (shown once): stw_...`."""
    binary = Path(os.environ.get("STEWARD_BIN", ROOT / "target" / "debug" / "steward"))
    env = dict(os.environ)
    env.update(server_env(work))
    out = subprocess.run([str(binary), "tokens", "create", "--user", "admin", "--name",
                          "mlflow-client-test"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    m = re.search(r"token \(shown once\): (\S+)", out.stdout)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"steward tokens create failed ({out.returncode}):\n"
                           f"{out.stdout}\n{out.stderr}")
    return m.group(1)


def steward_get(base, path, token):
    req = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Bearer {token}",
                                                           "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


class Echo(mlflow.pyfunc.PythonModel):
    """A model MLflow saves with the python_function flavour only."""

    def predict(self, context, model_input, params=None):
        return model_input


class Server:
    proc = base = token = work = log = log_file = None


def setUpModule():
    Server.work = Path(tempfile.mkdtemp(prefix="steward-mlflow-"))
    for k in CRED_VARS + ("MLFLOW_TRACKING_URI",):
        os.environ.pop(k, None)
    Server.proc, Server.base, Server.log = start_server(Server.work)
    try:
        wait_ready(Server.base)
        Server.token = admin_token(Server.work, Server.base)
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    proc = Server.proc
    if proc is not None and proc.poll() is None:
        # The server writes its last state as it stops: wait for it before removing its folder.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if Server.log_file is not None:
        Server.log_file.close()
    if Server.work is not None:
        shutil.rmtree(Server.work, ignore_errors=True)


class ServerTestCase(unittest.TestCase):
    def setUp(self):
        mlflow.set_tracking_uri(Server.base)
        host, port = Server.base.rsplit("//", 1)[1].split(":")
        self.host, self.port = host, int(port)

    def run(self, result=None):
        # On a failure, the end of the server's log helps more than the client's traceback.
        before = len(result.failures) + len(result.errors) if result is not None else 0
        result = super().run(result)
        after = len(result.failures) + len(result.errors) if result is not None else 0
        if after > before and Server.log is not None:
            tail = Server.log.read_text(errors="replace")[-3000:]
            sys.stderr.write(f"\n--- server log (tail) after {self.id()} ---\n{tail}\n")
        return result


class ScoringTest(ServerTestCase):
    """(a), (b): MLflow's scoring client against /ping, /version and /invocations."""

    def test_a_ready_and_version(self):
        client = ScoringServerClient(self.host, self.port)
        client.wait_server_ready(timeout=30)  # raises RuntimeError if /ping is not 200
        version = client.get_version()
        self.assertIsInstance(version, str)
        self.assertTrue(version.strip(), "GET /version answers a non-empty body")

    def test_b_invoke_hungarian_rows_with_missing_values(self):
        frame = hungarian_rows(5)
        self.assertTrue(frame.isna().any().any(), "the rows chosen have missing values")
        response = ScoringServerClient(self.host, self.port).invoke(frame)
        predictions = response["predictions"]
        self.assertEqual(len(predictions), 5)
        for p in predictions:
            self.assertIn(p, (0, 1))

    def test_b_invoke_infinite_value_names_the_column(self):
        frame = hungarian_rows(2)
        frame.loc[1, "oldpeak"] = math.inf
        with self.assertRaises(Exception) as caught:
            ScoringServerClient(self.host, self.port).invoke(frame)
        message = str(caught.exception)
        self.assertIn("error code 422", message)
        self.assertIn("oldpeak", message)
        # MLflow's error body: {"error_code": ..., "message": ...}
        body = json.loads(message.split("response: ", 1)[1].rstrip(")"))
        self.assertIn("error_code", body)
        self.assertIn("oldpeak", body["message"])


class TrackingTest(ServerTestCase):
    """(c), (d), (e): tracking and registry through the MLflow client."""

    def test_c_tracking_and_registry_session_with_a_token(self):
        with credentials(token=Server.token):
            out = tracking_session(self, Server.base)
        run_id, version = out["run_id"], int(out["version"])
        # What the MLflow client wrote is Steward's own run and version.
        run = steward_get(Server.base, f"/api/v1/runs/{run_id}", Server.token)
        self.assertEqual(run.get("id", run_id), run_id)
        params = run["params"]
        self.assertEqual(param_value(params, "model"), "lr")
        self.assertEqual(str(param_value(params, "max_iter")), "200")
        self.assertAlmostEqual(run["metrics"]["acc"], 0.8)
        loss = run.get("history", {}).get("loss")
        self.assertIsNotNone(loss, f"the stepped metric's history: {run.get('history')}")
        self.assertEqual([[int(s), round(v, 6)] for s, v in loss],
                         [[0, 0.9], [1, 0.7], [2, 0.5], [3, 0.4], [4, 0.3]])
        model = steward_get(Server.base, f"/api/v1/models/{MODEL}", Server.token)
        self.assertEqual(model["name"], MODEL)
        mine = [v for v in model["versions"] if int(v["version"]) == version]
        self.assertEqual(len(mine), 1, model["versions"])
        self.assertEqual(mine[0]["run_id"], run_id)
        self.assertEqual(mine[0]["stage"], "Staging")

    def test_d_basic_auth_reads_and_a_wrong_password_is_refused(self):
        name = "mlflow-client-basic-auth"
        with credentials(token=Server.token):
            created = MlflowClient().create_experiment(name)
        self.assertIsInstance(created, str)
        with credentials(username="admin", password=ADMIN_PASSWORD):
            experiments = MlflowClient().search_experiments()
            self.assertIn(created, [e.experiment_id for e in experiments])
            self.assertEqual(MlflowClient().get_experiment(created).name, name)
        with credentials(username="admin", password="not-the-password"):
            with self.assertRaises(MlflowException) as caught:
                MlflowClient().search_experiments()
        self.assertRegex(str(caught.exception), r"(?i)authenticat|401")
        with credentials(token="stw_" + "x" * 40):
            with self.assertRaises(MlflowException) as caught:
                MlflowClient().search_experiments()
        self.assertRegex(str(caught.exception), r"(?i)authenticat|401")
        with credentials():
            with self.assertRaises(MlflowException) as caught:
                MlflowClient().search_experiments()
        self.assertRegex(str(caught.exception), r"(?i)authenticat|401")

    def test_e_a_foreign_version_is_not_promoted_to_production(self):
        name = "mlflow-client-foreign"
        with credentials(token=Server.token):
            client = MlflowClient()
            mlflow.set_experiment(EXPERIMENT)
            # The README's way to keep a model: save the folder, log it as the run's files.
            with mlflow.start_run(run_name="mlflow-client-foreign") as run, \
                    tempfile.TemporaryDirectory() as folder:
                mlflow.log_param("model", "echo")
                mlflow.log_metric("acc", 0.7)
                path = os.path.join(folder, "model")
                mlflow.pyfunc.save_model(path, python_model=Echo(), pip_requirements=[])
                mlflow.log_artifacts(path, "model")
            run_id = run.info.run_id
            client.create_registered_model(name)
            v = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id)
            with self.assertRaises(MlflowException) as caught:
                client.transition_model_version_stage(name, v.version, "Production")
            # Refused, naming the flavour its MLmodel file gave.
            self.assertIn("python_function", str(caught.exception))
            self.assertRegex(str(caught.exception), r"cannot be served")
            model = steward_get(Server.base, f"/api/v1/models/{name}", Server.token)
            self.assertEqual([x["model_kind"] for x in model["versions"]],
                             ["mlflow:python_function"])
            # Nothing moved: the version is where it was, and the served model is Steward's.
            self.assertNotEqual(client.get_model_version(name, v.version).current_stage,
                                "Production")
            self.assertEqual(client.get_latest_versions(name, stages=["Production"]), [])


def session_main():
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        sys.exit("session: set MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_TOKEN or "
                 "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD)")
    # The client writes "View run ... at ..." lines to stdout: keep stdout for the result.
    with contextlib.redirect_stdout(sys.stderr):
        # A bare TestCase lends its assertion methods; a failed check raises AssertionError.
        out = tracking_session(unittest.TestCase(), uri)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["session"]:
        session_main()
    else:
        unittest.main(verbosity=2)
