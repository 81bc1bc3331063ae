"""`certwiz export`: a name's current certificate in the form a target wants.

pem and der: the certificate alone; chain: the certificate and the CA chain (what a
load balancer takes); p12: a fresh bundle from the key in the profile, with its own
password and format (the profile's own bundle is left as it is). A p12 export is
recorded in the audit log: a key left the profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import bundle, check, der, derived, names, p12
from .errors import InputError
from .fsutil import not_plain_dir, require_outside, require_safe_target, scratch_dir, write_atomic
from .passphrase import Source, bundle_passphrase, resolve
from .profile import Profile
from .transaction import transaction

FORMATS = ("pem", "chain", "der", "p12")


@dataclass(frozen=True)
class Exported:
    profile: str
    name: str
    serial: str
    format: str
    out: str | None
    mode: str | None


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise InputError("format", f"{value!r} is not one of {', '.join(FORMATS)}")
    return value


def check_out(out: Path, *, force: bool, home: Path) -> Path:
    """Where to write: never into the certwiz home (a profile's own files, the CA key),
    never over an existing file unless --force, never into a non-directory."""
    out = out.expanduser().absolute()
    if out.is_dir():
        raise InputError("out", f"{out} is a directory; give a file name")
    require_outside("out", out, home)
    require_safe_target("out", out)
    if (out.exists() or out.is_symlink()) and not force:
        raise InputError("out", f"{out} exists; give --force to replace it")
    problem = not_plain_dir(out.parent)
    if problem or not out.parent.is_dir():
        raise InputError("out", f"{out.parent} is not a directory")
    return out


def render(
    profile: Profile,
    name: str,
    fmt: str,
    *,
    p12_format: str = p12.DEFAULT_FORMAT,
    password: Source = None,
    key_passphrase: Source = None,
    unencrypted: bool | None = None,
    timeout: float | None = None,
) -> tuple[bytes, str]:
    """The exported bytes and the serial they carry.

    For p12, `password` is the new bundle's: required unless `unencrypted` (the empty
    password, MAC kept); left None, `unencrypted` means "no password given". And
    `key_passphrase` opens an encrypted key in the profile. Providers are called
    only for a p12, only when needed (the key's only for an encrypted key), after
    the checks before them: the key's first, then the bundle's.
    """
    names.client_name(name)  # it names files: no path may leave the profile
    check_format(fmt)
    if fmt != "p12":
        entry = bundle.current(profile, name, kind=None)
        pem = profile.newcert_path(entry.serial).read_bytes()
        if fmt == "der":
            return der.pem_to_der(pem), entry.serial
        if fmt == "chain":
            return pem + derived.handed_out(profile, profile.chain), entry.serial  # no lock
        return pem, entry.serial
    p12.check_format(p12_format)
    key = bundle.key_of(profile, name)
    encrypted = bundle.key_encrypted(key)
    key_secret = resolve(key_passphrase) if encrypted else None
    bundle.open_key(key, key_secret, "key-passphrase-file")
    if unencrypted is None:
        unencrypted = password is None
    bundle_secret = bundle_passphrase(password, unencrypted=unencrypted)
    bundle.current(profile, name, kind=None)  # before the lock too: a refusal leaves no trace
    with (
        transaction(profile, "export p12", [name], timeout=timeout) as tx,
        scratch_dir(profile.dir) as work,
    ):
        entry = bundle.current(profile, name, kind=None)
        tx.note_serial(entry.serial)
        tx.note("p12_format", p12_format)
        out = work / "export.p12"
        p12.export(
            key=key,
            cert=profile.newcert_path(entry.serial),
            chain=profile.chain,
            name=name,
            out=out,
            p12_format=p12_format,
            password=bundle_secret,
            key_passphrase=key_secret,
        )
        check.require_whole(out)
        return out.read_bytes(), entry.serial


def export(
    profile: Profile,
    name: str,
    fmt: str,
    out: Path,
    *,
    force: bool = False,
    p12_format: str = p12.DEFAULT_FORMAT,
    password: Source = None,
    key_passphrase: Source = None,
    unencrypted: bool | None = None,
    timeout: float | None = None,
) -> Exported:
    """Write the export to OUT atomically: 0600 for a p12 (it holds a key), else 0644."""
    target = check_out(out, force=force, home=profile.home)
    data, serial = render(
        profile,
        name,
        fmt,
        p12_format=p12_format,
        password=password,
        key_passphrase=key_passphrase,
        unencrypted=unencrypted,
        timeout=timeout,
    )
    mode = 0o600 if fmt == "p12" else 0o644
    write_atomic(target, data, mode)
    return Exported(profile.name, name, serial, fmt, str(target), f"{mode:04o}")
