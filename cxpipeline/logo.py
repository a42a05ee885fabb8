"""The brand logo (``brand.logo``): found, bounded and decoded before it reaches a pack.

A logo is read from the config's folder only (symlinks are resolved first, so a link to a
system file is refused), must be an SVG, PNG or JPEG of at most :data:`MAX_LOGO_BYTES`, at most
:data:`MAX_LOGO_SIDE` pixels a side, and must decode completely (Pillow for PNG/JPEG; an XML
parser with a nesting limit and no DTD for SVG). Any failure is a :class:`ConfigError` naming
the file and the limit, never the file's content: the pack is not built without its logo, and no
log line carries the logo's bytes or its ``data:`` URI.

Checked by ``cxpipeline validate`` and ``run`` before any data is read, and again when the pack
is rendered (the logo is embedded as a ``data:`` URI so the renderer never reads files).
"""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from cxpipeline.config import Config
from cxpipeline.errors import ConfigError

__all__ = ["MAX_LOGO_BYTES", "MAX_LOGO_SIDE", "MAX_SVG_DEPTH", "LOGO_KINDS", "logo_path", "load_logo",
           "logo_data_uri"]

#: Largest logo file: it is embedded in the HTML and the PDF that is emailed.
MAX_LOGO_BYTES = 1024 * 1024
#: Largest width or height in pixels (the cover prints it at most 60 x 22 mm).
MAX_LOGO_SIDE = 4096
#: Deepest element nesting of an SVG logo (real logos use a handful of levels).
MAX_SVG_DEPTH = 32
#: Logo file types: suffix -> MIME type.
LOGO_KINDS = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_PIL_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}
_WHERE = "config key 'brand.logo'"
_SVG_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(px)?\s*$")


def _error(what: str, fix: str, shown: str) -> ConfigError:
    return ConfigError(what, where=f"{_WHERE}: {shown}", fix=fix)


def logo_path(config: Config) -> Path | None:
    """The logo file, resolved (symlinks followed) and confined to the config's folder.

    Raises
    ------
    ConfigError
        If the file is missing, is not an SVG/PNG/JPEG, or lies (or links) outside the folder.
    """
    if not config.brand.logo:
        return None
    given = config.resolve(config.brand.logo)
    folder = Path(config.base_dir).resolve()
    path = given.resolve()  # follows every symlink: what would really be read
    shown = config.brand.logo
    if not path.is_relative_to(folder):
        raise _error(f"The logo {shown!r} is outside the config's folder{' (it is a link)' if given.is_symlink() else ''}.",
                     "Copy the logo file next to the config (or below it) and name it there.", shown)
    if path.suffix.lower() not in LOGO_KINDS or given.suffix.lower() not in LOGO_KINDS:
        raise _error(f"The logo {shown!r} is not an SVG, PNG or JPEG file.", "Use an .svg, .png or .jpg logo.", shown)
    if not path.is_file():
        raise _error(f"The logo file {shown!r} does not exist.",
                     "Give a path relative to the config file, or remove the key.", shown)
    return path


def _check_raster(data: bytes, mime: str, shown: str) -> None:
    from PIL import Image, UnidentifiedImageError

    fix = f"Export the logo again as a {_PIL_FORMATS[mime]} of at most {MAX_LOGO_SIDE} x {MAX_LOGO_SIDE} pixels."
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            if image.format != _PIL_FORMATS[mime]:
                raise _error(f"The logo {shown!r} is not a {_PIL_FORMATS[mime]} image "
                             f"(its content is {image.format or 'unknown'}).", fix, shown)
            width, height = image.size
            if width > MAX_LOGO_SIDE or height > MAX_LOGO_SIDE:
                raise _error(f"The logo {shown!r} is {width:,} x {height:,} pixels; the limit is "
                             f"{MAX_LOGO_SIDE:,} a side.", fix, shown)
            image.verify()  # chunk structure and checksums (a truncated file fails here) ...
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # ... and every pixel decoded: a corrupt file fails here, not in the PDF
    except Image.DecompressionBombError:
        raise _error(f"The logo {shown!r} claims far too many pixels to decode.", fix, shown) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _error(f"The logo {shown!r} cannot be decoded as {_PIL_FORMATS[mime]} "
                     f"({type(exc).__name__}).", fix, shown) from None


def _check_svg(data: bytes, shown: str) -> None:
    fix = "Export a plain SVG (no DTD or entities, a few levels of groups) or use a PNG."
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise _error(f"The SVG logo {shown!r} declares a DTD or entities.", fix, shown)
    parser = ElementTree.XMLPullParser(events=("start", "end"))
    depth, root = 0, None
    try:
        parser.feed(data)
        parser.close()
        for event, element in parser.read_events():
            if event == "start":
                depth += 1
                root = element if root is None else root
                if depth > MAX_SVG_DEPTH:
                    raise _error(f"The SVG logo {shown!r} nests elements more than {MAX_SVG_DEPTH} deep.",
                                 fix, shown)
            else:
                depth -= 1
    except ElementTree.ParseError as exc:
        raise _error(f"The SVG logo {shown!r} is not well-formed XML ({exc}).", fix, shown) from None
    if root is None or not root.tag.endswith("svg"):
        raise _error(f"The logo {shown!r} is not an SVG document.", fix, shown)
    for name in ("width", "height"):
        match = _SVG_LENGTH.match(root.get(name, "") or "")
        if match and float(match.group(1)) > MAX_LOGO_SIDE:
            raise _error(f"The SVG logo {shown!r} is {root.get(name)} {name}; the limit is "
                         f"{MAX_LOGO_SIDE:,} pixels.", fix, shown)


def load_logo(config: Config) -> tuple[str, bytes] | None:
    """``(mime type, bytes)`` of the checked logo, or ``None`` when the config has none.

    Raises
    ------
    ConfigError
        If the logo is missing, outside the config's folder, too large, or cannot be decoded.
    """
    path = logo_path(config)
    if path is None:
        return None
    shown = config.brand.logo or ""
    size = path.stat().st_size
    if size > MAX_LOGO_BYTES:
        raise _error(f"The logo {shown!r} is {size / 1024 / 1024:.1f} MB; the limit is "
                     f"{MAX_LOGO_BYTES // 1024} KB (it is embedded in every PDF that is emailed).",
                     "Export a smaller logo (an SVG, or a PNG a few hundred pixels wide).", shown)
    data = path.read_bytes()
    mime = LOGO_KINDS[path.suffix.lower()]
    if mime == "image/svg+xml":
        _check_svg(data, shown)
    else:
        _check_raster(data, mime, shown)
    return mime, data


def logo_data_uri(config: Config) -> str | None:
    """The checked logo as a ``data:`` URI (the renderer reads no files), or ``None``."""
    logo = load_logo(config)
    if logo is None:
        return None
    mime, data = logo
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
