"""Email over SMTP (aiosmtplib): STARTTLS or TLS, optional login, Message-ID = the message id."""

from __future__ import annotations

import email.errors
import email.message
import email.utils
import ssl
from dataclasses import dataclass
from enum import StrEnum

import aiosmtplib

from herald.channels.base import Delivery, EmailMessage, Result


class Security(StrEnum):
    NONE = "none"  # plain SMTP (a local relay)
    STARTTLS = "starttls"  # upgrade after connecting (port 587)
    TLS = "tls"  # TLS from the start (port 465)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str  # the From address
    security: Security = Security.STARTTLS
    username: str | None = None
    password: str | None = None
    timeout_s: float = 30.0
    tls_context: ssl.SSLContext | None = None  # default: the system's trust store
    domain: str = "herald.local"  # the right side of Message-IDs


class EmailChannel:
    """Sends one email per call over a fresh SMTP connection."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    @property
    def timeout_s(self) -> float:
        """The timeout of each SMTP operation."""
        return self._settings.timeout_s

    async def send(self, message: EmailMessage) -> Delivery:
        settings = self._settings
        try:
            mail = _compose(message, settings)
        except (ValueError, IndexError, email.errors.HeaderParseError) as exc:
            return Delivery(Result.FAILED, f"the message cannot be written: {exc}")
        try:
            await aiosmtplib.send(
                mail,
                hostname=settings.host,
                port=settings.port,
                username=settings.username,
                password=settings.password,
                use_tls=settings.security is Security.TLS,
                start_tls=settings.security is Security.STARTTLS,
                tls_context=settings.tls_context,
                timeout=settings.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            result = Result.RETRY if codes and all(400 <= c < 500 for c in codes) else Result.FAILED
            return Delivery(result, f"recipient refused: {exc.recipients}")
        except aiosmtplib.SMTPResponseException as exc:
            result = Result.FAILED if 500 <= exc.code < 600 else Result.RETRY
            return Delivery(result, f"SMTP {exc.code}: {exc.message}")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Delivery(Result.RETRY, f"{type(exc).__name__}: {exc}")
        return Delivery(Result.SENT, f"accepted by {settings.host}:{settings.port}")


def _compose(message: EmailMessage, settings: SmtpSettings) -> email.message.EmailMessage:
    """The email; ValueError when a header cannot be written or `to` is not one address."""
    addresses = email.utils.getaddresses([message.to])
    if len(addresses) != 1 or "@" not in addresses[0][1] or addresses[0][1].endswith("@"):
        raise ValueError(f"{message.to!r} is not one email address")
    mail = email.message.EmailMessage()
    mail["From"] = settings.sender
    mail["To"] = message.to
    mail["Subject"] = message.subject
    mail["Message-ID"] = f"<{message.id}@{settings.domain}>"
    mail["Date"] = email.utils.formatdate(localtime=False)
    mail.set_content(message.body)
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html")
    return mail
