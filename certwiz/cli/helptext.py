"""Help pages: what every command's --help shows besides its options, in one place.

A command declares its examples and exit codes with `@help_page(...)`; `finish`
(called by the lazy registry on every command it builds) turns them into the
"Examples:" and "Exit codes:" sections after the options, gives each option a
metavar (`DAYS`, `FILE`, `URL`, ... instead of `<str>`), and renders every page as
plain text: no Rich markup, so a bracketed `[or env CERTWIZ_...]` in a help string
is printed as written instead of being read as a style tag and dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import CertwizError, InputError, LockTimeout, ProfileCorrupt
from ..profile import LOCK_TIMEOUT_ENV

if TYPE_CHECKING:
    from typer._click import Command, Context, HelpFormatter, Parameter

PROFILE_CORRUPT = ProfileCorrupt.exit_code
INTERRUPTED = 130

# What the codes mean for a command that changes a profile; the numbers come from the
# exceptions (errors.py), so a page cannot promise a code the command never uses.
CHANGES: dict[int, str] = {
    0: "done",
    CertwizError.exit_code: "openssl, nginx or the system failed; the profile stays consistent",
    InputError.exit_code: "bad input, or a request that does not fit the profile (one line "
    "'certwiz: error: FIELD: RULE', or a usage error); nothing was changed",
    LockTimeout.exit_code: "the profile is busy: its lock was held longer than --lock-timeout "
    f"(env {LOCK_TIMEOUT_ENV}, default 60 s)",
    PROFILE_CORRUPT: "the profile is inconsistent (index.txt, serial, CRL disagree): "
    "`certwiz check` names the file and line",
    INTERRUPTED: "interrupted (Ctrl-C)",
}
# A command that only reads: it never waits for the lock, so never exits 3.
READS: dict[int, str] = {
    0: "printed",
    CertwizError.exit_code: "a file could not be read or parsed (the message names it)",
    InputError.exit_code: "bad input, no such profile or name (one line "
    "'certwiz: error: FIELD: RULE', or a usage error)",
    INTERRUPTED: CHANGES[INTERRUPTED],
}

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Page:
    """The sections a command's --help shows after its options."""

    examples: tuple[tuple[str, str], ...]  # (what it does, the command as typed)
    exit_codes: Mapping[int, str]
    environment: Mapping[str, str] = field(default_factory=dict)  # variable -> what it sets


def help_page(
    *examples: tuple[str, str],
    codes: Mapping[int, str] = CHANGES,
    environment: Mapping[str, str] | None = None,
) -> Callable[[F], F]:
    """Give a command its examples and exit codes (and, for the top level, the environment).

    Each example is (what it does, the command line as typed, starting with `certwiz`).
    `codes` is CHANGES or READS, reworded where the command differs
    (`CHANGES | {2: "bad input or no such name; nothing was changed"}`), or its own.
    Put it under `@app.command(...)`, above `@reports_errors`.
    """

    def attach(func: F) -> F:
        page = Page(tuple(examples), dict(codes), dict(environment or {}))
        func.certwiz_help = page  # type: ignore[attr-defined]
        return func

    return attach


def page_of(command: Command) -> Page | None:
    # Typer's callback wrapper copies the function's __dict__ (functools.update_wrapper).
    return getattr(command.callback, "certwiz_help", None)


def walk(command: Command) -> Iterator[Command]:
    """The command and every command below it."""
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from walk(sub)


def finish(command: Command) -> Command:
    """Plain-text help, the help page sections and metavars, for COMMAND and all below it."""
    for each in walk(command):
        each.rich_markup_mode = None  # type: ignore[attr-defined]
        for param in each.params:
            set_metavar(param)
        # A group without its own page shows the first example of each of its commands.
        source = page_of(each) or (each if hasattr(each, "commands") else None)
        if source is not None:
            each.format_epilog = _epilog_writer(source)  # type: ignore[method-assign,assignment]
    return command


def group_page(group: Command) -> Page:
    """A group's examples: each command's first that runs it, in the order they are listed."""
    firsts = []
    for name, sub in getattr(group, "commands", {}).items():
        page = next(filter(None, map(page_of, walk(sub))), None)
        if page is None or not page.examples:
            continue
        runs = [e for e in page.examples if f" {group.name} {name} " in f" {e[1]} "]
        firsts.append((runs or list(page.examples))[0])
    return Page(tuple(firsts), {})


def _epilog_writer(source: Page | Command) -> Callable[[Context, HelpFormatter], None]:
    def format_epilog(ctx: Context, formatter: HelpFormatter) -> None:
        # A group's page is made when shown: its commands are all built by then.
        page = source if isinstance(source, Page) else group_page(source)
        with formatter.section("Examples"):
            for what, line in page.examples:
                formatter.write_text(what + ":")
                with formatter.indentation():
                    formatter.write_text("\b\n$ " + line)
        if not page.exit_codes:
            formatter.write_paragraph()
            formatter.write_text("Each command's --help has more examples and its exit codes.")
            return
        with formatter.section("Exit codes"):
            rows = sorted(page.exit_codes.items())
            formatter.write_dl([(str(code), text) for code, text in rows])
        if page.environment:
            with formatter.section("Environment"):
                formatter.write_dl(list(page.environment.items()))

    return format_epilog


# An option's metavar from the last word of its long name, when that word is not
# already the right one; a path is a FILE unless it is a directory.
_WORDS = {
    "home": "DIR",
    "prefix": "DIR",
    "from": "DIR",
    "timeout": "SECONDS",
    "grace": "DURATION",
    "ttl": "DURATION",
    "listen": "ADDRESS",
    "proxy": "ADDRESS",
    "expiring": "DURATION",
    "warn": "DURATION",
    "cmd": "COMMAND",
    "cn": "NAME",
    "server": "NAME",
    "responder": "URL",
    "upstream": "URL",
}


def set_metavar(param: Parameter) -> None:
    """A word for what the option takes (DAYS, FILE, URL), not a type (<str>, <path>)."""
    from typer._click.types import ParamType

    if param.metavar is not None or getattr(param, "is_flag", False):
        return
    if type(param.type).get_metavar is not ParamType.get_metavar:
        return  # the type names its own (choices, formats)
    if not param.opts[0].startswith("-"):
        param.metavar = (param.name or "value").upper()  # an argument: FILE, URL
        return
    long = max(param.opts, key=len).lstrip("-")
    word = long.rsplit("-", 1)[-1]
    if param.type.name == "path":
        param.metavar = _WORDS.get(word, "DIR" if word == "dir" else "FILE")
    else:
        param.metavar = _WORDS.get(word, word.upper())
