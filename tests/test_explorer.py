"""The explorer page: its data against the model, its server's rules, and the page itself in a real Chromium.

The oracle for everything the page computes is the Python model: the page's decoder against ``metrics.decode``,
its chart inverses against ``Chart.from_map``, its nearest neighbours against a NumPy search.
"""

import base64
import http.client
import threading

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from browser import WatchedPage
from latentatlas.cli import main
from latentatlas.config import RunConfig
from latentatlas.errors import LatentAtlasError
from latentatlas.runs import write_explorer
from latentatlas.viz.explorer import decoder_layers, explorer_data, page_server
from latentatlas.metrics import decode
from latentatlas._lock import FolderLock
from latentatlas.run_folder import write_manifest
from latentatlas.run_training import train_run
from latentatlas.runs import load_run


@pytest.fixture(scope="module")
def runs(demo):
    """The demo's runs (deep-2d, deep-3d, deep-s2 on mnist-5k) and their explorer pages, both made through the CLI
    as a user would."""
    root, _ = demo
    out = {}
    for preset in ("deep-s2", "deep-2d", "deep-3d"):
        r = CliRunner().invoke(main, ["explore", str(root / preset), "--out", str(root / f"{preset}.html")])
        assert r.exit_code == 0, r.output
        out[preset] = load_run(root / preset)
    return root, out


def page_of(browser, root, preset):
    return WatchedPage(browser, (root / f"{preset}.html").as_uri()).wait_ready()


def move_to(page, view, x, y):
    """Move the mouse to (x, y) in the canvas pixels of ``view``; returns the page's state afterwards."""
    canvas = page.page.locator(f"[data-view='{view}'] canvas.overlay")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    # Whole page pixels: wheel events carry integer coordinates, pointer events fractional ones.
    page.page.mouse.move(round(box["x"] + x), round(box["y"] + y))
    return page.page.evaluate("({z: atlas.state.z, view: atlas.state.view, point: atlas.state.point, "
                              "neighbours: atlas.state.neighbours, image: Array.from(atlas.state.image || [])})")


def decoded_png(page):
    return page.page.evaluate("document.getElementById('decoded').toDataURL()")


# ---- without a browser ----------------------------------------------------------------------------------------

