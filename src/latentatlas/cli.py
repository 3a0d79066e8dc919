"""The command line: the only module that touches argv. Every command is a thin call into the library."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from .config import SETTINGS, setting_kind
from .errors import LatentAtlasError


def _friendly_errors(fn):
    """Bad input -> one line on stderr and exit code 2; ``--debug`` shows the traceback instead."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (LatentAtlasError, OSError) as e:
            if click.get_current_context().find_root().params.get("debug"):
                raise
            click.echo(f"error: {_one_line(e)}", err=True)  # in the command line's words (--overwrite)
            sys.exit(2)

    return wrapper


def _one_line(e: Exception) -> str:
    """A file system error as the user sees it: the file and what went wrong, without the temp-file detail."""
    if isinstance(e, OSError) and e.strerror:
        name = e.filename2 or e.filename
        if name is not None and Path(name).name.startswith(".") and Path(name).name.endswith(".tmp"):
            name = Path(name).parent  # an atomic write's temp file: the folder is what the user named
        return f"{name}: {e.strerror}" if name is not None else e.strerror
    return e.cli_message() if isinstance(e, LatentAtlasError) else str(e)


def _int_list(ctx, param, value):
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
        kw["callback"] = _int_list  # one option, comma-separated: --hidden-sizes 392,64
    elif several:
        kw.update(multiple=True, default=())  # repeated: --transforms a --transforms b
    elif kind in (int, float):
        kw["type"] = kind
    kw.update(overrides)
    return click.option("--" + name.replace("_", "-"), name, **kw)


def recipe_option(fn):
    """``--recipe``: a named set of training settings (epochs, batch size, learning rate, schedule)."""
    from .schedules import RECIPES

    return click.option("--recipe", default="tutorial", show_default=True,
                        help=f"Training recipe, one of {', '.join(RECIPES)}: fills epochs, batch size, lr and "
                             "lr_schedule where they are not given (fast: the tutorial loop's quality in 6 epochs, not 10; "
                             "thick-s2 in 3 epochs of batch 256).")(fn)


def _with_recipe(recipe: str, params: dict) -> dict:
    """``params`` with the recipe's settings wherever the command line left them at their defaults."""
    from click.core import ParameterSource

    from .schedules import get_recipe

    ctx = click.get_current_context()
    filled = {k: v for k, v in get_recipe(recipe).settings(params.get("preset")).items()
              if k in params and ctx.get_parameter_source(k) in (ParameterSource.DEFAULT, None)}
    return {**params, **filled}


def _given(name: str, value):
    """``value`` where the command line gave the option ``name``, None where it is the option's default."""
    from click.core import ParameterSource

    source = click.get_current_context().get_parameter_source(name)
    return None if source in (ParameterSource.DEFAULT, None) else value


def settings_options(fn):
    """Every setting of the table as an option of ``fn``, in the table's order."""
    for f in reversed(SETTINGS):
        fn = setting_option(f.name)(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
@click.version_option(package_name="latentatlas")
def main(debug):
    """latentatlas: autoencoders with a chosen latent geometry (plane, sphere)."""


@main.command(short_help="Train a model into a run folder, evaluate it, draw it.")
@settings_options
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder [default: runs/<preset>-<data>].")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder.")
@click.option("--resume", is_flag=True, help="Continue a killed run from its last complete epoch.")
@click.option("--tensorboard", type=click.Path(path_type=Path), default=None,
              help="Log losses, decoder grids and latents (Embedding Projector) to this TensorBoard folder.")
