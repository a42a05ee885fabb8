"""What counts as a link an executive can open: one small function, with no heavy imports, so
the Airflow plugin can check ``$CXPIPELINE_ARTIFACT_PUBLIC_URL`` when a DAG file is parsed
(docs/airflow.md) without loading pandas."""

from __future__ import annotations

import re

__all__ = ["public_link"]


def public_link(location: str | None) -> str | None:
    """``location`` if readers can open it (an ``http``/``https`` URL), else ``None``: a folder
    on the server that built the pack, or a bucket URL, is not a link for an executive."""
    if location and re.match(r"^https?://[^\s<>\"']+$", location.strip(), re.IGNORECASE):
        return location.strip()
    return None
