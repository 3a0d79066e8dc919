"""Commands over many runs: the demo, comparisons, sweeps, benchmarks and robustness probes."""

from __future__ import annotations

from pathlib import Path

import click

from .options import friendly_errors, given, recipe_option, setting_option


def _corruption_options(fn):
    """One option per corruption of the registry (``--noise``, ``--occlude``, ...): the levels to probe at."""
    from ..data.corruptions import CORRUPTIONS

    for name, c in reversed(CORRUPTIONS.items()):  # default: the corruption's for each run's images
        default = c.default_levels((28, 28))
        shown = f"{default} on 28 x 28 images" if default != c.default_levels((8, 8)) else default or "none"
        fn = click.option(f"--{name}", default=None, help=f"Levels ({c.label}): START:STOP:COUNT or a comma list; "
                                                          f"'' for none [default: {shown}].")(fn)
    return fn


@click.command(short_help="Sweep runs over noise, occlusion, rotation; score novelty.")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@_corruption_options
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seeds the corruptions.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also draw every run's curves on one axis into this PNG.")
@click.option("--overwrite", is_flag=True, help="Replace OUT even if latentatlas did not write it.")
@friendly_errors
def probe(runs, seed, out, overwrite, **levels):
    """Sweep trained runs over corrupted inputs (and, for runs with held-out classes, score novelty detection):
    probe.json and figures into each run folder."""
    from ..experiments.probe import format_probe, parse_levels, probe_run, probe_curves_png
    from .._guard import check_out
    from ..runs import load_run, locked_run

    if out is not None:
        check_out(out, overwrite)
    asked = {name: parse_levels(name, text) for name, text in levels.items()}
    loaded = [load_run(r) for r in runs]  # every run and level checked before the first is probed
    results = []
    for i, path in enumerate(runs):
        run, lock = locked_run(path)  # read and written under the run's lock: never a run being trained
        with lock:
            loaded[i] = run
            results.append(probe_run(run, asked, seed=seed))
        click.echo(format_probe(results[-1]))
        click.echo(f"wrote {run.path / 'probe.json'} and its figures ({results[-1]['seconds']:.1f} s)")
    if out is not None:
        click.echo(f"wrote {probe_curves_png([(r.path.name, p) for r, p in zip(loaded, results)], out, overwrite)}")


@click.command(short_help="The tutorial in one go: train, evaluate, compare, report.")
@setting_option("data")
@setting_option("epochs", default=None, show_default=False,
                help="Passes over the training set, for every run [default: the tutorial's 10, or as many as make "
                     "2,000 steps where 10 make fewer: 63 on mnist-5k].")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True,
              help="Folder of the demo's runs and report; a rerun replaces its runs.")
@friendly_errors
def demo(data, epochs, out):
    """The tutorial in one go: deep-2d, deep-3d, deep-s2 and the atlas maps; evaluate, draw, compare, report."""
    from .._guard import check_out
    from ..experiments.demo import comparison_table, run_demo
    from ..viz.report import write_report

    check_out(out / "report.html")  # before the minutes of training: a report.html of the user's stays
    runs = run_demo(out, data=data, epochs=epochs, echo=click.echo)
    click.echo("\n" + comparison_table(runs) + "\n")
    for r in runs:
        click.echo(f"figures of {r.path.name}: {r.path / 'figures'}")
    click.echo(f"report (open it in a browser): {write_report(runs, out / 'report.html')}")
    click.echo(f"explore a run live: latentatlas explore {out / runs[-1].path.name} --out explorer.html")


@click.command(short_help="Time the trainer against the tutorial's plain training loop.")
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
@friendly_errors
def bench(presets_, data, epochs, batch_size, device, precision, json_path, to_quality, recipe):
    """Time latentatlas's trainer against the tutorial's plain loop on the same job."""
    from .._guard import check_out
    from .._io import atomic_write_json
    from ..experiments.bench import benchmark, format_result, format_to_quality
    from ..experiments.bench import to_quality as time_to_quality
    from ..config import RunConfig
    from ..data import load_dataset
    from ..run_training import resolve_runtime
    from ..schedules import get_recipe

    for preset in presets_:  # every setting checked before the first minute of training
        resolve_runtime(RunConfig(preset=preset, epochs=epochs, batch_size=batch_size, device=device,
                                  precision=precision))
        if to_quality:
            resolve_runtime(RunConfig(preset=preset, device=device, precision=precision,
                                      **get_recipe(recipe).settings(preset)))
    if json_path is not None:
        check_out(json_path, name="json")
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


@click.command(short_help="Compare models over seeds (mean ± s.d.), with baselines.")
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
                   "components), umap (needs pip install \"latentatlas[maps]\"), tsne (openTSNE); '' for none.")
@click.option("--pca/--no-pca", default=None, help="Deprecated: --no-pca is --baselines without pca.")
@recipe_option
@click.option("--stack/--no-stack", default=None,
              help="Train each preset's seeds together, stacked, each into its own run folder [default: where it "
                   "measured faster (latentatlas.stack.STACK_PAYS)].")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Train the runs side by side in N processes, each with an equal share of the CPU threads.")
@friendly_errors
def compare(runs, presets, seeds, data, epochs, out, baselines, pca, recipe, stack, workers):
    """Mean +- s.d. over seeds for several models (or existing RUNS), with baselines under the same protocol; RUNS
    that differ in more than the seed are separate rows, and baselines are fitted per data set."""
    from ..experiments.compare import compare as run_compare
    from ..experiments.compare import compare_runs
    from .._guard import check_out
    from ..experiments.compare_outputs import OUTPUTS, encoder_maps_figure, format_table, summary, write_outputs

    for name in OUTPUTS:  # before the minutes of training: a compare.csv of the user's stays
        check_out(out / name)
    if pca is not None:
        click.echo(f"note: --{'' if pca else 'no-'}pca is deprecated: use --baselines", err=True)
    if runs:
        results, first, maps = compare_runs(runs, baselines=baselines, echo=click.echo, pca=pca)
    else:
        names = [p.strip() for p in presets.split(",") if p.strip()]
        results, first, maps = run_compare(names, seeds=seeds, data=data, out=out, baselines=baselines,
                                           echo=click.echo, pca=pca, recipe=given("recipe", recipe), stack=stack,
                                           epochs=given("epochs", epochs), workers=workers)
    click.echo("\n" + format_table(summary(results)) + "\n")
    for path in [*write_outputs(results, out), encoder_maps_figure(first, out, maps)]:
        click.echo(f"wrote {path}")


@click.command(short_help="Run or continue a sweep described by a TOML SPEC.")
@click.argument("spec", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/sweep"), show_default=True,
              help="Folder of the sweep: trials/, study.db, spec.json, trials.json, chosen.json.")
@click.option("--storage", default=None, help="Optuna storage URL [default: sqlite in OUT]; postgresql://... to share.")
@click.option("--workers", type=int, default=1, show_default=True, help="Local worker processes.")
@friendly_errors
def sweep(spec, out, storage, workers):
    """Run or continue a sweep described by a TOML SPEC (needs the sweep extra: Optuna)."""
    from ..experiments.sweep import format_trials, read_chosen
    from ..experiments.sweep import sweep as run_sweep

    rows = run_sweep(spec, out, storage=storage, workers=workers)
    click.echo(format_trials(rows, read_chosen(out)))
