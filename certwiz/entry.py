"""The `certwiz` program: `--version` alone answers without loading the command line.

Importing Typer costs several times Python's own start-up; a version query from a
script or a bug report needs none of it. Everything else goes to certwiz.cli.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from .about import version_lines

        print("\n".join(version_lines()))
        return
    from .cli import main as cli_main

    cli_main()
