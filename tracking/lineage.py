"""Walk the upstream chain of a stage run:
``python -m tracking.lineage <run id | stage dir | models:/<name>@<alias>>``.

Starting from a run (the run recorded in a stage output dir's ``run.json``, or the run that
produced a registered model version, e.g. ``models:/r1flow-tiny@student-small``), follows the
``r1.upstream_run_ids`` tags recursively and prints, for every run, its stage, status,
output model(s) with their on-disk path, input models and datasets with their digests,
e.g. to walk back from a distilled student to the cold-start data it descends from.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlflow.tracking import MlflowClient

from ._common import (
    TAG_DATASET_DIGEST,
    TAG_DATASET_PATH,
    TAG_MODEL_PATH,
    TAG_MODEL_SOURCE,
    TAG_STAGE,
    TAG_UPSTREAM_RUN_IDS,
    TrackingError,
    quiet_mlflow_logging,
    tracking_uri,
)
from .records import RUN_RECORD_NAME, read_run_record
from .registry import resolve_model_uri


@dataclass
class DatasetInfo:
    """A dataset input of a run, with our full digest."""

    name: str
    digest: str
    path: str
    context: str | None


@dataclass
class ModelInfo:
    """A LoggedModel used or produced by a run."""

    model_id: str
    name: str | None = None
    path: str | None = None


@dataclass
class LineageNode:
    """One run of the chain; ``depth`` is 0 for the starting run, 1 for its upstreams, ..."""

    run_id: str
    stage: str
    status: str
    depth: int
    upstream_run_ids: list[str] = field(default_factory=list)
    output_models: list[ModelInfo] = field(default_factory=list)
    input_models: list[ModelInfo] = field(default_factory=list)
    datasets: list[DatasetInfo] = field(default_factory=list)


def _model_info(client: MlflowClient, model_id: str) -> ModelInfo:
    try:
        model = client.get_logged_model(model_id)
    except Exception:  # noqa: BLE001 - a dangling id is still worth printing
        return ModelInfo(model_id)
    path = model.tags.get(TAG_MODEL_PATH) or model.tags.get(TAG_MODEL_SOURCE)
    return ModelInfo(model_id, model.name, path)


def _node(client: MlflowClient, run_id: str, depth: int) -> LineageNode:
    run = client.get_run(run_id)
    tags = run.data.tags
    upstream = [rid for rid in tags.get(TAG_UPSTREAM_RUN_IDS, "").split(",") if rid]
    datasets = []
    for item in run.inputs.dataset_inputs if run.inputs else []:
        input_tags = {tag.key: tag.value for tag in item.tags}
        try:
            uri = json.loads(item.dataset.source).get("uri", "")
        except (TypeError, ValueError, AttributeError):
            uri = ""
        datasets.append(
            DatasetInfo(
                name=item.dataset.name,
                digest=input_tags.get(TAG_DATASET_DIGEST, item.dataset.digest),
                path=input_tags.get(TAG_DATASET_PATH, uri),
                context=input_tags.get("mlflow.data.context"),
            )
        )
    outputs = run.outputs.model_outputs if run.outputs else []
    inputs = run.inputs.model_inputs if run.inputs else []
    return LineageNode(
        run_id=run_id,
        stage=tags.get(TAG_STAGE, run.info.run_name or "?"),
        status=run.info.status,
        depth=depth,
        upstream_run_ids=upstream,
        output_models=[_model_info(client, m.model_id) for m in outputs],
        input_models=[_model_info(client, mid) for mid in dict.fromkeys(i.model_id for i in inputs)],
        datasets=datasets,
    )


def walk_lineage(run_id: str, client: MlflowClient | None = None) -> list[LineageNode]:
    """The run and all its transitive upstream runs, depth-first, each run once."""
    client = client or MlflowClient(tracking_uri=tracking_uri())
    nodes: list[LineageNode] = []
    seen: set[str] = set()

    def visit(rid: str, depth: int) -> None:
        if rid in seen:
            return
        seen.add(rid)
        node = _node(client, rid, depth)
        nodes.append(node)
        for upstream in node.upstream_run_ids:
            visit(upstream, depth + 1)

    visit(run_id, 0)
    return nodes


def format_lineage(nodes: list[LineageNode]) -> str:
    """Human-readable, indented rendering of :func:`walk_lineage`'s result."""
    lines = []
    for node in nodes:
        pad = "  " * node.depth
        arrow = "<- " if node.depth else ""
        lines.append(f"{pad}{arrow}{node.stage}  run={node.run_id}  [{node.status}]")
        for model in node.output_models:
            lines.append(
                f"{pad}     model out: {model.model_id} {model.name or ''} {model.path or ''}".rstrip()
            )
        for model in node.input_models:
            lines.append(
                f"{pad}     model in:  {model.model_id} {model.name or ''} {model.path or ''}".rstrip()
            )
        for ds in node.datasets:
            lines.append(f"{pad}     data ({ds.context or '-'}): {ds.name} {ds.digest} {ds.path}")
    return "\n".join(lines)


def _resolve_start(target: str) -> tuple[str, str]:
    """(run id, tracking URI) for a run id, a stage output dir, a run.json path or a registry URI."""
    if target.startswith("models:/"):
        return resolve_model_uri(target), tracking_uri()
    path = Path(target)
    if path.name == RUN_RECORD_NAME and path.is_file():
        path = path.parent
    if path.is_dir():
        record = read_run_record(path)
        uri = os.environ.get("MLFLOW_TRACKING_URI") or record["tracking_uri"]
        return record["run_id"], uri
    return target, tracking_uri()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m tracking.lineage", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="MLflow run id, a stage output dir holding run.json, or a registered "
                        "model URI (models:/r1flow-tiny@student-small)")
    parser.add_argument("--json", action="store_true", help="print the chain as JSON")
    args = parser.parse_args(argv)
    quiet_mlflow_logging()
    try:
        run_id, uri = _resolve_start(args.target)
        nodes = walk_lineage(run_id, MlflowClient(tracking_uri=uri))
    except TrackingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - unknown run id, unreachable store, ...
        print(f"error: cannot walk lineage of {args.target}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([asdict(node) for node in nodes], indent=2))
    else:
        print(format_lineage(nodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
