"""The explorer and the report over the geometry registry: for every latent space they can draw, the explorer page
loads cleanly, its chart inverses equal the geometry's, and a point picked on a 3-D surface is a point of the space
that decodes as in Python; the report of all of them opens cleanly. A new geometry is covered here with no new test
code."""

import numpy as np
import pytest
import torch

from browser import WatchedPage
from latentatlas.config import RunConfig
from latentatlas.geometries import GEOMETRIES, get_geometry
from latentatlas.metrics import decode
from latentatlas.run_training import train_run
from latentatlas.runs import write_explorer


def drawable():
    for name, cls in GEOMETRIES.items():
        for d in sorted({*cls.test_dims, 2, 3}):
            if d < cls.min_dim:
                continue
            g = get_geometry(name, d)
            if any(c.js_from_map for c in g.charts()) or g.embedding_3d() is not None:
                yield pytest.param(name, d, id=f"{name}-{d}")


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    root = tmp_path_factory.mktemp("geometries")
    out = {}
    for p in drawable():
        name, d = p.values
        run = train_run(RunConfig(preset=None, hidden_sizes=(32,), geometry=name, latent_dim=d, epochs=1, iwae_k=5,
                                  data="digits"), root / f"{name}-{d}", progress=False, plot=False)
        out[name, d] = (run, write_explorer(run, root / f"{name}-{d}.html"))
    return out


@pytest.mark.parametrize("name,d", list(drawable()))
def test_every_drawable_geometry_works_in_the_page(browser, pages, name, d):
    run, path = pages[name, d]
    g = run.model.geometry
    page = WatchedPage(browser, path.as_uri()).wait_ready()
    rng = np.random.default_rng(0)
    for chart in g.charts():
        (u0, u1), (v0, v1) = chart.extent or ((-3, 3), (-3, 3))
        uv = np.stack([rng.uniform(u0, u1, 200), rng.uniform(v0, v1, 200)], 1)
        js = page.page.evaluate("([name, uv]) => uv.map(([u, v]) => atlas.fromMap(name, u, v))", [chart.name, uv.tolist()])
        inside = np.ones(len(uv), bool) if chart.inside is None else chart.inside(torch.as_tensor(uv)).numpy()
        assert [p is not None for p in js] == inside.tolist()
        np.testing.assert_allclose(np.array([p for p in js if p is not None]),
                                   chart.from_map(torch.as_tensor(uv[inside])).numpy(), atol=1e-6)
    emb = g.embedding_3d()
    if emb is not None and emb.is_surface:
        views = page.page.evaluate("atlas.views")
        view = next(v for v in views if not v.startswith("map:"))
        canvas = page.page.locator(f"[data-view='{view}'] canvas.overlay")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        picked = 0
        for fx, fy in ((0.5, 0.3), (0.3, 0.5), (0.7, 0.6), (0.5, 0.5)):
            page.page.mouse.move(round(box["x"] + fx * box["width"]), round(box["y"] + fy * box["height"]))
            state = page.page.evaluate("({z: atlas.state.z, view: atlas.state.view, image: Array.from(atlas.state.image || [])})")
            if state["view"] != view or state["z"] is None:
                continue  # the ray missed the surface (the ring torus's hole)
            z = torch.tensor([state["z"]], dtype=torch.float32)
            assert g.contains(z, atol=1e-5).all()
            np.testing.assert_allclose(state["image"], decode(run.model, z.numpy())[0], atol=1e-4)
            picked += 1
        assert picked >= 2
    assert page.errors == [] and page.requests == []
    page.close()


def test_the_report_of_every_drawable_geometry_opens_cleanly(browser, pages, tmp_path):
    from latentatlas.viz.report import write_report

    runs = [run for run, _ in pages.values()]
    path = write_report(runs, tmp_path / "report.html")
    page = WatchedPage(browser, path.as_uri(), viewport=(1300, 900))
    page.page.wait_for_load_state("load")
    assert page.page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 50)")
    assert page.errors == [] and page.requests == []
    page.close()
