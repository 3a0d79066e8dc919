"""What the commands share: one-line errors, and options made from the settings table (``latentatlas.config``)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from ..config import SETTINGS, setting_kind
from ..errors import LatentAtlasError


def friendly_errors(fn):
    """Bad input -> one line on stderr and exit code 2; ``--debug`` shows the traceback instead."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if not isinstance(e, (LatentAtlasError, OSError)) and not out_of_memory(e):
                raise  # a bug: its traceback is what a report needs
            if click.get_current_context().find_root().params.get("debug"):
                raise
            click.echo(f"error: {one_line(e)}", err=True)  # in the command line's words (--overwrite)
            sys.exit(2)

    return wrapper


def out_of_memory(e: Exception) -> bool:
    """Python's MemoryError, or torch's (a RuntimeError from its CPU allocator, ``OutOfMemoryError`` on a GPU):
    what the size checks before memory (``_limits``) could not foresee, such as memory other programs took since."""
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or (
        isinstance(e, RuntimeError) and "can't allocate memory" in str(e))


def one_line(e: Exception) -> str:
    """A file system error as the user sees it: the file and what went wrong, without the temp-file detail; running
    out of memory, as what happened and what to do."""
    if out_of_memory(e):
        what = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return (f"out of memory{f' ({what})' if what else ''}: give a smaller data set, image size, batch size or "
                "network, or close other programs")
    if isinstance(e, OSError) and e.strerror:
        name = e.filename2 or e.filename
        if name is not None and Path(name).name.startswith(".") and Path(name).name.endswith(".tmp"):
            name = Path(name).parent  # an atomic write's temp file: the folder is what the user named
        return f"{name}: {e.strerror}" if name is not None else e.strerror
    return e.cli_message() if isinstance(e, LatentAtlasError) else str(e)


def int_list(ctx, param, value):
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter("give comma-separated integers, e.g. 392,64") from None


def setting_option(name: str, **overrides):
    """The option of a setting, made from the settings table (``latentatlas.config.RunConfig``): its flag, type,
    default and help; ``overrides`` (a command's own default, say) win."""
    f = next(f for f in SETTINGS if f.name == name)
    kind, several = setting_kind(f)
    kw = {"default": f.default, "help": f.metadata["help"], "show_default": f.default not in (None, ())}
    if several and kind is int:
        kw["callback"] = int_list  # one option, comma-separated: --hidden-sizes 392,64
    elif several:
        kw.update(multiple=True, default=())  # repeated: --transforms a --transforms b
    elif kind in (int, float):
        kw["type"] = kind
    kw.update(overrides)
    return click.option("--" + name.replace("_", "-"), name, **kw)


def recipe_option(fn):
    """``--recipe``: a named set of training settings (epochs, batch size, learning rate, schedule)."""
    from ..schedules import RECIPES

    return click.option("--recipe", default="tutorial", show_default=True,
                        help=f"Training recipe, one of {', '.join(RECIPES)}: fills epochs, batch size, lr and "
                             "lr_schedule where they are not given (fast: the tutorial loop's quality in 6 epochs, not 10; "
                             "thick-s2 in 3 epochs of batch 256).")(fn)


def with_recipe(recipe: str, params: dict) -> dict:
    """``params`` with the recipe's settings (for ``params["preset"]``) wherever the command line did not give them."""
    from ..schedules import get_recipe

    filled = {k: v for k, v in get_recipe(recipe).settings(params.get("preset")).items()
              if k in params and given(k, params[k]) is None}
    return {**params, **filled}


def given(name: str, value):
    """``value`` where the command line gave the option ``name``, None where it is the option's default."""
    from click.core import ParameterSource

    source = click.get_current_context().get_parameter_source(name)
    return None if source in (ParameterSource.DEFAULT, None) else value


def settings_options(fn):
    """Every setting of the table as an option of ``fn``, in the table's order."""
    for f in reversed(SETTINGS):
        fn = setting_option(f.name)(fn)
    return fn


def color_by_option(fn):
    """--color-by, the same spelling as ``color_by`` in Python (``latentatlas.viz.colour``)."""
    return click.option("--color-by", default=None, metavar="VALUES",
                        help="Colour the maps' points by: class, or NAME (an .npz's NAME_test array), NAME:circular "
                             "for angles in radians (NAME:circular=360 for degrees) [default: the data's true angles "
                             "where known, else class].")(fn)
