"""Turn a resolved (nested) config into MLflow params and a YAML artifact.

MLflow params are flat ``str -> str`` pairs (value at most 6000 characters), so the config
is flattened with ``.`` separators; the full config is always kept as an artifact, the
params are a searchable subset.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from ._common import mlflow_key

#: MLflow's limit on a param value (``mlflow.utils.validation.MAX_PARAM_VAL_LENGTH``).
MAX_PARAM_VALUE_CHARS = 6000
#: Lists longer than this (once rendered) are left to the YAML artifact, not params.
MAX_SEQUENCE_PARAM_CHARS = 250
#: Upper bound on the number of params logged from a config.
MAX_CONFIG_PARAMS = 200
#: MLflow's limit on a param key (``MAX_ENTITY_KEY_LENGTH``) and its allowed characters.
MAX_PARAM_KEY_CHARS = 250


def to_plain(obj: Any) -> Any:
    """Recursively convert ``obj`` to YAML/JSON-safe builtins (paths and unknown objects
    become strings, tuples and sets become lists)."""
    if isinstance(obj, Mapping):
        return {str(key): to_plain(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_plain(value) for value in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def config_to_yaml(config: Mapping[str, Any]) -> str:
    """Render a resolved config as YAML, keeping key order."""
    return yaml.safe_dump(to_plain(config), sort_keys=False, allow_unicode=True)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into ``{"a.b.c": value}``; sequences stay values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def _param_value(value: Any) -> str | None:
    """Render a flattened value as a param string, or None to skip it."""
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        text = str(to_plain(value))
        return text if len(text) <= MAX_SEQUENCE_PARAM_CHARS else None
    return str(value)[:MAX_PARAM_VALUE_CHARS]


def _param_key(key: str) -> str | None:
    """Make a flattened key acceptable to MLflow, or None to skip it."""
    key = mlflow_key(key)
    if not key or len(key) > MAX_PARAM_KEY_CHARS or posixpath.normpath(key) != key:
        return None
    return key


def _in_section(key: str, section: str) -> bool:
    return key == section or key.startswith(f"{section}.")


def config_params(
    config: Mapping[str, Any],
    sections: Iterable[str] | None = None,
    limit: int = MAX_CONFIG_PARAMS,
) -> dict[str, str]:
    """Select the params to log from a resolved config.

    Args:
        config: the resolved config (plain nested dict).
        sections: top-level keys or dotted paths (``"model"``, ``"stages.grpo"``) whose
            leaves become params, in priority order; None means the whole config.
        limit: at most this many params are returned; earlier sections win.

    Long lists are skipped (they live in the YAML artifact); keys are made acceptable to
    MLflow with :func:`tracking._common.mlflow_key`.
    """
    flat = flatten(config)
    if sections is None:
        ordered = list(flat)
    else:
        ordered = []
        seen: set[str] = set()
        for section in sections:
            for key in flat:
                if key not in seen and _in_section(key, section):
                    seen.add(key)
                    ordered.append(key)
    params: dict[str, str] = {}
    for key in ordered:
        if len(params) >= limit:
            break
        name, value = _param_key(key), _param_value(flat[key])
        if name is not None and value is not None:
            params[name] = value
    return params
