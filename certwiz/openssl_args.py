"""Every `openssl` command line certwiz runs, built in one place.

Each builder returns the arguments after `openssl` for `openssl.run`; a
passphrase is a `Secret`, which `run` hands over as `fd:N`, never as text.
Keeping them together shows at a glance which options certwiz relies on (and
lets a test check each of them against the real binary). The one exception is
`openssl pkcs12 -export`, built by `p12.export_args` beside the bundle rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from .durations import validity_args
from .openssl import Arg, Secret


def _passin(passphrase: Secret | None, keyfile: Path | None = None) -> list[Arg]:
    """-keyfile (a CA key kept outside the profile) and -passin, when given."""
    found: list[Arg] = [] if keyfile is None else ["-keyfile", keyfile]
    return found if passphrase is None else [*found, "-passin", passphrase]


def _escaped(value: str) -> str:
    return "".join("\\" + ch if ch in "\\/+" else ch for ch in value)


def subject(common_name: str) -> str:
    """A -subj value with exactly one RDN, CN=common_name: `\\`, `/`, `+` escaped."""
    return f"/CN={_escaped(common_name)}"


def subject_of(rdns: Sequence[Sequence[tuple[str, str]]]) -> str:
    """A -subj value for a whole name: RDNs of (type, value) pairs, types as names or
    dotted OIDs (a device copies its certificate's subject, whatever it holds)."""
    text = "".join("/" + "+".join(f"{kind}={_escaped(value)}" for kind, value in rdn)
                   for rdn in rdns)  # fmt: skip
    return text or "/"  # the empty name


def keygen(key_type: str, out: Path, passphrase: Secret | None) -> list[Arg]:
    """`openssl genpkey` for a key type such as ec:P-256 or rsa:3072."""
    algorithm, _, parameter = key_type.partition(":")
    if algorithm == "ec":
        args: list[Arg] = [
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            f"ec_paramgen_curve:{parameter}",
        ]
    else:
        args = ["genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{parameter}"]
    if passphrase is not None:
        args += ["-aes-256-cbc", "-pass", passphrase]
    return [*args, "-out", out]


def request(
    cnf: Path,
    key: Path,
    common_name: str,
    out: Path,
    key_passphrase: Secret | None,
    subj: str | None = None,
) -> list[Arg]:
    """`openssl req -new`: a CSR for KEY with the subject CN=common_name (or SUBJ, a
    whole -subj value from `subject_of`)."""
    args: list[Arg] = ["req", "-new", "-config", cnf, "-key", key, "-utf8"]
    args += ["-subj", subj if subj is not None else subject(common_name), "-out", out]
    return args + _passin(key_passphrase)


def self_signed(
    cnf: Path, key: Path, common_name: str, days: int, out: Path, passphrase: Secret | None
) -> list[Arg]:
    """`openssl req -x509`: the profile's root certificate (extensions v3_ca)."""
    args: list[Arg] = ["req", "-new", "-x509", "-config", cnf, "-key", key, "-utf8"]
    args += ["-subj", subject(common_name), "-days", str(days), "-extensions", "v3_ca"]
    return [*args, "-out", out, *_passin(passphrase)]


def ca_sign(
    cnf: Path,
    csr: Path,
    out: Path,
    validity: timedelta,
    extfile: Path | None,
    ca_passphrase: Secret | None,
    common_name: str | None = None,
    not_before: datetime | None = None,
    end: datetime | None = None,
    *,
    rdns: Sequence[tuple[str, str]] | None = None,
    section: str = "leaf_ext",
    keyfile: Path | None = None,
) -> list[Arg]:
    """`openssl ca`: sign CSR with the extensions [SECTION] of EXTFILE only (EXTFILE None:
    of the config file CNF).

    With `common_name`, the subject is exactly CN=common_name whatever the CSR says;
    with `rdns`, exactly those RDNs. `keyfile`: the CA key is outside the profile.
    With `not_before` (probe certificates, e.g. one that expired yesterday), the
    certificate runs from then for VALIDITY; otherwise from now. `end` caps it (a
    validity cut at the CA's own end).
    """
    args: list[Arg] = ["ca", "-batch", "-config", cnf, "-in", csr, "-out", out, "-notext"]
    args += ["-utf8", *_period(validity, not_before, end)]
    args += [] if extfile is None else ["-extfile", extfile]
    args += ["-extensions", section]
    if rdns is not None:  # -preserveDN: their order (openssl.cnf's `preserve` is not read)
        args += ["-subj", subject_of([[rdn] for rdn in rdns]), "-preserveDN"]
    elif common_name is not None:
        args += ["-subj", subject(common_name)]
    return args + _passin(ca_passphrase, keyfile)


def _period(validity: timedelta, not_before: datetime | None, end: datetime | None) -> list[Arg]:
    """-days N, or -startdate/-enddate when a start is given or the end is capped."""
    stop = end if not_before is None else not_before + validity
    if end is not None and stop is not None:
        stop = min(stop, end)
    if not_before is None and stop is None:
        return list(validity_args(validity))
    period: list[Arg] = [] if not_before is None else ["-startdate", f"{not_before:%Y%m%d%H%M%SZ}"]
    return [*period, "-enddate", f"{stop:%Y%m%d%H%M%SZ}"]


def ca_sign_many(
    cnf: Path,
    csrs: list[Path],
    out: Path,
    validity: timedelta,
    extfile: Path,
    ca_passphrase: Secret | None,
    end: datetime | None = None,
) -> list[Arg]:
    """`openssl ca -infiles`: sign every CSR in one run (one database rewrite, one key load).

    openssl assigns consecutive serials in the order given and writes the certificates
    to OUT one after the other; the subjects are the CSRs' own (certwiz made them).
    """
    args: list[Arg] = ["ca", "-batch", "-config", cnf, "-out", out, "-notext", "-utf8"]
    args += [*_period(validity, None, end), "-extfile", extfile, "-extensions", "leaf_ext"]
    return [*args, *_passin(ca_passphrase), "-infiles", *csrs]  # -infiles must come last


def key_opens(key: Path, passphrase: Secret) -> list[Arg]:
    """`openssl pkey -noout`: does PASSPHRASE open the encrypted KEY (exit 0)?"""
    return ["pkey", "-in", key, "-noout", "-passin", passphrase]


def new_key_request(cnf: Path, key_type: str, key: Path, common_name: str, out: Path) -> list[Arg]:
    """`openssl req -newkey -noenc`: an unencrypted key and its CSR for CN=common_name in
    one process (keygen + request take two)."""
    algorithm, _, parameter = key_type.partition(":")
    if algorithm == "ec":
        new: list[Arg] = ["-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{parameter}"]
    else:
        new = ["-newkey", f"rsa:{parameter}"]
    args: list[Arg] = ["req", "-new", "-config", cnf, *new, "-noenc", "-keyout", key, "-utf8"]
    return [*args, "-subj", subject(common_name), "-out", out]


def ca_revoke(
    cnf: Path, cert: Path, reason: str, ca_passphrase: Secret | None, keyfile: Path | None = None
) -> list[Arg]:
    """`openssl ca -revoke`: mark CERT revoked in index.txt (the CRL is separate)."""
    args: list[Arg] = ["ca", "-batch", "-config", cnf, "-revoke", cert, "-crl_reason", reason]
    return args + _passin(ca_passphrase, keyfile)


def gencrl(
    cnf: Path,
    out: Path,
    passphrase: Secret | None,
    days: int | None = None,
    keyfile: Path | None = None,
) -> list[Arg]:
    """`openssl ca -gencrl` into OUT (the caller renames it into place)."""
    args: list[Arg] = ["ca", "-gencrl", "-batch", "-config", cnf, "-out", out]
    if days is not None:
        args += ["-crldays", str(days)]
    return args + _passin(passphrase, keyfile)


def verify(
    ca_file: Path, leaf: Path, untrusted: Path | None, purpose: str, *, partial: bool = False
) -> list[Arg]:
    """`openssl verify`: LEAF chains to CA_FILE (through UNTRUSTED) for PURPOSE, now.
    PARTIAL: every certificate in CA_FILE is an anchor (an intermediate alone will do)."""
    args: list[Arg] = ["verify", "-CAfile", ca_file, "-purpose", purpose]
    if partial:
        args.append("-partial_chain")
    if untrusted is not None:
        args += ["-untrusted", untrusted]
    return [*args, leaf]
