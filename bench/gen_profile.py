"""Write a large, valid certwiz profile fast: N client certificates, some revoked.

    .venv/bin/python bench/gen_profile.py --home /tmp/big --profile big --count 100000 \
        --revoked 10000

Signing 100,000 certificates one `openssl ca` run at a time takes hours; this takes
seconds to a minute. The profile is made by `certwiz ca init` (real CA key, openssl.cnf,
audit log). Then, as `openssl ca` would have left them after N issues and R revokes:

- newcerts/SERIAL.pem: a real certificate signed by the profile's CA key (the client
  extensions certwiz gives: CA:FALSE, digitalSignature, clientAuth, SKI, AKI); names
  bot-000000, bot-000001, ...; serials counting up from the profile's random start;
- issued/NAME.crt: each name's certificate, a hard link to its newcerts file (recovery
  would otherwise restore every one of them on the first change; certwiz replaces files
  by rename, so a later change never writes through the link);
- index.txt: one line per certificate in openssl's format, R lines with revocation time
  and reason; not-after dates spread from 10 days ago to a year ahead, so some are
  expired (still V, as `openssl ca` leaves them) and some expire within 30 days;
- serial: the next serial; crl.pem and crlnumber: from a real `openssl ca -gencrl` run.

What it does not write: leaf keys and PKCS#12 bundles (nothing reads them when checking
or listing), and one key pair is shared by every leaf (only the signatures differ): key
generation would dominate the run and is measured separately by the benchmark.
`certwiz check -p PROFILE` passes on the result.

Speed: each certificate is a template TBSCertificate with serial, name and dates
patched in place (fixed-width fields), signed with ECDSA by the CA key; the work is split
over every core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from certwiz import ca
from certwiz.profile import Profile

NAME_FORMAT = "bot-{:06d}"
REASONS = ("keyCompromise", "superseded", "cessationOfOperation", "affiliationChanged")
UTC_FORMAT = "%y%m%d%H%M%SZ"  # UTCTime, as openssl writes dates before 2050


def read_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, content, offset after) of the DER element at POS (lengths up to 4 bytes)."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    return tag, data[pos : pos + length], pos + length


def der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


class Template:
    """A signed certificate's TBS bytes with the offsets of its variable fields."""

    def __init__(self, profile: Profile) -> None:
        self.ca_key = serialization.load_pem_private_key(profile.ca_key.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(profile.ca_cert.read_bytes())
        leaf = ec.generate_private_key(ec.SECP256R1()).public_key()
        self.serial0 = (1 << 126) | 0x5EED  # 16 DER bytes, found by value
        self.name0 = NAME_FORMAT.format(0)
        self.nb0 = dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
        self.na0 = dt.datetime(2002, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
        ski = x509.SubjectKeyIdentifier.from_public_key(leaf)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name0)]))
            .issuer_name(ca_cert.subject)
            .public_key(leaf)
            .serial_number(self.serial0)
            .not_valid_before(self.nb0)
            .not_valid_after(self.na0)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), False
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.tbs = cert.tbs_certificate_bytes
        der = cert.public_bytes(serialization.Encoding.DER)
        _, body, _ = read_tlv(der, 0)
        _, _, after_tbs = read_tlv(body, 0)
        _, _, after_alg = read_tlv(body, after_tbs)
        self.sig_alg = body[after_tbs:after_alg]
        self.at_serial = self.tbs.index(self.serial0.to_bytes(16, "big"))
        self.at_name = self.tbs.index(self.name0.encode())
        self.at_nb = self.tbs.index(self.nb0.strftime(UTC_FORMAT).encode())
        self.at_na = self.tbs.index(self.na0.strftime(UTC_FORMAT).encode())

    def pem(self, serial: int, name: str, not_before: str, not_after: str) -> bytes:
        tbs = bytearray(self.tbs)
        tbs[self.at_serial : self.at_serial + 16] = serial.to_bytes(16, "big")
        tbs[self.at_name : self.at_name + len(name)] = name.encode()
        tbs[self.at_nb : self.at_nb + 13] = not_before.encode()
        tbs[self.at_na : self.at_na + 13] = not_after.encode()
        signature = self.ca_key.sign(bytes(tbs), ec.ECDSA(hashes.SHA256()))
        bits = b"\x03" + der_length(len(signature) + 1) + b"\x00" + signature
        body = bytes(tbs) + self.sig_alg + bits
        der = b"\x30" + der_length(len(body)) + body
        import base64

        text = base64.encodebytes(der).replace(b"\n", b"")
        lines = b"\n".join(text[i : i + 64] for i in range(0, len(text), 64))
        return b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"