def test_embedded_decoder_reproduces_the_model(runs):
    """A NumPy forward pass over the embedded layers (what the page runs) equals the PyTorch decoder."""
    import base64

    _, loaded = runs
    model = loaded["deep-s2"].model
    z = torch.nn.functional.normalize(torch.randn(50, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    x = z.double().numpy()
    for layer in decoder_layers(model.decoder):
        if layer["kind"] == "linear":
            w = np.frombuffer(base64.b64decode(layer["w"]), "<f4").reshape(layer["out"], layer["in"])
            b = np.frombuffer(base64.b64decode(layer["b"]), "<f4")
            x = x @ w.T.astype(np.float64) + b
        else:
            x = np.where(x < 0, np.asarray(layer["a"]) * x, x)
    np.testing.assert_allclose(1 / (1 + np.exp(-x)), decode(model, z.numpy()), atol=1e-5)


def test_every_test_point_is_in_the_page(runs, mnist5k):
    _, loaded = runs
    data = explorer_data(loaded["deep-s2"], mnist5k)
    assert data["points"]["n"] == len(mnist5k.y_test) == 1000
    assert data["view3d"]["surface"] is True and [c["name"] for c in data["charts"]] == ["equirectangular", "equal-area"]
    plane = explorer_data(loaded["deep-2d"], mnist5k)
    assert plane["view3d"] is None and [c["name"] for c in plane["charts"]] == ["plane"]


def test_latent_spaces_it_cannot_draw_are_refused(tmp_path, small):
    cfg = RunConfig(preset="deep-2d", latent_dim=5, data="mnist-5k", epochs=1)
    run = train_run(cfg, tmp_path / "r5", progress=False, dataset=small, plot=False)
    with pytest.raises(LatentAtlasError, match="5-D"):
        write_explorer(run, tmp_path / "x.html", dataset=small)
    assert not (tmp_path / "x.html").exists()


def test_latents_of_another_data_set_are_refused(runs, small, tmp_path):
    _, loaded = runs
    with pytest.raises(LatentAtlasError, match="do not belong"):
        write_explorer(loaded["deep-2d"], tmp_path / "x.html", dataset=small)
    assert not (tmp_path / "x.html").exists()


def test_page_has_a_no_network_policy_and_no_outside_references(runs):
    root, _ = runs
    text = (root / "deep-s2.html").read_text()
    assert "default-src 'none'" in text and "connect-src 'none'" in text
    for needle in ("src=\"http", "src='http", "href=\"http", "href='http", "@import", "url("):
        assert needle not in text


@pytest.fixture()
def server(runs):
    root, _ = runs
    srv = page_server(root / "deep-2d.html")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def get(server, path, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host or f"127.0.0.1:{server.server_port}")
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r, body


def test_server_serves_only_the_page_to_its_own_host(server, runs):
    root, _ = runs
    assert server.server_address[0] == "127.0.0.1" and server.server_port > 0
    r, body = get(server, "/")
    assert r.status == 200 and body == (root / "deep-2d.html").read_bytes()
    assert "default-src 'none'" in r.getheader("Content-Security-Policy")
    assert get(server, "/", host=f"localhost:{server.server_port}")[0].status == 200
    assert get(server, "/etc/passwd")[0].status == 404
    assert get(server, "/../deep-s2.html")[0].status == 404
    assert get(server, "/", host="evil.example:80")[0].status == 403  # DNS rebinding
    assert get(server, "/", host=f"evil.example:{server.server_port}")[0].status == 403


def test_cli_serve_prints_the_url_serves_and_stops_on_ctrl_c(runs, tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys

    root, _ = runs
    env = {**os.environ, "BROWSER": "true"}  # "open a browser" runs true(1): nothing appears, nothing blocks
    # SIGINT as a terminal delivers it, even where this test runs in the background (where a shell ignores SIGINT,
    # its children inherit that, and Python then installs no KeyboardInterrupt handler)
    proc = subprocess.Popen([sys.executable, "-m", "latentatlas", "explore", str(root / "deep-2d"), "--out",
                             str(tmp_path / "e.html"), "--serve"], stdout=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", lines[1]).group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == (tmp_path / "e.html").read_bytes()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.stdout.close()


# ---- in Chromium ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", ["deep-s2", "deep-2d", "deep-3d"])
def test_page_loads_without_errors_or_requests(browser, runs, preset):
    root, _ = runs
    page = page_of(browser, root, preset)
    move_to(page, page.page.evaluate("atlas.views")[-1], 200, 120)
    page.page.mouse.down()
    page.page.mouse.up()
    assert page.errors == [] and page.requests == []
    page.close()


@pytest.mark.parametrize("preset", ["deep-s2", "deep-2d", "deep-3d"])
def test_decoder_in_the_page_equals_the_python_decoder(browser, runs, preset):
    root, loaded = runs
    model = loaded[preset].model
    rng = np.random.default_rng(1)
    h = torch.as_tensor(rng.normal(size=(20, model.geometry.encoder_features)) * 2, dtype=torch.float32)
    z = model.geometry(h).mode.numpy()  # points of the latent space, whichever it is
    page = page_of(browser, root, preset)
    js = np.array(page.page.evaluate("zs => zs.map(z => atlas.decode(z))", z.tolist()))
    np.testing.assert_allclose(js, decode(model, z.astype(np.float32)), atol=1e-4, rtol=0)
    assert np.abs(js - decode(model, z.astype(np.float32))).max() < 1e-4
    page.close()


@pytest.mark.parametrize("preset", ["deep-s2", "deep-2d"])
def test_chart_inverses_in_the_page_equal_the_geometry(browser, runs, preset):
    root, loaded = runs
    page = page_of(browser, root, preset)
    rng = np.random.default_rng(2)
    for chart in loaded[preset].model.geometry.charts():
        (u0, u1), (v0, v1) = chart.extent or ((-5, 5), (-5, 5))
        uv = np.stack([rng.uniform(u0, u1, 300), rng.uniform(v0, v1, 300)], 1)
        js = page.page.evaluate("([name, uv]) => uv.map(([u, v]) => atlas.fromMap(name, u, v))", [chart.name, uv.tolist()])
        inside = np.ones(len(uv), bool) if chart.inside is None else chart.inside(torch.as_tensor(uv)).numpy()
        assert [p is not None for p in js] == inside.tolist()
        expected = chart.from_map(torch.as_tensor(uv[inside])).numpy()
        np.testing.assert_allclose(np.array([p for p in js if p is not None]), expected, atol=1e-6)
    page.close()


def test_moving_the_mouse_changes_the_decoded_image(browser, runs):
    root, loaded = runs
    page = page_of(browser, root, "deep-2d")
    first = move_to(page, "map:plane", 150, 150)
    png1 = decoded_png(page)
    second = move_to(page, "map:plane", 420, 380)
    assert first["z"] != second["z"] and decoded_png(page) != png1
    # The image under the mouse is the Python decoder's image of the latent point under the mouse.
    np.testing.assert_allclose(second["image"], decode(loaded["deep-2d"].model, [second["z"]])[0], atol=1e-4)
    page.close()


@pytest.mark.parametrize("view,x,y", [("globe", 210, 210), ("globe", 150, 260), ("map:equirectangular", 300, 100),
                                      ("map:equal-area", 250, 150), ("map:equal-area", 120, 100)])
def test_points_picked_on_the_sphere_lie_on_it(browser, runs, view, x, y):
    root, loaded = runs
    page = page_of(browser, root, "deep-s2")
    state = move_to(page, view, x, y)
    assert state["view"] == view
    assert abs(np.linalg.norm(state["z"]) - 1) < 1e-6
    np.testing.assert_allclose(state["image"], decode(loaded["deep-s2"].model, [state["z"]])[0], atol=1e-4)
    assert page.errors == []
    page.close()


def test_r3_view_decodes_the_points_it_shows(browser, runs):
    """R^3 has no surface to point at: its rotatable view decodes the test point under the mouse."""
    root, loaded = runs
    page = page_of(browser, root, "deep-3d")
    assert page.page.evaluate("atlas.views") == ["globe"]
    positions = page.page.evaluate("[...Array(200).keys()].map(i => atlas.pointPosition('globe', i))")
    i = next(k for k, p in enumerate(positions) if p is not None)
    state = move_to(page, "globe", *positions[i])
    j = state["point"]
    assert j >= 0 and np.allclose(state["z"], loaded["deep-3d"].latents()["z_test"][j], atol=1e-6)
    np.testing.assert_allclose(state["image"], decode(loaded["deep-3d"].model, [state["z"]])[0], atol=1e-4)
    page.close()


def test_hovering_a_point_shows_it_and_its_nearest_neighbours(browser, runs, mnist5k):
    root, loaded = runs
    page = page_of(browser, root, "deep-2d")
    z_test = loaded["deep-2d"].latents()["z_test"]
    for i in (0, 123, 777):
        x, y = page.page.evaluate(f"atlas.pointPosition('map:plane', {i})")
        state = move_to(page, "map:plane", x, y)
        assert state["point"] >= 0
        j = state["point"]  # i, or a point drawn within a pixel of it
        assert np.linalg.norm(z_test[j] - z_test[i]) < 0.2
        assert f"test #{j}," in page.page.inner_text("#point-info")
        d = np.linalg.norm(z_test - np.asarray(state["z"]), axis=1)
        assert state["neighbours"] == np.argsort(d, kind="stable")[:5].tolist()
        assert page.page.locator("#neighbours li").count() == 5
        # The original drawn is the test image itself.
        drawn = page.page.evaluate("""() => { const c = document.getElementById('original');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const s = c.width / 28; const out = [];
            for (let r = 0; r < 28; r++) for (let q = 0; q < 28; q++) out.push(d[4 * ((Math.floor((r + 0.5) * s)) * c.width + Math.floor((q + 0.5) * s))]);
            return out; }""")
        np.testing.assert_array_equal(np.array(drawn), mnist5k.x_test[j].ravel())
    page.close()


def test_drags_and_clicks_outside_the_domain_do_not_pin(browser, runs):
    root, _ = runs
    page = page_of(browser, root, "deep-s2")
    move_to(page, "map:equirectangular", 300, 100)
    page.page.mouse.down()
    move_to(page, "map:equirectangular", 360, 140)  # a drag across a map
    page.page.mouse.up()
    move_to(page, "map:equal-area", 60, 20)  # outside the Hammer ellipse
    page.page.mouse.down()
    page.page.mouse.up()
    assert page.page.locator("#pinned .pin").count() == 0
    page.close()


@pytest.mark.parametrize("view", ["map:plane", "map:equal-area"])
def test_zoom_about_the_mouse_pan_and_reset(browser, runs, view):
    root, loaded = runs
    preset = "deep-2d" if view == "map:plane" else "deep-s2"
    page = page_of(browser, root, preset)
    home = page.page.evaluate(f"atlas.window('{view}')")
    before = move_to(page, view, 260, 130)
    for _ in range(3):
        page.page.mouse.wheel(0, -100)  # zoom in
    zoomed = page.page.evaluate(f"atlas.window('{view}')")
    assert (zoomed[1] - zoomed[0]) < 0.6 * (home[1] - home[0])
    after = move_to(page, view, 260, 130)
    np.testing.assert_allclose(after["z"], before["z"], atol=1e-4)  # the point under the mouse stays put
    moved = move_to(page, view, 300, 150)
    np.testing.assert_allclose(moved["image"], decode(loaded[preset].model, [moved["z"]])[0], atol=1e-4)
    page.page.mouse.down()
    move_to(page, view, 200, 100)  # drag: pan
    page.page.mouse.up()
    panned = page.page.evaluate(f"atlas.window('{view}')")
    assert panned[0] > zoomed[0] and page.page.locator("#pinned .pin").count() == 0
    for _ in range(30):
        page.page.mouse.wheel(0, 100)  # zoom out as far as it goes: never wider than the whole chart
    out = page.page.evaluate(f"atlas.window('{view}')")
    assert out[1] - out[0] == pytest.approx(home[1] - home[0])
    page.page.locator(f"[data-view='{view}'] button.reset").click()
    assert page.page.evaluate(f"atlas.window('{view}')") == pytest.approx(home)
    assert page.errors == []
    page.close()


def test_clicks_pin_images_side_by_side(browser, runs):
    root, _ = runs
    page = page_of(browser, root, "deep-2d")
    for x in (150, 300, 420):
        move_to(page, "map:plane", x, 200)
        page.page.mouse.down()
        page.page.mouse.up()
    pins = page.page.locator("#pinned .pin")
    assert pins.count() == 3
    boxes = [pins.nth(k).bounding_box() for k in range(3)]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"]  # side by side
    pins.nth(0).locator("button").click()
    assert pins.count() == 2
    page.close()


def test_dragging_turns_the_globe(browser, runs):
    root, _ = runs
    page = page_of(browser, root, "deep-s2")
    where = "[...Array(50).keys()].map(i => atlas.pointPosition('globe', i))"
    before = page.page.evaluate(where)
    box = page.page.locator("[data-view='globe'] canvas.overlay").bounding_box()
    page.page.mouse.move(box["x"] + 200, box["y"] + 200)
    page.page.mouse.down()
    page.page.mouse.move(box["x"] + 260, box["y"] + 230, steps=5)
    page.page.mouse.up()
    after = page.page.evaluate(where)
    moved = [a != b for a, b in zip(before, after) if a is not None and b is not None]
    assert moved and all(moved)
    assert page.page.locator("#pinned .pin").count() == 0  # a drag is not a click
    page.close()


@pytest.fixture(scope="module")
def odd_run(runs, tmp_path_factory):
    """The demo's deep-s2 run under a hostile folder name, with a NaN metric."""
    import json
    import shutil

    root, _ = runs
    odd = tmp_path_factory.mktemp("odd") / "a<!--<script>$x^$ & b"
    shutil.copytree(root / "deep-s2", odd)
    metrics = json.loads((odd / "metrics.json").read_text())
    metrics["bce_test"] = float("nan")
    (odd / "metrics.json").write_text(json.dumps(metrics))
    with FolderLock(odd):  # the guard writes into a run folder only under its lock
        write_manifest(odd)  # a run written so, not one damaged afterwards
    return odd


def test_hostile_names_and_nan_metrics_leave_the_page_working(browser, odd_run, mnist5k, tmp_path):
    page_path = write_explorer(odd_run, tmp_path / "odd.html", dataset=mnist5k)
    page = WatchedPage(browser, page_path.as_uri()).wait_ready()
    assert page.page.inner_text("#run-name") == odd_run.name
    # the template's own scripts (data, charts, views, explorer) and no more: a hostile name added none
    assert page.page.evaluate("document.scripts.length") == 4 and page.errors == []
    page.close()


def test_a_subset_when_the_test_set_is_large(runs, mnist5k):
    _, loaded = runs
    data = explorer_data(loaded["deep-2d"], mnist5k, max_points=300)
    assert data["points"]["n"] == 300 and data["points"]["total"] == 1000
    again = explorer_data(loaded["deep-2d"], mnist5k, max_points=300)
    assert data["points"]["z"] == again["points"]["z"]  # the same subset every time


def test_flat_samples_are_drawn_as_a_tile(browser, tmp_path):
    """Features that are not images (300 per sample) still show as a picture, and decode like the model."""
    from latentatlas.data import Dataset

    rng = np.random.default_rng(0)
    x = rng.random((600, 300)).astype(np.float32)
    y = rng.integers(0, 3, 600)
    ds = Dataset("flat", x[:500], y[:500], x[500:], y[500:])
    run = train_run(RunConfig(preset="deep-2d", data="mnist-5k", epochs=1), tmp_path / "flat", progress=False,
                    dataset=ds, plot=False)
    page_path = write_explorer(run, tmp_path / "flat.html", dataset=ds)
    page = WatchedPage(browser, page_path.as_uri()).wait_ready()
    state = move_to(page, "map:plane", 250, 250)
    assert len(state["image"]) == 300
    np.testing.assert_allclose(state["image"], decode(run.model, [state["z"]])[0], atol=1e-4)
    lit = page.page.evaluate("""() => { const c = document.getElementById('decoded');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) n++; return n / (d.length / 4); }""")
    assert lit > 0.8  # the tile fills the square, not a 1-pixel line
    assert page.errors == []
    page.close()


def test_served_page_works_the_same(browser, server):
    page = WatchedPage(browser, server.url).wait_ready()
    state = move_to(page, "map:plane", 200, 200)
    assert state["z"] is not None and page.errors == [] and page.requests == []
    page.close()


def _ramp(t: float) -> str:
    """The page's viridis ramp (its end points and middle), as the page computes it."""
    ramp = [(68, 1, 84), (33, 145, 140), (253, 231, 37)]
    a, b, u = (ramp[0], ramp[1], 2 * t) if t < 0.5 else (ramp[1], ramp[2], 2 * t - 1)
    return "rgb(" + ",".join(str(int(np.floor(v + u * (w - v) + 0.5))) for v, w in zip(a, b)) + ")"


def test_points_can_be_coloured_by_the_neighbourhood_the_map_keeps(browser, runs, mnist5k):
    from latentatlas.metrics import neighbourhood_preservation

    root, loaded = runs
    page = page_of(browser, root, "deep-2d")
    kept = neighbourhood_preservation(mnist5k.x_test, loaded["deep-2d"].latents()["z_test"])
    sent = np.frombuffer(base64.b64decode(page.page.evaluate("atlas.data.points.kept")), np.uint8)
    np.testing.assert_array_equal(sent, np.round(kept * 255).astype(np.uint8))
    points = [int(np.argmin(kept)), int(np.argmax(kept)), 0, 500]
    colours = page.page.evaluate("atlas.data.colors")
    for i in points:  # by class first
        assert page.page.evaluate(f"atlas.colourOf({i})") == colours[int(mnist5k.y_test[i]) % 10]
    page.page.select_option("#colour-by", "kept")
    for i in points:
        assert page.page.evaluate(f"atlas.colourOf({i})") == _ramp(sent[i] / 255), i
    assert page.page.is_visible("#kept-legend") and not page.page.is_visible("#legend")
    assert page.errors == []
    page.close()


def test_class_legend_is_in_the_header_above_the_maps(browser, runs):
    root, _ = runs
    page = page_of(browser, root, "deep-s2")
    entries = page.page.locator("#legend span")
    assert entries.count() == 10 and entries.nth(3).inner_text().strip() == "3"
    colours = page.page.evaluate("Array.from(document.querySelectorAll('#legend i')).map(i => i.style.background)")
    assert colours[1] == "rgb(255, 127, 14)"  # tab10's class 1, as on the maps
    legend = page.page.locator("#legend").bounding_box()
    first_view = page.page.locator(".view").first.bounding_box()
    assert legend["y"] + legend["height"] <= first_view["y"] and page.page.is_visible("#legend")
    page.close()
