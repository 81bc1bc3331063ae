"""Issuing server and client certificates signed by a profile's CA."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from . import audit, check, database, durations, names, openssl, upkeep
from . import p12 as p12_lib
from . import revoke as revoking
from .ca import keygen_args, subject_arg
from .errors import CertwizError, StateError
from .fsutil import install, scratch_dir, write_atomic
from .openssl import Secret
from .profile import Profile
from .render import render_openssl

DEFAULT_LEAF_DAYS = 365


@dataclass(frozen=True)
class Issued:
    """What an issuance produced, for printing and for --json."""

    name: str
    kind: str
    serial: str
    not_after: str
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def check_no_valid(profile: Profile, name: str) -> None:
    """Refuse a second valid certificate for a name (revoke it, or let it expire, first)."""
    valid = database.valid_named(database.read(profile.index), name)
    if valid:
        entry = valid[0]
        raise StateError(
            f"{name} already has a valid certificate (serial {entry.serial}, "
            f"expires {entry.not_after:%Y-%m-%d %H:%M:%SZ}); "
            f"revoke it first: certwiz revoke -p {profile.name} -n {name}"
        )


def sign(
    profile: Profile,
    work: Path,
    csr: Path,
    kind: str,
    validity: timedelta,
    rsa: bool,
    sans: list[names.San],
    ca_passphrase: Secret | None,
) -> Path:
    extfile = work / "ext.cnf"
    extfile.write_text(render_openssl("leaf_ext.cnf.j2", kind=kind, rsa=rsa, sans=sans))
    cert = work / "cert.pem"
    args: list[openssl.Arg] = [
        "ca",
        "-batch",
        "-config",
        profile.cnf,
        "-in",
        csr,
        "-out",
        cert,
        "-notext",
        "-utf8",
        *durations.validity_args(validity),
        "-extfile",
        extfile,
        "-extensions",
        "leaf_ext",
    ]
    if ca_passphrase is not None:
        args += ["-passin", ca_passphrase]
    with check.guarded(profile):
        openssl.run(args)
    return cert


def entry_of(profile: Profile, serial_hex: str) -> database.Entry:
    wanted = int(serial_hex, 16)
    return next(e for e in database.read(profile.index) if e.serial_int == wanted)


def _issue(
    profile: Profile,
    name: str,
    kind: str,
    days: int | str | timedelta,
    key_type: str,
    sans: list[names.San],
    ca_passphrase: Secret | None,
    key_passphrase: Secret | None = None,
    p12_format: str | None = None,
) -> Issued:
    validity = durations.parse(days, "days")
    names.key_type(key_type)
    with contextlib.suppress(database.DatabaseError, OSError):  # reported under the lock
        check_no_valid(profile, name)  # before the lock too: a refusal leaves no trace
    with (
        audit.changing(profile, f"{kind} issue", [name]) as change,
        scratch_dir(profile.dir) as work,
    ):
        check_no_valid(profile, name)
        entry, files = make_certificate(
            profile,
            change,
            work,
            name,
            kind,
            validity,
            key_type,
            sans,
            ca_passphrase,
            key_passphrase,
            p12_format,
        )
        notes = upkeep.tidy(profile, change, ca_passphrase)
    return Issued(
        name,
        kind,
        entry.serial,
        f"{entry.not_after:%Y-%m-%dT%H:%M:%SZ}",
        {k: str(v) for k, v in files.items()},
        notes,
    )


def make_certificate(
    profile: Profile,
    change: audit.Change,
    work: Path,
    name: str,
    kind: str,
    validity: timedelta,
    key_type: str,
    sans: list[names.San],
    ca_passphrase: Secret | None,
    key_passphrase: Secret | None,
    p12_format: str | None,
    existing_key: Path | None = None,
) -> tuple[database.Entry, dict[str, Path]]:
    """Key (new or EXISTING_KEY), request, signature, files: one certificate for NAME.

    The caller holds the lock (`change`) and decides what the name may have.
    """
    if change.details.get("crl_missing"):  # a killed revoke: publish it first
        revoking.regenerate_crl(profile, ca_passphrase, None)
    _, csr = key_and_csr(profile, work, name, key_type, key_passphrase, existing_key)
    serial_hex = profile.serial.read_text().strip()  # the serial openssl ca assigns next
    rsa = key_type.startswith("rsa")
    cert = sign(profile, work, csr, kind, validity, rsa, sans, ca_passphrase)
    change.serials.append(serial_hex)
    files = deliver_or_withdraw(
        profile,
        change,
        name,
        kind,
        work,
        cert,
        serial_hex,
        ca_passphrase,
        key_passphrase,
        p12_format,
    )
    return entry_of(profile, serial_hex), files


def key_and_csr(
    profile: Profile,
    work: Path,
    name: str,
    key_type: str,
    key_passphrase: Secret | None,
    existing_key: Path | None = None,
) -> tuple[Path, Path]:
    """WORK/key.pem (fresh, or a copy of EXISTING_KEY) and WORK/req.csr for CN=name."""
    key, csr = work / "key.pem", work / "req.csr"
    if existing_key is None:
        openssl.run(keygen_args(key_type, key, key_passphrase))
    else:
        write_atomic(key, existing_key.read_bytes(), 0o600)
    req: list[openssl.Arg] = [
        "req",
        "-new",
        "-config",
        profile.cnf,
        "-key",
        key,
        "-utf8",
        "-subj",
        subject_arg(name),
        "-out",
        csr,
    ]
    if key_passphrase is not None:
        req += ["-passin", key_passphrase]
    openssl.run(req)
    check.require_whole(key, csr)  # before signing: a refusal leaves the database alone
    return key, csr


def deliver_or_withdraw(
    profile: Profile,
    change: audit.Change,
    name: str,
    kind: str,
    work: Path,
    cert: Path,
    serial_hex: str,
    ca_passphrase: Secret | None,
    key_passphrase: Secret | None,
    p12_format: str | None,
) -> dict[str, Path]:
    """Deliver the signed certificate; if that fails, revoke it and say so in the error."""
    try:
        return _deliver(profile, name, kind, work, cert, key_passphrase, p12_format)
    except BaseException as exc:
        withdrawn = _withdraw(profile, serial_hex, ca_passphrase)
        change.details["withdrawn"] = withdrawn
        if withdrawn and isinstance(exc, CertwizError | OSError):
            error = CertwizError(
                f"{exc}; certificate {serial_hex} was signed but not delivered, "
                "so certwiz revoked it (cessationOfOperation)"
            )
            error.exit_code = getattr(exc, "exit_code", 1)
            raise error from exc
        raise


def _deliver(
    profile: Profile,
    name: str,
    kind: str,
    work: Path,
    cert: Path,
    key_passphrase: Secret | None,
    p12_format: str | None,
) -> dict[str, Path]:
    """Bundle and move the signed certificate and its key into place; returns the files."""
    key, csr = work / "key.pem", work / "req.csr"
    check.require_whole(cert)
    files = {
        "certificate": profile.cert_path(name),
        "key": profile.key_path(name),
        "csr": profile.csr_path(name),
    }
    if kind == "client":
        p12 = work / "bundle.p12"
        p12_lib.export(
            key=key,
            cert=cert,
            chain=profile.chain,  # two-level: intermediate + root
            name=name,
            out=p12,
            p12_format=p12_format or p12_lib.DEFAULT_FORMAT,
            password=key_passphrase,  # the key file is encrypted with the bundle password
            key_passphrase=key_passphrase,
        )
        check.require_whole(p12)
        install(p12, profile.p12_path(name), 0o600)
        files["p12"] = profile.p12_path(name)
    else:
        chain = work / "fullchain.pem"
        chain.write_bytes(cert.read_bytes() + profile.chain.read_bytes())
        install(chain, profile.fullchain_path(name), 0o644)
        files["fullchain"] = profile.fullchain_path(name)
    install(key, profile.key_path(name), 0o600)
    install(csr, profile.csr_path(name), 0o644)
    install(cert, profile.cert_path(name), 0o644)
    return files


def _withdraw(profile: Profile, serial_hex: str, ca_passphrase: Secret | None) -> bool:
    """Revoke a certificate that was signed but never delivered, so the name is free again.

    Its key only ever lived in the scratch directory; revoking (rather than editing
    index.txt) keeps the database exactly what `openssl ca` would write.
    """
    try:
        revoking.revoke_entry(profile, entry_of(profile, serial_hex), "cessationOfOperation",
                              ca_passphrase)  # fmt: skip
        revoking.regenerate_crl(profile, ca_passphrase, None)
    except (CertwizError, OSError, StopIteration):
        return False
    return True


def issue_server(
    profile: Profile,
    name: str,
    *,
    days: int | str | timedelta = DEFAULT_LEAF_DAYS,
    sans: list[str] | tuple[str, ...] = (),
    key_type: str = "ec:P-256",
    ca_passphrase: Secret | None = None,
) -> Issued:
    """A TLS server certificate: serverAuth only; SAN = the name plus every --san."""
    primary = names.server_name(name)
    entries = [primary]
    for value in sans:
        parsed = names.san(value)
        if parsed not in entries:
            entries.append(parsed)
    return _issue(profile, name, "server", days, key_type, entries, ca_passphrase)


def issue_client(
    profile: Profile,
    name: str,
    *,
    days: int | str | timedelta = DEFAULT_LEAF_DAYS,
    passphrase: Secret | None = None,
    key_type: str = "ec:P-256",
    p12_format: str = "compat",
    ca_passphrase: Secret | None = None,
) -> Issued:
    """A client certificate (clientAuth only) and its PKCS#12 bundle.

    With `passphrase` None the key and bundle carry no password (-u, for bots).
    """
    names.client_name(name)
    p12_lib.check_format(p12_format)
    return _issue(
        profile,
        name,
        "client",
        days,
        key_type,
        [],
        ca_passphrase,
        key_passphrase=passphrase,
        p12_format=p12_format,
    )
