"""Two-level profiles: an offline root (PROFILE/root/) and an intermediate that signs.

The root is its own classic `openssl ca` directory (index.txt, serial, crlnumber,
crl.pem, openssl.cnf with a `v3_intermediate` section), so it can be driven by hand
like the profile itself. The profile's own directory is the intermediate's:
`openssl.cnf` names `intermediate.crt` and `private/ca.key`, so every leaf command
works unchanged. `ca.crt` stays the root, the file clients and servers trust;
`chain.pem` (intermediate + root) goes into every bundle, and `crl-chain.pem`
(the intermediate's CRL + the root's) is the CRL file NGINX needs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from . import (
    audit,
    database,
    der,
    derived,
    inventory,
    leaf_urls,
    names,
    ocsp,
    openssl,
    openssl_args,
)
from .ca import (
    CAOptions,
    built,
    check_options,
    new_profile,
    render_cnf,
    self_signed_ca,
    skeleton,
)
from .errors import InputError, ProfileCorrupt, StateError
from .fsutil import require_no_profile, require_safe_target, write_atomic
from .openssl import Secret
from .passphrase import Source, resolve
from .profile import ROOT_DIR, Profile
from .transaction import transaction

DEFAULT_ROOT_DAYS = 7300  # 20 years
DEFAULT_INTERMEDIATE_DAYS = 1825  # 5 years
DEFAULT_ROOT_CRL_DAYS = 365  # the root key is offline: its CRL must last


def sign_intermediate_args(
    root_cnf: Path, csr: Path, out: Path, days: int, passphrase: Secret | None, keyfile: Path | None
) -> list[openssl.Arg]:
    """`openssl ca` of the root: sign the intermediate's request with v3_intermediate."""
    args: list[openssl.Arg] = [
        "ca",
        "-batch",
        "-config",
        root_cnf,
        "-extensions",
        "v3_intermediate",
        "-days",
        str(days),
        "-notext",
        "-utf8",
        "-in",
        csr,
        "-out",
        out,
    ]
    if keyfile is not None:
        args += ["-keyfile", keyfile]
    if passphrase is not None:
        args += ["-passin", passphrase]
    return args


def check_lifetimes(days: int, root_days: int) -> None:
    if days > root_days:
        raise InputError(
            "days", f"the intermediate ({days} days) cannot outlive the root ({root_days})"
        )


def write_chain(profile: Profile, directory: Path | None = None) -> None:
    """chain.pem = intermediate + root: what leaf bundles and NGINX's trust carry."""
    where = directory or profile.dir
    write_atomic(where / "chain.pem", _whole_copy(derived.chain_bytes(where), where), 0o644)


def init(
    name: str,
    home: Path | str | None = None,
    options: CAOptions | None = None,
    passphrase: Source = None,
    *,
    root_days: int = DEFAULT_ROOT_DAYS,
    root_crl_days: int = DEFAULT_ROOT_CRL_DAYS,
) -> Profile:
    """Create profile NAME with a root (pathlen:1) and an intermediate (pathlen:0).

    Both keys take the same passphrase (a provider is called after every check).
    Built like `ca.init` (`ca.built`): the profile exists whole or not at all.
    """
    options = options or CAOptions(days=DEFAULT_INTERMEDIATE_DAYS)
    name = names.profile_name(name)
    root_cn = check_options(name, options)
    intermediate_cn = names.display_name(f"{name} Intermediate CA", "cn")
    names.days(root_days, "root-days")
    names.days(root_crl_days, "root-crl-days")
    check_lifetimes(options.days, root_days)
    profile = new_profile(name, home)
    secret = resolve(passphrase)
    with built(profile) as work:
        _build(work, profile, root_cn, intermediate_cn, options, secret, root_days, root_crl_days)
    return profile


