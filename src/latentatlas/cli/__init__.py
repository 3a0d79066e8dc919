"""The command line: the only package that touches argv. Every command is a thin call into the library, and imports
it only when it runs, so that ``latentatlas --help`` starts in a fraction of a second.

``options``: what the commands share; ``run_commands``: commands on one run; ``experiment_commands``: commands over
many runs. Each command is registered below.
"""

from __future__ import annotations

import sys

import click

from .experiment_commands import bench, compare, demo, probe, sweep
from .run_commands import datasets, evaluate, explore, export, plot, presets, report, train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
@click.version_option(package_name="latentatlas")
def main(debug):
    """latentatlas: autoencoders with a chosen latent geometry (plane, sphere, torus; deterministic or variational)."""
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 printed as its bytes, as ls prints it
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")


for _command in (train, evaluate, plot, export, report, explore, probe, presets, datasets, demo, bench, compare, sweep):
    main.add_command(_command)
