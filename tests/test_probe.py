"""`latentatlas probe`: its numbers against independent computations, its refusals, and its section of the report
(in a real browser)."""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from browser import WatchedPage
from latentatlas.cli import main
from latentatlas.data import DataSpec
from latentatlas.errors import LatentAtlasError
from latentatlas.experiments.probe import parse_levels
from latentatlas.runs import load_run
from latentatlas.viz.report import write_report

LEVELS = ["--noise", "0,0.3", "--occlude", "0,4", "--rotate", "0,90"]


@pytest.fixture(scope="module")
def probed(demo, tmp_path_factory):
    """A copy of the demo's deep-s2 run and a small sphere run on digits trained without the 3s, both probed
    through the command line: (plain run, held-out run, what probe printed)."""
    root, _ = demo
    tmp = tmp_path_factory.mktemp("probe")
    plain = shutil.copytree(root / "deep-s2", tmp / "deep-s2")
    r = CliRunner().invoke(main, ["train", "--preset", "deep-s2", "--hidden-sizes", "32,16", "--data", "digits",
                                  "--epochs", "3", "--transforms", "holdout:classes=3", "--out", str(tmp / "no3")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["probe", str(plain), str(tmp / "no3"), *LEVELS, "--out", str(tmp / "both.png")])
    assert r.exit_code == 0, r.output
    return load_run(plain), load_run(tmp / "no3"), r.output


def test_level_zero_is_the_runs_own_evaluation(probed):
    plain, _, _ = probed
    result = json.loads((plain.path / "probe.json").read_text())
    for name, rows in result["corruptions"].items():
        clean = rows[0]
        assert clean["level"] == 0 and clean["shift"] == 0, name
        assert clean["mse"] == pytest.approx(plain.metrics["mse_test"], rel=1e-5)
        assert clean["bce"] == pytest.approx(plain.metrics["bce_test"], rel=1e-5)
        assert clean["knn5"] == plain.metrics["knn5"]
        assert rows[1]["mse"] > clean["mse"] and rows[1]["shift"] > 0


def test_every_number_is_reproduced_from_its_transform(probed):
    """A level's transform, as probe.json spells it, rebuilds the corrupted test set: its error is the one recorded."""
    plain, _, _ = probed
    row = json.loads((plain.path / "probe.json").read_text())["corruptions"]["occlude"][1]
    assert row["transform"] == "occlude:size=4:split=test:seed=0"
    spec = plain.config.data_spec
    corrupted = DataSpec(spec.source, spec.image_size, (*spec.transforms, row["transform"])).load()
    clean = DataSpec(spec.source, spec.image_size, spec.transforms).load()
    with torch.no_grad():
        x = torch.as_tensor(corrupted.flat("test")[0])
        target = torch.as_tensor(clean.flat("test")[0]).float() / 255
        mse = (plain.model.decode(plain.model.encode(x)) - target).square().mean().item()
    assert mse == pytest.approx(row["mse"], rel=1e-5)


def test_novelty_auc_is_the_share_of_pairs_ranked_right(probed):
    """ROC AUC = P(score of an unseen image > score of a seen one): counted pair by pair, with the per-image BCE
    computed here from probabilities rather than logits."""
    _, held, output = probed
    nov = json.loads((held.path / "probe.json").read_text())["novelty"]
    data = held.dataset()
    assert 3 not in set(data.y_train.tolist()) and 3 in set(data.y_test.tolist())  # absent from training only
    assert 3 not in set(held.latents()["y_train"].tolist())
    x, y = data.flat("test")
    x = torch.as_tensor(x).float() / 255
    with torch.no_grad():
        p = held.model.decode(held.model.encode(x)).double().clamp(1e-12, 1 - 1e-12)
    score = -(x * p.log() + (1 - x) * (1 - p).log()).mean(1).numpy()
    new, old = score[y == 3], score[y != 3]
    by_pairs = ((new[:, None] > old[None, :]).sum() + 0.5 * (new[:, None] == old[None, :]).sum()) / (len(new) * len(old))
    assert nov["roc_auc"] == pytest.approx(by_pairs, abs=1e-4)
    assert nov["classes"] == [3] and nov["roc_auc_per_class"] == {"3": nov["roc_auc"]}
    assert f"ROC AUC {nov['roc_auc']:.3f}" in output
    row = json.loads((held.path / "probe.json").read_text())["corruptions"]["noise"][0]
    assert row["mse_unseen"] > row["mse_seen"] or nov["roc_auc"] < 0.5  # the split agrees with the score's ranking


def test_figures_are_written_and_listed(probed):
    plain, held, _ = probed
    for run, novelty in ((plain, False), (held, True)):
        listed = json.loads((run.path / "probe.json").read_text())["figures"]
        charts = [c.name for c in run.model.geometry.charts()]
        expected = {"figures/probe_curves.png", *(f"figures/probe_grid_{n}.png" for n in ("noise", "occlude", "rotate")),
                    *(f"figures/probe_trails_{n}_{c}.png" for n in ("noise", "occlude", "rotate") for c in charts)}
        if novelty:
            expected |= {"figures/probe_novelty_roc.png", *(f"figures/probe_novelty_{c}.png" for c in charts)}
        assert set(listed) == expected
        for name in listed:
            assert (run.path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "probe.json" in json.loads((run.path / "manifest.json").read_text())["files"]
    assert (plain.path.parent / "both.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, message", [
    (["--noise", "-0.1:0.5:3"], "noise: sigma=-0.1 is out of range: it must be >= 0"),
    (["--occlude", "0:8:4"], "occlude levels '0:8:4' are not whole numbers of pixels"),
    (["--occlude", "0,9"], "a patch of side 9 does not fit in images of 8 x 8"),
    (["--rotate", "a:b"], "rotate levels 'a:b': write START:STOP:COUNT"),
    (["--saltpepper", "0,2"], "p=2.0 is out of range"),
])
def test_bad_levels_are_refused_in_one_line_before_any_work(probed, args, message):
    _, held, _ = probed
    before = (held.path / "probe.json").read_bytes()
    r = CliRunner().invoke(main, ["probe", str(held.path), *args])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and message in r.output, r.output
    assert (held.path / "probe.json").read_bytes() == before


def test_a_probe_with_nothing_to_do_is_refused(probed, tmp_path):
    plain, held, _ = probed
    none = ["--noise", "", "--occlude", "", "--rotate", ""]
    r = CliRunner().invoke(main, ["probe", str(plain.path), *none])
    assert r.exit_code == 2 and "nothing to probe" in r.output and r.output.count("\n") == 1, r.output
    copy = shutil.copytree(held.path, tmp_path / "no3")
    r = CliRunner().invoke(main, ["probe", str(copy), *none])
    assert r.exit_code == 0 and "ROC AUC" in r.output, r.output  # novelty alone
    assert json.loads((copy / "probe.json").read_text())["corruptions"] == {}
    text = write_report([copy], tmp_path / "novelty-only.html").read_text()
    assert "class='probe'" not in text and "<p class='novelty'>" in text


def test_levels_are_parsed_as_written():
    assert parse_levels("noise", "0:0.6:7") == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    assert parse_levels("occlude", "0:14:8") == (0, 2, 4, 6, 8, 10, 12, 14)
    assert parse_levels("rotate", "90, 0,90") == (90.0, 0.0)
    assert parse_levels("rotate", "") == ()
    with pytest.raises(LatentAtlasError, match="unknown corruption 'blur'"):
        parse_levels("blur", "1")


def test_report_section(probed, tmp_path):
    plain, held, _ = probed
    text = write_report([plain, held], tmp_path / "r.html").read_text()
    for run in (plain, held):
        assert f"id='run-{run.path.name}-probe'" in text
    assert "every probed run on one axis" in text  # the comparison's curves of both runs
    assert text.count("class='probe'") == 6  # a table per corruption per run
    assert len(re.findall(r"<p class='novelty'>Novelty detection \(classes 3 never", text)) == 1
    damaged = shutil.copytree(plain.path, tmp_path / "damaged")
    (damaged / "figures" / "probe_grid_noise.png").write_bytes(b"changed")
    with pytest.raises(LatentAtlasError, match="changed since the run was written"):
        write_report([damaged], tmp_path / "r2.html")


def test_report_section_in_the_browser(browser, probed, tmp_path):
    plain, held, _ = probed
    path = write_report([held, plain.path], tmp_path / "r.html")
    page = WatchedPage(browser, path.as_uri(), viewport=(1300, 900))
    p = page.page
    p.wait_for_load_state("load")
    for run in (plain, held):
        section = p.locator(f"[id='run-{run.path.name}-probe']")
        section.scroll_into_view_if_needed()
        assert section.is_visible()
        figures = section.locator("img")
        assert figures.count() == len(json.loads((run.path / "probe.json").read_text())["figures"])
        assert section.evaluate("s => [...s.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 200)")
        # The table shows what probe.json holds.
        rows = json.loads((run.path / "probe.json").read_text())["corruptions"]["rotate"]
        cells = section.locator("table[data-corruption='rotate'] tr").nth(2).locator("td").all_inner_texts()
        assert cells[:3] == [f"{rows[1]['level']:g}", f"{rows[1]['bce']:.4f}", f"{rows[1]['mse']:.4f}"]
    assert "ROC AUC" in p.locator(f"[id='run-{held.path.name}-probe'] p.novelty").inner_text()
    assert page.errors == [] and page.requests == []
    page.close()


def test_the_explorer_draws_unseen_classes_in_their_own_style(browser, probed, tmp_path):
    from latentatlas.runs import write_explorer

    plain, held, _ = probed
    y = held.latents()["y_test"]
    new, old = int(np.flatnonzero(y == 3)[0]), int(np.flatnonzero(y != 3)[0])
    page = WatchedPage(browser, write_explorer(held, tmp_path / "x.html").as_uri()).wait_ready()
    p = page.page
    assert "3 (never seen in training)" in p.inner_text("#legend")
    assert p.evaluate(f"atlas.unseen({new})") and not p.evaluate(f"atlas.unseen({old})")
    darkest = """([x, y]) => { const c = document.querySelector("[data-view='map:equirectangular'] canvas");
        const d = c.getContext('2d').getImageData(Math.round(x) - 4, Math.round(y) - 4, 9, 9).data;
        let m = 255; for (let k = 0; k < d.length; k += 4) m = Math.min(m, Math.max(d[k], d[k + 1], d[k + 2]));
        return m; }"""
    for i in np.flatnonzero(y == 3)[:5]:  # edged in black, drawn on top
        assert p.evaluate(darkest, p.evaluate(f"atlas.pointPosition('map:equirectangular', {i})")) < 60
    assert page.errors == [] and page.requests == []
    page.close()
    plain_page = WatchedPage(browser, write_explorer(plain, tmp_path / "p.html").as_uri()).wait_ready()
    assert "never seen" not in plain_page.page.inner_text("#legend")
    plain_page.close()


def test_a_variational_runs_novelty_is_also_scored_by_the_negative_elbo():
    from latentatlas.experiments.probe import novelty

    y = np.array([0, 0, 1, 1])
    clean = {"bce": np.array([0.1, 0.2, 0.3, 0.4]), "kl": np.array([50.0, 50.0, 0.0, 0.0]), "n_features": 10}
    nov = novelty(clean, y, np.array([1]), variational=True)
    assert nov["roc_auc"] == 1.0  # BCE alone ranks the unseen class above
    assert nov["roc_auc_neg_elbo"] == 0.0  # 10 * BCE + KL: 51, 52 against 3, 4
    assert nov["roc_auc_per_class_neg_elbo"] == {"1": 0.0}
    assert "roc_auc_neg_elbo" not in novelty(clean, y, np.array([1]), variational=False)


def test_every_figure_of_a_run_and_of_its_probe_names_the_run_preset_and_data(probed, tmp_path, monkeypatch):
    """A figure pasted into a slide still says where it came from: its title line names the run folder, the preset
    and the data set, for the run's own figures and for probe's."""
    from latentatlas.viz import figures, plots

    _, held, _ = probed
    run = load_run(shutil.copytree(held.path, tmp_path / "no3"))
    data = run.dataset()
    expected = f"no3  |  preset deep-s2  |  data {data.name}"  # the data set as trained: digits+holdout:classes=3
    assert data.name.startswith("digits")
    for f in figures.run_figure_list(run, data):
        assert f.draw()._suptitle.get_text() == expected, f.name
    titles, save_png = {}, plots.save_png

    def recording(fig, path):
        titles[path.name] = fig._suptitle.get_text() if fig._suptitle else None
        return save_png(fig, path)

    monkeypatch.setattr(plots, "save_png", recording)
    r = CliRunner().invoke(main, ["probe", str(run.path), "--noise", "0,0.3", "--occlude", "", "--rotate", "0,90"])
    assert r.exit_code == 0, r.output
    assert {"probe_curves.png", "probe_novelty_roc.png"} <= set(titles)
    assert set(titles.values()) == {expected}, titles