@recipe_option
@_friendly_errors
def train(out, overwrite, resume, tensorboard, recipe, **params):
    """Train a model into a run folder, evaluate it and draw its figures."""
    from .config import RunConfig

    cfg = RunConfig(**_with_recipe(recipe, params)).resolved()  # a wrong preset is refused before torch is imported
    from .runs import train_run

    if out is None:
        out = Path("runs") / f"{params['preset'] or 'custom'}-{Path(params['data']).name}"
    run = train_run(cfg, out, overwrite=overwrite, resume=resume, tensorboard=tensorboard, echo=click.echo)
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


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@_friendly_errors
def evaluate(run):
    """Recompute a run's latents and metrics from its saved weights."""
    from .runs import evaluate_run

    _echo_metrics(evaluate_run(run, echo=click.echo))
    click.echo(f"wrote {run / 'metrics.json'} and {run / 'latents.npz'}")


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--glyphs", is_flag=True, help="Draw encoder-map points as their class labels (the tutorial's style).")
@_friendly_errors
def plot(run, glyphs):
    """Redraw a run's figures without retraining."""
    from .runs import redraw_run

    for path in redraw_run(run, glyphs=glyphs, echo=click.echo):
        click.echo(str(path))


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--onnx", is_flag=True, help="Write encoder.onnx and decoder.onnx (needs the onnx extra).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder for the files [default: RUN].")
@_friendly_errors
def export(run, onnx, out):
    """Export a run's networks for use outside PyTorch."""
    if not onnx:
        raise click.UsageError("choose a format: --onnx")
    from .export import export_onnx

    for path in export_onnx(run, out):
        click.echo(str(path))


@main.command(short_help="Write one self-contained HTML report of one or more runs.")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("report.html"), show_default=True,
              help="The HTML file to write.")
@click.option("--overwrite", is_flag=True, help="Replace OUT even if it is not a page latentatlas wrote.")
@_friendly_errors
def report(runs, out, overwrite):
    """Write one self-contained HTML report (offline, mailable) of one or more runs."""
    from ._io import check_page_out
    from .viz.report import write_report

    click.echo(f"wrote {write_report(runs, check_page_out(out, overwrite))}")


