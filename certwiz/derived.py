"""The files certwiz builds from other files, compared and rebuilt by one rule.

Beside what openssl writes, a profile keeps copies that NGINX and bundles read:

- two-level: ca.crt = root/ca.crt, chain.pem = intermediate.crt + ca.crt, and
  crl-chain.pem = crl.pem + root/crl.pem (the CRL file NGINX checks);
- every profile: issued/NAME.fullchain.pem = its leaf + the chain (ca.crt, or chain.pem).

A change writes a source first and its copies after it, so a run killed in between
leaves a copy behind its source (NGINX kept admitting a revoked client because
crl-chain.pem lacked the new CRL; new bundles carried the intermediate `ca renew`
had replaced). Nothing else records that step as owed: `check` compares every copy
with its sources (exit 4, naming the repair), and recovery rebuilds them under the
lock before any change, so every later command, a rerun included, repairs them.
A copy whose source is not a whole PEM file is left as it is: `check` reports the
source, and a damaged CRL never reaches NGINX's file. `status` reports a copy behind
like `check` (`behind`). A command that hands a copy out without a change (`export
--format chain`, the EST service's /cacerts) takes no lock and runs no recovery: it
hands out what the sources say (`handed_out`), never the copy a killed run left.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import der
from .errors import ProfileCorrupt
from .fsutil import write_atomic
from .profile import ROOT_DIR, Profile

FULLCHAIN = ".fullchain.pem"
_END = b"-----END CERTIFICATE-----\n"
_ANCHOR = "new bundles and exports would carry the replaced root certificate"
_CHAIN = "new bundles and NGINX would carry the replaced intermediate"
_CRLS = "NGINX would not enforce the newest revocations"
_FULL = "NGINX would serve the replaced chain"


@dataclass(frozen=True)
class Derived:
    """One copy: where it is, what it is built from, and what it must hold."""

    path: Path
    sources: tuple[Path, ...]
    data: bytes
    reader: str  # who reads the old copy, and what that does

    @property
    def built_from(self) -> str:
        return " + ".join(str(s) for s in self.sources)

    @property
    def problem(self) -> str:
        """What `check` and `status` say about this copy when it is behind."""
        return (
            f"{self.path}: is not {self.built_from} (a run killed before rebuilding it, or "
            f"a source written by hand): {self.reader}; the next change rebuilds it"
        )


def _whole(data: bytes, label: bytes) -> bool:
    """Every PEM block of DATA is a whole LABEL (armour, base64, DER of its own length)."""
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    blocks = data.split(begin)
    if len(blocks) < 2 or blocks[0].strip():
        return False
    for block in blocks[1:]:
        body, found, rest = block.partition(end)
        if not found or rest.strip():
            return False
        try:
            raw = base64.b64decode(b"".join(body.split()), validate=True)
            if not raw or der.outer_length(raw) != len(raw):
                return False
        except (binascii.Error, ValueError, IndexError):
            return False
    return True


def _read(path: Path, label: bytes) -> bytes | None:
    """PATH's bytes if it is a whole PEM file of LABEL, else None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if _whole(data, label) else None


def chain_bytes(directory: Path) -> bytes | None:
    """chain.pem of the two-level profile in DIRECTORY: intermediate + root."""
    parts = [_read(directory / name, b"CERTIFICATE") for name in ("intermediate.crt", "ca.crt")]
    return None if None in parts else b"".join(p or b"" for p in parts)


def crl_chain_bytes(directory: Path) -> bytes | None:
    """crl-chain.pem of the two-level profile in DIRECTORY: its CRL + the root's."""
    parts = [_read(directory / name, b"X509 CRL") for name in ("crl.pem", f"{ROOT_DIR}/crl.pem")]
    return None if None in parts else b"".join(p or b"" for p in parts)


