"""The versions of the code that made a pack, recorded in ``manifest.json`` and
``model_report.json`` (one list, read from the installed distributions without importing them)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

__all__ = ["LIBRARIES", "library_versions"]

#: Distributions whose version decides a pack's numbers or its rendering.
LIBRARIES = ("cxpipeline", "pandas", "numpy", "duckdb", "scikit-learn", "scipy", "weasyprint", "pyarrow")


def library_versions() -> dict[str, str]:
    """``{"python": "3.11.2", "pandas": "3.1.0", ...}``; a distribution not installed is left out."""
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
