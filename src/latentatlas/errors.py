"""The one exception type for bad input, and how its messages name a setting.

A message names what the caller can change with :func:`option`, so that it speaks the caller's language: a Python
caller reads ``overwrite=True``, and the command line, which prints :meth:`LatentAtlasError.cli_message`, reads
``--overwrite``.
"""

from __future__ import annotations

import ast
import re

_OPTION = re.compile(r"\[\[(\w+)(?:=(.*?))?\]\]")


def option(name: str, *value) -> str:
    """A setting named in a message: ``option("out")``, ``option("overwrite", True)``, ``option("device", "cpu")``."""
    return f"[[{name}={value[0]!r}]]" if value else f"[[{name}]]"


class LatentAtlasError(ValueError):
    """Bad input from the user: a wrong name, a corrupt file, out-of-range data.

    It subclasses ``ValueError`` so that scikit-learn's conventions (``ValueError`` on bad input) hold.
    The message is one line that says what was wrong and what is allowed.
    """

    def __str__(self) -> str:
        return _OPTION.sub(lambda m: m.group(1) if m.group(2) is None else f"{m.group(1)}={m.group(2)}",
                           super().__str__())

    def cli_message(self) -> str:
        """The message with each setting spelled as its command-line flag."""
        return _OPTION.sub(_as_flag, super().__str__())


def _as_flag(m: re.Match) -> str:
    flag = "--" + m.group(1).replace("_", "-")
    if m.group(2) is None:
        return flag
    value = ast.literal_eval(m.group(2))
    return flag if value is True else f"{flag} {value}"


def unknown_name(kind: str, name, choices, *, more: str = "", several: bool = False) -> LatentAtlasError:
    """The one refusal of a name not in a registry: the closest valid names first (a typo's fix), then all of them;
    ``more`` adds what else is allowed ("or give an .npz file"); ``several``: a list of them may be given."""
    import difflib  # here: the command line's start-up does not pay for it

    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(name), choices, n=2, cutoff=0.6) if isinstance(name, str) else []
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return LatentAtlasError(f"unknown {kind} {str(name)!r}: {hint}choose one {'or more ' if several else ''}of {', '.join(choices)}{more}")