def fullchain_bytes(path: Path, chain: bytes) -> bytes | None:
    """issued/NAME.fullchain.pem: its own leaf (the first certificate) + CHAIN."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    leaf = data.split(_END, 1)[0] + _END
    return leaf + chain if _whole(leaf, b"CERTIFICATE") else None


def expected(profile: Profile, fullchains: Iterable[str] | None = None) -> list[Derived]:
    """Every copy of PROFILE with what it must hold, in build order (ca.crt before the
    chain, the chain before the fullchains). FULLCHAINS: the file names in issued/
    (listed here if not given); a copy whose sources are not whole is left out."""
    if profile.level == "root":
        return []
    out: list[Derived] = []
    chain = None
    if profile.two_level:
        root_ca = profile.root.ca_cert
        anchor = _read(root_ca, b"CERTIFICATE")
        if anchor is not None:
            out.append(Derived(profile.ca_cert, (root_ca,), anchor, _ANCHOR))
        inter = _read(profile.intermediate_cert, b"CERTIFICATE")
        if anchor is not None and inter is not None:
            chain = inter + anchor
            sources = (profile.intermediate_cert, profile.ca_cert)
            out.append(Derived(profile.chain, sources, chain, _CHAIN))
        crls = crl_chain_bytes(profile.dir)
        if crls is not None:
            out.append(Derived(profile.nginx_crl, (profile.crl, profile.root.crl), crls, _CRLS))
    else:
        chain = _read(profile.ca_cert, b"CERTIFICATE")
    if chain is None:
        return out
    if fullchains is None:
        fullchains = _listed(profile.issued)
    for name in sorted(n for n in fullchains if n.endswith(FULLCHAIN)):
        path = profile.issued / name
        if path.is_symlink():
            continue
        data = fullchain_bytes(path, chain)
        if data is not None:
            leaf = profile.cert_path(name.removesuffix(FULLCHAIN))
            out.append(Derived(path, (leaf, profile.chain), data, _FULL))
    return out


def _listed(directory: Path) -> list[str]:
    try:
        with os.scandir(directory) as found:
            return [e.name for e in found if e.name.endswith(FULLCHAIN)]
    except FileNotFoundError:
        return []


def behind(profile: Profile, fullchains: Iterable[str] | None = None) -> list[Derived]:
    """The copies that do not hold what their sources say (missing ones too)."""
    stale = []
    for item in expected(profile, fullchains):
        try:
            if item.path.read_bytes() == item.data:
                continue
        except OSError:
            pass
        stale.append(item)
    return stale


def handed_out(profile: Profile, path: Path) -> bytes:
    """What PROFILE's PATH (ca.crt, chain.pem or crl-chain.pem) must hold by its sources,
    for a command that hands it out without a change (no lock, no recovery): a copy a
    killed run left behind never leaves the profile. A file that is no copy (ca.crt or
    crl.pem of a single-level profile) is its own source. Sources that are not whole
    PEM files: ProfileCorrupt (exit 4), as `check` reports them."""
    if not profile.two_level or path not in (profile.ca_cert, profile.chain, profile.nginx_crl):
        return path.read_bytes()
    for item in expected(profile, fullchains=()):
        if item.path == path:
            return item.data
    raise ProfileCorrupt(
        f"{path}: cannot be built, its sources are not whole PEM files; "
        f"see: certwiz check -p {profile.cli_name}"
    )


def replace(path: Path, data: bytes) -> None:
    """Write PATH by rename, keeping the mode and group an operator gave it (a CRL file
    readable only by nginx's group stays so)."""
    try:
        old = path.stat()
        mode, gid = stat.S_IMODE(old.st_mode), old.st_gid
    except FileNotFoundError:
        mode, gid = 0o644, -1
    write_atomic(path, data, mode)
    if gid not in (-1, path.stat().st_gid):
        with contextlib.suppress(PermissionError):
            os.chown(path, -1, gid)


def rebuild(profile: Profile, fullchains: Iterable[str] | None = None) -> list[Derived]:
    """Rewrite every copy that is behind its sources, in build order; returns them."""
    done = []
    for item in behind(profile, fullchains):
        replace(item.path, item.data)
        done.append(item)
    return done
