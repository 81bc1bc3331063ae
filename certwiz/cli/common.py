"""What the command groups share: options, error reporting, printing, the CLI's settings.

The CLI's part of passphrases is only where they come from (file, env, prompt):
the rules (asked only for an encrypted CA key, a bundle password unless -u)
are in `certwiz.passphrase`, applied by the library.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from json.encoder import encode_basestring_ascii as _quote  # json.dumps' own
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from .. import names
from ..errors import CertwizError, InputError
from ..nginx.control import NGINX_CMD_ENV
from ..passphrase import CA_ENV, P12_ENV, Provider
from ..profile import LOCK_TIMEOUT_ENV, lock_timeout
from .prompts import obtain

if TYPE_CHECKING:  # a command module imports only what its own commands use
    from ..api import CA
    from ..batch import BatchResult
    from ..issue import Issued
    from ..openssl import Secret
    from ..profile import Profile

ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile (CA workspace) name.")]
NameOpt = Annotated[str, typer.Option("--name", "-n", help="Certificate name (its CN).")]
HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Directory of the profiles (else env CERTWIZ_HOME, else 'home = DIR' in "
        "/etc/certwiz.conf or the file in env CERTWIZ_CONFIG, else ./certs).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
CAPassOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-passphrase-file",
        help=f"File whose first line is the CA passphrase "
        f"[or env {CA_ENV}, or a prompt on a terminal].",
    ),
]
KeyTypeOpt = Annotated[str, typer.Option("--key-type", help=", ".join(names.KEY_TYPES))]
LeafDaysOpt = Annotated[
    str,
    typer.Option("--days", "-d", help="Validity: 30d, 12h, 90m, 2w, or a plain number of days."),
]
CsrOpt = Annotated[
    Path,
    typer.Option("--csr", help="The certificate signing request (PEM or DER) made elsewhere."),
]
CsrNameOpt = Annotated[
    str | None,
    typer.Option("--name", "-n", help="Certificate name [default: the CSR's CN; if both, equal]."),
]
P12PassOpt = Annotated[
    Path | None,
    typer.Option(
        "--p12-passphrase-file",
        help=f"File whose first line is the bundle password [or env {P12_ENV}, or a prompt].",
    ),
]
P12FormatOpt = Annotated[
    str,
    typer.Option(
        "--p12-format",
        help="compat (3DES/SHA-1 MAC: macOS, Windows, Java, Android) or modern (AES-256/SHA-256).",
    ),
]
GraceOpt = Annotated[
    str | None,
    typer.Option(
        "--grace",
        help="Keep the old certificate valid this long (7d, 12h, ...) so clients can switch "
        "over; then the next change or crl gen revokes it (superseded).",
    ),
]
ReuseKeyOpt = Annotated[
    bool, typer.Option("--reuse-key", help="Keep the current key (default: a new key).")
]
RootKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--root-key",
        help="The root key file, once exported (ca root-key export): for what needs the root.",
    ),
]
ReloadOpt = Annotated[
    bool, typer.Option("--reload", help="Then run `nginx -t` and, if it passes, `nginx -s reload`.")
]
NginxCmdOpt = Annotated[
    str | None,
    typer.Option(
        "--nginx-cmd",
        help=f"The nginx command, split like a shell would, e.g. "
        f"'nginx -c /etc/nginx/nginx.conf' (env {NGINX_CMD_ENV}; default: nginx).",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn a CertwizError into one line on stderr and its exit code (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CertwizError as exc:
            typer.echo(f"certwiz: error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            # jinja2's TemplateNotFound is an OSError without strerror or filename
            what = f"{exc.strerror}: {exc.filename}" if exc.strerror else str(exc) or repr(exc)
            typer.echo(f"certwiz: error: {what}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("certwiz: interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def emit(as_json: bool, data: dict[str, Any] | list[Any], text: str) -> None:
    typer.echo(json.dumps(data, indent=2) if as_json else text)


def warn(text: str) -> None:
    typer.echo(f"certwiz: warning: {text}", err=True)


def command_lock_timeout(ctx: typer.Context) -> float:
    """--lock-timeout (kept by the app callback in the root context), else the env, else 60."""
    given = ctx.find_root().obj
    if isinstance(given, float):
        return given
    return lock_timeout(os.environ.get(LOCK_TIMEOUT_ENV), LOCK_TIMEOUT_ENV)


def ca_passphrase_source(profile: str, file: Path | None) -> Provider:
    """Where the CA passphrase comes from; the library asks only for an encrypted key."""

    def provide() -> Secret | None:
        prompt = f"Passphrase of the {profile} CA key: "
        return obtain(file, CA_ENV, "ca-passphrase-file", prompt, confirm=False)

    return provide


def emit_json_list(items: Iterable[dict[str, Any]]) -> None:
    """Print what json.dumps(list(items), indent=2) would, one item at a time.

    A 100,000-certificate list never exists as one string or as 100,000 dicts at once.
    """
    out = sys.stdout
    first = True
    for item in items:
        out.write("[\n  " if first else ",\n  ")
        out.write(_flat_json(item) or json.dumps(item, indent=2).replace("\n", "\n  "))
        first = False
    out.write("[]\n" if first else "\n]\n")
    out.flush()


def _flat_json(item: dict[str, Any]) -> str | None:
    """json.dumps(ITEM, indent=2), indented one level more, for a dict whose values are
    strings or None (a `list` item), with the C string encoder json.dumps uses: its
    indenting encoder is pure Python, a third of `list --json`'s time at 7,000 items.
    None for any other dict (the caller then asks json.dumps)."""
    if not item:
        return None
    parts = []
    for key, value in item.items():
        if key.__class__ is not str or (value is not None and value.__class__ is not str):
            return None
        parts.append(f"{_quote(key)}: {'null' if value is None else _quote(value)}")
    return "{\n    " + ",\n    ".join(parts) + "\n  }"


def open_ca(
    ctx: typer.Context, profile: str, home: Path | None, ca_passphrase_file: Path | None = None
) -> CA:
    """The profile's CA with this command's lock timeout and CA passphrase source."""
    from ..api import CA

    return CA.open(
        profile,
        home,
        lock_timeout=command_lock_timeout(ctx),
        ca_passphrase=ca_passphrase_source(profile, ca_passphrase_file),
    )


def bundle_password(file: Path | None, what: str) -> Secret | None:
    """An existing bundle's password (file, env, prompt); None means the empty one."""
    return obtain(file, P12_ENV, "p12-passphrase-file", f"Password for {what} (empty: none): ",
                  confirm=False, min_length=1)  # fmt: skip


