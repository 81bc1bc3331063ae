"""HTTP over TLS for the agent: one EST request at a time, and what its answer means.

The TLS context trusts only the given CA file and, for a renewal, presents the bundle's
certificate (its key handed to Python's ssl from an encrypted copy). The server is
checked against the pinned CA right after the handshake, before anything is sent.
"""

from __future__ import annotations

import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CertwizError, InputError, RefusedByServer
from . import device, trust

if TYPE_CHECKING:
    from cryptography import x509

TIMEOUT = 30.0  # seconds for one HTTP exchange; a timer retries later


class AnswerRejected(CertwizError):
    """The server's answer is not a certificate this device may take; nothing was changed."""


def tls_context(ca: Path, identity: device.Bundle | None, work: Path) -> ssl.SSLContext:
    """TLS that trusts CA only; with IDENTITY it presents the bundle's certificate.

    Python's ssl reads the key from a file: it gets a copy encrypted under a random
    passphrase (0600 in the 0700 WORK), deleted as soon as it is loaded.
    """
    from cryptography.hazmat.primitives import serialization

    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # every certificate in CA is an anchor: a two-level profile's intermediate alone will do
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if identity is not None:
        password = secrets.token_urlsafe(32).encode()
        cert_file, key_file = work / "current.crt", work / "current.key"
        key_pem = identity.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
        device.write_private(key_file, key_pem)
        device.write_private(cert_file, identity.cert.public_bytes(serialization.Encoding.PEM))
        try:
            context.load_cert_chain(str(cert_file), str(key_file), password=lambda: password)
        finally:
            key_file.unlink()
            cert_file.unlink()
    return context


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    retry_after: str | None


def exchange(
    where: trust.Endpoint,
    context: ssl.SSLContext,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request; a connection or TLS failure is a CertwizError (exit 1: retry later)."""
    import http.client  # only when a request is made (not due: never)

    from . import wire

    conn = http.client.HTTPSConnection(where.host, where.port, context=context, timeout=TIMEOUT)
    try:
        conn.connect()  # the handshake first: nothing is sent to a server of another CA
        trust.check_server(where, conn.sock.getpeercert(binary_form=True))
        conn.request(method, path, body=body, headers={"User-Agent": "certwiz-agent",
                                                       **(headers or {})})  # fmt: skip
        response = conn.getresponse()
        data = response.read(wire.MAX_RESPONSE_BYTES + 1)
        return Answer(
            response.status,
            response.getheader("Content-Type") or "",
            data,
            response.getheader("Retry-After"),
        )
    except ssl.SSLCertVerificationError as exc:
        raise CertwizError(
            f"{where.url}: the server certificate does not verify against {where.trust} "
            f"({exc.verify_message}; a server certificate of another CA: --server-ca FILE)"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise CertwizError(f"cannot reach {where.url}: {reason}") from None
    finally:
        conn.close()


def _reason(body: bytes) -> str:
    """The server's one-line reason, printable and short (never trusted as more)."""
    text = body[:4096].decode("utf-8", errors="replace")
    for line in text.splitlines():
        line = "".join(ch if ch.isprintable() else "?" for ch in line.strip())
        if line and not line.startswith("<"):
            return line[:200]
    import re

    title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
    return title.group(1).strip()[:200] if title else "no reason given"


def certificates(where: trust.Endpoint, answer: Answer, what: str) -> list[x509.Certificate]:
    """The certificates of a 200 certs-only answer; any other answer is an error."""
    from . import wire

    if answer.status == 200:
        if wire.media_type(answer.content_type) != wire.PKCS7_TYPE:
            raise AnswerRejected(f"{what}: the answer is {answer.content_type!r}, not PKCS#7")
        try:
            return wire.decode_certs(answer.body)
        except InputError as exc:
            raise AnswerRejected(f"{what}: {exc}") from None
    if answer.status == 202:
        later = f"; retry after {answer.retry_after}" if answer.retry_after else ""
        raise CertwizError(f"{what}: the server has not signed yet (202){later}")
    if 400 <= answer.status < 500:
        raise RefusedByServer(
            f"{what}: refused by {where.url} ({answer.status}: {_reason(answer.body)})"
        )
    raise CertwizError(f"{what}: {where.url} answered {answer.status}: {_reason(answer.body)}")
