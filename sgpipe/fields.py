"""The field machinery both configs share (the pipeline's `sgpipe.config`, the trainer's
`sgpipe.train.config`): a field that carries its valid values, typed filling of dataclass sections
from a recipe and its overrides, and the checks that collect every problem instead of stopping at
the first. Nothing here reads files or the network.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from dataclasses import field
from typing import Any, TypeVar

from sgpipe.recipe import apply_overrides

C = TypeVar("C")


def option(
    default: Any, *, choices: tuple[str, ...] = (), low: float | None = None, high: float | None = None
) -> Any:
    """A config field that carries its valid values: one of `choices`, or within [low, high]
    (either end may be open). `check_fields` checks every field that has them."""
    return field(default=default, metadata={"choices": choices, "range": (low, high)})


def choices_text(names: typing.Iterable[str]) -> str:
    return "Choose from: " + ", ".join(sorted(names))


def coerce(value: Any, kind: Any, where: str, problems: list[str]) -> Any:
    """Check `value` against the annotated type; strings from `--set` are parsed as YAML first."""
    if kind is dict:
        if isinstance(value, dict):
            return dict(value)
        problems.append(f"{where}: expected a mapping, got {value!r}")
        return None
    if kind is list:  # a list of strings; one string is a list of one (tuples from Python too)
        items = [value] if isinstance(value, str) else value
        if isinstance(items, (list, tuple)) and all(isinstance(v, str) for v in items):
            return list(items)
        problems.append(f"{where}: expected a string or a list of strings, got {value!r}")
        return None
    if kind is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads "1e-3" (no dot) as a string
        except ValueError:
            pass
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
        if value is None:
            return ""
    problems.append(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    return None


def unknown_name(kind: str, name: str, known: typing.Iterable[str], section: str = "") -> str:
    """`unknown key 'run.wrkers' (did you mean 'run.workers'?). Choose from: ...`"""
    prefix = f"{section}." if section else ""
    hint = difflib.get_close_matches(name, list(known), n=1)
    return (
        f"unknown {kind} {prefix + name!r}"
        + (f" (did you mean {prefix + hint[0]!r}?)" if hint else "")
        + f". {choices_text(known)}"
    )


def fill_sections(config: Any, raw: dict[str, Any], problems: list[str]) -> None:
    """Set `raw`'s `section: {key: value}` entries on the dataclass `config`, collecting every problem."""
    sections = typing.get_type_hints(type(config))
    for section_name, section_values in raw.items():
        if section_name not in sections:
            problems.append(unknown_name("section", section_name, sections))
            continue
        if section_values is None:
            continue
        if not isinstance(section_values, dict):
            problems.append(f"{section_name}: expected a mapping of keys, got {section_values!r}")
            continue
        section = getattr(config, section_name)
        hints = typing.get_type_hints(type(section))
        for key, value in section_values.items():
            where = f"{section_name}.{key}"
            if key not in hints:
                problems.append(unknown_name("key", key, hints, section_name))
                continue
            coerced = coerce(value, hints[key], where, problems)
            if coerced is not None:
                setattr(section, key, coerced)


def build_sections(
    config_type: type[C], raw: dict[str, Any], overrides: typing.Sequence[str], problems: list[str]
) -> C:
    """A fresh `config_type` filled from a private copy of `raw` with `overrides` on top; every
    problem is collected in `problems`."""
    raw = json.loads(json.dumps(raw))
    apply_overrides(raw, overrides, problems, typing.get_type_hints(config_type))
    config = config_type()
    fill_sections(config, raw, problems)
    return config


def check_choice(problems: list[str], where: str, value: str, choices: typing.Iterable[str]) -> None:
    if value not in choices:
        problems.append(f"{where}: {value!r} is not valid. {choices_text(choices)}")


def check_range(problems: list[str], where: str, value: float, low: float, high: float | None = None) -> None:
    if value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"in [{low}, {high}]"
        problems.append(f"{where}: {value} must be {span}")


def check_fields(section: Any, prefix: str, problems: list[str]) -> None:
    """Each field of the dataclass `section` against the choices and range declared on it."""
    for spec in dataclasses.fields(section):
        where, value = f"{prefix}.{spec.name}", getattr(section, spec.name)
        if spec.metadata.get("choices"):
            check_choice(problems, where, value, spec.metadata["choices"])
        low, high = spec.metadata.get("range", (None, None))
        if low is not None:
            check_range(problems, where, value, low, high)
