"""A client's bundle after issuance: re-make it (`client rebundle`), hand it out (`client bundle`).

Both read the name's current certificate and key from the profile; the p12 itself is
always made by `p12.export`, like at issuance.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import check, database, der, inventory, names, openssl, openssl_args, p12
from .errors import InputError, OpenSSLError, StateError
from .fsutil import (
    install,
    not_plain_dir,
    require_outside,
    require_safe_target,
    scratch_dir,
    write_atomic,
)
from .openssl import Secret
from .passphrase import Source, resolve
from .profile import Profile
from .render import render_client
from .transaction import transaction

# Problems a bundle may have and still be handed out: they break only the importers
# that `--p12-format compat` is for, and the README says so.
_TOLERATED = {"macos", "windows"}


@dataclass(frozen=True)
class Rebundled:
    profile: str
    name: str
    serial: str
    p12_format: str
    password: str  # "empty" or "given"
    p12: str


@dataclass(frozen=True)
class Bundled:
    profile: str
    name: str
    serial: str
    out_dir: str
    p12_format: str
    password: str
    files: dict[str, str] = field(default_factory=dict)


def key_encrypted(key: Path) -> bool:
    """Whether a PEM key file is encrypted (then its bundle has the same password)."""
    with open(key, "rb") as handle:
        return b"ENCRYPTED" in handle.readline()


def current(profile: Profile, name: str, kind: str | None = "client") -> database.Entry:
    """The valid certificate of NAME that issued/NAME.crt holds (of KIND unless None)."""
    issue_cmd = f"{kind or 'client'} issue"
    fix = f"issue one: certwiz {issue_cmd} -p {profile.name} -n {name}"
    cert = profile.cert_path(name)
    valid = inventory.valid_named(profile, name)
    if not valid:
        raise StateError(f"{name} has no valid certificate in profile {profile.name}; {fix}")
    try:
        leaf = der.pem_to_der(cert.read_bytes())
    except (OSError, der.DERError):
        raise StateError(f"{cert} holds no certificate; {fix}") from None
    for entry in valid:
        newcert = profile.newcert_path(entry.serial)
        if newcert.is_file() and der.pem_to_der(newcert.read_bytes()) == leaf:
            found = der.kind_of(newcert.read_bytes())
            if kind is not None and kind not in found:
                raise StateError(f"{name} holds a {found} certificate, not a {kind} one")
            return entry
    raise StateError(f"{cert} is not the valid certificate of {name} (revoked or replaced); {fix}")


def key_of(profile: Profile, name: str) -> Path:
    key = profile.key_path(name)
    if not key.is_file():
        raise StateError(
            f"{name} has no private key in profile {profile.name} ({key}): purged, or the key "
            "was made elsewhere; only its owner can bundle it"
        )
    return key


def open_key(key: Path, password: Secret | None, field: str = "p12-passphrase-file") -> None:
    """Check the password opens KEY before anything is locked or written."""
    if not key_encrypted(key):
        return
    if password is None:
        raise InputError(
            field,
            f"{key.name} is encrypted with the bundle password: give "
            f"--{field} FILE or set CERTWIZ_P12_PASSPHRASE",
        )
    try:
        openssl.run(openssl_args.key_opens(key, password))
    except OpenSSLError:
        raise InputError(field, f"wrong password for {key.name}") from None


def rebundle(
    profile: Profile,
    name: str,
    *,
    p12_format: str = p12.DEFAULT_FORMAT,
    password: Source = None,
    timeout: float | None = None,
) -> Rebundled:
    """Re-make private/NAME.p12 from the key and current certificate in the profile.

    The bundle keeps the key's password (`password`, asked only when the key is
    encrypted); a key issued with -u gives the empty password, MAC kept.
    """
    names.client_name(name)
    p12.check_format(p12_format)
    key = key_of(profile, name)
    encrypted = key_encrypted(key)
    password = resolve(password) if encrypted else None
    open_key(key, password)
    current(profile, name)  # before the lock too: a refusal leaves no trace
    with (
        transaction(profile, "client rebundle", [name], timeout=timeout) as tx,
        scratch_dir(profile.dir) as work,
    ):
        entry = current(profile, name)
        tx.note_serial(entry.serial)
        tx.note("p12_format", p12_format)
        out = work / "bundle.p12"
        secret = password if encrypted else None
        p12.export(
            key=key,
            cert=profile.cert_path(name),
            chain=profile.chain,  # two-level: intermediate + root
            name=name,
            out=out,
            p12_format=p12_format,
            password=secret,
            key_passphrase=secret,
        )
        check.require_whole(out)
        install(out, profile.p12_path(name), 0o600)
    return Rebundled(
        profile.name,
        name,
        entry.serial,
        p12_format,
        "given" if encrypted else "empty",
        str(profile.p12_path(name)),
    )


def _check_out(out: Path) -> Path:
    out = out.expanduser().absolute()
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError("out", f"{out} exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        raise InputError("out", f"{out} exists and is not empty; give a new directory")
    if not out.parent.is_dir() or not_plain_dir(out.parent):
        raise InputError("out", f"{out.parent} is not a directory")
    return out


def _stale(report: p12.Report, entry: database.Entry, rebundle_cmd: str) -> None:
    if int(report.certificates[0].serial, 16) != entry.serial_int:
        raise StateError(
            f"the bundle does not hold the current certificate of {entry.common_name}; "
            f"first run: {rebundle_cmd}"
        )


def _format_of(report: p12.Report) -> str:
    macos = report.clients["macos"]["accepts"]
    return "compat" if macos else "modern"


def onboarding_bundle(
    profile: Profile,
    name: str,
    out: Path,
    password: Source = None,
    timeout: float | None = None,
) -> Bundled:
    """Write NAME.p12, ca.crt and a README for NAME into the new directory OUT.

    `password` is the bundle's (None: the empty one), asked after the checks of
    NAME and OUT; it is checked, never written.
    """
    names.client_name(name)
    out = _check_out(out)
    require_outside("out", out, profile.home)  # a copy of a key: never among the profiles
    require_safe_target("out", out)
    source = profile.p12_path(name)
    if not source.is_file():
        raise StateError(
            f"{name} has no bundle in profile {profile.name}; "
            f"make one: certwiz client rebundle -p {profile.name} -n {name}"
        )
    password = resolve(password)
    report = p12.inspect(source, password)
    rebundle_cmd = f"certwiz client rebundle -p {profile.name} -n {name}"
    for problem in report.problems:
        if not problem.breaks or set(problem.breaks) - _TOLERATED:
            raise StateError(f"{source.name}: {problem.problem}; first run: {rebundle_cmd}")
    _stale(report, current(profile, name), rebundle_cmd)  # before the lock: no trace
    with transaction(profile, "client bundle", [name], timeout=timeout) as tx:
        entry = current(profile, name)
        _stale(report, entry, rebundle_cmd)
        tx.note_serial(entry.serial)
        tx.note("out", str(out))
        fmt = _format_of(report)
        readme = render_client(
            "README.md.j2",
            name=name,
            p12=f"{name}.p12",
            password_empty=report.password == "empty",
            p12_format=fmt,
            rebundle=f"{rebundle_cmd} --p12-format compat",
            serial=entry.serial,
            not_after=report.certificates[0].not_after,
            issuer=report.certificates[0].issuer,
        )
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))  # 0700
        try:
            write_atomic(tmp / f"{name}.p12", source.read_bytes(), 0o600)
            write_atomic(tmp / "ca.crt", profile.ca_cert.read_bytes(), 0o644)
            write_atomic(tmp / "README.md", readme, 0o644)
            os.replace(tmp, out)  # an empty OUT is replaced whole; a non-empty one refuses
        except BaseException:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)
            raise
    files = {"p12": out / f"{name}.p12", "ca": out / "ca.crt", "readme": out / "README.md"}
    return Bundled(
        profile.name,
        name,
        entry.serial,
        str(out),
        fmt,
        report.password,
        {k: str(v) for k, v in files.items()},
    )
