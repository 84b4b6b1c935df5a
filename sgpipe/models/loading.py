"""Loading a transformers model from a folder, the Hugging Face cache or the hub, with clear errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from sgpipe.errors import ModelNotAvailableError, SgpipeError


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def hub_reachable(timeout: float = 3.0) -> bool:
    """A TCP connection to the hub endpoint; assumed reachable behind a proxy, which we cannot probe.
    Without this check the hub client retries every file for minutes before giving up."""
    import socket
    from urllib.parse import urlparse

    proxies = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")
    if any(os.environ.get(name) for name in proxies):
        return True
    url = urlparse(hub_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def load_pretrained(model: str, role: str, load: Callable[..., Any]) -> Any:
    """`load(source, **options)` from a local folder, else the cache, else the hub.

    The cache is tried first, so workers of a cluster start without asking the hub and a cached
    model stays the same model for the whole run. A model found nowhere raises
    ModelNotAvailableError naming it, at once (the hub client would retry for minutes).
    """
    folder = Path(model).expanduser()
    if folder.is_dir():
        try:
            return load(str(folder))
        except (OSError, ValueError) as error:
            raise SgpipeError(f"{role} model folder {model!r} cannot be loaded: {error}") from error
    try:
        return load(model, local_files_only=True)
    except (OSError, ValueError):
        pass
    if hub_offline():
        raise ModelNotAvailableError(model, role, "HF_HUB_OFFLINE is set, so the hub was not asked")
    if not hub_reachable():
        raise ModelNotAvailableError(model, role, f"{hub_endpoint()} cannot be reached")
    try:
        return load(model)
    except (OSError, ValueError) as error:
        raise ModelNotAvailableError(model, role, f"loading it failed: {error}") from error
