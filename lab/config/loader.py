"""Reading an experiment config: YAML files and their includes, the environment, ``--set``.

The models are in :mod:`lab.config.models`. Values are layered, lowest precedence first:

1. the defaults of the models;
2. the files named in the file's ``include`` list (deep-merged, in order,
   *under* the file itself; paths are relative to the including file);
3. the YAML file;
4. environment variables ``LAB_<SECTION>__<KEY>`` (``__`` separates nesting
   levels, e.g. ``LAB_TOPOLOGY__BACKENDS=8``; values are YAML scalars);
5. ``--set dotted.key=value`` overrides (values are YAML scalars).

Every problem raises :class:`lab.errors.ConfigError` with one line per problem
naming the file, the dotted key and what is wrong, for example
``configs/x.yaml: topology.backends: expected an integer, got 'eight'``; a
value that came from the environment, a ``--set`` or an included file says so
in a trailing ``(from ...)``.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from lab.config.models import ExperimentConfig, show_value
from lab.errors import ConfigError

__all__ = ["load_config", "with_overrides", "for_layout", "config_from_dict", "ENV_PREFIX"]

#: Environment variables starting with this prefix and containing ``__`` override the file.
ENV_PREFIX = "LAB_"


# ---------------------------------------------------------------------------
# Loading: files and includes, environment, --set.


def load_config(
    path: str | os.PathLike[str],
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> ExperimentConfig:
    """Read ``path`` (with its includes), then ``LAB_*`` variables of ``env``, then overrides."""
    label = str(path)
    data: dict[str, Any] = {}
    origins: dict[tuple, str] = {}
    for source_label, source_data in _read_with_includes(Path(path), label, ()):
        _merge(data, source_data, source_label, origins)
    for name, value in sorted((os.environ if env is None else env).items()):
        if name.startswith(ENV_PREFIX) and "__" in name:
            keys = name[len(ENV_PREFIX) :].lower().split("__")
            if not all(keys):
                raise ConfigError(f"{label}: {name}: expected {ENV_PREFIX}<SECTION>__<KEY>")
            _merge(data, _nest(tuple(keys), _scalar(value, f"{label}: {name}")), name, origins)
    for item in overrides:
        path_keys, value = _parse_set(item, label, "--set")
        _merge(data, _nest(path_keys, value), f"--set {item}", origins)
    return _validate(data, label, origins)


def with_overrides(
    config: ExperimentConfig, overrides: Iterable[str], origin: str = "--set"
) -> ExperimentConfig:
    """A new, validated config: ``config`` with ``dotted.key=value`` overrides (sweeps use this).

    Errors name the config's own source, and ``origin`` for the overrides.
    """
    data = config.to_dict()
    origins: dict[tuple, str] = {}
    for item in overrides:
        path, value = _parse_set(item, config.source, origin)
        _merge(data, _nest(path, value), f"{origin} {item}", origins)
    return _validate(data, config.source, origins)


def for_layout(config: ExperimentConfig, name: str) -> ExperimentConfig:
    """``config`` with the ``overrides`` of its layout ``name`` applied (they come last)."""
    layout = config.layout(name)  # ConfigError naming the layouts there are
    items = [f"{key}={_yaml_scalar(value)}" for key, value in layout.overrides.items()]
    return with_overrides(config, items, origin=f"layout {name}") if items else config


def config_from_dict(data: Any, source: str = "<dict>") -> ExperimentConfig:
    """Validate plain data (as from ``ExperimentConfig.to_dict``); errors name ``source``."""
    return _validate(data, source, {})


class _Loader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate keys and reads ``1e6`` as a number."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 wants a dot in floats; accept 1e6 and 2.5e-3 like everybody else.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _parse_yaml(text: str, label: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{label}: invalid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: invalid YAML: {exc}") from None


def _read_with_includes(
    path: Path, label: str, stack: tuple[tuple[Path, str], ...]
) -> list[tuple[str, dict[str, Any]]]:
    """The (label, mapping) layers of one file: its includes first, then itself."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read: {exc}") from None
    data = _parse_yaml(text, label)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{label}: expected a mapping of sections at the top, got {show_value(data)}"
        )
    includes = data.pop("include", None)
    if includes is None:
        includes = []
    elif isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(
            f"{label}: include: expected a list of file paths, got {show_value(includes)}"
        )
    stack = (*stack, (path.resolve(), label))
    layers: list[tuple[str, dict[str, Any]]] = []
    for index, include in enumerate(includes):
        target = path.parent / include
        target_label = os.path.normpath(target)
        if any(target.resolve() == seen for seen, _ in stack):
            chain = " -> ".join([*(seen_label for _, seen_label in stack), target_label])
            raise ConfigError(f"{label}: include[{index}]: include cycle: {chain}")
        if not target.exists():
            raise ConfigError(f"{label}: include[{index}]: no such file {target_label!r}")
        layers.extend(_read_with_includes(target, target_label, stack))
    layers.append((label, data))
    return layers


