"""certwiz p12: look inside PKCS#12 bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import p12
from .common import JsonOpt, P12PassOpt, bundle_password, emit, reports_errors
from .helptext import CHANGES, INTERRUPTED, help_page

p12_app = typer.Typer(help="PKCS#12 bundles: what is inside, which clients take them.",
                      no_args_is_help=True)  # fmt: skip


def _text(report: p12.Report) -> str:
    lines = [f"{report.file}: " + ("every listed client takes it" if report.ok else
                                   f"{len(report.problems)} problem(s)")]  # fmt: skip
    for i, cert in enumerate(report.certificates):
        role = "leaf" if i == 0 and not cert.is_ca else ("CA" if cert.is_ca else "other")
        lines.append(f"  certificate   {cert.subject} ({role}; issuer {cert.issuer}; "
                     f"until {cert.not_after}; serial {cert.serial})")  # fmt: skip
    match = {True: "yes", False: "NO", None: "-"}[report.key_matches]
    lines += [
        f"  key           {'present' if report.key_present else 'NONE'}; matches the leaf: {match}",
        f"  chain         {'complete' if report.chain_complete else 'INCOMPLETE'}",
        f"  key bag       {report.key_encryption or 'NOT encrypted'}",
        f"  certificates  {report.certificate_encryption or 'not encrypted'}",
        "  MAC           "
        + (f"{report.mac}, {report.mac_iterations} iterations" if report.mac else "NONE"),
        f"  password      {report.password}",
        "clients:",
    ]
    for verdict in report.clients.values():
        mark = "yes" if verdict["accepts"] else "NO "
        lines.append(f"  {mark} {verdict['client']} [{verdict['source']}]; "
                     f"password: {verdict['password']}")  # fmt: skip
    for problem in report.problems:
        breaks = ", ".join(problem.breaks) or "servers lacking the issuer"
        lines.append(f"problem: {problem.problem}\n  breaks: {breaks}\n  fix: {problem.fix}")
    return "\n".join(lines)


@p12_app.command("inspect")
@help_page(
    (
        "What a bundle of the profile holds, as JSON",
        "certwiz p12 inspect certs/my-app/private/bot-01.p12 --json",
    ),
    ("A bundle with a password", "certwiz p12 inspect alice.p12 --p12-passphrase-file alice.pass"),
    codes={
        0: "every listed client takes the bundle",
        1: "a problem was found (each with the client it breaks and the fix)",
        2: "bad input (not a PKCS#12 file, a wrong password)",
        INTERRUPTED: CHANGES[INTERRUPTED],
    },
)
@reports_errors
def p12_inspect(
    file: Annotated[Path, typer.Argument(help="The .p12 / .pfx bundle.", show_default=False)],
    p12_passphrase_file: P12PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What a bundle holds and which clients take it.

    Certificates, whether the key matches the leaf, chain, key and certificate
    encryption, MAC; each problem with the client it breaks and the fix.

    No password source (and no terminal) means the empty password.
    """
    report = p12.inspect(file, bundle_password(p12_passphrase_file, str(file)))
    emit(as_json, report.as_dict(), _text(report))
    if not report.ok:
        raise typer.Exit(1)
