"""Reading a recipe: the YAML file, `section.key=value` overrides, and relative paths resolved next
to the recipe. The pipeline config (`sgpipe.config`) and the training config (`sgpipe.train.config`)
both read theirs through it; what the values mean is theirs to check.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any

import yaml

from sgpipe.errors import ConfigError
from sgpipe.storage import protocol_of


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (["section", "key"], YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError([f"override {text!r}: expected section.key=value"])
    key, _, value = text.partition("=")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:  # not YAML ("{00000..00009}.tar", a path with a bracket): the text as typed
        parsed = value
    return key.strip().split("."), parsed


def apply_overrides(
    raw: dict[str, Any], overrides: typing.Sequence[str], problems: list[str], sections: dict[str, Any]
) -> None:
    """Set `section.key=value` overrides in `raw`; `section.key.name=value` sets one entry of a
    mapping-valued key (`model.options.d_model=96`). `sections`: section name -> its dataclass."""
    for text in overrides:
        try:
            path, value = parse_override(text)
        except ConfigError as error:
            problems.extend(error.problems)
            continue
        hints = typing.get_type_hints(sections[path[0]]) if path[0] in sections else {}
        kind = hints.get(path[1]) if len(path) > 1 else None
        if len(path) != 2 and not (len(path) == 3 and kind is dict):
            problems.append(f"override {text!r}: keys have the form section.key")
            continue
        section = raw.setdefault(path[0], {})
        if not isinstance(section, dict):
            problems.append(f"override {text!r}: {path[0]} is not a section")
            continue
        if len(path) == 3:
            mapping = section.setdefault(path[1], {})
            if not isinstance(mapping, dict):
                problems.append(f"override {text!r}: {path[0]}.{path[1]} is not a mapping")
                continue
            mapping[path[2]] = value
            continue
        # a key that wants a string keeps the text as typed ("00001" stays "00001", not 1), and so does
        # a list key given one item ("{00000..00009}.tar" is a brace pattern, not a YAML mapping)
        typed = text.partition("=")[2]
        as_typed = kind is str or (kind is list and not typed.lstrip().startswith("["))
        section[path[1]] = typed if as_typed else value


def resolve_paths(raw: dict[str, Any], base: Path, keys: typing.Iterable[tuple[str, str]]) -> None:
    """Relative paths in a recipe are relative to the recipe file, as users expect (when they exist
    there; object-store URLs are left alone)."""

    def resolved(value: Any) -> Any:
        if isinstance(value, str) and value and not os.path.isabs(value) and not protocol_of(value):
            candidate = base / value
            # a brace pattern resolves by its folder (`tars/{00000..00009}.tar`)
            if candidate.exists() or ("{" in value and candidate.parent.is_dir()):
                return str(candidate)
        return value

    for section, key in keys:
        values = raw.get(section)
        value = values.get(key) if isinstance(values, dict) else None
        if isinstance(value, list):
            values[key] = [resolved(item) for item in value]
        elif value is not None:
            values[key] = resolved(value)


def load_raw(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError([f"cannot read config {str(path)!r}: {error.strerror}"]) from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError([f"{path}: not valid YAML: {error}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping of sections at the top level"])
    return raw


def read_recipe(path: str | Path | None, path_keys: typing.Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A recipe's raw sections with its relative paths resolved; no recipe: no sections."""
    if not path:
        return {}
    raw = load_raw(path)
    resolve_paths(raw, Path(path).resolve().parent, path_keys)
    return raw
