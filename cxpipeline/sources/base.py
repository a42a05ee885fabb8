"""What every source yields when it loads transactions into pandas (:class:`SourceData`).

A module of its own so the sources can import it without importing the package's dispatch
(:mod:`cxpipeline.sources`), which imports them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pandas as pd

from cxpipeline.errors import ConfigError
from cxpipeline.quality import Exclusions

__all__ = ["SourceData", "expand_env"]


@dataclass
class SourceData:
    """What a source yields: validated transactions, an optional customer table, exclusions."""

    transactions: pd.DataFrame
    customers: pd.DataFrame | None
    quality: Exclusions
    description: str  # e.g. "demo retailer (5000 customers, seed 7)" or the file path


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: str, key: str) -> str:
    """``value`` with every ``${NAME}`` replaced by that environment variable: credentials stay
    in the environment, never in the YAML. ``key`` names the config key for the error."""
    def expand(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{key} uses ${{{name}}}, which is not set.", where=key,
                              fix=f"Export {name} in the environment that runs the pipeline.")
        return os.environ[name]

    return _ENV_REFERENCE.sub(expand, value)
