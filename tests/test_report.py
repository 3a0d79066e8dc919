"""The HTML report: self-contained, every section present, several runs side by side, and it opens offline."""

import dataclasses
import json
import re
import shutil

import pytest
from click.testing import CliRunner

from browser import WatchedPage
from latentatlas.cli import main
from latentatlas.errors import LatentAtlasError
from latentatlas.viz.report import SECTIONS, write_report
from latentatlas._lock import FolderLock
from latentatlas.run_folder import write_manifest
from latentatlas.runs import load_run


@pytest.fixture(scope="module")
def report(demo):
    """Runs of all three kinds of latent space (plane, R^3, sphere), with and without the neighbour term, and the
    report of them, as the demo wrote it."""
    from latentatlas.experiments.demo import DEMO_PRESETS

    root, _ = demo
    return root / "report.html", [load_run(root / preset) for preset in DEMO_PRESETS]


def test_every_section_of_every_run(report):
    path, runs = report
    text = path.read_text()
    assert 'id="comparison"' in text or "id='comparison'" in text
    for run in runs:
        for section in SECTIONS:
            assert f"id='run-{run.path.name}-{section}'" in text, (run.path.name, section)
    # Sphere: both charts, each with its encoder map and its whole-sphere decoder grid; globes for the 3-D runs.
    spheres = [r for r in runs if [c.name for c in r.model.geometry.charts()] == ["equirectangular", "equal-area"]]
    assert [r.path.name for r in spheres] == ["deep-s2", "atlas-s2"]  # the demo's two sphere runs
    assert text.count("on the equirectangular chart</figcaption>") == len(spheres)
    assert text.count("on the equal-area chart</figcaption>") == len(spheres)
    assert text.count("decoded from a regular grid over the whole chart</figcaption>") == 2 * len(spheres)
    assert "run-deep-s2-globe" in text and "run-deep-3d-globe" in text and "run-deep-2d-globe" not in text
    assert "run-atlas-s2-globe" in text and "run-atlas-2d-globe" not in text
    # What each map keeps of its points' neighbourhoods: one figure per chart of every run with charts.
    charts = sum(len(r.model.geometry.charts()) for r in runs)
    assert len(re.findall(r"stay its 5 nearest on the map \([\d,]+ test points\)</figcaption>", text)) == charts


def test_it_is_self_contained(report):
    path, _ = report
    text = path.read_text()
    markup = re.sub(r"<script>.*?</script>", "", text, flags=re.S)  # (plotly.js's code holds a link to its site)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", markup)  # nothing fetched from anywhere
    assert "default-src 'none'" in text
    assert text.count("<img") == len(re.findall(r"<img[^>]*src='data:image/png;base64,", text))
    assert text.count("* plotly.js v") == 1  # the library itself, inlined once for both globes


def test_each_map_has_its_own_scale(report):
    """compare's figure: a plane map twenty times larger than another, and a baseline's map a hundred times smaller,
    each fill their own panel (a shared scale shrank the small ones to a dot); the sphere's chart spans the sphere."""
    import numpy as np

    from latentatlas.experiments.baselines import BaselineMap
    from latentatlas.experiments.compare_outputs import encoder_maps

    _, runs = report
    plane, sphere = runs[0], runs[2]
    assert (plane.config.geometry, sphere.config.geometry) == ("euclidean", "sphere")
    lat = plane.latents()
    scaled = dataclasses.replace(plane, path=plane.path)
    scaled.latents = lambda: {**lat, "z_test": 20 * lat["z_test"] + 5}
    small = BaselineMap("umap-2", 0, 0.01 * lat["z_test"][:, ::-1], lat["y_test"], decodes=False)
    fig = encoder_maps([plane, scaled, sphere], [small])
    fig.canvas.draw()  # the baseline's equal aspect settles its limits when drawn
    for ax, z in zip(fig.axes, [lat["z_test"], 20 * lat["z_test"] + 5, None, small.z_test]):
        if z is None:
            chart = sphere.model.geometry.charts()[0]
            (x0, x1), (y0, y1) = chart.extent
            assert ax.get_xlim() == (x0, x1) and sorted(ax.get_ylim()) == [y0, y1]
            continue
        spans = np.ptp(z, axis=0)
        shown = [ax.get_xlim(), ax.get_ylim()]
        for axis, (lo, hi) in enumerate(shown):
            assert lo < z[:, axis].min() and z[:, axis].max() < hi
        assert min((hi - lo) / span for (lo, hi), span in zip(shown, spans)) < 1.2  # filled, not a dot
    assert "baseline, no decoder" in fig.axes[3].get_title()


def test_bad_run_writes_nothing(tmp_path, report):
    _, runs = report
    with pytest.raises(LatentAtlasError, match="not a run folder"):
        write_report([runs[0].path, tmp_path], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_cli(report, tmp_path):
    _, runs = report
    r = CliRunner().invoke(main, ["report", str(runs[2].path), "--out", str(tmp_path / "one.html")])
    assert r.exit_code == 0, r.output
    assert "id='comparison'" not in (tmp_path / "one.html").read_text()  # one run: no comparison section


def test_opens_offline_and_shows_every_section(browser, report):
    path, runs = report
    page = WatchedPage(browser, path.as_uri(), viewport=(1300, 900))
    p = page.page
    p.wait_for_load_state("load")
    p.wait_for_function("document.querySelectorAll('.js-plotly-plot .gl-container canvas').length >= 2", timeout=30_000)
    ids = ["comparison"] + [f"run-{r.path.name}-{s}" for r in runs for s in SECTIONS]
    for section_id in ids:
        assert p.locator(f"[id='{section_id}']").is_visible(), section_id
    assert p.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 100)")
    assert p.evaluate("document.images.length") >= 3 * 4
    assert page.errors == [] and page.requests == []
    page.close()


def test_hostile_names_and_nan_metrics(report, tmp_path):
    _, runs = report
    odd = tmp_path / "m$x^$ <b>"
    shutil.copytree(runs[0].path, odd)
    metrics = json.loads((odd / "metrics.json").read_text())
    metrics["bce_test"], metrics["<i>odd</i>"] = float("nan"), 1.0
    (odd / "metrics.json").write_text(json.dumps(metrics))
    with FolderLock(odd):  # the guard writes into a run folder only under its lock
        write_manifest(odd)  # a run written so, not one damaged afterwards
    text = write_report([runs[0].path, odd], tmp_path / "r.html").read_text()
    assert "<b>" not in text and "<i>" not in text and "&lt;i&gt;odd&lt;/i&gt;" in text
    assert "* plotly.js v" not in text  # no 3-D run, so no plotly.js


@pytest.mark.parametrize("value", [0.0, 1234.5])
def test_maps_of_a_single_point_still_have_a_scale(value):
    import numpy as np

    from latentatlas.geometries import get_geometry
    from latentatlas.viz.plots import grid_points, map_limits

    chart = get_geometry("euclidean", 2).charts()[0]
    z = np.full((50, 2), value, np.float32)  # flat data: every image encoded to one point
    _, _, _, (u0, u1, v0, v1) = grid_points(chart, 8, z)
    (x0, x1), (y0, y1) = map_limits(chart, z)
    for lo, hi in ((u0, u1), (v0, v1), (x0, x1), (y0, y1)):
        assert lo < value < hi and np.float32(lo) != np.float32(hi)
