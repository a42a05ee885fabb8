"""Getting a message to the SMTP server: the settings (from the environment or an Airflow
connection, converted by the DAG), one session per delivery, and which failures are worth a
retry (4xx replies, dropped or refused connections, timeouts) and which are permanent (5xx)."""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from cxpipeline.delivery.message import validate_recipients
from cxpipeline.errors import ConfigError

__all__ = ["SmtpSettings", "Session", "Permanent", "Transient", "Unreachable", "classify"]

log = logging.getLogger(__name__)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value.", where="environment",
                      fix=f"Set {name} to true or false.")


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send mail. The password is excluded from ``repr``.

    Parameters
    ----------
    host, port
        SMTP server.
    from_address
        The ``From:`` address (also the envelope sender).
    user, password
        Login, when the server needs one.
    starttls
        Upgrade a plain connection with STARTTLS.
    use_ssl
        Connect with implicit TLS (SMTPS, usually port 465).
    timeout
        Socket timeout in seconds.
    retries
        Retries of a transient failure per recipient (an Airflow connection's ``retry_limit``
        extra; ``CXPIPELINE_SMTP_RETRIES``).
    origin
        Where the settings came from (``Airflow connection 'smtp_default'``, the environment),
        named in every error.
    """

    host: str
    port: int
    from_address: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    use_ssl: bool = False
    timeout: float = 30.0
    retries: int = 3
    origin: str = "CXPIPELINE_SMTP_* environment variables"

    @property
    def server(self) -> str:
        """``host:port (origin)``, as errors name it."""
        return f"{self.host}:{self.port} ({self.origin})"

    def __post_init__(self) -> None:
        if self.starttls and self.use_ssl:
            raise ConfigError("SMTP settings ask for both implicit SSL and STARTTLS.",
                              fix="Use SSL (port 465) or STARTTLS (port 587), not both.")
        validate_recipients([self.from_address], what="sender")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SmtpSettings":
        """Read ``CXPIPELINE_SMTP_HOST/PORT/USER/PASSWORD/FROM/STARTTLS/SSL/TIMEOUT``.

        Raises
        ------
        ConfigError
            If the host or sender is missing or a value cannot be read.
        """
        env = os.environ if environ is None else environ
        host = env.get("CXPIPELINE_SMTP_HOST", "").strip()
        sender = env.get("CXPIPELINE_SMTP_FROM", "").strip()
        missing = [name for name, value in (("CXPIPELINE_SMTP_HOST", host),
                                            ("CXPIPELINE_SMTP_FROM", sender)) if not value]
        if missing:
            raise ConfigError(f"SMTP settings missing: {', '.join(missing)}.", where="environment",
                              fix="Export CXPIPELINE_SMTP_HOST and CXPIPELINE_SMTP_FROM "
                                  "(and PORT/USER/PASSWORD/STARTTLS/SSL as needed).")
        use_ssl = _env_bool(env, "CXPIPELINE_SMTP_SSL", False)
        starttls = _env_bool(env, "CXPIPELINE_SMTP_STARTTLS", False)
        port_text = env.get("CXPIPELINE_SMTP_PORT", "").strip()
        try:
            port = int(port_text) if port_text else (465 if use_ssl else 587 if starttls else 25)
            timeout = float(env.get("CXPIPELINE_SMTP_TIMEOUT", "30"))
            retries = int(env.get("CXPIPELINE_SMTP_RETRIES", "3"))
        except ValueError:
            raise ConfigError("CXPIPELINE_SMTP_PORT / _TIMEOUT / _RETRIES must be numbers.",
                              where="environment", fix="e.g. CXPIPELINE_SMTP_PORT=587") from None
        return cls(host=host, port=port, from_address=sender,
                   user=env.get("CXPIPELINE_SMTP_USER") or None,
                   password=env.get("CXPIPELINE_SMTP_PASSWORD") or None,
                   starttls=starttls, use_ssl=use_ssl, timeout=timeout, retries=retries)

    @classmethod
    def from_connection(cls, *, host: str | None, port: int | None, login: str | None,
                        password: str | None, extra: Mapping[str, Any] | None,
                        default_from: str | None = None, conn_id: str | None = None) -> "SmtpSettings":
        """Build settings from the fields of an Airflow SMTP connection.

        Mirrors the SMTP provider's extras: ``from_email``, ``disable_ssl``, ``disable_tls``
        (both default to false, i.e. SSL on), ``timeout`` (default 30 s) and ``retry_limit``
        (default 5, as the provider's hook).
        """
        extra = dict(extra or {})

        def flag(name: str) -> bool:
            value = extra.get(name, False)
            return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE

        use_ssl = not flag("disable_ssl")
        starttls = not flag("disable_tls") and not use_ssl
        sender = extra.get("from_email") or default_from
        origin = f"Airflow connection {conn_id!r}" if conn_id else "Airflow connection"
        if not host or not sender:
            raise ConfigError("The SMTP connection needs a host and a from_email extra.",
                              where=origin,
                              fix="e.g. smtp://mail:1025?from_email=reports%40example.com"
                                  "&disable_ssl=true&disable_tls=true")
        return cls(host=host, port=int(port or (465 if use_ssl else 587 if starttls else 25)),
                   from_address=str(sender), user=login or None, password=password or None,
                   starttls=starttls, use_ssl=use_ssl, timeout=float(extra.get("timeout", 30)),
                   retries=int(extra.get("retry_limit", 5)), origin=origin)


class Permanent(Exception):
    """A failure that retrying will not fix."""


class Transient(Exception):
    """A failure worth retrying (4xx, connection trouble)."""


class Unreachable(Transient):
    """The server could not be reached at all: no point trying the next recipient now."""


def classify(exc: BaseException, recipient: str, settings: SmtpSettings | None = None) -> Exception:
    """:class:`Permanent`, :class:`Transient` or :class:`Unreachable`, with a message that names
    the server (host, port and where its settings came from) when it could not be reached."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()), (550, b""))
        reason = f"{code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
        return Transient(reason) if 400 <= code < 500 else Permanent(reason)
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        reason = f"{exc.smtp_code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
        return Transient(reason) if 400 <= exc.smtp_code < 500 else Permanent(reason)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return Permanent(f"server does not support this: {exc}")
    if isinstance(exc, (smtplib.SMTPServerDisconnected, OSError)):
        where = f" at {settings.server}" if settings is not None else ""
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return Transient(f"the SMTP server{where} closed the connection: {exc}")
        return Unreachable(f"cannot reach the SMTP server{where}: {type(exc).__name__}: {exc}")
    return Permanent(f"{type(exc).__name__}: {exc}")


class Session:
    """A lazily (re)opened SMTP connection shared by the messages of one delivery."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self.client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.use_ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            client.ehlo()
            if s.starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if s.user:
                client.login(s.user, s.password or "")
        except BaseException:
            self.close()
            client.close()
            raise
        return client

    def send(self, message: EmailMessage, recipient: str) -> None:
        if self.client is None:
            self.client = self._connect()
        try:
            self.client.send_message(message, from_addr=self.settings.from_address,
                                     to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused:
            self.client.rset()  # the connection is still good; clear the envelope
            raise
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (smtplib.SMTPException, OSError):
                self.client.close()
            self.client = None


