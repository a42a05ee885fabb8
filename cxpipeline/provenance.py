"""Which config a pack was built from, so a pack never goes out under another config's name.

Two configs that share a ``pack_id`` and an output root would write the same folders: company
A's numbers could then be sent to company B's board under B's subject. Two guards:

- :func:`claim_pack_root`: the first build of a pack id in an output root records its config
  (``<root>/<pack_id>/.pack_config.json``: config hash and origin, i.e. its file). A later
  build from a *different* config (another origin with other content) is refused before
  anything is read or deleted. The same file edited, or the same content from another path (a
  mounted copy), is the same pack; so is ``cxpipeline demo`` rerun with other options.
- :func:`verify_built_from`: before sending, the pack's ``manifest.json`` must name the config
  hash of the config given to ``send``; a pack built from any other config (or an older
  version of this one) is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from cxpipeline.artifacts import read_json, write_json
from cxpipeline.config import Config, config_hash
from cxpipeline.errors import CheckError, ConfigError

__all__ = ["OWNER_NAME", "pack_root", "check_pack_root", "claim_pack_root", "stamp_manifest",
           "verify_built_from"]

#: The record of the config that owns ``<root>/<pack_id>/`` (hidden: never published).
OWNER_NAME = ".pack_config.json"


def _owner(config: Config) -> dict:
    return {"pack_id": config.pack_id, "config_hash": config_hash(config),
            "config_origin": config.config_origin, "company_name": config.brand.company_name}


def pack_root(config: Config, output_root: str | Path | None = None) -> Path:
    """``<output root>/<pack_id>``: the folder holding every period of the pack."""
    root = Path(output_root) if output_root is not None else config.resolve(config.output.root)
    return root / config.pack_id


def check_pack_root(config: Config, pack_root: str | Path) -> None:
    """Refuse (without writing anything) when another config owns ``pack_root``.

    Raises
    ------
    ConfigError
        If another config (different file and different content) already builds packs there.
    """
    _compare(config, Path(pack_root))


def claim_pack_root(config: Config, pack_root: str | Path) -> None:
    """Record ``config`` as the owner of ``pack_root`` (``<root>/<pack_id>``), or refuse.

    Raises
    ------
    ConfigError
        If another config (different file and different content) already builds packs there.
    """
    pack_root = Path(pack_root)
    if _compare(config, pack_root):
        pack_root.mkdir(parents=True, exist_ok=True)
        write_json(pack_root / OWNER_NAME, _owner(config))


def _compare(config: Config, pack_root: Path) -> bool:
    """Raise if another config owns ``pack_root``; return whether the record needs writing."""
    record = pack_root / OWNER_NAME
    mine = _owner(config)
    if record.is_file():
        try:
            other = read_json(record)
        except (json.JSONDecodeError, UnicodeDecodeError):
            other = {}
        same_content = other.get("config_hash") == mine["config_hash"]
        same_file = mine["config_origin"] is not None and other.get("config_origin") == mine["config_origin"]
        if not (same_content or same_file):
            raise ConfigError(
                f"The packs in {str(pack_root)!r} were built from another config "
                f"({other.get('config_origin') or 'unknown origin'}, company "
                f"{other.get('company_name', '?')!r}); pack_id {config.pack_id!r} and the output root "
                "are shared, so one company's pack could be sent as the other's.",
                where=f"{config.config_origin or 'config'}: pack_id / output.root",
                fix="Give each config its own pack_id or output.root. If this config replaces the "
                    f"other one, delete {record} and rebuild.")
        # Unchanged, or the same content from another path: the record stays as it is.
        return mine != other and same_file
    return True


def stamp_manifest(config: Config, folder: str | Path) -> None:
    """Start the folder's ``manifest.json`` with the config hash (before any stage records)."""
    path = Path(folder) / "manifest.json"
    manifest = read_json(path) if path.is_file() else {"stages": {}}
    manifest["config_hash"] = config_hash(config)
    write_json(path, manifest)


def verify_built_from(folder: str | Path, expected_hash: str) -> None:
    """Refuse a pack whose ``manifest.json`` does not name ``expected_hash`` as its config.

    Raises
    ------
    CheckError
        If the manifest is missing, unreadable, or names another config.
    """
    path = Path(folder) / "manifest.json"
    try:
        built = read_json(path).get("config_hash")
    except FileNotFoundError:
        built = None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        built = "unreadable"
    if built != expected_hash:
        raise CheckError(
            "The pack was not built from this config "
            + (f"(its manifest names config {built}, this config is {expected_hash})" if built
               else "(its manifest records no config)") + "; nothing was sent.",
            where=str(path),
            fix="Send with the config the pack was built from, or rebuild the period with this "
                "config (cxpipeline run) first.")
