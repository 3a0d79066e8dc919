"""The tutorial notebook runs top to bottom in a real kernel (nbclient), so it cannot rot; its outputs hold the rich
cards and the inline explorer; exported to HTML (nbconvert), the explorer inside it decodes under the mouse in a
real Chromium. Also the notebook displays themselves, without a kernel."""

import html
import os
import re
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """docs/tutorial.ipynb executed in a fresh kernel, in a scratch folder, with few epochs: (notebook, folder)."""
    folder = tmp_path_factory.mktemp("tutorial")
    nb = nbformat.read(TUTORIAL, as_version=4)
    env = {"TUTORIAL_EPOCHS": "2", "TUTORIAL_THICK_EPOCHS": "1", "TUTORIAL_THICK_SAMPLES": "600",
           "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment it is started in
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    nbformat.write(nb, folder / "tutorial.ipynb")
    return nb, folder


def outputs(cell, mime):
    return [o["data"][mime] for o in cell.get("outputs", []) if mime in o.get("data", {})]


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_tutorial_is_about_a_dozen_cells_and_has_no_outputs_committed():
    nb = nbformat.read(TUTORIAL, as_version=4)
    assert 10 <= len(nb.cells) <= 16
    assert all(not c.get("outputs") for c in code_cells(nb)), "commit the notebook without outputs"


def test_tutorial_runs_top_to_bottom(executed):
    nb, folder = executed
    errors = [o for c in code_cells(nb) for o in c.outputs if o.output_type == "error"]
    assert errors == []
    warnings = [o.text for c in code_cells(nb) for o in c.outputs if o.get("name") == "stderr" and "Warning" in o.text]
    assert warnings == []  # tqdm's "IProgress not found" once greeted every newcomer
    for preset in ("deep-2d", "deep-3d", "deep-s2"):
        assert (folder / "runs" / "tutorial" / preset / "manifest.json").is_file()


def test_outputs_hold_the_cards_the_figures_and_the_inline_explorer(executed):
    nb, _ = executed
    cells = code_cells(nb)
    htmls = [h for c in cells for h in outputs(c, "text/html")]
    cards = [h for h in htmls if "settings" in h and "data:image/png;base64," in h]
    assert any(">deep-2d<" in h for h in cards)  # the run's card, with its map's thumbnail
    assert any("Autoencoder (fitted on 784 features)" in h and ">thick-s2<" in h for h in cards)  # the estimator's
    assert sum(len(outputs(c, "image/png")) for c in cells) >= 6  # the figures, inline
    frames = [h for h in htmls if "<iframe" in h]
    assert len(frames) == 1 and "srcdoc=" in frames[0] and "sandbox='allow-scripts'" in frames[0]
    page = html.unescape(re.search(r'srcdoc="([^"]*)"', frames[0]).group(1))
    assert page.startswith("<!DOCTYPE html>") and "atlas-data" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched from outside
    text = "".join(t for c in cells for o in c.outputs if o.output_type == "stream" for t in o["text"])
    assert "deep-s2" in text and "5-NN" in text  # the comparison table


def test_the_trainings_say_what_trains_and_a_line_per_epoch(executed):
    """Run by nbclient, the kernel's output is no terminal: each training says what it trains and how its epochs go
    (the first's end and the last's at least), in lines in the cells' output, not a bar that never shows."""
    nb, _ = executed
    texts = ["".join(o["text"] for o in c.outputs if o.output_type == "stream") for c in code_cells(nb)]
    trained = [t for t in texts if "epoch 2, train_loss" in t]
    for preset in ("deep-2d", "deep-3d", "deep-s2"):
        (cell,) = [t for t in texts if f"training {preset} " in t]
        assert re.search(r"training: .*epoch 1, train_loss \d\.\d{4}, .*left", cell), cell
        assert re.search(r"training: .*epoch 2, train_loss \d\.\d{4}, .*left", cell), cell
    # the estimator (thick-s2, one epoch here) with verbose=True
    assert any(re.search(r"training: .*epoch 1, train_loss", t) and "training deep" not in t for t in texts)
    assert len(trained) == 3


def test_exported_notebook_explorer_decodes_under_the_mouse(executed, browser, tmp_path):
    from nbconvert import HTMLExporter

    from browser import WatchedPage

    nb, _ = executed
    body, _ = HTMLExporter().from_notebook_node(nb)
    page_file = tmp_path / "tutorial.html"
    page_file.write_text(body)
    watched = WatchedPage(browser, page_file.as_uri())
    frame_element = watched.page.wait_for_selector("iframe.latentatlas-explorer", timeout=20_000)
    frame_element.scroll_into_view_if_needed()
    frame = frame_element.content_frame()
    frame.wait_for_selector("body[data-ready='1']", timeout=30_000)
    views = frame.evaluate("atlas.views")
    canvas = frame.locator(f"[data-view='{views[1]}'] canvas.overlay")  # the (phi, theta) map
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()  # in the top page's pixels
    before = frame.evaluate("document.getElementById('decoded').toDataURL()")
    watched.page.mouse.move(round(box["x"] + box["width"] * 0.4), round(box["y"] + box["height"] * 0.5))
    frame.wait_for_function("atlas.state.z !== null", timeout=10_000)
    z = np.array(frame.evaluate("atlas.state.z"))
    assert z.shape == (3,) and abs(np.linalg.norm(z) - 1) < 1e-4  # a point of the sphere, decoded
    assert frame.evaluate("document.getElementById('decoded').toDataURL()") != before
    page_errors = [e for e in watched.errors if "net::" not in e and "Failed to load resource" not in e]
    assert page_errors == []
    watched.close()


# ---- without a kernel -------------------------------------------------------------------------------------------

def test_a_run_and_a_fitted_estimator_show_themselves(demo, small):
    import matplotlib.pyplot as plt

    from latentatlas import Autoencoder
    from latentatlas.runs import load_run

    root, _ = demo
    for preset, chart in (("deep-2d", "plane chart"), ("deep-3d", "first two principal axes"),
                          ("deep-s2", "equirectangular chart")):
        run = load_run(root / preset)
        card = run._repr_html_()
        assert f">{preset}<" in card and "data:image/png;base64," in card
        assert "692,264" in card or "666,791" in card  # parameters, formatted as everywhere else
        figs = run.figures()
        assert all(type(f).__name__ == "Figure" for f in figs.values())
        for fig in figs.values():  # as a notebook's inline backend closes them once shown
            plt.close(fig)
    unfitted = Autoencoder(epochs=1)
    assert "sk-" in unfitted._repr_mimebundle_()["text/html"]  # scikit-learn's own diagram until fitted
    x, y = small.flat("train")
    ae = Autoencoder(preset="deep-2d", epochs=1, random_state=0).fit(x, y)
    card = ae._repr_mimebundle_()["text/html"]
    assert "Autoencoder (fitted on 784 features)" in card and "666,791" in card and "data:image/png" in card
    assert ae.embedding_.shape == (len(x), 2)


def test_estimator_explore_embeds_its_own_points(small, tmp_path):
    from latentatlas import Autoencoder
    from latentatlas.errors import LatentAtlasError

    x, y = small.flat("train")
    ae = Autoencoder(preset="deep-s2", epochs=1, random_state=0).fit(x)
    xt, yt = small.flat("test")
    view = ae.explore(xt, yt)
    assert "srcdoc=" in view._repr_html_() and '"n":300' in view.page
    saved = view.save(tmp_path / "e.html")
    assert saved.read_text() == view.page
    with pytest.raises(LatentAtlasError, match="one label per sample"):
        ae.explore(xt, yt[:5])
    # names as labels (strings, a pandas Categorical): the legend names the classes; the codes are their sorted order
    names = np.array(["even", "odd"])[yt % 2]
    page = ae.explore(xt, names).page
    assert '"classes":["even","odd"]' in page.replace(", ", ",")
    pd = pytest.importorskip("pandas")
    assert ae.explore(xt, pd.Categorical(names)).page == page
