"""Where a model comes from: a local checkpoint directory or a Hugging Face hub id, checked in
seconds before anything is loaded (and before a stage touches its outputs). Light: no torch, no
transformers, so every stage entry can check its starting model first."""

from __future__ import annotations

import functools
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # "name" or "namespace/name"


@functools.cache  # asked once per process: the entry, then each load, check the same model
def hub_answers(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face hub's endpoint accepts a connection within ``timeout_s``."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout_s).close()
    except OSError:
        return False
    return True


def check_model_source(path_or_id: str, marker: str = "config.json") -> None:
    """Fail early, in a sentence, when a model cannot be found: a local-looking path that is not a
    checkpoint directory (never looked up on the hub), or a hub id that is neither cached nor
    reachable (``HF_HUB_OFFLINE``, or no network: the hub client would retry for about a minute)."""
    p = Path(path_or_id).expanduser()
    hub_shaped = HUB_ID.fullmatch(path_or_id) is not None and not path_or_id.startswith("results/")
    if p.exists() or not hub_shaped:
        if not (p / marker).is_file():
            why = f"has no {marker}" if p.is_dir() else "no such directory"
            raise FileNotFoundError(
                f"model not found: {path_or_id!r}: {why} (run its stage first, e.g. `snakemake --cores 2`, "
                "or point io.init_model / model.name_or_path at a checkpoint directory or hub id)")
        return
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(path_or_id, marker), str):
        return
    if constants.HF_HUB_OFFLINE:
        raise FileNotFoundError(f"model not found: {path_or_id!r} is not a local directory and not in the Hugging "
                                "Face cache, and HF_HUB_OFFLINE is set")
    if not hub_answers():
        raise FileNotFoundError(
            f"model not found: {path_or_id!r} is not a local directory (a typo of one?) and not in the Hugging "
            f"Face cache, and the hub ({constants.ENDPOINT}) does not answer: download it where there is a "
            "network (huggingface-cli download), or point at a local checkpoint directory")
