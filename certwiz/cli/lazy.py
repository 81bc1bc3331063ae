"""Command modules imported only when their command runs.

Building every group at start-up imported every command module and, through
them, most of the library: `certwiz list` paid for `nginx render`. The root
group here knows each command as "module:attribute" and imports that module
the first time the command is looked up; help and shell completion, which
list every command, import them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from . import helptext

if TYPE_CHECKING:
    from typer._click import Command  # the click that Typer >= 0.26 carries inside


class LazyCommands(MutableMapping[str, "Command"]):
    """A group's commands: those built so far, plus the registry of those not imported yet."""

    def __init__(self, package: str, registry: Mapping[str, str], owner: TyperGroup) -> None:
        self._package = package
        self._registry = dict(registry)
        self._built: dict[str, Command] = {}
        self._owner = owner

    def __getitem__(self, name: str) -> Command:
        if name not in self._built:
            if name not in self._registry:
                raise KeyError(name)
            self._built[name] = self._load(name)
        return self._built[name]

    def _load(self, name: str) -> Command:
        module, _, attribute = self._registry[name].partition(":")
        target = getattr(importlib.import_module(f"{self._package}.{module}"), attribute)
        # A throw-away Typer turns the group or function into a click command exactly as
        # app.add_typer / app.command would have, with the root's markup mode.
        wrapper = typer.Typer(add_completion=False, rich_markup_mode=self._owner.rich_markup_mode)
        if isinstance(target, typer.Typer):
            wrapper.add_typer(target, name=name)
        else:
            wrapper.command(name)(target)
        return helptext.finish(typer.main.get_group(wrapper).commands[name])

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._registry.pop(name, None)
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._registry
        yield from (name for name in self._built if name not in self._registry)

    def __len__(self) -> int:
        return len(self._registry.keys() | self._built.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._registry or name in self._built


def lazy_group(package: str, registry: Mapping[str, str]) -> type[TyperGroup]:
    """A TyperGroup class whose commands come from REGISTRY (name -> "module:attribute")."""

    class LazyGroup(TyperGroup):
        def __init__(self, **attrs: Any) -> None:
            super().__init__(**attrs)
            helptext.finish(self)  # the root's own options and page; each command on loading
            eager = self.commands
            self.commands = LazyCommands(package, registry, self)
            self.commands.update(eager)

    return LazyGroup