@main.command(short_help="Write a run's live explorer page: it decodes under the mouse.")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The page to write [default: explorer.html in the current folder].")
@click.option("--serve", is_flag=True, help="Also serve the page on 127.0.0.1 and open a browser; Ctrl-C stops.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="With --serve; 0 picks a free one.")
@click.option("--max-points", type=click.IntRange(min=1), default=None,
              help="Test points drawn; larger test sets show a fixed random subset [default: 20,000].")
@click.option("--overwrite", is_flag=True, help="Replace OUT even if it is not a page latentatlas wrote.")
@_friendly_errors
def explore(run, out, serve, port, max_points, overwrite):
    """Write the live explorer of a run: hover anywhere on its latent maps to see the decoded image."""
    from ._io import check_page_out
    from .viz.explorer import open_in_browser, page_server, write_explorer

    limit = {} if max_points is None else {"max_points": max_points}
    page = write_explorer(run, check_page_out(Path("explorer.html") if out is None else out, overwrite), **limit)
    click.echo(f"wrote {page} (open it in a browser; it works offline)")
    if serve:
        server = page_server(page, port)
        click.echo(f"serving it at {server.url} (Ctrl-C stops)")
        open_in_browser(server.url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


def _corruption_options(fn):
    """One option per corruption of the registry (``--noise``, ``--occlude``, ...): the levels to probe at."""
    from .data.corruptions import CORRUPTIONS

    for name, c in reversed(CORRUPTIONS.items()):
        fn = click.option(f"--{name}", default=c.probe_levels, show_default=True,
                          help=f"Levels ({c.label}): START:STOP:COUNT or a comma list; '' for none.")(fn)
    return fn


@main.command(short_help="Sweep runs over noise, occlusion, rotation; score novelty.")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@_corruption_options
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seeds the corruptions.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also draw every run's curves on one axis into this PNG.")
@_friendly_errors
def probe(runs, seed, out, **levels):
    """Sweep trained runs over corrupted inputs (and, for runs with held-out classes, score novelty detection):
    probe.json and figures into each run folder."""
    from .experiments.probe import format_probe, parse_levels, probe_run, probe_curves_png
    from ._io import check_writable
    from .runs import load_run

    if out is not None:
        check_writable(out)
    asked = {name: parse_levels(name, text) for name, text in levels.items()}
    loaded = [load_run(r) for r in runs]  # every run and level checked before the first is probed
    results = []
    for run in loaded:
        results.append(probe_run(run, asked, seed=seed))
        click.echo(format_probe(results[-1]))
        click.echo(f"wrote {run.path / 'probe.json'} and its figures ({results[-1]['seconds']:.1f} s)")
    if out is not None:
        click.echo(f"wrote {probe_curves_png([(r.path.name, p) for r, p in zip(loaded, results)], out)}")


@main.command()
def presets():
    """List the architecture presets with their parameter counts."""
    from .presets import PRESETS

    for name, p in PRESETS.items():
        click.echo(f"{name:15s} {p.n_params():>10,}  {p.geometry:15s}  {p.description}")


@main.command()
def datasets():
    """List the data sets and whether each is available offline."""
    from .data import available_datasets

    for name, offline, description in available_datasets():
        click.echo(f"{name:14s} {'offline' if offline else 'download':9s} {description}")


@main.command(short_help="The tutorial in one go: train, evaluate, compare, report.")
@setting_option("data")
@setting_option("epochs")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True,
              help="Folder of the demo's runs and report; a rerun replaces its runs.")
@_friendly_errors
def demo(data, epochs, out):
    """The tutorial in one go: deep-2d, deep-3d, deep-s2 and the atlas maps; evaluate, draw, compare, report."""
    from ._io import check_page_out
    from .experiments.demo import comparison_table, run_demo
    from .viz.report import write_report

    check_page_out(out / "report.html")  # before the minutes of training: a report.html of the user's stays
    runs = run_demo(out, data=data, epochs=epochs, echo=click.echo)
    click.echo("\n" + comparison_table(runs) + "\n")
    for r in runs:
        click.echo(f"figures of {r.path.name}: {r.path / 'figures'}")
    click.echo(f"report (open it in a browser): {write_report(runs, out / 'report.html')}")
    click.echo(f"explore a run live: latentatlas explore {out / runs[-1].path.name} --out explorer.html")


@main.command(short_help="Time the trainer against the tutorial's plain training loop.")
@click.option("--preset", "presets_", multiple=True, default=("deep-2d", "deep-s2"), show_default=True,
              help="Preset(s) to benchmark; repeat the option for several.")
@setting_option("data", default="fashion-mnist")
@setting_option("epochs")
@setting_option("batch_size")
@setting_option("device")
@setting_option("precision")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Write the figures here; top-level speedup/reference/latentatlas are the first preset's.")
@click.option("--to-quality", is_flag=True,
              help="Time until test BCE and 5-NN reach the tutorial loop's final values: the loop (--epochs) against "
                   "latentatlas trained by --recipe.")
@click.option("--recipe", default="fast", show_default=True, help="With --to-quality: latentatlas's recipe.")
@_friendly_errors
def bench(presets_, data, epochs, batch_size, device, precision, json_path, to_quality, recipe):
    """Time latentatlas's trainer against the tutorial's plain loop on the same job."""
    from ._io import atomic_write_json, check_writable
    from .experiments.bench import benchmark, format_result, format_to_quality
    from .experiments.bench import to_quality as time_to_quality
    from .config import RunConfig
    from .data import load_dataset
    from .runs import resolve_runtime
    from .schedules import get_recipe

    for preset in presets_:  # every setting checked before the first minute of training
        resolve_runtime(RunConfig(preset=preset, epochs=epochs, batch_size=batch_size, device=device,
                                  precision=precision))
        if to_quality:
            resolve_runtime(RunConfig(preset=preset, device=device, precision=precision,
                                      **get_recipe(recipe).settings(preset)))
    if json_path is not None:
        check_writable(json_path)
    dataset = load_dataset(data)
    jobs = {}
    for preset in presets_:
        if to_quality:
            jobs[preset] = time_to_quality(preset, dataset, recipe=recipe, epochs=epochs, batch_size=batch_size,
                                           device=device, precision=precision)
            click.echo(format_to_quality(jobs[preset]))
            continue
        jobs[preset] = benchmark(preset, dataset, epochs=epochs, batch_size=batch_size, device=device,
                                 precision=precision)
        click.echo(format_result(jobs[preset]))
    if json_path is not None and to_quality:
        atomic_write_json(json_path, {"jobs": jobs})
        return
    if json_path is not None:
        first = jobs[presets_[0]]
        atomic_write_json(json_path, {**{k: first[k] for k in ("speedup", "reference", "latentatlas", "job",
                                                               "machine")}, "jobs": jobs})


@main.command(short_help="Compare models over seeds (mean ± s.d.), with baselines.")
@click.argument("runs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--presets", default="deep-2d,deep-3d,deep-3d-narrow,deep-s2", show_default=True,
              help="Comma-separated presets to train and compare (ignored when RUNS are given).")
@click.option("--seeds", type=int, default=3, show_default=True, help="Seeds 0 .. N-1 of each preset.")
@setting_option("data")
@setting_option("epochs")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/compare"), show_default=True,
              help="Folder of the trained runs (one per preset and seed) and of compare.csv, .json, encoder_maps.png.")
