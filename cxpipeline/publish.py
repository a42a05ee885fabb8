"""Publish a checked pack folder to any object store (S3, GCS, a file share, memory).

The pipeline builds each pack in a local working folder (atomic renames, see
:mod:`cxpipeline.artifacts`). Object stores have no atomic rename, so publishing a folder to
``<url>/<pack_id>/<period>/`` works like this:

1. every file is uploaded under a fresh *version prefix* named after the content,
   ``<period>/.v-<hash>/`` (the hash covers every file's name and sha256);
2. the uploaded sizes are checked;
3. a small pointer, ``<period>/LATEST.json``, is written last. That single small write is the
   commit point: until it lands, readers still see the previous version, complete;
4. only then are older version prefixes removed.

A publish interrupted anywhere before step 3 leaves the previous pointer and its files valid
(the next publish removes the orphaned upload). Readers never list folders: they read the
pointer (:func:`read_pointer`, :func:`published_file`, :func:`read_published`).

``destination`` is any object with the :mod:`pathlib` API: an Airflow ``ObjectStoragePath``,
a ``upath.UPath`` or a plain :class:`pathlib.Path`. This module never imports Airflow;
:func:`storage_path` turns a URL into a path with ``universal_pathlib`` (fsspec) when no
Airflow is around (the CLI, tests).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from cxpipeline.artifacts import read_json, sha256_file, write_bytes
from cxpipeline.delivery import LEDGER_NAME
from cxpipeline.links import public_link
from cxpipeline.errors import CheckError, ConfigError, CxError, InputError

__all__ = [
    "POINTER_NAME",
    "VERSION_PREFIX",
    "PublishError",
    "storage_path",
    "pack_files",
    "publish_pack",
    "public_pdf_link",
    "read_pointer",
    "published_file",
    "read_published",
]

log = logging.getLogger(__name__)

POINTER_NAME = "LATEST.json"
VERSION_PREFIX = ".v-"
_LOCAL_PROTOCOLS = {"", "file", "local"}
_COPY_BLOCK = 1 << 20


class PublishError(CxError):
    """An upload to the artifact store failed or came back different; nothing was committed."""


def storage_path(url: str):
    """A pathlib-like object for ``url`` (``s3://``, ``gs://``, ``file://``, ``memory://`` or a path).

    Uses ``universal_pathlib`` (fsspec); a URL without a scheme is a local :class:`Path`.
    Inside Airflow, pass an ``ObjectStoragePath`` to :func:`publish_pack` instead, so the
    store's credentials come from an Airflow connection.
    """
    if "://" not in url:
        return Path(url)
    try:
        from upath import UPath
    except ImportError as exc:  # only with a scheme: plain paths need nothing
        raise ConfigError(f"Publishing to {url!r} needs the universal_pathlib package.",
                          fix="pip install universal_pathlib (plus s3fs / gcsfs for those stores)."
                          ) from exc
    try:
        return UPath(url)
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"No filesystem for the artifact URL {url!r}: {exc}",
                          where="CXPIPELINE_ARTIFACT_URL",
                          fix="Use s3://, gs://, file:// or a local path, and install the "
                              "matching fsspec package (s3fs, gcsfs).") from exc


def _protocol(path: Any) -> str:
    if isinstance(path, Path):
        return ""
    protocol = getattr(path, "protocol", "") or ""
    return protocol[0] if isinstance(protocol, (tuple, list)) else str(protocol)


def _local_os_path(path: Any) -> Path | None:
    """The OS path behind a local destination, None for a remote store."""
    if isinstance(path, Path):
        return path
    if _protocol(path) in _LOCAL_PROTOCOLS and getattr(path, "path", None):
        return Path(path.path)
    return None


def _url(path: Any) -> str:
    return str(path.resolve()) if isinstance(path, Path) else str(path)


def pack_files(folder: str | Path) -> list[str]:
    """Files of a pack folder that are published, as sorted POSIX paths relative to it.

    Hidden files (the run lock, temporary files of an unfinished write) and the delivery ledger
    (it holds recipients' addresses and changes with every email) stay local.
    """
    folder = Path(folder)
    names = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        if relative.as_posix() == LEDGER_NAME:
            continue
        names.append(relative.as_posix())
    return sorted(names)


def _checked_pdf(folder: Path) -> str:
    """The sha256 of the pack PDF, which must be the very file that passed the checks."""
    checks_path, pdf = folder / "checks.json", folder / "board_pack.pdf"
    if not checks_path.is_file() or read_json(checks_path).get("is_deliverable") is not True:
        raise CheckError("The pack has not passed its checks, so it is not published.",
                         where=str(checks_path), fix="Run the check step and fix what it reports.")
    if not pdf.is_file():
        raise CheckError("The pack has no PDF.", where=str(pdf), fix="Run the render step first.")
    digest = sha256_file(pdf)
    if read_json(checks_path).get("pdf_sha256") != digest:
        raise CheckError("board_pack.pdf changed after it was checked.", where=str(pdf),
                         fix="Rerun the check step so the published PDF is the checked one.")
    return digest


def _copy_file(source: Path, target: Any) -> None:
    if _local_os_path(target) is not None:
        target.parent.mkdir(parents=True, exist_ok=True)  # object stores have no folders
    with open(source, "rb") as reader, target.open("wb") as writer:
        shutil.copyfileobj(reader, writer, _COPY_BLOCK)


def _write_pointer(destination: Any, pointer: dict) -> None:
    """The commit point: one small write (an atomic rename on a local filesystem)."""
    data = (json.dumps(pointer, indent=2, sort_keys=True) + "\n").encode("utf-8")
    local = _local_os_path(destination)
    if local is not None:
        write_bytes(local / POINTER_NAME, data)  # temp file + fsync + rename
    else:
        (destination / POINTER_NAME).write_bytes(data)  # a single PUT: all or nothing


def _remove_tree(path: Any) -> None:
    local = _local_os_path(path)
    if local is not None:
        shutil.rmtree(local)
    elif hasattr(path, "fs") and hasattr(path, "path"):
        path.fs.rm(path.path, recursive=True)
    else:
        path.rmdir(recursive=True)


def public_pdf_link(public_url: str | None, version: str, pdf_url: str | None = None) -> str | None:
    """The ``http(s)`` address an executive opens the published PDF at, or ``None``.

    ``public_url`` is the web address that serves the destination (``<pack_id>/<period>/``
    under ``$CXPIPELINE_ARTIFACT_PUBLIC_URL``, docs/airflow.md); without one, ``pdf_url``
    counts only when the store itself is an ``http(s)`` URL. A bucket URL (``s3://``), a
    ``file://`` URL or a path is never a link.
    """
    if public_url and public_link(public_url):
        return public_link(f"{public_url.strip().rstrip('/')}/{version}/board_pack.pdf")
    return public_link(pdf_url)


def publish_pack(folder: str | Path, destination: Any, *, published_at: str | None = None,
                 public_url: str | None = None) -> dict:
    """Upload a checked pack folder to ``destination`` (``<url>/<pack_id>/<period>``) as a new version.

    Parameters
    ----------
    folder
        The local artifact folder ``<output_root>/<pack_id>/<period>/``; its ``checks.json``
        must say the pack is deliverable and name the PDF's sha256.
    destination
        Where this pack and period live in the store: a pathlib-like object (Airflow
        ``ObjectStoragePath``, ``upath.UPath``, :class:`pathlib.Path`), see :func:`storage_path`.
    published_at
        Recorded in the pointer (an ISO timestamp from the caller; nothing here reads a clock).
    public_url
        The ``http(s)`` address serving ``destination`` (e.g. a CDN in front of the bucket);
        it makes ``pdf_link`` (:func:`public_pdf_link`).

    Returns
    -------
    dict
        ``url``, ``pointer`` (the pointer's URL), ``version``, ``pdf_url`` (the PDF in the
        store), ``pdf_link`` (the ``http(s)`` URL readers open it at, or ``None``),
        ``pdf_sha256``, ``count_files``, ``bytes`` and ``removed_versions`` (older versions
        deleted).

    Raises
    ------
    CheckError
        If the pack is not checked, or its PDF differs from the checked one.
    PublishError
        If an uploaded file does not have the size of its source; the pointer is untouched.
    """
    folder = Path(folder)
    pdf_sha256 = _checked_pdf(folder)
    names = pack_files(folder)
    files = {name: {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size}
             for name in names}
    fingerprint = hashlib.sha256(
        "".join(f"{name}\0{files[name]['sha256']}\n" for name in names).encode()).hexdigest()
    version = f"{VERSION_PREFIX}{fingerprint[:16]}"
    version_dir = destination / version

    for name in names:
        _copy_file(folder / name, version_dir.joinpath(*PurePosixPath(name).parts))
    for name in names:  # the store holds every byte before anything points at it
        target = version_dir.joinpath(*PurePosixPath(name).parts)
        size = target.stat().st_size if target.exists() else None
        if size != files[name]["bytes"]:
            raise PublishError(f"The upload of {name} came back with {size} bytes, not "
                               f"{files[name]['bytes']}; the published pack was not changed.",
                               where=_url(target), fix="Check the store and rerun the publish step.")

    pointer = {
        "pack_id": folder.parent.name,
        "period": folder.name,
        "version": version,
        "pdf": "board_pack.pdf",
        "pdf_sha256": pdf_sha256,
        "files": files,
        "published_at": published_at,
    }
    _write_pointer(destination, pointer)

    removed = []
    for child in destination.iterdir():
        if child.name.startswith(VERSION_PREFIX) and child.name != version:
            try:
                _remove_tree(child)
                removed.append(child.name)
            except OSError as exc:  # the new version is committed; a leftover is only clutter
                log.warning("could not remove the old version %s: %s", _url(child), exc)
    log.info("published %d files (%s) to %s", len(names), version, _url(destination))
    return {
        "url": _url(destination),
        "pointer": _url(destination / POINTER_NAME),
        "version": version,
        "pdf_url": _url(version_dir / "board_pack.pdf"),
        "pdf_link": public_pdf_link(public_url, version, _url(version_dir / "board_pack.pdf")),
        "pdf_sha256": pdf_sha256,
        "count_files": len(names),
        "bytes": sum(f["bytes"] for f in files.values()),
        "removed_versions": sorted(removed),
    }


def read_pointer(destination: Any) -> dict:
    """The committed version of a published pack (the content of ``LATEST.json``)."""
    pointer = destination / POINTER_NAME
    if not pointer.exists():
        raise InputError("Nothing has been published here yet.", where=_url(pointer),
                         fix="Run the pack (with CXPIPELINE_ARTIFACT_URL set) for this period.")
    return json.loads(pointer.read_text(encoding="utf-8"))


def published_file(destination: Any, name: str = "board_pack.pdf", *, pointer: dict | None = None) -> Any:
    """Where the committed version keeps ``name`` (a path object under ``destination``)."""
    pointer = pointer or read_pointer(destination)
    if name not in pointer["files"]:
        raise InputError(f"The published version has no {name}.", where=_url(destination / POINTER_NAME),
                         fix=f"One of: {', '.join(sorted(pointer['files']))}.")
    return (destination / pointer["version"]).joinpath(*PurePosixPath(name).parts)


def read_published(destination: Any, name: str = "board_pack.pdf") -> bytes:
    """The bytes of ``name`` in the committed version, checked against the pointer's sha256."""
    pointer = read_pointer(destination)  # read once: a publish may replace it meanwhile
    path = published_file(destination, name, pointer=pointer)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != pointer["files"][name]["sha256"]:
        raise PublishError(f"The published {name} does not match its pointer.", where=_url(path),
                           fix="Publish the pack again.")
    return data
