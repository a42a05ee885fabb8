"""Errors a user can act on: each says what went wrong, where, and how to fix it.

Every error the pipeline raises on bad input or bad configuration is a :class:`CxError`.
The CLI prints ``str(error)`` and exits with status 2, never a bare traceback.

Permanent vs transient (:func:`is_transient`): a :class:`CxError` is permanent (a bad period
label, a missing file, a recipient outside the allowed domains, failed checks: running again
gives the same result) unless it says otherwise (``transient=True``, e.g. a delivery whose only
failures were SMTP 4xx replies or a refused connection). Other exceptions are transient when
they are about reaching something (a socket, a database connection), else permanent (a bug).
Airflow retries only the transient ones (docs/airflow.md, "Which errors are retried").
"""

from __future__ import annotations

__all__ = ["CxError", "ConfigError", "InputError", "CheckError", "DeliveryError", "is_transient"]


class CxError(Exception):
    """Base class: a problem the user can fix, described as what / where / fix."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None,
                 transient: bool = False):
        self.what = what
        self.where = where
        self.fix = fix
        self.transient = transient
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


# Driver errors about reaching a database (DB-API names, used by psycopg, SQLAlchemy, DuckDB).
_TRANSIENT_NAMES = {"OperationalError", "InterfaceError", "ConnectionException", "IOException"}


def is_transient(error: BaseException) -> bool:
    """True when running again later may succeed (worth a retry), False when it cannot.

    Parameters
    ----------
    error
        Any exception raised by a pipeline stage or the delivery.

    Returns
    -------
    bool
        A :class:`CxError`: its ``transient`` flag. Otherwise: connection trouble (``OSError``
        such as a refused connection or a timeout, or a database driver's operational /
        interface error) is transient; anything else is permanent.
    """
    if isinstance(error, CxError):
        return bool(error.transient)
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    if isinstance(error, (OSError, TimeoutError)):
        return True
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(error).__mro__)