@click.option("--baselines", default="pca", show_default=True,
              help="Comma-separated baselines fitted on the training images and scored like the models: pca (2 and 3 "
                   "components), umap, tsne (these two need pip install \"latentatlas[maps]\"); '' for none.")
@click.option("--pca/--no-pca", default=None, help="Deprecated: --no-pca is --baselines without pca.")
@recipe_option
@click.option("--stack/--no-stack", default=None,
              help="Train each preset's seeds together, stacked, each into its own run folder [default: where it "
                   "measured faster (latentatlas.stack.STACK_PAYS)].")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Train the runs side by side in N processes, each with an equal share of the CPU threads.")
@_friendly_errors
def compare(runs, presets, seeds, data, epochs, out, baselines, pca, recipe, stack, workers):
    """Mean +- s.d. over seeds for several models (or existing RUNS), with baselines under the same protocol; RUNS
    that differ in more than the seed are separate rows, and baselines are fitted per data set."""
    from .experiments.compare import compare as run_compare
    from .experiments.compare import compare_runs, encoder_maps_figure, format_table, summary, write_outputs
    if pca is not None:
        click.echo(f"note: --{'' if pca else 'no-'}pca is deprecated: use --baselines", err=True)
    if runs:
        results, first = compare_runs(runs, baselines=baselines, echo=click.echo, pca=pca)
    else:
        names = [p.strip() for p in presets.split(",") if p.strip()]
        results, first = run_compare(names, seeds=seeds, data=data, out=out, baselines=baselines, echo=click.echo,
                                     pca=pca, recipe=recipe, stack=stack, epochs=_given("epochs", epochs),
                                     workers=workers)
    click.echo("\n" + format_table(summary(results)) + "\n")
    for path in [*write_outputs(results, out), encoder_maps_figure(first, out)]:
        click.echo(f"wrote {path}")


@main.command(short_help="Run or continue a sweep described by a TOML SPEC.")
@click.argument("spec", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/sweep"), show_default=True,
              help="Folder of the sweep: trials/, study.db, spec.json, trials.json.")
@click.option("--storage", default=None, help="Optuna storage URL [default: sqlite in OUT]; postgresql://... to share.")
@click.option("--workers", type=int, default=1, show_default=True, help="Local worker processes.")
@_friendly_errors
def sweep(spec, out, storage, workers):
    """Run or continue a sweep described by a TOML SPEC (needs the sweep extra: Optuna)."""
    from .experiments.sweep import format_trials
    from .experiments.sweep import sweep as run_sweep

    click.echo(format_trials(run_sweep(spec, out, storage=storage, workers=workers)))


def _echo_metrics(metrics: dict) -> None:
    from .metrics import METRIC

    for k, v in metrics.items():  # as the metrics table formats each (692,264 parameters), as everywhere else
        shown = METRIC[k].format(v) if k in METRIC and isinstance(v, (int, float)) else f"{v:.4f}" if isinstance(v, float) else v
        click.echo(f"{k:16s} {shown}")
