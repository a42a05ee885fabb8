"""Masking customers for a pack that goes to a wider audience (``delivery.mask_customers``).

Customer ids become a stable salted hash (``C-`` + 12 hex digits of HMAC-SHA256): the same
customer gets the same token in every table, page and rerun, so a reader can still follow one
customer across pages, but cannot recover the id or look it up by hashing guesses unless they
know the salt. Names and free-text notes are hidden (missing), so the pack prints the token.

With masking on, the extract masks its own tables (``panel``, ``panel_monthly``, ``cadence``,
``customers``) before any later stage reads them (:func:`mask_extract`), so every metric table,
score, CSV, Parquet file, JSON and page of the pack is computed from tokens: nothing that is
published or linked from the email holds a raw id, name or note. With
``delivery.keep_unmasked`` a private copy of the raw customer table and the id -> token map is
kept in ``<output root>/<pack_id>/.unmasked/<period>/`` (mode 0700), outside the pack folder
that is published and linked.

The salt comes from the ``CXPIPELINE_MASK_SALT`` environment variable (a secret: set it in the
deployment, never in the config file); without it the pack id is used, which keeps tokens
stable but does not stop someone who knows the ids from recomputing them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

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
    "EXTRACT_TABLES",
    "PRIVATE_DIR",
    "MASKED_MARK",
    "private_folder",
    "mask_extract",
    "is_masked",
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


#: Tables the extract writes that carry customer ids (sort keys kept after masking).
EXTRACT_TABLES = {"panel": ["customer_id", "period_start"], "panel_monthly": ["customer_id", "period_start"],
                  "panel_monthly_model": ["customer_id", "period_start"],
                  "cadence": ["customer_id", "as_of"], "customers": ["customer_id"]}
#: Folder (beside the period folders, hidden: never published) for the private unmasked copy.
PRIVATE_DIR = ".unmasked"
#: The manifest key saying the extract's tables hold tokens.
MASKED_MARK = "customers_masked"


def private_folder(folder: str | Path) -> Path:
    """``<root>/<pack_id>/.unmasked/<period>`` for the pack folder ``<root>/<pack_id>/<period>``."""
    folder = Path(folder)
    return folder.parent / PRIVATE_DIR / folder.name


def is_masked(folder: str | Path) -> bool:
    """Whether the folder's extract was masked (recorded in its manifest)."""
    from cxpipeline.artifacts import read_json

    path = Path(folder) / "manifest.json"
    return path.is_file() and read_json(path).get(MASKED_MARK) is True


def mask_extract(config: Config, folder: str | Path) -> bool:
    """Mask the extract's tables in place when ``delivery.mask_customers`` is set.

    Ids become salted tokens and names / notes are removed in :data:`EXTRACT_TABLES`; the
    manifest records it. With ``delivery.keep_unmasked`` the raw customer table and the id ->
    token map are first copied to :func:`private_folder`; otherwise (and when masking is off)
    any earlier private copy is deleted. Returns whether the tables were masked.
    """
    from cxpipeline.artifacts import read_json, write_json, write_table

    folder = Path(folder)
    private = private_folder(folder)
    if not config.delivery.mask_customers or not config.delivery.keep_unmasked:
        shutil.rmtree(private, ignore_errors=True)
    if not config.delivery.mask_customers:
        return False
    salt = masking_salt(config)
    if config.delivery.keep_unmasked:
        private.mkdir(parents=True, exist_ok=True)
        os.chmod(private, 0o700)  # raw ids and names: the owner only
        os.chmod(private.parent, 0o700)
        raw = pd.read_parquet(folder / "customers.parquet")
        write_table(private, "customers", raw, csv=False)
        ids = pd.read_parquet(folder / "panel.parquet", columns=["customer_id"])["customer_id"]
        ids = pd.concat([ids, raw["customer_id"]]).astype("string").dropna().drop_duplicates()
        ids = ids.sort_values(kind="stable").reset_index(drop=True)
        write_table(private, "id_map", pd.DataFrame({"customer_id": ids, "token": mask_ids(ids, salt)}), csv=False)
    for name, order in EXTRACT_TABLES.items():
        path = folder / f"{name}.parquet"
        if not path.is_file():
            continue
        masked = mask_customers(pd.read_parquet(path), config, salt=salt)
        keys = [k for k in order if k in masked.columns]
        if keys:  # the engines write tables sorted by id; keep them sorted by the token
            masked = masked.sort_values(keys, kind="stable").reset_index(drop=True)
        write_table(folder, name, masked, csv=False)
    manifest_path = folder / "manifest.json"
    manifest = read_json(manifest_path) if manifest_path.is_file() else {"stages": {}}
    manifest[MASKED_MARK] = True
    write_json(manifest_path, manifest)
    return True
