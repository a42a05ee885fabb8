"""Masking customers for a pack that goes to a wider audience (``delivery.mask_customers``).

Customer ids become a stable salted hash (``C-`` + 12 hex digits of HMAC-SHA256): the same
customer gets the same token in every table, page and rerun, so a reader can still follow one
customer across pages, but cannot recover the id or look it up by hashing guesses unless they
know the salt. Names and free-text notes are hidden (missing), so the pack prints the token.

The salt comes from the ``CXPIPELINE_MASK_SALT`` environment variable (a secret: set it in the
deployment, never in the config file); without it the pack id is used, which keeps tokens
stable but does not stop someone who knows the ids from recomputing them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

import pandas as pd

from cxpipeline.config import Config

__all__ = [
    "ID_COLUMNS",
    "TEXT_COLUMNS",
    "SALT_ENV",
    "masking_salt",
    "mask_id",
    "mask_ids",
    "mask_customers",
]

#: Columns holding customer ids (the customer, or the customer who referred them).
ID_COLUMNS = ("customer_id", "referred_by", "referrer_id")
#: Columns holding names or free text about a customer; hidden when masking.
TEXT_COLUMNS = ("customer_name", "referrer_name", "referral_note")
SALT_ENV = "CXPIPELINE_MASK_SALT"


def masking_salt(config: Config, environ: Mapping[str, str] | None = None) -> str:
    """The salt: ``CXPIPELINE_MASK_SALT`` if set, else one derived from the pack id."""
    environ = os.environ if environ is None else environ
    return environ.get(SALT_ENV) or f"cxpipeline-mask:{config.pack_id}"


def mask_id(customer_id: object, salt: str) -> str:
    """``C-`` + the first 12 hex digits of HMAC-SHA256(salt, id)."""
    digest = hmac.new(salt.encode("utf-8"), str(customer_id).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"C-{digest[:12]}"


def mask_ids(ids: pd.Series, salt: str) -> pd.Series:
    """Masked ids (missing stays missing); each distinct id is hashed once."""
    text = ids.astype("string")
    distinct = text.dropna().unique()
    tokens = {value: mask_id(value, salt) for value in distinct}
    return text.map(tokens).astype("string")


def mask_customers(frame: pd.DataFrame, config: Config, *, salt: str | None = None) -> pd.DataFrame:
    """A copy of ``frame`` with id columns hashed and name / note columns hidden.

    Parameters
    ----------
    frame
        Any table with some of :data:`ID_COLUMNS` / :data:`TEXT_COLUMNS`; other columns are
        returned unchanged.
    config
        The pack config (for the default salt).
    salt
        Override the salt (default: :func:`masking_salt`).
    """
    salt = masking_salt(config) if salt is None else salt
    out = frame.copy()
    for column in ID_COLUMNS:
        if column in out.columns:
            out[column] = mask_ids(out[column], salt)
    for column in TEXT_COLUMNS:
        if column in out.columns:
            out[column] = pd.Series(pd.NA, index=out.index, dtype="string")
    return out
