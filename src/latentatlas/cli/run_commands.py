"""Commands on one run (train it, evaluate, plot, export, report, explore it) and the catalogues (presets, data
sets)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from .options import color_by_option, friendly_errors, given, recipe_option, settings_options, with_recipe


@click.command(short_help="Train a model into a run folder, evaluate it, draw it.")
@settings_options
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder [default: runs/<preset>-<data>].")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder.")
@click.option("--resume", is_flag=True, help="Continue a killed run from its last complete epoch.")
@click.option("--tensorboard", type=click.Path(path_type=Path), default=None,
              help="Log losses, decoder grids and latents (Embedding Projector) to this TensorBoard folder.")
@recipe_option
@friendly_errors
def train(out, overwrite, resume, tensorboard, recipe, **params):
    """Train a model into a run folder, evaluate it and draw its figures."""
    from ..config import RunConfig

    from .._guard import check_out_folder
    from ..data.sources import check_source
    from ..errors import LatentAtlasError, option

    if out is None:
        out = Path("runs") / f"{params['preset'] or 'custom'}-{Path(params['data']).name}"
    # A missing data file, and an --out that cannot be a run folder, are refused before the seconds of importing
    # torch and loading the data.
    check_source(params["data"])
    if out.exists() and not out.is_dir():
        raise LatentAtlasError(f"{out} is a file, not a run folder: choose another {option('out')}")
    check_out_folder(out)
    cfg = RunConfig(**with_recipe(recipe, params)).resolved()  # a wrong preset is refused before torch is imported
    from ..run_training import enough_steps, resolve_runtime, train_run

    cfg = resolve_runtime(cfg)  # a device that is not here is refused before the data are loaded
    # --epochs, or a recipe chosen by name, gives the epochs; otherwise every run trains at least MIN_STEPS steps
    chosen = given("epochs", params["epochs"]) is not None or given("recipe", recipe) is not None
    cfg, dataset, note = enough_steps(cfg, epochs_given=chosen)
    if note and not resume:
        click.echo(note)
    try:
        run = train_run(cfg, out, overwrite=overwrite, resume=resume, tensorboard=tensorboard, echo=click.echo,
                        dataset=dataset)
    except KeyboardInterrupt:  # Ctrl-C: the folder's lock is released by now; say what is kept and how to go on
        click.echo(_interrupted(out), err=True)
        sys.exit(130)  # the shell's code for a command ended by SIGINT
    if run.finished:
        n = run.resumed_from_epoch
        click.echo(f"{run.path} had already finished its {n} epoch{'s' * (n != 1)}: nothing to resume "
                   "(give a larger --epochs to train it further)")
    elif run.resumed_from_epoch:
        click.echo(f"resumed from epoch {run.resumed_from_epoch}")
    _echo_metrics(run.metrics)
    click.echo(f"run folder: {run.path}")
    if tensorboard is not None and not run.finished:
        click.echo(f"TensorBoard logs: {tensorboard} (view them: tensorboard --logdir {tensorboard})")


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@friendly_errors
def evaluate(run):
    """Recompute a run's latents and metrics from its saved weights."""
    from ..runs import evaluate_run

    _echo_metrics(evaluate_run(run, echo=click.echo))
    click.echo(f"wrote {run / 'metrics.json'} and {run / 'latents.npz'}")


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--glyphs", is_flag=True, help="Draw encoder-map points as their class labels (the tutorial's style).")
@color_by_option
@friendly_errors
def plot(run, glyphs, color_by):
    """Redraw a run's figures without retraining."""
    from ..runs import redraw_run

    for path in redraw_run(run, glyphs=glyphs, echo=click.echo, color_by=color_by):
        click.echo(str(path))


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--onnx", is_flag=True, help="Write encoder.onnx and decoder.onnx (needs the onnx extra).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder for the files [default: RUN].")
@friendly_errors
def export(run, onnx, out):
    """Export a run's networks for use outside PyTorch."""
    if not onnx:
        raise click.UsageError("choose a format: --onnx")
    from ..export import export_onnx

    for path in export_onnx(run, out):
        click.echo(str(path))


@click.command(short_help="Write one self-contained HTML report of one or more runs.")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("report.html"), show_default=True,
              help="The HTML file to write.")