def _scalar(text: str, where: str) -> Any:
    return _parse_yaml(text, where) if text.strip() else None


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _parse_set(item: str, label: str, origin: str) -> tuple[tuple[str, ...], Any]:
    key, sep, value = item.partition("=")
    keys = tuple(key.strip().split("."))
    if not sep or not all(keys):
        raise ConfigError(f"{label}: {origin} {item!r}: expected dotted.key=value")
    return keys, _scalar(value, f"{label}: {origin} {item!r}")


def _nest(keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    for key in reversed(keys[1:]):
        value = {key: value}
    return {keys[0]: value}


def _merge(
    base: dict, top: Mapping, label: str, origins: dict[tuple, str], prefix: tuple = ()
) -> None:
    """Deep-merge ``top`` into ``base`` in place; ``origins`` maps key paths to their source."""
    for key, value in top.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, label, origins, path)
            continue
        base[key] = copy.deepcopy(value)
        for known in [p for p in origins if p[: len(path)] == path]:
            del origins[known]
        origins[path] = label


# ---------------------------------------------------------------------------
# Validation errors as one line per problem.


def _validate(data: Any, label: str, origins: dict[tuple, str]) -> ExperimentConfig:
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        lines = [_format_error(label, error, origins) for error in exc.errors()]
        raise ConfigError("\n".join(lines)) from None
    return config.with_source(label)


def _format_error(label: str, error: Mapping[str, Any], origins: dict[tuple, str]) -> str:
    loc = tuple(error["loc"])
    message = _describe(error)
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        message = f"invalid key: {message}"
    dotted = ""
    for part in loc:
        dotted += f"[{part}]" if isinstance(part, int) else f"{'.' if dotted else ''}{part}"
    origin = _origin(loc, origins)
    text = f"{label}: {dotted}: {message}" if dotted else f"{label}: {message}"
    return f"{text} (from {origin})" if origin and origin != label else text


def _origin(loc: tuple, origins: dict[tuple, str]) -> str | None:
    for length in range(len(loc), 0, -1):
        if loc[:length] in origins:
            return origins[loc[:length]]
    below = sorted({o for path, o in origins.items() if path[: len(loc)] == loc})
    return ", ".join(below) or None


def _describe(error: Mapping[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    got = show_value(error.get("input"))
    if kind == "extra_forbidden":
        return "unknown key" + _suggestion(tuple(error["loc"]))
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    expected = {
        "int_type": "an integer",
        "int_parsing": "an integer",
        "float_type": "a number",
        "float_parsing": "a number",
        "finite_number": "a finite number",
        "bool_type": "true or false",
        "bool_parsing": "true or false",
        "string_type": "a string",
        "model_type": "a mapping",
        "model_attributes_type": "a mapping",
        "dict_type": "a mapping",
        "list_type": "a list",
    }
    bounds = {
        "greater_than": ("gt", ">"),
        "greater_than_equal": ("ge", ">="),
        "less_than": ("lt", "<"),
        "less_than_equal": ("le", "<="),
    }
    if kind in expected:
        return f"expected {expected[kind]}, got {got}"
    if kind in bounds:
        key, op = bounds[kind]
        limit = ctx.get(key)
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {op} {limit}, got {got}"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}, got {got}"
    if kind == "missing":
        return "missing required key"
    if kind == "string_too_short":
        return "must not be empty"
    return f"{error['msg']}, got {got}"


def _suggestion(loc: tuple) -> str:
    """`` (did you mean 'x'?)`` for a misspelt key, or nothing."""
    model: Any = ExperimentConfig
    parts = list(loc[:-1])
    while parts:
        field = model.model_fields.get(parts.pop(0)) if isinstance(model, type) else None
        if field is None:
            return ""
        annotation = field.annotation
        if get_origin(annotation) in (Union, types.UnionType):  # X | None
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        if get_origin(annotation) is dict:  # a mapping of names, e.g. layouts
            annotation = get_args(annotation)[1]
            if not parts:
                return ""
            parts.pop(0)
        model = annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