def files_text(files: dict[str, str]) -> str:
    return "\n".join(f"  {kind + ':':13}{path}" for kind, path in files.items())


def notes_text(notes: list[str]) -> str:
    """What a command did besides its own work (a CRL renewed, a grace ended), one line each.

    The "Also" is worded here only: a note is what was done ("revoked 1A (bot): ..."),
    as the audit record and --json carry it."""
    return "".join(f"\nAlso {note}" for note in notes)


def report_issued(as_json: bool, done: Issued) -> None:
    """What was issued; when the change also published a CRL, that nginx needs a reload."""
    data: dict[str, Any] = asdict(done)
    reload = ""
    if done.crl is not None:
        data["reload_command"] = reload_command()
        reload = new_crl_text(done.crl, data["reload_command"])
    emit(
        as_json,
        data,
        f"Issued {done.kind} certificate {done.name} "
        f"(serial {done.serial}, valid until {done.not_after})\n{files_text(done.files)}"
        f"{notes_text(done.notes)}{reload}",
    )


def deploy_crl(
    as_json: bool,
    data: dict[str, Any],
    text: str,
    words: list[str],
    argv: list[str] | None,
    profile: Profile | None = None,
) -> None:
    """Print what changed; with --reload make nginx load it (a new CRL or new configs)
    and wait until it serves, else say how. With PROFILE, a configuration in which a
    server admits its clients against another CRL is not reloaded (nginx/enforce.py)."""
    from .. import nginx as nginx_lib

    hint = nginx_lib.reload_hint(words)
    if argv is None:
        emit(
            as_json,
            {**data, "reloaded": False, "reload_command": hint},
            f"{text}\nnginx enforces it only after a reload; run: {hint}",
        )
        return
    try:
        from ..nginx import enforce

        refuse = (lambda dump: enforce.stale_servers(profile, dump)) if profile else None
        done = nginx_lib.reload(argv, refuse=refuse)
    except nginx_lib.NginxError:
        # the change (a revocation, its CRL) is committed: say so, and how to finish
        published = (
            f"The CRL {data['crl']} is published, but nginx does not enforce it yet: "
            if data.get("crl")
            else ""
        )
        emit(
            as_json,
            {**data, "reloaded": False, "reload_command": hint},
            f"{text}\n{published}nginx was NOT reloaded; fix the error below, then run: {hint}",
        )
        raise
    served = (
        f"only new workers accept connections after {done.seconds:.2f}s"
        if done.master is not None
        else done.note
    )
    emit(
        as_json,
        {**data, "reloaded": True, "reload_command": hint, "reload_wait": asdict(done)},
        f"{text}\nnginx: config test passed, reloaded: {shlex.join(argv)} -s reload; {served}",
    )


def reload_command() -> str:
    """The command that makes nginx read a new CRL (a bad $CERTWIZ_NGINX_CMD: plain nginx)."""
    from .. import nginx as nginx_lib

    try:
        words = nginx_lib.command_words(None)
    except InputError:  # a bad $CERTWIZ_NGINX_CMD must not hide what was done
        words = ["nginx"]
    return nginx_lib.reload_hint(words)


@contextlib.contextmanager
def progress_bar(shown: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A Rich progress bar for a long library call (its `progress` callback), or None.

    Shown only on a terminal and never with --json: a pipe or a script gets plain output.
    """
    if not shown:
        yield None
        return
    from rich.progress import Progress

    labels = {"keys": "keys and requests", "sign": "signing", "bundles": "bundles"}
    with Progress(transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def batch_json(done: BatchResult, profile: str) -> dict[str, Any]:
    """`client issue-batch --json`: every name with its serial and files, by action."""
    data: dict[str, Any] = {"profile": profile}
    for action in ("issued", "completed", "skipped"):
        data[action] = [asdict(item) for item in done.of(action)]
    data["notes"] = done.notes
    data["crl"] = done.crl
    if done.crl is not None:
        data["reload_command"] = reload_command()
    return data


def batch_text(done: BatchResult) -> str:
    lines = []
    for item in done.items:
        if item.action == "skipped":
            lines.append(
                f"skipped {item.name} (line {item.line}): already issued with its files "
                f"(serial {item.serial})"
            )
        else:
            what = "issued" if item.action == "issued" else "completed (bundle made)"
            lines.append(f"{what} {item.name} (serial {item.serial}): {item.files['p12']}")
    counts = {a: len(done.of(a)) for a in ("issued", "completed", "skipped")}
    lines.append(", ".join(f"{n} {a}" for a, n in counts.items()))
    text = "\n".join(lines) + notes_text(done.notes)
    if done.crl is not None:
        text += new_crl_text(done.crl, reload_command())
    return text


def new_crl_text(crl: str, command: str) -> str:
    return f"\nNew CRL: {crl}; nginx enforces it only after a reload; run: {command}"
