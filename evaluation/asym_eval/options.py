"""Options declared once: a dataclass field carries its flag, help text, range and default.

Every command of both packages builds its flags, its validation and its error messages from these fields
(as TRL's ``GRPOConfig`` does with ``field(metadata=...)``), so adding an option is one edit:

>>> import argparse
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Demo:
...     rate: float = option(0.5, "--demo.rate", "how fast (ρ)", check=in_range(0, 1))
>>> parser = argparse.ArgumentParser()
>>> add_flags(parser, Demo)
>>> args = parser.parse_args(["--demo.rate", "0.25"])
>>> given(Demo, args)
{'rate': 0.25}
>>> validate(Demo(rate=2.0))
Traceback (most recent call last):
ValueError: rate must be a number in [0, 1], got 2.0
>>> name_flag(Demo, "rate must be a number in [0, 1], got 2.0")
'--demo.rate: must be a number in [0, 1], got 2.0'

This module is a leaf: it imports nothing of the project, so the algorithm core can declare its options here.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from dataclasses import MISSING, Field, field, fields

Check = Callable[[object], "str | None"]  # a value -> what is wrong with it, or None


def option(
    default,
    flag: str,
    help: str,
    *,
    check: Check | None = None,
    show_default: bool = True,
    aliases: tuple[str, ...] = (),
    backend: str | None = None,
    **argparse_kw,
):
    """A dataclass field that is also a command-line flag.

    ``help`` names the paper's symbol where there is one; the default is appended from ``default``, so it is
    written once. ``check`` returns what is wrong with a value (``None`` when fine); ``argparse_kw`` go to
    ``add_argument`` (``type`` defaults to the default's type, ``metavar`` to the field's name in capitals).
    ``aliases`` are other spellings of the flag that users already type. ``backend``: the one backend that
    reads the option (``asym-eval``), or None.
    """
    metadata = {
        "flag": flag,
        "help": help,
        "check": check,
        "show_default": show_default,
        "aliases": tuple(aliases),
        "backend": backend,
        "argparse": argparse_kw,
    }
    return field(default=default, metadata=metadata)


def declared(cls) -> list[Field]:
    """The fields of ``cls`` that are flags, in declaration order."""
    return [f for f in fields(cls) if "flag" in f.metadata]


def dest_of(f: Field) -> str:
    """The argparse destination of a field's flag: ``--asym.beta_pos`` -> ``asym_beta_pos``."""
    return f.metadata["flag"].lstrip("-").replace(".", "_").replace("-", "_")


def flag_of(cls, name: str) -> str:
    """The flag a user types for option ``name`` of ``cls``."""
    return next(f.metadata["flag"] for f in declared(cls) if f.name == name)


def _default(f: Field):
    return None if f.default is MISSING else f.default


def add_flags(parser, cls, *, defaults: bool = False, skip: Iterable[str] = (), **overrides) -> None:
    """Add one flag per declared field of ``cls``.

    With ``defaults=False`` (the estimator flags) an absent flag parses to ``None``, so ``given`` can tell
    what the user set from the declared default; with ``True`` it parses to the default. ``overrides`` maps
    a field name to a dict of ``add_argument`` keywords that replace the declared ones for this parser.
    """
    for f in declared(cls):
        if f.name in skip:
            continue
        meta, default = f.metadata, _default(f)
        kwargs = {**meta["argparse"], **overrides.get(f.name, {})}
        if "choices" not in kwargs:  # argparse shows the choices themselves otherwise
            kwargs.setdefault("metavar", f.name.upper())
        action = kwargs.get("action")
        number = isinstance(default, int | float) and not isinstance(default, bool)
        if action is None and "type" not in kwargs and number:
            kwargs["type"] = type(default)
        if action in ("store_true", "store_false"):
            kwargs.pop("metavar", None)
        text = meta["help"]
        if meta["show_default"] and action is None:
            text += f" Default: {_show(default)}."
        parser.add_argument(
            meta["flag"],
            *meta["aliases"],
            dest=dest_of(f),
            default=default if defaults else None,
            help=text,
            **kwargs,
        )


def _show(value) -> str:
    return "unset" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def given(cls, args: argparse.Namespace, skip: Iterable[str] = ()) -> dict:
    """The declared options the user set on the command line (those not ``None``), by field name."""
    values = {f.name: getattr(args, dest_of(f), None) for f in declared(cls) if f.name not in skip}
    return {name: value for name, value in values.items() if value is not None}


def from_args(cls, args: argparse.Namespace, **extra):
    """An instance of ``cls`` from parsed flags (absent ones keep their declared default), validated; a
    ``ValueError`` names the flag."""
    instance = cls(**{**given(cls, args), **extra})
    try:
        validate(instance)
    except ValueError as err:
        raise ValueError(name_flag(cls, str(err))) from None
    return instance


def validate(instance) -> None:
    """Run every declared field's check; the ``ValueError`` starts with the field's name."""
    for f in declared(instance):
        check = f.metadata["check"]
        problem = check(getattr(instance, f.name)) if check else None
        if problem:
            raise ValueError(f"{f.name} {problem}")


def name_flag(cls, message: str) -> str:
    """Prefix an error that starts with an option's name with the flag a user types for it."""
    for f in declared(cls):
        if message.startswith(f.name + " "):  # "beta_pos must be ..." -> "--asym.beta_pos: must be ..."
            return f"{f.metadata['flag']}: {message[len(f.name) + 1 :]}"
    return message


# Checks: each returns what is wrong with a value, in words that follow the option's name.


def in_range(low: float, high: float = math.inf, *, integer: bool = False, low_open: bool = False) -> Check:
    """A finite number (an integer with ``integer``) in [low, high] ((low, high] with ``low_open``)."""
    kind = "an integer" if integer else "a number"
    bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]" if high != math.inf else None
    where = f"in {bounds}" if bounds else f"{'>' if low_open else '>='} {low:g}"

    def check(value):
        number = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not number or not math.isfinite(value):
            return f"must be {kind} {where}, got {value!r}"
        if value < low or (low_open and value == low) or value > high:
            return f"must be {kind} {where}, got {value!r}"
        return None

    return check


def one_of(choices: Iterable[str]) -> Check:
    choices = tuple(choices)

    def check(value):
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"

    return check


def optional(inner: Check) -> Check:
    """``inner``, or unset (``None``)."""
    return lambda value: None if value is None else inner(value)