def _build(
    work: Path,
    profile: Profile,
    root_cn: str,
    intermediate_cn: str,
    options: CAOptions,
    passphrase: Secret | None,
    root_days: int,
    root_crl_days: int,
) -> None:
    root_work, key_type = work / ROOT_DIR, options.key_type
    root_work.mkdir(mode=0o755)
    skeleton(root_work)
    (root_work / ".lock").unlink()  # the profile's lock covers root/ too
    root_cnf = root_work / "openssl.cnf"
    write_atomic(root_cnf, render_cnf(profile.root, root_work, key_type, root_crl_days, "root"))
    self_signed_ca(root_work, root_cn, key_type, root_days, passphrase)

    skeleton(work)
    ocsp.write_url(work, options.ocsp_url)  # the intermediate signs the leaves
    leaf_urls.write(work, "crl", options.crl_url)
    write_atomic(
        work / "openssl.cnf",
        render_cnf(profile, work, key_type, options.crl_days, "intermediate"),
    )
    key, csr = work / "private" / "ca.key", root_work / "reqs" / "intermediate.csr"
    openssl.run(openssl_args.keygen(key_type, key, passphrase))
    openssl.run(openssl_args.request(work / "openssl.cnf", key, intermediate_cn, csr, passphrase))
    os.chmod(csr, 0o644)
    cert = work / "intermediate.crt"
    openssl.run(sign_intermediate_args(root_cnf, csr, cert, options.days, passphrase, None))
    os.chmod(cert, 0o644)
    write_atomic(work / "ca.crt", (root_work / "ca.crt").read_bytes(), 0o644)
    write_chain(profile, work)
    openssl.run(openssl_args.gencrl(work / "openssl.cnf", work / "crl.pem", passphrase))
    os.chmod(work / "crl.pem", 0o644)
    write_crl_chain(work)
    # The configs name the final directories, for users running openssl by hand.
    write_atomic(
        root_cnf, render_cnf(profile.root, profile.root.dir, key_type, root_crl_days, "root")
    )
    write_atomic(
        work / "openssl.cnf",
        render_cnf(profile, profile.dir, key_type, options.crl_days, "intermediate"),
    )
    record = audit.new_record(profile.name, "ca init", [root_cn, intermediate_cn])
    record["key_encrypted"] = passphrase is not None
    record["intermediate"] = True
    audit.append(work / audit.AUDIT_FILE, record)


def crl_chain_dir(profile: Profile) -> Path | None:
    """The two-level profile directory whose crl-chain.pem holds PROFILE's CRL, if any."""
    level = profile.level
    if level == "intermediate":
        return profile.dir
    return profile.home if level == "root" else None


def write_crl_chain(directory: Path) -> None:
    """crl-chain.pem = the intermediate's CRL + the root's (NGINX checks every CA's CRL).

    Replaced by rename; keeps the mode and group an operator gave it (e.g. for nginx).
    A run killed before it is caught up by recovery (derived).
    """
    derived.replace(
        directory / "crl-chain.pem", _whole_copy(derived.crl_chain_bytes(directory), directory)
    )


def _whole_copy(data: bytes | None, directory: Path) -> bytes:
    """DATA, the copy derived.py built from its sources; None: a source is not a whole PEM
    file (openssl just wrote them, so the profile is damaged): never publish half of it."""
    if data is None:
        raise ProfileCorrupt(f"{directory}: a source of a copy is not a whole PEM file")
    return data


def key_certificates(profile: Profile) -> list[database.Entry]:
    """Every certificate the root signed for the key of PROFILE's intermediate, in
    index.txt order: the current one and those `ca renew` replaced (same key), which
    stay valid until they expire (the bundles issued before carry them)."""
    if not profile.two_level:
        return []
    try:
        current = der.pem_to_der(profile.intermediate_cert.read_bytes())
        serial, key = der.cert_serial(current), der.spki(current)
        entries = database.read(profile.root.index)
    except (OSError, ValueError, database.DatabaseError):
        return []  # check reports a missing or damaged file
    return [e for e in entries if e.serial == serial or _key_of(profile.root, e) == key]


def revoked_entry(profile: Profile) -> database.Entry | None:
    """The root's revocation of the intermediate that signs PROFILE's leaves, if any.

    Its current certificate revoked, or any certificate of its key revoked for a key
    compromise: either way the root has withdrawn its trust in that key, so signing
    with it, or certifying it again (`ca renew`: same key), would undo the revocation.
    """
    try:
        serial = der.cert_serial(der.pem_to_der(profile.intermediate_cert.read_bytes()))
    except (OSError, ValueError):
        return None
    for entry in key_certificates(profile):
        if entry.flag == "R" and (entry.serial == serial or entry.reason in inventory.KEY_REASONS):
            return entry
    return None


