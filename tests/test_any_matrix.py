"""Any numeric matrix, not only images: simulated firing rates (floats far outside [0, 1]) train, report and explore
from the CLI and the estimator with no option given; scaling=auto says in one line what it chose."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from latentatlas import Autoencoder, ColorBy
from latentatlas.cli import main
from latentatlas.data import DataSpec

HEADINGS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")


def firing_rates(n=700, k=24, seed=0, heading=False):
    """Head-direction cells: von Mises tuning curves of rate up to ~20 Hz plus gamma noise; labels: heading sector
    (and, with ``heading``, the simulated heading in radians)."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-np.pi, np.pi, n)
    pref = np.linspace(-np.pi, np.pi, k, endpoint=False)
    rates = 20 * np.exp(2 * (np.cos(theta[:, None] - pref) - 1)) + rng.gamma(2.0, 0.5, (n, k))
    sector = np.floor((theta + np.pi) / (2 * np.pi) * 8).astype(np.int64) % 8
    return (rates.astype(np.float32), sector) + ((theta,) if heading else ())


@pytest.fixture(scope="module")
def rates_npz(tmp_path_factory):
    x, y, heading = firing_rates(heading=True)
    path = tmp_path_factory.mktemp("rates") / "rates.npz"
    np.savez(path, x_train=x[:550], y_train=y[:550], x_test=x[550:], y_test=y[550:], class_names=np.array(HEADINGS),
             heading_test=heading[550:])
    return path


def test_firing_rates_train_report_and_explore_from_the_cli(rates_npz, tmp_path):
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--data", str(rates_npz), "--epochs", "2", "--out", str(run)])
    assert r.exit_code == 0, r.output
    (note,) = [line for line in r.output.splitlines() if line.startswith("scaling: ")]
    assert "float32 over [" in note and "min-max scaled" in note
    r = CliRunner().invoke(main, ["report", str(run), "--out", str(tmp_path / "report.html")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["explore", str(run), "--out", str(tmp_path / "explorer.html")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "explorer.html").read_text()
    assert all(f'"{name}"' in page for name in HEADINGS)  # the .npz's class names name the classes
    # The run's data, rebuilt from its folder, are the scaled ones the model saw: each feature in [0, 1] on train.
    data = DataSpec(str(rates_npz)).load()
    assert data.x_train.min(0) == pytest.approx(0) and data.x_train.max(0) == pytest.approx(1)
    assert data.classes == HEADINGS
    # Coloured by the simulated heading with a cyclic map, in the figures, the report and the explorer.
    r = CliRunner().invoke(main, ["plot", str(run), "--color-by", "heading:circular"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["report", str(run), "--color-by", "heading:circular", "--overwrite",
                                  "--out", str(tmp_path / "report.html")])
    assert r.exit_code == 0, r.output
    assert "coloured by heading</figcaption>" in (tmp_path / "report.html").read_text()
    r = CliRunner().invoke(main, ["explore", str(run), "--color-by", "heading:circular", "--overwrite",
                                  "--out", str(tmp_path / "explorer.html")])
    assert r.exit_code == 0, r.output
    colour = page_data(tmp_path / "explorer.html")["colourBy"]
    assert colour["label"] == "heading" and colour["kind"] == "circular"
    expected = ColorBy(data.values_test["heading"], "circular").rgb()
    got = np.frombuffer(__import__("base64").b64decode(colour["rgb"]), np.uint8).reshape(-1, 3)
    np.testing.assert_allclose(got, np.round(255 * expected), atol=1)
    r = CliRunner().invoke(main, ["plot", str(run), "--color-by", "speed"])
    assert r.exit_code == 2 and "choose class, heading" in r.output and r.output.count("\n") == 1


def page_data(path) -> dict:
    """The JSON the explorer page carries."""
    text = path.read_text()
    block = re.search(r'<script type="application/json" id="atlas-data">(.*?)</script>', text, re.S).group(1)
    return json.loads(block)


def test_pixels_scaling_refuses_rates_and_says_how_to_scale_them(rates_npz, tmp_path):
    r = CliRunner().invoke(main, ["train", "--data", str(rates_npz), "--scaling", "pixels", "--epochs", "1",
                                  "--out", str(tmp_path / "run")])
    assert r.exit_code == 2 and "scale them (scaling minmax or auto)" in r.output and r.output.count("\n") == 1


def test_firing_rates_fit_the_estimator_with_no_option(tmp_path):
    x, y = firing_rates()
    ae = Autoencoder(epochs=2, random_state=0).fit(x, y)
    assert ae.scaling == "auto" and ae.scaling_.name == "minmax"
    np.testing.assert_allclose(ae.data_min_, x.min(0), rtol=1e-6)  # the oracle: the training min and range
    np.testing.assert_allclose(ae.data_range_, x.max(0) - x.min(0), rtol=1e-5)
    z = ae.transform(x)
    assert z.shape == (len(x), 2) and np.isfinite(z).all()
    back = ae.inverse_transform(z)  # in firing rates again, within the range seen in fit
    assert back.min() >= x.min() - 1e-3 and back.max() <= x.max() + 1e-3 and back.max() > 1
    assert "atlas-data" in ae.explore(x, y).page
    _, _, heading = firing_rates(heading=True)
    page = ae.explore(x, y, color_by=ColorBy(heading, "circular", "heading")).page
    assert '"label":"heading","kind":"circular"' in page
    pixels = Autoencoder(epochs=1, random_state=0).fit((x / x.max()).astype(np.float32))
    assert pixels.scaling_.name == "pixels"  # floats in [0, 1] stay pixels, as before
