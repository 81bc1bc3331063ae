"""Every help page reads right: examples that parse, exit codes, metavars, env variables, defaults.

The pages are found by walking the COMMANDS registry and every group below it, so a
command added later is checked without touching this file. Rendered in process
(Typer's CliRunner, wide terminal, NO_COLOR): fast, and what a user sees.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

import pytest
import typer.main
from typer.testing import CliRunner

from certwiz.cli import COMMANDS, app
from certwiz.cli.helptext import page_of
from tests.conftest import REPO
from tests.test_readme import SHIMS, parse_certwiz

WIDTH = 200


def commands(
    command: object, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], object]]:
    """(path, click command) of every command and group below the root, depth first."""
    if path:
        yield path, command
    subs = getattr(command, "commands", {})
    for name in list(subs):
        yield from commands(subs[name], (*path, name))


ROOT = typer.main.get_command(app)
ALL = dict(commands(ROOT))
LEAVES = {path: command for path, command in ALL.items() if not hasattr(command, "commands")}
GROUPS = {path: command for path, command in ALL.items() if hasattr(command, "commands")}


def render(*path: str) -> str:
    result = CliRunner().invoke(
        app,
        [*path, "--help"],
        prog_name="certwiz",
        terminal_width=WIDTH,
        env={"NO_COLOR": "1", "COLUMNS": str(WIDTH), "TERM": "dumb"},
    )
    assert result.exit_code == 0, result.output
    return result.output


def section(text: str, title: str) -> list[str]:
    """The lines of a section (`Examples:`) up to the next heading or the end."""
    found = re.search(rf"^{title}:\n((?:(?:  .*)?\n)*)", text, re.M)
    assert found, f"no {title}: section"
    return [line for line in found.group(1).splitlines() if line.strip()]


def example_args(text: str) -> list[list[str]]:
    """Each example's arguments to certwiz (a shim's expanded), checked to start right."""
    lines = [line.strip() for line in section(text, "Examples")]
    typed = [line[2:] for line in lines if line.startswith("$ ")]
    assert typed, "no example command ($ certwiz ...)"
    result = []
    for line in typed:
        words = shlex.split(line)
        while re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VAR=value certwiz ...
            words = words[1:]
        assert words[0] == "certwiz" or words[0] in SHIMS, f"not a certwiz command: {line}"
        result.append(words[1:] if words[0] == "certwiz" else [*SHIMS[words[0]], *words[1:]])
    return result


def check_page(text: str, command: object, path: tuple[str, ...]) -> None:
    flat = " ".join(text.split())
    # Examples: real commands that parse as written (options exist, values fit).
    runs = example_args(text)
    for args in runs:
        try:
            parse_certwiz(args, ROOT)
        except Exception as exc:  # click's usage errors: the example does not run
            message = getattr(exc, "format_message", lambda e=exc: str(e))()
            pytest.fail(f"example `certwiz {shlex.join(args)}` does not parse: {message}")
    if path:
        assert any(args[: len(path)] == list(path) for args in runs), "no example runs it"
    # Exit codes: one row per code, 0 and 2 (usage errors) at least.
    codes = [line.split()[0] for line in section(text, "Exit codes") if not line.startswith("    ")]
    assert all(code.isdigit() for code in codes), codes
    assert {"0", "2"} <= set(codes), codes
    # The docstring does not carry its own copy of either section.
    help_text = getattr(command, "help", None) or ""
    assert not re.search(r"^\s*(Examples?|Exit codes):", help_text, re.M), "move it to @help_page"
    # Metavars, not types.
    assert not re.search(r"<(str|bool|path|int|float|text|integer)>", text), "a type as metavar"
    params = [p for p in getattr(command, "params", []) if not getattr(p, "hidden", False)]
    # Every environment variable named, by envvar= or in any help text, is shown.
    sources = [
        getattr(command, "help", None) or "",
        *(getattr(p, "help", "") or "" for p in params),
    ]
    page = page_of(command)  # type: ignore[arg-type]
    if page is not None:
        sources += [text for example in page.examples for text in example]
        sources += list(page.exit_codes.values())
    named = set(re.findall(r"\bCERTWIZ_[A-Z0-9_]+", "\n".join(sources)))
    for param in params:
        envvar = getattr(param, "envvar", None)
        named.update([envvar] if isinstance(envvar, str) else envvar or [])
    for name in named:
        assert name in text, f"{name} is documented but not shown"
    # Every option's default is shown.
    for param in params:
        if (
            getattr(param, "is_flag", False)
            or param.default is None
            or not param.opts[0].startswith("-")
        ):
            continue
        shown = getattr(param, "show_default", None)
        value = shown if isinstance(shown, str) else param.default
        assert f"[default: {value}]" in flat, f"{param.opts[0]}: default {value!r} not shown"


@pytest.mark.parametrize("path", list(LEAVES), ids=" ".join)
def test_help_page(path: tuple[str, ...]) -> None:
    check_page(render(*path), LEAVES[path], path)


@pytest.mark.parametrize("path", list(GROUPS), ids=" ".join)
def test_group_page_shows_an_example_of_each_command(path: tuple[str, ...]) -> None:
    text = render(*path)
    runs = example_args(text)
    for args in runs:
        parse_certwiz(args, ROOT)
    for name in GROUPS[path].commands:  # type: ignore[attr-defined]
        assert any(args[: len(path) + 1] == [*path, name] for args in runs), name


def test_top_level_page_lists_every_group_with_a_line() -> None:
    text = render()
    check_page(text, ROOT, ())
    listed = dict(
        line.strip().split(None, 1) for line in section(text, "Commands") if len(line.split()) > 1
    )
    for name in COMMANDS:
        assert listed.get(name, "").strip(), f"{name} has no one-line description"


def test_every_variable_certwiz_reads_is_on_the_top_level_page() -> None:
    """A CERTWIZ_* variable added anywhere in the package must be documented (Environment:)."""
    source = "\n".join(path.read_text() for path in (REPO / "certwiz").rglob("*.py"))
    read = set(re.findall(r"[\"'](CERTWIZ_[A-Z0-9_]+)[\"']", source))
    assert {"CERTWIZ_HOME", "CERTWIZ_OPENSSL"} <= read  # the scan finds them
    listed = {line.split()[0] for line in section(render(), "Environment") if line[2] != " "}
    assert read <= listed, read - listed


def test_the_check_catches_a_page_that_lost_words() -> None:
    """What Rich once did to `[or env CERTWIZ_P12_PASSPHRASE, or a prompt]`: the test sees it."""
    path = ("client", "issue")
    eaten = render(*path).replace("[or env CERTWIZ_P12_PASSPHRASE, or a prompt]", "")
    with pytest.raises(AssertionError, match="CERTWIZ_P12_PASSPHRASE"):
        check_page(eaten, LEAVES[path], path)


@pytest.mark.parametrize(
    ("shell", "words", "expected"),
    [
        ("bash", "certwiz cl", "client"),
        ("bash", "certwiz client is", "issue"),
        ("bash", "certwiz client issue --p12-f", "--p12-format"),
        ("zsh", "certwiz cl", '"client":'),
        ("fish", "certwiz client is", "issue\t"),
    ],
)
def test_shell_completion(shell: str, words: str, expected: str) -> None:
    """Typer's completion, what `certwiz --install-completion` wires into each shell, answers."""
    env = {
        "_CERTWIZ_COMPLETE": f"complete_{shell}",
        "COMP_WORDS": words,  # bash
        "COMP_CWORD": str(len(words.split()) - 1),
        "_TYPER_COMPLETE_ARGS": words,  # zsh, fish
        "_TYPER_COMPLETE_FISH_ACTION": "get-args",
    }
    result = CliRunner().invoke(app, [], prog_name="certwiz", env=env)
    answers = result.output.splitlines() if shell == "bash" else [result.output]
    assert any(expected == a if shell == "bash" else expected in a for a in answers), result.output
