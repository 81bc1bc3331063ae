"""Issuing a fleet of client certificates from a CSV file in one process, under one lock.

`read_rows` checks every row before anything is written (all or nothing; an error
names the file, line and column). `issue_batch` then, in ONE transaction (one lock,
one recovery and consistency check, one audit record listing every serial):

1. makes every key and CSR on all cores (concurrent openssl processes);
2. installs each key and CSR (the key before its certificate exists: a run killed
   after signing leaves every certificate next to its own key, and recovery restores
   issued/NAME.crt from newcerts/ as it does for `client issue`);
3. signs with ONE `openssl ca -infiles` run per validity period (the extensions of a
   client do not differ by row);
4. exports the PKCS#12 bundles on all cores and installs them with the certificates.

A rerun of the same file issues only what is missing: a name whose valid certificate
has its key delivered is skipped when its bundle is there, and gets its bundle when a
killed run left none. A name with a valid certificate certwiz did not deliver a key
for is refused (revoke it first), like `client issue` refuses it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from . import check, crl, database, der, durations, inventory, names, openssl, upkeep
from . import openssl_args as args
from . import p12 as p12_lib
from .errors import InputError, StateError
from .est import invites
from .fsutil import install_many, read_bounded, scratch_dir
from .issue import DEFAULT_LEAF_DAYS, ca_end_cap, leaf_extfile, other_kind
from .openssl import Secret
from .passphrase import Source, bundle_passphrase, signing_passphrase
from .profile import Profile
from .transaction import Transaction, transaction

COLUMNS = ("name", "days", "unencrypted", "p12_format")
MAX_BYTES = 8 << 20  # about 100,000 rows; more is not a fleet file (or it is /dev/zero)
MAX_ROWS = 100_000
MAX_PER_RUN = 2000  # CSRs per `openssl ca -infiles` run: its argv stays far below ARG_MAX
_TRUE, _FALSE = ("true", "yes", "1", "y"), ("false", "no", "0", "n")

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class Row:
    """One checked line of the fleet file."""

    line: int
    name: str
    validity: timedelta
    unencrypted: bool
    p12_format: str
    source: str = "rows"  # the file it came from, for messages


@dataclass(frozen=True)
class Item:
    """What happened to one row: issued, completed (bundle made for a certificate a
    killed run signed) or skipped (already issued with its files)."""

    line: int
    name: str
    action: str
    serial: str
    not_after: str
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchResult:
    items: list[Item]
    notes: list[str] = field(default_factory=list)
    crl: str | None = None  # the CRL NGINX reads, when this run published a new one

    def of(self, action: str) -> list[Item]:
        return [i for i in self.items if i.action == action]


# ---- the file ----------------------------------------------------------------------


def _where(source: str, line: int, column: str | None = None) -> str:
    return f"{source}:{line}" + (f": {column}" if column else "")


def read_rows(
    path: Path,
    *,
    days: int | str | timedelta = DEFAULT_LEAF_DAYS,
    unencrypted: bool = False,
    p12_format: str = p12_lib.DEFAULT_FORMAT,
) -> list[Row]:
    """The rows of a fleet CSV file, every one checked; InputError naming line and column.

    `days`, `unencrypted` (-u) and `p12_format` are the defaults of empty cells.
    """
    data = read_bounded(path, "from", MAX_BYTES)  # /dev/zero must not fill the memory
    return parse_rows(data, str(path), days=days, unencrypted=unencrypted, p12_format=p12_format)


def parse_rows(
    data: bytes,
    source: str,
    *,
    days: int | str | timedelta = DEFAULT_LEAF_DAYS,
    unencrypted: bool = False,
    p12_format: str = p12_lib.DEFAULT_FORMAT,
) -> list[Row]:
    """`read_rows` on the bytes of a file named SOURCE in messages."""
    default_validity = durations.parse(days, "days")
    p12_lib.check_format(p12_format)
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise InputError(_where(source, line), "contains a NUL byte: not a CSV text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(_where(source, line), "not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    try:
        header = _header(next(reader, None), source)
        rows: list[Row] = []
        first_line: dict[str, int] = {}
        for cells in reader:
            line = reader.line_num
            if not cells or cells == [""]:
                continue  # a blank line
            if len(rows) >= MAX_ROWS:
                raise InputError(_where(source, line), f"more than {MAX_ROWS} rows")
            if len(cells) != len(header):
                raise InputError(
                    _where(source, line), f"{len(cells)} fields where the header has {len(header)}"
                )
            cells_of = dict(zip(header, cells, strict=True))
            row = _row(cells_of, source, line, default_validity, unencrypted, p12_format)
            if row.name in first_line:
                raise InputError(
                    _where(source, line, "name"),
                    f"{row.name!r} repeats line {first_line[row.name]}",
                )
            first_line[row.name] = line
            rows.append(row)
    except csv.Error as exc:
        raise InputError(_where(source, reader.line_num), f"not valid CSV ({exc})") from None
    if not rows:
        raise InputError(source, "no rows: the file holds a header and no client")
    return rows


def _header(cells: list[str] | None, source: str) -> list[str]:
    if not cells:
        raise InputError(_where(source, 1), f"no header; the columns are {', '.join(COLUMNS)}")
    header = [c.strip().lower() for c in cells]
    for column in header:
        if "pass" in column or "secret" in column or column in ("pin", "pwd", "key"):
            raise InputError(
                _where(source, 1, column),
                "a password column is refused (a file of passwords is a leak waiting): "
                "give one password for the batch with --p12-passphrase-file, or -u",
            )
        if column not in COLUMNS:
            raise InputError(
                _where(source, 1, column or "(empty)"),
                f"unknown column; the columns are {', '.join(COLUMNS)}",
            )
        if header.count(column) > 1:
            raise InputError(_where(source, 1, column), "appears twice in the header")
    if "name" not in header:
        raise InputError(_where(source, 1), "no name column")
    return header


def _row(
    cells: dict[str, str],
    source: str,
    line: int,
    default_validity: timedelta,
    default_unencrypted: bool,
    default_format: str,
) -> Row:
    column = "name"
    try:
        name = names.client_name(cells["name"])
        column = "days"
        days = cells.get("days", "").strip()
        validity = durations.parse(days, "days") if days else default_validity
        column = "unencrypted"
        flag = cells.get("unencrypted", "").strip().lower()
        if flag not in ("", *_TRUE, *_FALSE):
            raise InputError(column, f"{flag!r} is not true or false")
        unencrypted = flag in _TRUE or (not flag and default_unencrypted)
        if default_unencrypted and flag in _FALSE:
            raise InputError(column, f"{flag!r}, but -u says every bundle has no password")
        column = "p12_format"
        fmt = cells.get("p12_format", "").strip() or default_format
        p12_lib.check_format(fmt)
    except InputError as exc:
        raise InputError(_where(source, line, column), exc.rule) from None
    return Row(line, name, validity, unencrypted, fmt, source)


# ---- what the profile already holds ------------------------------------------------


def _valid_of(profile: Profile, rows: Sequence[Row]) -> dict[str, inventory.Clash]:
    """What takes each row's name (`inventory.clashes`, one pass over each database): its
    newest valid certificate, or a server or subordinate CA the name would be mistaken for."""
    found = inventory.clashes_of(profile, [row.name for row in rows], fold=False)
    return {name: clashing[0] for name, clashing in found.items()}


def _key_delivered(profile: Profile, name: str, entry: database.Entry) -> bool:
    """Is this a client certificate whose key certwiz delivered (NAME's key is in the
    profile and its request holds the same key)? A server's is never a fleet row's."""
    try:
        pem = profile.newcert_path(entry.serial).read_bytes()
        return (
            der.kind_of(pem) == "client"
            and profile.key_path(name).is_file()
            and der.same_public_key(pem, profile.csr_path(name).read_bytes())
        )
    except OSError:
        return False


def plan(profile: Profile, rows: Sequence[Row]) -> tuple[list[Row], dict[str, Row]]:
    """(rows to issue, {name: row} of rows already issued with their key).

    A name with a valid certificate whose key certwiz did not deliver is refused
    (StateError naming the line): issuing would make it a second valid certificate.
    """
    valid = _valid_of(profile, rows)
    todo: list[Row] = []
    done: dict[str, Row] = {}
    for row in rows:
        clash = valid.get(row.name)
        if clash is None:
            todo.append(row)
            continue
        problem = other_kind(profile, row.name, clash)
        if problem:
            raise StateError(f"{_where(row.source, row.line, 'name')}: {problem}")
        entry = clash.entry
        if _key_delivered(profile, row.name, entry):
            done[row.name] = row
        else:
            raise StateError(
                f"{_where(row.source, row.line, 'name')}: {row.name} already has a valid "
                f"certificate (serial {entry.serial}, expires "
                f"{entry.not_after:%Y-%m-%d %H:%M:%SZ}) that is not a client's whose key "
                "certwiz delivered; "
                f"revoke it first: certwiz revoke -p {profile.name} -n {row.name}"
            )
    return todo, done


# ---- issuing -----------------------------------------------------------------------


def issue_batch(
    profile: Profile,
    rows: Sequence[Row],
    *,
    passphrase: Source = None,
    key_type: str = "ec:P-256",
    ca_passphrase: Source = None,
    timeout: float | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> BatchResult:
    """Issue every row's client certificate and bundle in one transaction (see the module).

    `passphrase` is the one bundle password of the rows that are not unencrypted; it is
    asked for (a provider is called) only if such a row needs a new bundle.
    """
    names.key_type(key_type)
    for validity in {row.validity for row in rows}:
        ca_end_cap(profile, validity)  # an expired CA is refused before the lock
    todo, done = plan(profile, rows)  # refusals leave no trace: before the lock
    secret = bundle_passphrase(passphrase, unencrypted=not _needs_password(profile, todo, done))
    ca_secret = signing_passphrase(profile, ca_passphrase) if todo else None
    report = progress or (lambda stage, n, total: None)
    with transaction(profile, "client issue-batch", [r.name for r in rows], timeout=timeout) as tx:
        todo, done = plan(profile, rows)  # again, under the lock, after recovery
        if secret is None and _needs_password(profile, todo, done):
            secret = bundle_passphrase(passphrase, unencrypted=False)
        if todo and ca_secret is None:
            ca_secret = signing_passphrase(profile, ca_passphrase)
        return _issue_in(tx, rows, todo, done, key_type, secret, ca_secret, report, workers)


def _needs_password(profile: Profile, todo: list[Row], done: dict[str, Row]) -> bool:
    """Will a bundle with a password be made (a new row, or a missing bundle)?"""
    missing = [r for r in done.values() if not profile.p12_path(r.name).exists()]
    return any(not r.unencrypted for r in [*todo, *missing])


def _issue_in(
    tx: Transaction,
    rows: Sequence[Row],
    todo: list[Row],
    done: dict[str, Row],
    key_type: str,
    secret: Secret | None,
    ca_secret: Secret | None,
    report: Progress,
    workers: int | None,
) -> BatchResult:
    profile = tx.profile
    crl_before = crl.crl_version(profile)
    if todo and tx.crl_missing:  # a revocation a killed run left out of the CRL
        crl.regenerate_crl(profile, ca_secret, None)
        tx.crl_missing.clear()
    signed: dict[str, database.Entry] = {}
    if todo and ca_secret is not None:  # a wrong CA passphrase: refused before any key is made
        openssl.run(args.key_opens(profile.ca_key, ca_secret))
    with scratch_dir(profile.dir) as work:
        if todo:
            _keys_and_requests(profile, work, todo, key_type, secret, report, workers)
            signed = _sign(tx, work, todo, key_type, ca_secret, report)
        cancelled = invites.cancel(tx, signed)  # as issue.sign does for one name
        bundles = [r for r in rows if r.name in signed or not profile.p12_path(r.name).exists()]
        held = _valid_of(profile, list(done.values()))
        certs = {**{name: clash.entry for name, clash in held.items()}, **signed}
        _bundles(profile, work, bundles, certs, secret, report, workers)
    notes = cancelled + (upkeep.tidy(profile, tx, ca_secret) if todo else [])
    bundled = {r.name for r in bundles}
    tx.note("skipped", [r.name for r in rows if r.name not in bundled])
    items = []
    for row in rows:
        entry = certs[row.name]
        action = (
            "issued" if row.name in signed else "completed" if row.name in bundled else "skipped"
        )
        items.append(
            Item(
                row.line,
                row.name,
                action,
                entry.serial,
                durations.stamp(entry.not_after),
                _files(profile, row.name),
            )
        )
    published = crl.crl_version(profile) != crl_before
    return BatchResult(items, notes, str(profile.nginx_crl) if published else None)


def _files(profile: Profile, name: str) -> dict[str, str]:
    paths = {
        "certificate": profile.cert_path(name),
        "key": profile.key_path(name),
        "csr": profile.csr_path(name),
        "p12": profile.p12_path(name),
    }
    return {kind: str(path) for kind, path in paths.items()}


def _keys_and_requests(
    profile: Profile,
    work: Path,
    todo: list[Row],
    key_type: str,
    secret: Secret | None,
    report: Progress,
    workers: int | None,
) -> None:
    """Every key and CSR on all cores, then each installed (old bundle first removed)."""
    chains: list[list[list[openssl.Arg]]] = []
    for i, row in enumerate(todo):
        key, csr = work / f"{i}.key", work / f"{i}.csr"
        if row.unencrypted:
            chains.append([args.new_key_request(profile.cnf, key_type, key, row.name, csr)])
        else:  # the key file is encrypted with the bundle password, as `client issue` does
            chains.append(
                [
                    args.keygen(key_type, key, secret),
                    args.request(profile.cnf, key, row.name, csr, secret),
                ]
            )
    count = 0

    def one_done(_: int) -> None:
        nonlocal count
        count += 1
        report("keys", count, len(todo))

    report("keys", 0, len(todo))
    openssl.run_concurrently(chains, workers=workers, done=one_done)
    for i in range(len(todo)):
        check.require_whole(work / f"{i}.key", work / f"{i}.csr")
    for row in todo:
        # The bundle of an older certificate goes first: a bundle beside a key is the
        # one made from it (a rerun takes its presence as "delivered").
        profile.p12_path(row.name).unlink(missing_ok=True)
    moves = [(work / f"{i}.key", profile.key_path(row.name), 0o600) for i, row in enumerate(todo)]
    moves += [(work / f"{i}.csr", profile.csr_path(row.name), 0o644) for i, row in enumerate(todo)]
    install_many(moves)  # every key before its request: a request names a delivered key


def _sign(
    tx: Transaction,
    work: Path,
    todo: list[Row],
    key_type: str,
    ca_secret: Secret | None,
    report: Progress,
) -> dict[str, database.Entry]:
    """One `openssl ca -infiles` run per validity period (at most MAX_PER_RUN CSRs each)."""
    profile = tx.profile
    extfile = leaf_extfile(profile, work, "client", key_type.startswith("rsa"), [])
    assert extfile is not None  # rendered: one file for the whole batch
    groups: dict[timedelta, list[Row]] = {}
    for row in todo:
        groups.setdefault(row.validity, []).append(row)
    signed: dict[str, database.Entry] = {}
    report("sign", 0, len(todo))
    for validity, group in groups.items():
        end, capped = ca_end_cap(profile, validity)
        if capped:
            tx.note("validity_capped", capped)
        for start in range(0, len(group), MAX_PER_RUN):
            part = group[start : start + MAX_PER_RUN]
            first = int(profile.serial.read_text().strip(), 16)  # openssl ca assigns from here
            csrs = [profile.csr_path(row.name) for row in part]
            with check.guarded(profile):
                openssl.run(
                    args.ca_sign_many(
                        profile.cnf, csrs, work / "signed.pem", validity, extfile, ca_secret, end
                    )
                )
            new = {e.serial_int: e for e in database.read(profile.index) if e.serial_int >= first}
            for offset, row in enumerate(part):
                entry = new.get(first + offset)
                if entry is None or entry.common_name != row.name:
                    raise check.ProfileCorrupt(
                        f"{profile.index}: openssl ca -infiles did not sign {row.name} "
                        f"as serial {first + offset:X}"
                    )
                tx.note_serial(entry.serial)
                signed[row.name] = entry
            report("sign", len(signed), len(todo))
    return signed


def _bundles(
    profile: Profile,
    work: Path,
    rows: list[Row],
    certs: dict[str, database.Entry],
    secret: Secret | None,
    report: Progress,
    workers: int | None,
) -> None:
    """The PKCS#12 bundles on all cores, each installed with issued/NAME.crt."""
    chains = []
    for i, row in enumerate(rows):
        password = None if row.unencrypted else secret
        chains.append(
            [
                p12_lib.export_args(
                    key=profile.key_path(row.name),
                    cert=profile.newcert_path(certs[row.name].serial),
                    chain=profile.chain,
                    name=row.name,
                    out=work / f"{i}.p12",
                    p12_format=row.p12_format,
                    password=password,
                    key_passphrase=password,
                )
            ]
        )
    count = 0

    def one_done(i: int) -> None:
        nonlocal count
        check.require_whole(work / f"{i}.p12")
        count += 1
        report("bundles", count, len(rows))

    if not rows:
        return
    report("bundles", 0, len(rows))
    openssl.run_concurrently(chains, workers=workers, done=one_done)
    moves = []
    for i, row in enumerate(rows):
        moves.append((work / f"{i}.p12", profile.p12_path(row.name), 0o600))
        pem = profile.newcert_path(certs[row.name].serial).read_bytes()
        cert = profile.cert_path(row.name)
        if not cert.is_file() or cert.read_bytes() != pem:
            (work / f"{i}.crt").write_bytes(pem)
            moves.append((work / f"{i}.crt", cert, 0o644))
    install_many(moves)
