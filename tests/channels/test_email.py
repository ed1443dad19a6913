"""The email channel against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import datetime
import email
import email.message
import email.policy
import email.utils
import ipaddress
import ssl
from pathlib import Path
from typing import Any

import pytest

from herald.channels.base import EmailMessage, Result
from herald.channels.email import EmailChannel, Security, SmtpSettings
from tests.channels.conftest import (
    LOCALHOST,
    PASSWORD,
    USERNAME,
    Authenticator,
    Mailbox,
    SmtpServer,
    running_smtp,
)

SENDER = "Herald <noreply@herald.test>"

MESSAGE = EmailMessage(
    id="01HX-outbox-7",
    to="ada@example.com",
    subject="Welcome, Zoë ☕",
    body="Hello Ada,\nwelcome aboard.\n",
    html="<p>Hello <b>Ada</b>, welcome aboard.</p>",
)


def plain_settings(port: int, **fields: Any) -> SmtpSettings:
    """Settings for a local relay in clear text; `fields` replace any field."""
    settings = SmtpSettings(LOCALHOST, port, SENDER, security=Security.NONE, timeout_s=10.0)
    return dataclasses.replace(settings, **fields)


def received(mailbox: Mailbox) -> email.message.EmailMessage:
    """The one message the server accepted, parsed."""
    [envelope] = mailbox.envelopes
    assert isinstance(envelope.content, bytes)
    content = envelope.content.replace(b"\r\n", b"\n")  # as a mail client shows it
    return email.message_from_bytes(content, policy=email.policy.default)


async def test_the_message_arrives_with_its_message_id_headers_and_both_parts(
    smtp: SmtpServer,
) -> None:
    channel = EmailChannel(plain_settings(smtp.port, domain="mail.herald.test"))

    delivery = await channel.send(MESSAGE)

    assert delivery.result is Result.SENT
    assert delivery.detail == f"accepted by {LOCALHOST}:{smtp.port}"
    [envelope] = smtp.mailbox.envelopes
    assert envelope.mail_from == "noreply@herald.test"
    assert envelope.rcpt_tos == ["ada@example.com"]
    mail = received(smtp.mailbox)
    assert mail["Message-ID"] == "<01HX-outbox-7@mail.herald.test>"
    assert mail["From"] == SENDER
    assert mail["To"] == "ada@example.com"
    assert mail["Subject"] == "Welcome, Zoë ☕"
    assert email.utils.parsedate_to_datetime(mail["Date"]) is not None
    assert mail.get_content_type() == "multipart/alternative"
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    assert isinstance(text, email.message.EmailMessage)
    assert isinstance(html, email.message.EmailMessage)
    assert text.get_content() == "Hello Ada,\nwelcome aboard.\n"
    assert html.get_content() == "<p>Hello <b>Ada</b>, welcome aboard.</p>\n"


async def test_a_message_without_html_is_a_single_text_part(smtp: SmtpServer) -> None:
    channel = EmailChannel(plain_settings(smtp.port))
    message = EmailMessage(id="m-2", to="ada@example.com", subject="Receipt", body="Thanks!\n")

    delivery = await channel.send(message)

    assert delivery.result is Result.SENT
    mail = received(smtp.mailbox)
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content() == "Thanks!\n"


async def test_the_message_id_domain_defaults_to_herald_local(smtp: SmtpServer) -> None:
    channel = EmailChannel(plain_settings(smtp.port))

    await channel.send(MESSAGE)

    assert received(smtp.mailbox)["Message-ID"] == "<01HX-outbox-7@herald.local>"


async def test_the_same_message_sent_twice_keeps_its_message_id(smtp: SmtpServer) -> None:
    channel = EmailChannel(plain_settings(smtp.port))

    await channel.send(MESSAGE)
    await channel.send(MESSAGE)

    ids = [
        email.message_from_bytes(envelope.content, policy=email.policy.default)["Message-ID"]
        for envelope in smtp.mailbox.envelopes
        if isinstance(envelope.content, bytes)
    ]
    assert ids == ["<01HX-outbox-7@herald.local>"] * 2


async def test_a_recipient_with_a_display_name_gets_the_bare_address_in_the_envelope(
    smtp: SmtpServer,
) -> None:
    channel = EmailChannel(plain_settings(smtp.port))
    message = EmailMessage(id="m-3", to="Ada Lovelace <ada@example.com>", subject="Hi", body="x")

    await channel.send(message)

    assert smtp.mailbox.envelopes[0].rcpt_tos == ["ada@example.com"]
    assert received(smtp.mailbox)["To"] == "Ada Lovelace <ada@example.com>"


async def test_a_recipient_refused_with_550_fails(smtp: SmtpServer) -> None:
    smtp.mailbox.rcpt_replies["ada@example.com"] = "550 5.1.1 No such user"
    channel = EmailChannel(plain_settings(smtp.port))

    delivery = await channel.send(MESSAGE)

    assert delivery.result is Result.FAILED
    assert "550" in delivery.detail and "ada@example.com" in delivery.detail
    assert smtp.mailbox.envelopes == []


@pytest.mark.parametrize(
    "reply", ["451 4.7.1 Greylisted, try again later", "452 4.2.2 Mailbox full"]
)
async def test_a_recipient_deferred_with_4xx_is_retried(smtp: SmtpServer, reply: str) -> None:
    smtp.mailbox.rcpt_replies["ada@example.com"] = reply
    channel = EmailChannel(plain_settings(smtp.port))

    delivery = await channel.send(MESSAGE)

    assert delivery.result is Result.RETRY
    assert reply[:3] in delivery.detail


@pytest.mark.parametrize(
    ("reply", "result"),
    [
        ("451 4.3.0 Local error, try again", Result.RETRY),
        ("452 4.3.1 Insufficient storage", Result.RETRY),
        ("550 5.7.1 Message rejected", Result.FAILED),
        ("554 5.7.1 Looks like spam", Result.FAILED),
    ],
)
async def test_the_answer_to_the_message_data_sorts_the_delivery(
    smtp: SmtpServer, reply: str, result: Result
) -> None:
    smtp.mailbox.data_reply = reply
    channel = EmailChannel(plain_settings(smtp.port))

    delivery = await channel.send(MESSAGE)

    assert delivery.result is result
    assert delivery.detail == f"SMTP {reply[:3]}: {reply[4:]}"


async def test_nothing_listening_is_retried(closed_port: int) -> None:
    channel = EmailChannel(plain_settings(closed_port))

    delivery = await channel.send(MESSAGE)

    assert delivery.result is Result.RETRY
    assert delivery.detail.startswith("SMTPConnectError: ")
    assert str(closed_port) in delivery.detail


async def test_a_server_that_never_greets_is_retried_after_the_timeout(silent_port: int) -> None:
    channel = EmailChannel(plain_settings(silent_port, timeout_s=0.25))

    delivery = await channel.send(MESSAGE)

    assert delivery.result is Result.RETRY
    assert "Timed out" in delivery.detail


async def test_starttls_required_but_not_offered_is_retried_and_nothing_goes_in_clear(
    smtp: SmtpServer,
) -> None:
    channel = EmailChannel(plain_settings(smtp.port, security=Security.STARTTLS))

    delivery = await channel.send(MESSAGE)

    assert delivery.result is Result.RETRY
    assert "STARTTLS" in delivery.detail
    assert smtp.mailbox.envelopes == []


async def test_login_with_username_and_password_sends(
    smtp_with_login: tuple[SmtpServer, Authenticator],
) -> None:
    server, _ = smtp_with_login
    channel = EmailChannel(plain_settings(server.port, username=USERNAME, password=PASSWORD))

    delivery = await channel.send(MESSAGE)

    assert delivery.result is Result.SENT
    assert server.mailbox.logins == [USERNAME]
    assert len(server.mailbox.envelopes) == 1


async def test_a_wrong_password_fails_because_535_is_permanent(
    smtp_with_login: tuple[SmtpServer, Authenticator],
) -> None:
    server, _ = smtp_with_login
    channel = EmailChannel(plain_settings(server.port, username=USERNAME, password="wrong"))

    delivery = await channel.send(MESSAGE)

    # 535 is a 5xx reply: retrying the same credentials cannot succeed, so the message fails.
    assert delivery.result is Result.FAILED
    assert delivery.detail.startswith("SMTP 535: ")
    assert server.mailbox.envelopes == []


async def test_a_temporary_login_failure_454_is_retried(
    smtp_with_login: tuple[SmtpServer, Authenticator],
) -> None:
    server, authenticator = smtp_with_login
    authenticator.refusal = "454 4.7.0 Temporary authentication failure"
    channel = EmailChannel(plain_settings(server.port, username=USERNAME, password="wrong"))

    delivery = await channel.send(MESSAGE)

    assert delivery.result is Result.RETRY
    assert delivery.detail == "SMTP 454: 4.7.0 Temporary authentication failure"


async def test_sending_without_login_to_a_server_that_requires_it_fails() -> None:
    mailbox = Mailbox()
    authenticator = Authenticator(mailbox)
    options = {"authenticator": authenticator, "auth_required": True}
    with running_smtp(mailbox, **options) as server:
        channel = EmailChannel(plain_settings(server.port))

        delivery = await channel.send(MESSAGE)

    assert delivery.result is Result.FAILED
    assert delivery.detail.startswith("SMTP 530: ")
    assert mailbox.envelopes == []


@pytest.mark.parametrize("to", ["", "not an address", "ada@"])
async def test_a_bad_recipient_address_fails(smtp: SmtpServer, to: str) -> None:
    channel = EmailChannel(plain_settings(smtp.port))
    message = EmailMessage(id="m-4", to=to, subject="Hi", body="x")

    delivery = await channel.send(message)

    assert delivery.result is Result.FAILED
    assert smtp.mailbox.envelopes == []


async def test_a_to_holding_several_addresses_never_reaches_the_others(smtp: SmtpServer) -> None:
    channel = EmailChannel(plain_settings(smtp.port))
    message = EmailMessage(id="m-6", to="ada@example.com, eve@example.com", subject="Hi", body="x")

    await channel.send(message)

    assert [envelope.rcpt_tos for envelope in smtp.mailbox.envelopes] in ([], [["ada@example.com"]])


async def test_a_subject_with_a_line_break_never_injects_a_header(smtp: SmtpServer) -> None:
    channel = EmailChannel(plain_settings(smtp.port))
    message = EmailMessage(
        id="m-5", to="ada@example.com", subject="Hi\r\nBcc: eve@example.com", body="x"
    )

    delivery = await channel.send(message)

    assert delivery.result in {Result.SENT, Result.FAILED}
    assert all(envelope.rcpt_tos == ["ada@example.com"] for envelope in smtp.mailbox.envelopes)


# STARTTLS and TLS, with a certificate made for 127.0.0.1 by the test.


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    pytest.importorskip(
        "cryptography",
        reason="the TLS cases make a self-signed certificate with the 'cryptography' package, "
        "which is not installed here",
    )
    from cryptography import x509  # type: ignore[import-not-found, unused-ignore]
    from cryptography.hazmat.primitives import (  # type: ignore[import-not-found, unused-ignore]
        hashes,
        serialization,
    )
    from cryptography.hazmat.primitives.asymmetric import (  # type: ignore[import-not-found, unused-ignore]
        ec,
    )
    from cryptography.x509.oid import NameOID  # type: ignore[import-not-found, unused-ignore]

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "herald test SMTP")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOCALHOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A client context that trusts the test certificate (and checks the host name)."""
    return ssl.create_default_context(cafile=str(certificate[0]))


