"""The model registry: one registered model per experiment, an alias per checkpoint.

``register_checkpoint`` turns a stage's LoggedModel (its ``run.json`` ``model_id``) into a new
version of the registered model (e.g. ``r1flow-tiny``) and points an alias at it, so a checkpoint
is addressed as ``models:/r1flow-tiny@r1`` or ``models:/r1flow-tiny@student-small``;
``resolve_model_uri`` goes back from such a URI to the run that produced the weights (where
:mod:`tracking.lineage` starts its walk).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ._common import TAG_MODEL_PATH, TrackingError, tracking_uri

MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass
class Registered:
    """One registered checkpoint."""

    label: str
    alias: str
    name: str
    version: str
    uri: str
    run_id: str
    model_id: str
    path: str | None


def register_checkpoint(model_id: str, name: str, alias: str, label: str,
                        client: MlflowClient | None = None) -> Registered:
    """Register LoggedModel ``model_id`` as a new version of ``name`` and move ``alias`` to it."""
    client = client or MlflowClient(tracking_uri=tracking_uri())
    try:
        model = client.get_logged_model(model_id)
    except Exception as exc:  # noqa: BLE001 - unknown id, other store, ...
        raise TrackingError(f"cannot register {label}: no logged model {model_id!r} ({exc})") from exc
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        try:
            client.create_registered_model(name, description="r1flow checkpoints; aliases name them (r1, student-<size>)")
        except MlflowException as exc:  # another run's report (another seed) created it since the search
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    version = client.create_model_version(name, source=f"models:/{model_id}", run_id=model.source_run_id,
                                          tags={"r1.label": label, "r1.alias": alias}, model_id=model_id,
                                          description=f"{label}: {model.tags.get(TAG_MODEL_PATH, '')}")
    client.set_registered_model_alias(name, alias, version.version)
    return Registered(label=label, alias=alias, name=name, version=str(version.version),
                      uri=f"models:/{name}@{alias}", run_id=model.source_run_id, model_id=model_id,
                      path=model.tags.get(TAG_MODEL_PATH))


def resolve_model_uri(uri: str, client: MlflowClient | None = None) -> str:
    """The id of the run that produced the weights behind ``models:/<name>@<alias>`` (or ``/<version>``)."""
    m = MODEL_URI.match(uri)
    if not m:
        raise TrackingError(f"{uri!r} is not a registry URI (models:/<name>@<alias> or models:/<name>/<version>)")
    client = client or MlflowClient(tracking_uri=tracking_uri())
    try:
        if m["alias"]:
            version = client.get_model_version_by_alias(m["name"], m["alias"])
        else:
            version = client.get_model_version(m["name"], m["version"])
    except Exception as exc:  # noqa: BLE001 - unknown model or alias
        raise TrackingError(f"cannot resolve {uri}: {exc}") from exc
    return version.run_id