@click.option("--overwrite", is_flag=True, help="Replace OUT even if latentatlas did not write it.")
@color_by_option
@friendly_errors
def report(runs, out, overwrite, color_by):
    """Write one self-contained HTML report (offline, mailable) of one or more runs."""
    from ..viz.report import write_report

    click.echo(f"wrote {write_report(runs, out, overwrite, color_by=color_by)}")


@click.command(short_help="Write a run's live explorer page: it decodes under the mouse.")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The page to write [default: explorer.html in the current folder].")
@click.option("--serve", is_flag=True, help="Also serve the page on 127.0.0.1 and open a browser; Ctrl-C stops.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="With --serve; 0 picks a free one.")
@click.option("--max-points", type=click.IntRange(min=1), default=None,
              help="Test points drawn; larger test sets show a fixed random subset [default: 20,000].")
@click.option("--overwrite", is_flag=True, help="Replace OUT even if latentatlas did not write it.")
@color_by_option
@friendly_errors
def explore(run, out, serve, port, max_points, overwrite, color_by):
    """Write the live explorer of a run: hover anywhere on its latent maps to see the decoded image."""
    from ..runs import write_explorer
    from ..viz.explorer import open_in_browser, page_server

    limit = {} if max_points is None else {"max_points": max_points}
    server = page_server(port=port) if serve else None  # bound first: a busy port is refused before any write
    try:
        page = write_explorer(run, Path("explorer.html") if out is None else out, overwrite=overwrite, color_by=color_by, **limit)
        click.echo(f"wrote {page} (open it in a browser; it works offline)")
        if server is None:
            return
        server.load(page)
        click.echo(f"serving it at {server.url} (Ctrl-C stops)")
        open_in_browser(server.url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    finally:
        if server is not None:
            server.server_close()


@click.command()
def presets():
    """List the architecture presets with their parameter counts."""
    from ..presets import PRESETS

    for name, p in PRESETS.items():
        click.echo(f"{name:15s} {p.n_params():>10,}  {p.geometry:15s}  {p.description}")


@click.command()
def datasets():
    """List the data sets and whether each is available offline."""
    from ..data import available_datasets

    for name, offline, description in available_datasets():
        click.echo(f"{name:14s} {'offline' if offline else 'download':9s} {description}")


def _interrupted(out: Path) -> str:
    """The one line a Ctrl-C'd ``train`` prints: what it saved (epoch, folder) and the command that continues."""
    from ..run_training import left_by_interruption

    left, epochs = left_by_interruption(out)
    if left == "kept":
        return (f"interrupted: the new run was not saved; {out} still holds the finished run of {epochs} epochs it "
                f"was replacing (run the same command again to replace it)")
    if left == "nothing":
        return "interrupted before the first epoch finished: nothing saved; run the same command again to start"
    return f"interrupted: epoch {epochs} is saved in {out}; continue with: {shlex.join(_resume_command(out))}"


def _resume_command(out: Path) -> list[str]:
    """This command line, with ``--resume`` and the run folder, without ``--overwrite``."""
    args = [a for a in sys.argv[1:] if a != "--overwrite"]
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", str(out)]
    if "--resume" not in args:
        args.append("--resume")
    return ["latentatlas", *args]


def _echo_metrics(metrics: dict) -> None:
    from ..metrics import METRIC

    for k, v in metrics.items():  # as the metrics table formats each (692,264 parameters), as everywhere else
        shown = METRIC[k].format(v) if k in METRIC and isinstance(v, (int, float)) else f"{v:.4f}" if isinstance(v, float) else v
        click.echo(f"{k:16s} {shown}")
