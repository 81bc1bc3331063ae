"""A pending renewal: the new key and CSR kept beside the bundle until the answer is in.

The service signs once per certificate: a repeat with the SAME key gets the same new
certificate back, another key gets 409 (and after the grace the device is locked out).
So the new key and its CSR are kept beside the bundle until the answer is installed,
and a run after a crash (killed, power lost, the answer lost on the way) sends them again.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .. import der, durations, names
from ..fsutil import remove_tree
from ..openssl import Secret
from . import device, verify

_KEY, _CSR, _STATE = "new.key", "req.csr", "state.json"


@dataclass(frozen=True)
class Pending:
    """A renewal begun for the bundle's certificate `for_serial`: DIR/new.key (encrypted
    under `passphrase`), its CSR (DER) and the key's SPKI."""

    dir: Path
    key: Path
    passphrase: Secret
    csr: bytes
    spki: bytes
    resumed: bool  # made by an earlier run


def dir_of(p12_path: Path) -> Path:
    """.NAME.pending beside the bundle (0700; the agent's flock covers it)."""
    return p12_path.parent / f".{p12_path.name}.pending"


def _passphrase(bundle: device.Bundle) -> Secret:
    """The pending key's passphrase, derived from the bundle's CURRENT key (HKDF-SHA256,
    bound to the certificate's serial), never stored.

    Why this one: it must survive the crash, and it does, because the bundle keeps the
    current key until the new bundle is installed; a random one would die with the
    process. It is exactly as secret as the bundle's own key: whoever can open the bundle
    (its password) can open the pending key, nobody else; a passphrase derived from the
    bundle password would be a constant for the -u (empty password) bundles bots use.
    A bundle replaced meanwhile (another key) cannot open it: the pending state is stale.
    """
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    material = bundle.key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    info = b"certwiz agent pending renewal key " + bundle.serial.encode()
    derived = HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(material)
    return Secret(base64.urlsafe_b64encode(derived).decode().rstrip("="))


def discard(path: Path) -> None:
    """Remove a pending directory (its files, then itself); gone already is fine. A
    symlink (or a file) in its place is removed itself, never followed, and nothing is
    removed by a path a swap could redirect (`fsutil.remove_tree`)."""
    remove_tree(path)


def load(p12_path: Path, bundle: device.Bundle) -> Pending | None:
    """The pending renewal of BUNDLE's certificate, or None. Held under the bundle lock.

    A stale one is removed: made for another certificate (the bundle was renewed, or
    replaced by the operator), older than the bundle's certificate, or whose key does not
    open with the bundle's key or does not match its CSR and subject. So are the leftovers
    of a killed run (.NAME.pending-XXXX, .NAME.work-XXXX): the lock says none is alive."""
    import json

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    for kind in ("pending", "work"):
        for leftover in p12_path.parent.glob(f".{p12_path.name}.{kind}-*"):
            discard(leftover)
    where = dir_of(p12_path)
    if not where.exists():
        return None
    passphrase = _passphrase(bundle)
    try:
        if where.is_symlink() or not where.is_dir():
            raise ValueError("not a directory")
        state = json.loads((where / _STATE).read_text())
        created = datetime.fromisoformat(state["created"])
        older = created < bundle.cert.not_valid_before_utc - verify.SKEW  # than what it renews
        if state["for_serial"] != bundle.serial or older:
            raise ValueError("made for another certificate")
        key = serialization.load_pem_private_key(
            (where / _KEY).read_bytes(), passphrase.text.encode()
        )
        request = x509.load_der_x509_csr(csr := (where / _CSR).read_bytes())
        if der.spki_of(key) != der.spki_of(request) or request.subject != bundle.cert.subject:
            raise ValueError("the key does not match its request")
    except (OSError, ValueError, KeyError, TypeError):
        discard(where)  # stale or damaged: a new renewal starts from scratch
        return None
    return Pending(where, where / _KEY, passphrase, csr, der.spki_of(request), True)


def begin(p12_path: Path, bundle: device.Bundle) -> Pending:
    """A new key and CSR, kept as BUNDLE's pending renewal (written in a 0700 directory
    beside the bundle, fsynced, then renamed into place: whole or not at all)."""
    import json
    import tempfile

    passphrase = _passphrase(bundle)
    build = Path(tempfile.mkdtemp(dir=p12_path.parent, prefix=f".{p12_path.name}.pending-"))
    try:
        key, _, csr, spki = device.new_key_and_csr(
            build, names.key_type_of(bundle.cert), bundle.cert.subject, passphrase
        )
        key.chmod(0o600)
        (build / "req.cnf").unlink()
        (build / "req.csr").unlink()
        device.write_private(build / _CSR, csr)
        state = {"for_serial": bundle.serial, "created": durations.stamp(datetime.now(UTC))}
        device.write_private(build / _STATE, json.dumps(state).encode())
        for child in build.iterdir():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
        where = dir_of(p12_path)
        os.rename(build, where)
    except BaseException:
        discard(build)
        raise
    dir_fd = os.open(p12_path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return Pending(where, where / _KEY, passphrase, csr, spki, False)
