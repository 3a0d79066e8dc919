"""The report's section of ``latentatlas probe``: what a run does with corrupted inputs and unseen classes, read
from its ``probe.json`` (checked against the manifest) and the figures probe wrote; empty for a run never probed."""

from __future__ import annotations

import html
from pathlib import Path

from .._guard import no_links_below
from ..errors import LatentAtlasError
from ..run_folder import read_json, verify_files
from ..runs import Run


def probe_comparison(runs: list[Run]) -> str:
    """Every probed run's curves on one set of axes, for the report's comparison (two probed runs or more)."""
    from .plots import png_bytes
    from .probe_figures import probe_curves
    from .figures import figure_html

    probed = [(r.path.name, p) for r in runs if (p := _probe(r)) is not None]
    if len(probed) < 2:
        return ""
    return ("<h3>Corrupted inputs (latentatlas probe), every probed run on one axis</h3>"
            + figure_html(png_bytes(probe_curves(probed)), "reconstruction error, 5-NN accuracy and shift on the map "
                      "per level of each corruption"))


def _probe(run: Run) -> dict | None:
    """The run's probe.json (checked against its manifest, and its values' types: a folder re-signed over damage
    passes the manifest), or None when it was never probed."""
    path = run.path / "probe.json"
    if not path.is_file():
        return None
    verify_files(run.path, ("probe.json",))
    result = read_json(path)
    problem = _probe_problem(result)
    if problem:
        raise LatentAtlasError(f"{path}: not a latentatlas probe result ({problem}): probe the run again")
    verify_files(run.path, result["figures"])
    for name in result["figures"]:
        no_links_below(run.path, run.path / name)
    return result


def _probe_problem(result) -> str:
    """What in a probe.json is not as ``latentatlas probe`` writes it, or "" (the report reads every value used)."""
    if not isinstance(result, dict):
        return "a JSON object is expected"
    corruptions, labels, figures = result.get("corruptions"), result.get("labels", {}), result.get("figures")
    if not isinstance(corruptions, dict) or not all(isinstance(rows, list) and rows and all(
            isinstance(r, dict) and _is_number(r.get("level")) and all(_is_number(v) or v is None
                                                                       for k, v in r.items() if k != "transform")
            for r in rows) for rows in corruptions.values()):
        return "its corruptions are not lists of levels with numbers"
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        return "its labels are not text"
    if not isinstance(figures, list) or not all(isinstance(f, str) and len(Path(f).parts) == 2
                                                 and Path(f).parts[0] == "figures" for f in figures):
        return "its figures are not files of the run's figures folder"
    nov = result.get("novelty")
    if nov is not None and not (
            isinstance(nov, dict) and all(_is_number(nov.get(k)) for k in ("roc_auc", "seen", "unseen"))
            and isinstance(nov.get("classes"), list) and isinstance(nov.get("score"), str)
            and _is_number(nov.get("roc_auc_neg_elbo", 0))
            and isinstance(nov.get("roc_auc_per_class"), dict) and all(map(_is_number, nov["roc_auc_per_class"].values()))
            and isinstance(nov.get("roc"), dict) and all(isinstance(nov["roc"].get(k), list) and all(
                map(_is_number, nov["roc"][k])) for k in ("fpr", "tpr"))):
        return "its novelty detection is not numbers"
    return ""


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def probe_section(run: Run, rid: str) -> str:
    """What ``latentatlas probe`` measured: a table per corruption, its curves, the corrupted inputs and their
    reconstructions, the trails on the map, and novelty detection for classes held out of training."""
    from .plots import png_bytes
    from .probe_figures import probe_curves
    from .figures import figure_html

    result = _probe(run)
    if result is None:
        return ""
    parts = [f"<section id='{rid}-probe'><h3>Corrupted inputs and unseen classes (latentatlas probe)</h3>"
             "<div class='row'>"]
    for name, rows in result["corruptions"].items():
        keys = [k for k in ("bce", "mse", "knn5", "shift_rel", "mse_seen", "mse_unseen") if k in rows[0]]
        parts.append(f"<table class='probe' data-corruption='{html.escape(name)}'><tr><th>"
                     f"{html.escape(result['labels'].get(name, name))}</th>"
                     + "".join(f"<th>{PROBE_COLUMNS[k]}</th>" for k in keys) + "</tr>"
                     + "".join(f"<tr><td class='num'>{r['level']:g}</td>"
                               + "".join(f"<td class='num'>{_fmt_probe(r[k])}</td>" for k in keys) + "</tr>"
                               for r in rows) + "</table>")
    parts.append("</div>")
    figs = []
    if result["corruptions"]:
        figs.append(figure_html(png_bytes(probe_curves([(run.path.name, result)])), "per level of each corruption"))
    nov = result.get("novelty")
    if nov:
        per = ", ".join(f"{html.escape(c)}: {v:.3f}" for c, v in nov["roc_auc_per_class"].items())
        parts.append(f"<p class='novelty'>Novelty detection (classes {html.escape(', '.join(map(str, nov['classes'])))}"
                     f" never seen in training; score: {html.escape(nov['score'])}): ROC AUC "
                     f"<b>{nov['roc_auc']:.3f}</b> ({per})"
                     + (f"; with the negative ELBO as the score, {nov['roc_auc_neg_elbo']:.3f}"
                        if "roc_auc_neg_elbo" in nov else "")
                     + f"; {nov['unseen']:,} unseen and {nov['seen']:,} seen test images.</p>")
    for name in result.get("figures", ()):
        if Path(name).name != "probe_curves.png":
            figs.append(figure_html((run.path / name).read_bytes(), _probe_caption(Path(name).stem)))
    parts.append(f"<div class='row'>{''.join(figs)}</div></section>")
    return "".join(parts)


PROBE_COLUMNS = {"bce": "BCE vs clean", "mse": "MSE vs clean", "knn5": "5-NN (seen classes)",
                 "shift_rel": "shift on the map", "mse_seen": "MSE, seen classes", "mse_unseen": "MSE, unseen classes"}


def _probe_caption(stem: str) -> str:
    """A caption for a figure that probe wrote, from its name (probe_<what>_<corruption or chart>[_<chart>])."""
    _, what, *rest = stem.split("_", 2)
    rest = rest[0] if rest else ""
    if what == "grid":
        return f"{rest}: each corrupted input beside its reconstruction, per level"
    if what == "trails":
        corruption, _, chart = rest.partition("_")
        return f"{corruption}: test points move on the map as the level grows ({chart} chart)"
    if rest == "roc":
        return "novelty: ROC curve of the reconstruction error as the score"
    return f"where the classes never seen in training land ({rest} chart)"


def _fmt_probe(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"
