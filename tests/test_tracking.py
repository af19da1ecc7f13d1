"""Tests of the tracking package against a real (temporary, sqlite) MLflow store.

One store is shared by the whole module (creating and migrating a sqlite store costs
about a second); each test runs in its own temporary working directory.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

import tracking
from tracking import (
    PIPELINE_RUN_ENV,
    TrackingError,
    check_tracking_server,
    end_pipeline_run,
    read_run_record,
    stage_run,
    start_pipeline_run,
)
from tracking.lineage import main as lineage_main
from tracking.lineage import walk_lineage
from tracking.params import config_params
from tracking.registry import register_checkpoint, resolve_model_uri

DATA_DIGEST = "sha256:" + "d" * 64
CONFIG = {
    "seed": 7,
    "model": {"name": "tiny-llama", "hidden": 64, "layers": [1, 2]},
    "data": {"path": "data/cold_start.jsonl", "vocab": list(range(300))},
    "pretrain": {"steps": 3, "lr": 1e-3},
}


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A sqlite tracking store shared by the module, created once."""
    root = tmp_path_factory.mktemp("mlflow_store")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(root)
        check_tracking_server()  # creates and migrates the database
    return uri


@pytest.fixture
def env(store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point tracking at the shared store and run the test in its own directory."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    monkeypatch.delenv(PIPELINE_RUN_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _stage_kwargs(stage: str, out_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "stage": stage,
        "experiment": "test",
        "config": CONFIG,
        "config_digest": f"cfg-{stage}",
        "code_digest": f"code-{stage}",
        "out_dir": str(out_dir),
        "system_metrics": False,
        **extra,
    }


