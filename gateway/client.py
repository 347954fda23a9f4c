"""Deprecated location of the buyer's client; use ``from buyers import Client``.

Kept for one release so existing scripts keep working. The client is the
buyer's code, not the gateway's, so the gateway package does not import it:
the names below are loaded from ``buyers.client`` on first use, with a
``DeprecationWarning``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_MOVED = ("AggregateAnswer", "CatalogItem", "Client", "GroupAnswer", "JobFailed", "PsiAnswer", "SubmittedJob",
          "answered")


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module 'gateway.client' has no attribute {name!r}")
    warnings.warn(
        "gateway.client is deprecated and will be removed in the next release; "
        "import from buyers instead (from buyers import Client, JobFailed)",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module("buyers.client"), name)
