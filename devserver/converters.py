"""The converters of ``devserver.options``: each takes a value from the command line (text) or from a setting (any
type) and returns it checked and converted, or raises ``ValueError`` with a message that says what was expected;
``devserver.options.resolve`` puts the option's flag or setting in front of it."""

import math
import os
import re

__all__ = [
    "boolean",
    "cache_control",
    "choice",
    "file_mode",
    "file_test",
    "folders",
    "port_number",
    "seconds",
    "text",
    "whole_number",
]


def whole_number(minimum):
    """A converter: ``int`` (or its text) of at least ``minimum``; ``ValueError`` otherwise."""

    def convert(value):
        if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
            number = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            number = None
        if number is None or number < minimum:
            raise ValueError(f"expected a whole number of at least {minimum}, got {value!r}")
        return number

    convert.numeric = True
    return convert


def seconds(value):
    """A converter: a finite number of seconds, 0 or more (text, ``int`` or ``float``)."""
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or not (number >= 0 and math.isfinite(number)):
        raise ValueError(f"expected a number of seconds, 0 or more, got {value!r}")
    return number


seconds.numeric = True


def port_number(value):
    """A converter: a TCP port, 0 to 65535 (0: a free port, chosen when binding)."""
    try:
        number = whole_number(0)(value)
    except ValueError:
        number = None
    if number is None or number > 65535:
        raise ValueError(f"expected a port number from 0 to 65535, got {value!r}")
    return number


def file_mode(value):
    """A converter: permission bits, as octal text (``660``, ``0660``, ``0o660``) or an ``int`` (``0o660``)."""
    if isinstance(value, str) and re.fullmatch(r"(0o?)?[0-7]{1,4}", value.strip()):
        number = int(value.strip().removeprefix("0o") or "0", 8)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        number = None
    if number is None or not 0 <= number <= 0o7777:
        raise ValueError(f"expected permission bits in octal, like 0660, got {value!r}")
    return number


def text(value):
    """A converter: non-empty text."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected some text, got {value!r}")
    return value.strip()


def choice(*choices):
    """A converter: one of ``choices`` (text, without regard to case); ``ValueError`` naming them otherwise."""

    def convert(value):
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")

    return convert


def boolean(value):
    """A converter for settings that are on or off: ``True`` or ``False`` only."""
    if not isinstance(value, bool):
        raise ValueError(f"expected True or False, got {value!r}")
    return value


def cache_control(value):
    """A converter: a Cache-Control field value, or ``None`` (or ``""``) for none."""
    if value is not None and not isinstance(value, str):
        raise ValueError(f"expected a string or None, got {value!r}")
    if value and any(ord(char) < 32 or ord(char) > 126 for char in value):
        raise ValueError(f"expected printable ASCII, got {value!r}")
    return value or None


def folders(value):
    """A converter: a list or tuple of folder paths (``str`` or ``pathlib.Path``)."""
    if not isinstance(value, list | tuple) or not all(isinstance(item, str | os.PathLike) for item in value):
        raise ValueError(f"expected a list of folders, got {value!r}")
    return tuple(os.fspath(item) for item in value)


def file_test(value):
    """A converter: a callable taking a path, a regular expression (searched in the path), or ``None``."""
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        try:
            return re.compile(value).search
        except re.error as error:
            raise ValueError(f"not a valid regular expression: {error}") from None
    raise ValueError(f"expected a callable or a regular expression, got {value!r}")
