"""Errors a user can act on: each says what went wrong, where, and how to fix it.

Every error the pipeline raises on bad input or bad configuration is a :class:`CxError`.
The CLI prints ``str(error)`` and exits with status 2, never a bare traceback.
"""

from __future__ import annotations

__all__ = ["CxError", "ConfigError", "InputError", "CheckError", "DeliveryError"]


class CxError(Exception):
    """Base class: a problem the user can fix, described as what / where / fix."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None):
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [self.what]
        if self.where:
            parts.append(f"  where: {self.where}")
        if self.fix:
            parts.append(f"  fix:   {self.fix}")
        return "\n".join(parts)


class ConfigError(CxError):
    """The configuration file is missing, malformed or inconsistent."""


class InputError(CxError):
    """A source (file, table, demo parameters) cannot be read as transactions."""


class CheckError(CxError):
    """The board pack failed a pre-delivery check; it must not be sent."""


class DeliveryError(CxError):
    """Email delivery failed for at least one recipient."""