@pytest.fixture(scope="module")
def chain(store_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A pipeline run with an upstream stage (dataset + model) and a downstream stage."""
    work = tmp_path_factory.mktemp("chain")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store_uri)
        mp.chdir(work)
        pipeline_id = start_pipeline_run("test", tags={"r1.invocation": "pytest"})
        mp.setenv(PIPELINE_RUN_ENV, pipeline_id)

        data = work / "data" / "cold_start.jsonl"
        data.parent.mkdir()
        data.write_text('{"prompt": "1+1", "answer": "2"}\n')
        model_dir = work / "models" / "pretrain"
        model_dir.mkdir(parents=True)
        (model_dir / "config.json").write_text("{}")

        with stage_run(
            **_stage_kwargs(
                "pretrain", work / "pretrain", system_metrics=True, param_sections=["pretrain", "model"]
            )
        ) as up:
            up.log_dataset(data, name="cold_start", digest=DATA_DIGEST, num_rows=1)
            base_id = up.register_external_base("Qwen/Qwen2.5-0.5B")
            up.log_input_model(base_id)
            model_id = up.log_hf_model(model_dir, name="tiny-pretrain", params={"hidden": 64})
            up.log_metrics({"loss": 2.5}, step=1)

        with stage_run(
            **_stage_kwargs("cold_start_sft", work / "sft", upstream_dirs=[str(work / "pretrain")])
        ) as down:
            down.log_metrics({"loss": 1.5})
            # The same base model is reused, not registered again.
            assert down.register_external_base("Qwen/Qwen2.5-0.5B") == base_id

        yield {
            "work": work,
            "pipeline_id": pipeline_id,
            "up": up.run_id,
            "down": down.run_id,
            "model_id": model_id,
            "base_id": base_id,
            "model_dir": model_dir,
            "data": data,
        }
        end_pipeline_run(pipeline_id)


def test_pipeline_run_tags_and_not_active(chain: dict[str, Any]) -> None:
    import mlflow

    assert mlflow.active_run() is None
    run = MlflowClient().get_run(chain["pipeline_id"])
    assert run.info.run_name == "pipeline"
    assert run.info.status == "RUNNING"  # ended by the fixture's teardown only
    tags = run.data.tags
    assert tags["r1.stage"] == "pipeline"
    assert tags["r1.experiment"] == "test"
    assert tags["r1.invocation"] == "pytest"
    assert tags["r1.git_commit"] and tags["r1.git_dirty"] in {"true", "false", "unknown"}
    experiment = MlflowClient().get_experiment(run.info.experiment_id)
    assert experiment.name == "r1flow/test"


def test_upstream_run_records_model_dataset_and_config(chain: dict[str, Any]) -> None:
    client = MlflowClient()
    run = client.get_run(chain["up"])
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["r1.stage"] == "pretrain"
    assert tags["mlflow.runName"] == "pretrain"
    assert tags["mlflow.parentRunId"] == chain["pipeline_id"]
    assert tags["r1.config_digest"] == "cfg-pretrain"
    assert tags["r1.code_digest"] == "code-pretrain"
    assert {"r1.git_commit", "r1.git_dirty"} <= tags.keys()

    # Config: params restricted to the requested sections, full YAML as an artifact.
    params = run.data.params
    assert params["pretrain.steps"] == "3" and params["model.hidden"] == "64"
    assert params["model.layers"] == "[1, 2]"
    assert "seed" not in params and "data.path" not in params
    artifacts = {a.path for a in client.list_artifacts(chain["up"], "config")}
    assert artifacts == {"config/resolved.yaml"}

    # Output model: an external LoggedModel pointing at the weights on disk.
    assert [o.model_id for o in run.outputs.model_outputs] == [chain["model_id"]]
    model = client.get_logged_model(chain["model_id"])
    assert model.status == "READY"
    assert model.model_type == "hf-causal-lm"
    assert model.tags["r1.path"] == str(chain["model_dir"])
    assert model.tags["r1.stage"] == "pretrain"
    assert model.params == {"hidden": "64"}
    assert model.source_run_id == chain["up"]
    assert [i.model_id for i in run.inputs.model_inputs] == [chain["base_id"]]

    # Dataset input with our digest (MLflow keeps 36 chars, the tag the full digest).
    (ds_input,) = run.inputs.dataset_inputs
    assert ds_input.dataset.name == "cold_start"
    assert ds_input.dataset.digest == "d" * 36
    assert json.loads(ds_input.dataset.profile) == {"num_rows": 1}
    input_tags = {t.key: t.value for t in ds_input.tags}
    assert input_tags["r1.digest"] == DATA_DIGEST
    assert input_tags["mlflow.data.context"] == "train"
    assert json.loads(ds_input.dataset.source)["uri"] == str(chain["data"])

    record = read_run_record(chain["work"] / "pretrain")
    assert record == {
        "run_id": chain["up"],
        "experiment_id": run.info.experiment_id,
        "experiment": "test",
        "stage": "pretrain",
        "model_id": chain["model_id"],
        "model_path": str(chain["model_dir"]),
        "datasets": [
            {"name": "cold_start", "digest": DATA_DIGEST, "path": str(chain["data"]), "context": "train"}
        ],
        "upstream_run_ids": [],
        "tracking_uri": tracking.tracking_uri(),
    }


def test_downstream_run_links_to_upstream(chain: dict[str, Any]) -> None:
    run = MlflowClient().get_run(chain["down"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == chain["pipeline_id"]
    assert run.data.tags["r1.upstream_run_ids"] == chain["up"]
    assert [i.model_id for i in run.inputs.model_inputs] == [chain["model_id"]]
    assert len(run.data.params) == len(config_params(CONFIG))  # default: whole config
    record = read_run_record(chain["work"] / "sft")
    assert record["model_id"] is None and record["model_path"] is None
    assert record["upstream_run_ids"] == [chain["up"]]


def test_lineage_walks_back_to_the_data(chain: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    nodes = walk_lineage(chain["down"])
    assert [(n.stage, n.run_id, n.depth) for n in nodes] == [
        ("cold_start_sft", chain["down"], 0),
        ("pretrain", chain["up"], 1),
    ]
    assert [m.model_id for m in nodes[0].input_models] == [chain["model_id"]]
    assert [m.path for m in nodes[1].output_models] == [str(chain["model_dir"])]
    assert [(d.name, d.digest) for d in nodes[1].datasets] == [("cold_start", DATA_DIGEST)]

    assert lineage_main([str(chain["work"] / "sft")]) == 0
    out = capsys.readouterr().out
    assert chain["up"] in out and chain["down"] in out and DATA_DIGEST in out


def test_registry_alias_resolves_to_the_producing_run(chain: dict[str, Any], capsys) -> None:
    entry = register_checkpoint(chain["model_id"], "r1flow-test", "student-small", "student_small")
    assert entry.uri == "models:/r1flow-test@student-small" and entry.run_id == chain["up"]
    assert entry.path == str(chain["model_dir"].resolve())
    again = register_checkpoint(chain["model_id"], "r1flow-test", "student-small", "student_small")
    assert int(again.version) == int(entry.version) + 1  # the alias moves to the newest version
    assert resolve_model_uri("models:/r1flow-test@student-small") == chain["up"]
    assert resolve_model_uri(f"models:/r1flow-test/{entry.version}") == chain["up"]
    assert lineage_main(["models:/r1flow-test@student-small"]) == 0
    assert DATA_DIGEST in capsys.readouterr().out
    with pytest.raises(TrackingError, match="cannot resolve"):
        resolve_model_uri("models:/r1flow-test@nobody")
    with pytest.raises(TrackingError, match="not a registry URI"):
        resolve_model_uri("models:/r1flow-test")
    with pytest.raises(TrackingError, match="no logged model"):
        register_checkpoint("m-doesnotexist", "r1flow-test", "x", "x")


def test_failing_block_marks_run_failed_without_record(env: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with stage_run(**_stage_kwargs("grpo", env / "grpo")) as run:
            run.log_metrics({"reward": 0.1}, step=0)
            raise ZeroDivisionError("boom")
    assert MlflowClient().get_run(run.run_id).info.status == "FAILED"
    assert not (env / "grpo" / "run.json").exists()


def test_a_resumed_stage_continues_its_unfinished_run(env: Path) -> None:
    """The run of an interrupted attempt is reopened (same id, curves continued), unless it is
    finished or another stage's: then a new run starts."""
    with pytest.raises(KeyboardInterrupt):
        with stage_run(**_stage_kwargs("sft", env / "sft")) as first:
            first.log_metrics({"loss": 2.0}, step=0)
            raise KeyboardInterrupt
    assert MlflowClient().get_run(first.run_id).info.status == "KILLED"
    with stage_run(**_stage_kwargs("sft", env / "sft", resume_run_id=first.run_id)) as again:
        again.log_metrics({"loss": 1.0}, step=1)
    assert again.run_id == first.run_id
    run = MlflowClient().get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["r1.pid"] == str(os.getpid())
    assert [(m.step, m.value) for m in MlflowClient().get_metric_history(first.run_id, "loss")] == [(0, 2.0), (1, 1.0)]
    with stage_run(**_stage_kwargs("sft", env / "sft", resume_run_id=first.run_id)) as finished_before:
        pass
    with stage_run(**_stage_kwargs("rm", env / "rm", resume_run_id=finished_before.run_id)) as other_stage:
        pass
    assert len({first.run_id, finished_before.run_id, other_stage.run_id}) == 3


def test_a_new_pipeline_run_closes_the_runs_that_dead_processes_left_running(env: Path) -> None:
    import socket
    import subprocess
    import sys

    from tracking._common import get_or_create_experiment

    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
    client = MlflowClient()
    exp = get_or_create_experiment(client, "abandoned")
    here = socket.gethostname()
    runs = {name: client.create_run(exp, tags=tags).info.run_id for name, tags in {
        "killed job": {"r1.host": here, "r1.pid": dead_pid},
        "live job": {"r1.host": here, "r1.pid": str(os.getpid())},
        "job on a cluster node": {"r1.host": f"not-{here}", "r1.pid": dead_pid},
        "untagged": {},
    }.items()}
    pipeline = start_pipeline_run("abandoned")
    status = {name: client.get_run(rid).info.status for name, rid in runs.items()}
    assert status == {"killed job": "KILLED", "live job": "RUNNING", "job on a cluster node": "RUNNING",
                      "untagged": "RUNNING"}
    assert client.get_run(pipeline).data.tags["r1.pid"] == str(os.getpid())
    end_pipeline_run(pipeline)


def test_missing_upstream_record_names_the_file(env: Path) -> None:
    with pytest.raises(TrackingError, match=str(env / "nowhere" / "run.json")):
        with stage_run(**_stage_kwargs("sft", env / "sft", upstream_dirs=[str(env / "nowhere")])):
            pass


def test_malformed_run_record(env: Path) -> None:
    (env / "run.json").write_text("{not json")
    with pytest.raises(TrackingError, match="malformed"):
        read_run_record(env)
    (env / "run.json").write_text('{"run_id": "x"}')
    with pytest.raises(TrackingError, match="missing experiment_id"):
        read_run_record(env)


def test_lightning_logger_writes_into_the_stage_run(env: Path) -> None:
    with stage_run(**_stage_kwargs("sft", env / "sft")) as run:
        logger = run.lightning_logger(prefix="fit")
        logger.log_hyperparams({"model": {"hidden": 128}, "lr": 0.01})  # model.hidden exists
        logger.log_metrics({"train/loss": 0.25}, step=3)
        logger.log_metrics({"train/loss": 0.25, "train/lr": 0.1}, step=3)  # handed over again (a checkpoint step)
        logger.log_metrics({"train/loss": 0.5}, step=4)
        logger.finalize("success")
        # The stage still owns the run: Lightning's finalize did not terminate it.
        assert MlflowClient().get_run(run.run_id).info.status == "RUNNING"
        run.log_metrics({"eval/acc": 0.5})
    finished = MlflowClient().get_run(run.run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.metrics == {"fit-train/loss": 0.5, "fit-train/lr": 0.1, "eval/acc": 0.5}
    history = MlflowClient().get_metric_history(run.run_id, "fit-train/loss")
    assert [(m.step, m.value) for m in history] == [(3, 0.25), (4, 0.5)], "one value per metric and step"
    assert finished.data.params["model.hidden"] == "64" and finished.data.params["lr"] == "0.01"  # config kept
    assert logger.run_id == run.run_id


def test_artifact_helpers(env: Path) -> None:
    (env / "notes.txt").write_text("hello")
    with stage_run(**_stage_kwargs("eval", env / "eval")) as run:
        run.log_artifact(env / "notes.txt", "extra")
        run.log_dict({"pass@1": 0.5, "path": env}, "eval/summary.json")
        run.log_table(
            [{"prompt": "1+1", "answer": "2"}, {"prompt": "2+2", "scores": [1, 0]}], "eval/samples.json"
        )
        run.log_metrics({"eval/test/pass@1": 0.5})
        run.log_params({"eval.k": 4})
    client = MlflowClient()
    paths = {a.path for d in ("extra", "eval") for a in client.list_artifacts(run.run_id, d)}
    assert {"extra/notes.txt", "eval/summary.json", "eval/samples.json"} <= paths
    table = json.loads(Path(client.download_artifacts(run.run_id, "eval/samples.json", str(env))).read_text())
    assert table["columns"] == ["prompt", "answer", "scores"]
    assert table["data"] == [["1+1", "2", None], ["2+2", None, [1, 0]]]
    data = client.get_run(run.run_id).data
    assert data.params["eval.k"] == "4"
    assert data.metrics == {"eval/test/pass_at_1": 0.5}  # "@" is not allowed in MLflow names


def test_log_hf_model_rejects_missing_directory(env: Path) -> None:
    with pytest.raises(TrackingError, match="not a directory"):
        with stage_run(**_stage_kwargs("export", env / "export")) as run:
            run.log_hf_model(env / "missing", name="x")
    assert MlflowClient().get_run(run.run_id).info.status == "FAILED"


def test_check_tracking_server_ok(env: Path) -> None:
    check_tracking_server()


def test_check_tracking_server_unreachable_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    start = time.monotonic()
    with pytest.raises(
        TrackingError, match=r"MLflow tracking server at http://127\.0\.0\.1:9 is unreachable"
    ):
        check_tracking_server(timeout_s=5)
    assert time.monotonic() - start < 15
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # restored after the call


def test_tracking_uri_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking.tracking_uri() == "http://tracking:5000"


def test_config_params_selection() -> None:
    params = config_params(CONFIG)
    assert params["model.name"] == "tiny-llama"
    assert params["model.layers"] == "[1, 2]"
    assert "data.vocab" not in params  # long list: left to the YAML artifact
    assert list(config_params(CONFIG, sections=["pretrain", "seed"])) == [
        "pretrain.steps",
        "pretrain.lr",
        "seed",
    ]
    wide = {"s": {f"k{i}": i for i in range(500)}, "bad key!": "v", "long": "x" * 7000}
    capped = config_params(wide)
    assert len(capped) == 200
    assert config_params({"bad key!": "v"}) == {"bad key_": "v"}
    assert len(config_params({"long": "x" * 7000})["long"]) == 6000