_TEMPLATE: Template | None = None


def _start(home: str, name: str) -> None:
    global _TEMPLATE
    _TEMPLATE = Template(Profile(name, Path(home)))


def _write(job: tuple[str, str, list[tuple[int, str, str, str]]]) -> None:
    home, name, rows = job
    profile = Profile(name, Path(home))
    assert _TEMPLATE is not None
    for serial, cn, not_before, not_after in rows:
        pem = _TEMPLATE.pem(serial, cn, not_before, not_after)
        stored = profile.newcerts / f"{serial:032X}.pem"
        stored.write_bytes(pem)
        os.link(stored, profile.issued / f"{cn}.crt")  # the same bytes, half the writes


def generate(
    home: Path, name: str, count: int, revoked: int, seed: int = 11, jobs: int | None = None
) -> Profile:
    """Create profile NAME under HOME with COUNT certificates, REVOKED of them revoked."""
    profile = ca.init(name, home)
    # The template's serial field must keep its width; serials count up from the profile's start.
    rng = random.Random(seed)
    start = int(profile.serial.read_text(), 16)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rows: list[tuple[int, str, str, str]] = []
    index: list[str] = []
    revoked_at = set(rng.sample(range(count), revoked))
    for i in range(count):
        serial, cn = start + i, NAME_FORMAT.format(i)
        not_after = now + dt.timedelta(seconds=rng.randrange(-10 * 86400, 365 * 86400))
        not_before = not_after - dt.timedelta(days=365)
        na, nb = not_after.strftime(UTC_FORMAT), not_before.strftime(UTC_FORMAT)
        rows.append((serial, cn, nb, na))
        if i in revoked_at:
            when = (now - dt.timedelta(seconds=rng.randrange(1, 86400 * 30))).strftime(UTC_FORMAT)
            index.append(f"R\t{na}\t{when},{rng.choice(REASONS)}\t{serial:032X}\tunknown\t/CN={cn}")
        else:
            index.append(f"V\t{na}\t\t{serial:032X}\tunknown\t/CN={cn}")
    workers = jobs or os.cpu_count() or 1
    chunk = max(1, count // (workers * 8))
    batches = [(str(home), name, rows[i : i + chunk]) for i in range(0, count, chunk)]
    with ProcessPoolExecutor(workers, initializer=_start, initargs=(str(home), name)) as pool:
        list(pool.map(_write, batches))
    profile.index.write_text("".join(line + "\n" for line in index))
    profile.serial.write_text(f"{start + count:032X}\n")
    subprocess.run(
        [
            "openssl",
            "ca",
            "-gencrl",
            "-batch",
            "-config",
            str(profile.cnf),
            "-out",
            str(profile.crl),
        ],
        check=True,
        capture_output=True,
    )
    return profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--profile", default="big")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--revoked", type=int, default=None, help="default: count / 10")
    parser.add_argument("--jobs", type=int, default=None, help="default: every core")
    args = parser.parse_args()
    revoked = args.count // 10 if args.revoked is None else args.revoked
    started = time.perf_counter()
    profile = generate(args.home.absolute(), args.profile, args.count, revoked, jobs=args.jobs)
    print(
        f"{profile.dir}: {args.count} certificates, {revoked} revoked, "
        f"in {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
