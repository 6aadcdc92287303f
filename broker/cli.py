"""The command line of a settings class: a flag per field, its help, default and choices from it.

One source for each setting's name, default, range and help: the field. The flags
are added to an ordinary :class:`argparse.ArgumentParser`, so an entry point adds
its own few flags (``--idle-exit``, ``--quiet``) beside them, and only the flags
given on the command line are passed to the settings class, where they beat the
environment.

pydantic-settings' own ``CliSettingsSource`` was the alternative; its help prints
``(default: None)`` for unset settings and ``str``/``tuple[str,...]`` as value
names, adds a second flag per alias (``--kafka-bootstrap-servers``), and its
errors name the field, not the flag.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)

_METAVARS: dict[Any, str] = {int: "INT", float: "NUMBER", str: "TEXT", Path: "PATH"}


def flag(name: str) -> str:
    """The command-line flag of the settings field ``name``.

    >>> flag("window_size")
    '--window-size'
    """
    return "--" + name.replace("_", "-")


def env_names(settings: type[BaseSettings], name: str) -> list[str]:
    """The environment variables ``settings`` reads the field ``name`` from.

    A field with a validation alias is read under its alias, without the prefix.

    >>> from broker.settings import KafkaSettings
    >>> env_names(KafkaSettings, "rows_topic")
    ['DRIFTLOOP_ROWS_TOPIC']
    >>> env_names(KafkaSettings, "bootstrap_servers")
    ['KAFKA_BOOTSTRAP_SERVERS']
    """
    alias = settings.model_fields[name].validation_alias
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    aliases = [c.upper() for c in choices if isinstance(c, str) and c != name]
    prefix = str(settings.model_config.get("env_prefix", ""))
    return aliases or [f"{prefix}{name}".upper()]


def add_flags(
    parser: argparse.ArgumentParser,
    settings: type[BaseSettings],
    *,
    exclude: frozenset[str] = frozenset(),
) -> None:
    """Add a flag to ``parser`` for each field of ``settings`` not in ``exclude``.

    Each flag's help is the field's docstring, then its default and its
    environment variable; a ``Literal`` field takes only its values, a ``bool``
    field is ``--x`` / ``--no-x``. Flags not given are left out of the parsed
    namespace, so that the environment and the field's default still apply.
    """
    for name, field in settings.model_fields.items():
        if name in exclude:
            continue
        kind = _without_none(field.annotation)
        options: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif get_origin(kind) is Literal:
            options["choices"] = [str(choice) for choice in get_args(kind)]
        else:
            listed = get_origin(kind) is tuple
            options["metavar"] = _METAVARS.get(kind, "A,B" if listed else "VALUE")
        parser.add_argument(flag(name), help=_help(settings, name, field), **options)


def build(settings: type[S], args: argparse.Namespace) -> S:
    """The settings from the environment with the flags in ``args`` on top.

    A value the settings refuse ends the process as argparse does for a bad flag:
    one line ``error: --flag (env VAR): why`` on stderr and exit code 2.
    """
    flags = {name: value for name, value in vars(args).items() if name in settings.model_fields}
    try:
        return settings(**flags)
    except ValidationError as err:
        print(f"error: {settings_error(err, settings)}", file=sys.stderr)
        raise SystemExit(2) from err


def settings_error(err: ValidationError, settings: type[BaseSettings]) -> str:
    """A settings validation error as one line naming the flag and the environment variable.

    >>> from broker.settings import KafkaSettings
    >>> try:
    ...     KafkaSettings(rows_topic=7)
    ... except ValidationError as err:
    ...     print(settings_error(err, KafkaSettings))
    --rows-topic (env DRIFTLOOP_ROWS_TOPIC): Input should be a valid string
    """
    first = err.errors(include_url=False)[0]
    # Pydantic prefixes messages raised in validators with "Value error, ".
    message = str(first["msg"]).removeprefix("Value error, ")
    name = _field_of(settings, str(first["loc"][0])) if first["loc"] else None
    if name is None:
        # A check across fields (window step and size): its message names them.
        return message
    envs = env_names(settings, name)
    # A validator's own message may already name the setting; say it once.
    message = re.sub(rf"^(?:{name}|{'|'.join(envs)})(?: \(env [A-Z_]+\))? ", "", message)
    return f"{flag(name)} (env {' or '.join(envs)}): {message}"


def _field_of(settings: type[BaseSettings], loc: str) -> str | None:
    """The field an error's location names: the field itself or one of its aliases."""
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        aliases = alias.choices if isinstance(alias, AliasChoices) else [alias]
        if loc == name or loc in aliases:
            return name
    return None


def _help(settings: type[BaseSettings], name: str, field: FieldInfo) -> str:
    text = (field.description or "").replace("``", "").replace("%", "%%").strip()
    shown = _shown(field.default)
    env = " or ".join(env_names(settings, name))
    notes = [f"default {shown}", f"env {env}"] if shown else [f"env {env}"]
    return f"{text} ({'; '.join(notes)})".strip()


def _shown(default: object) -> str | None:
    """A default as it would be typed; none for an unset one (the docstring says what it means).

    >>> _shown(0.05), _shown(50.0), _shown(True), _shown(("a", "b")), _shown(None)
    ('0.05', '50', 'on', 'a,b', None)
    """
    if default is None or default is PydanticUndefined:
        return None
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float):
        return f"{default:g}"
    if isinstance(default, tuple):
        return ",".join(str(part) for part in default)
    return str(default)


def _without_none(annotation: Any) -> Any:
    """``X`` for ``X | None``; the annotation itself otherwise."""
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = [kind for kind in get_args(annotation) if kind is not type(None)]
        if len(kinds) == 1:
            return kinds[0]
    return annotation
