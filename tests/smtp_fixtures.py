"""A real SMTP server on localhost (aiosmtpd) for delivery tests.

``RecordingHandler`` stores every accepted message and can reject chosen recipients with a
permanent 550 or fail the first N transactions with a transient 451.
"""

from __future__ import annotations

import email
import hashlib
import socket
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

__all__ = ["RecordingHandler", "SmtpServer", "free_port", "start_smtp_server", "attachment_of"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RecordingHandler:
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    reject: set[str] = field(default_factory=set)  # permanent 550 at RCPT
    transient_failures: int = 0  # the next N DATA commands get a 451

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.transient_failures > 0:
            self.transient_failures -= 1
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def recipients(self) -> list[str]:
        return [rcpt for rcpts, _ in self.messages for rcpt in rcpts]


@dataclass
class SmtpServer:
    controller: Controller
    handler: RecordingHandler
    port: int

    def stop(self) -> None:
        self.controller.stop()


def start_smtp_server() -> SmtpServer:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return SmtpServer(controller, handler, port)


def attachment_of(message: EmailMessage) -> tuple[str, str, bytes, str]:
    """(content type, filename, bytes, sha256) of the single attachment."""
    parts = list(message.iter_attachments())
    assert len(parts) == 1, [p.get_content_type() for p in parts]
    part = parts[0]
    data = part.get_content()
    return part.get_content_type(), part.get_filename(), data, hashlib.sha256(data).hexdigest()