def _key_of(level: Profile, entry: database.Entry) -> bytes | None:
    """The public key (SPKI DER) of a certificate LEVEL signed; None if unreadable."""
    try:
        return der.spki(der.pem_to_der(level.newcert_path(entry.serial).read_bytes()))
    except (OSError, ValueError):
        return None


def require_unrevoked(profile: Profile) -> None:
    """StateError when the root revoked the intermediate (see revoked_entry)."""
    entry = revoked_entry(profile)
    if entry is None:
        return
    when = f"{entry.revoked_at:%Y-%m-%d}" if entry.revoked_at else "earlier"
    raise StateError(
        f"the intermediate CA of profile {profile.name} was revoked by its root "
        f"(serial {entry.serial}, {entry.reason or 'unspecified'}, {when}): it signs "
        "nothing more and is not renewed (that would certify its key again); "
        "make a new profile for its clients"
    )


def key_encrypted(path: Path) -> bool:
    with open(path, "rb") as handle:
        return b"ENCRYPTED" in handle.readline()


def check_root_key_file(path: Path) -> Path:
    """A --root-key value: a readable PEM private key file (checked before the lock)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise InputError("root-key", f"{str(path)!r}: {exc.strerror}") from None
    if not head.startswith(b"-----BEGIN ") or b"PRIVATE KEY-----" not in head:
        raise InputError("root-key", f"{str(path)!r} is not a PEM private key")
    return path


def root_keyfile(profile: Profile, given: Path | None, purpose: str) -> Path | None:
    """The root key for PURPOSE: None means it is in the profile (root/private/ca.key).

    Once exported (`ca root-key export`), what needs the root takes `--root-key
    FILE`, and refuses without it with a message that says so.
    """
    if not profile.two_level:
        if given is not None:
            raise InputError(
                "root-key",
                f"profile {profile.name} has a single CA; --root-key is for profiles made "
                "with ca init --intermediate",
            )
        return None
    if given is not None:
        return check_root_key_file(given)
    if profile.root.ca_key.is_file():
        return None
    raise StateError(
        f"{purpose} needs the root key, which is not in profile {profile.name} "
        f"(exported); give it with --root-key FILE"
    )


def check_export_target(profile: Profile, out: Path) -> Path:
    """Where `root-key export` may write: a new file outside the profile."""
    target = out.expanduser().absolute()
    if target.exists() or target.is_symlink():
        raise InputError("out", f"{target} exists; certwiz never overwrites a key file")
    if not target.parent.is_dir():
        raise InputError("out", f"{target.parent} is not a directory")
    inside = target.resolve(strict=False)
    if inside == profile.dir.resolve() or profile.dir.resolve() in inside.parents:
        raise InputError("out", f"{target} is inside the profile; the point is to move it out")
    require_no_profile("out", target)  # nor into another profile (round 12, F8)
    require_safe_target("out", target)  # the only copy of the root key: nobody may move it
    return target


def export_root_key(profile: Profile, out: Path, timeout: float | None = None) -> Path:
    """Move the root key out of the profile: write OUT (0600), verify it, remove the original.

    Leaves are still issued, renewed and revoked by the intermediate, and its CRL
    renewed; what needs the root then takes --root-key FILE.
    """
    if not profile.two_level:
        raise StateError(
            f"profile {profile.name} has a single CA (its key signs every leaf); only the root "
            "of a two-level profile (ca init --intermediate) can go offline"
        )
    target = check_export_target(profile, out)
    key = profile.root.ca_key
    if not key.is_file():
        raise StateError(f"the root key of profile {profile.name} was already exported")
    with transaction(profile, "ca root-key export", timeout=timeout) as tx:
        data = key.read_bytes()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb", closefd=False) as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            os.close(fd)
        if target.read_bytes() != data or stat.S_IMODE(target.stat().st_mode) != 0o600:
            target.unlink()
            raise StateError(f"{target} did not read back as written; the root key stays")
        _fsync_dir(target.parent)
        key.unlink()
        _fsync_dir(key.parent)
        tx.note("root_key_exported_to", str(target))
    return target


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