async def test_starttls_upgrades_before_sending(certificate: tuple[Path, Path]) -> None:
    mailbox = Mailbox()
    options = {"tls_context": server_context(certificate), "require_starttls": True}
    with running_smtp(mailbox, **options) as server:
        settings = plain_settings(
            server.port, security=Security.STARTTLS, tls_context=trusting(certificate)
        )

        delivery = await EmailChannel(settings).send(MESSAGE)

    assert delivery.result is Result.SENT
    assert mailbox.tls_versions[0] is not None and mailbox.tls_versions[0].startswith("TLS")
    assert received(mailbox)["Message-ID"] == "<01HX-outbox-7@herald.local>"


async def test_tls_from_the_start_sends(certificate: tuple[Path, Path]) -> None:
    mailbox = Mailbox()
    with running_smtp(mailbox, ssl_context=server_context(certificate)) as server:
        settings = plain_settings(
            server.port, security=Security.TLS, tls_context=trusting(certificate)
        )

        delivery = await EmailChannel(settings).send(MESSAGE)

    assert delivery.result is Result.SENT
    assert mailbox.tls_versions[0] is not None and mailbox.tls_versions[0].startswith("TLS")


async def test_login_after_starttls_on_a_server_that_requires_tls_for_auth(
    certificate: tuple[Path, Path],
) -> None:
    mailbox = Mailbox()
    options = {
        "tls_context": server_context(certificate),
        "authenticator": Authenticator(mailbox),
        "auth_require_tls": True,
    }
    with running_smtp(mailbox, **options) as server:
        settings = plain_settings(
            server.port,
            security=Security.STARTTLS,
            tls_context=trusting(certificate),
            username=USERNAME,
            password=PASSWORD,
        )

        delivery = await EmailChannel(settings).send(MESSAGE)

    assert delivery.result is Result.SENT
    assert mailbox.logins == [USERNAME]


async def test_an_untrusted_certificate_is_retried_and_nothing_is_sent(
    certificate: tuple[Path, Path],
) -> None:
    mailbox = Mailbox()
    with running_smtp(mailbox, tls_context=server_context(certificate)) as server:
        settings = plain_settings(server.port, security=Security.STARTTLS)  # system trust store

        delivery = await EmailChannel(settings).send(MESSAGE)

    assert delivery.result is Result.RETRY
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.detail
    assert mailbox.envelopes == []
