"""The atlas presets' whole job against openTSNE's and UMAP's, timed in one run on one machine (issue 25).

For each method: fit on the training images, place the test images, and score the placements (5-NN of test points
fit on the training map; trustworthiness k = 5 on the fixed 2,000-point test subset, as ``latentatlas.metrics``).
latentatlas's job is ``train_run`` of the preset (graph, layout, decoder and encoder, evaluation with the test set
placed by refinement; no figures); its placement alone is timed again afterwards. openTSNE and UMAP run with their
defaults and as many threads as torch has.

    PYTHONPATH=src python benchmarks/atlas_time.py --data fashion-mnist [--presets atlas-2d atlas-s2] [--json F]
        [--layout-engines latentatlas opentsne]   # each preset with each engine that lays its space out
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from latentatlas import hardware
from latentatlas._io import atomic_write_json
from latentatlas.config import RunConfig
from latentatlas.data import load_dataset
from latentatlas.layout_engines import ENGINES
from latentatlas.metrics import embedding_metrics, encode
from latentatlas.run_training import train_run


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    print(hardware.header(), flush=True)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--presets", nargs="*", default=["atlas-2d", "atlas-s2"])
    p.add_argument("--baselines", nargs="*", default=["opentsne", "umap"])
    p.add_argument("--layout-engines", nargs="*", default=None,
                   help="lay each preset out with each of these engines (those that take its space); default: the "
                        "preset's own")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    ds = load_dataset(args.data)
    x_train, _ = ds.flat("train")
    x_test, _ = ds.flat("test")
    xf_train = np.asarray(x_train, np.float32) / 255
    xf_test = np.asarray(x_test, np.float32) / 255
    threads = torch.get_num_threads()
    rows = []
    for name in args.baselines:
        if name == "opentsne":
            import openTSNE

            emb, fit = timed(lambda: openTSNE.TSNE(n_jobs=threads, random_state=args.seed).fit(xf_train))
            z_test, place = timed(lambda: np.asarray(emb.transform(xf_test)))
            z_train = np.asarray(emb)
        else:
            import umap

            model, fit = timed(lambda: umap.UMAP(random_state=args.seed, n_jobs=threads).fit(xf_train))
            z_test, place = timed(lambda: model.transform(xf_test))
            z_train = model.embedding_
        rows.append({"method": name, "fit_s": fit, "place_s": place, **embedding_metrics(ds, z_train, z_test)})
        print(rows[-1], flush=True)
    for preset in args.presets:
        own = RunConfig(preset=preset).resolved()
        engines = [own.layout_engine] if args.layout_engines is None else [
            e for e in args.layout_engines if not (ENGINES[e].plane_only and own.geometry != "euclidean")]
        for engine in engines:
            with tempfile.TemporaryDirectory() as tmp:
                cfg = RunConfig(preset=preset, data=args.data, seed=args.seed, layout_engine=engine)
                run, whole = timed(lambda: train_run(cfg, Path(tmp) / preset, dataset=ds, plot=False,
                                                     progress=False))
                _, place = timed(lambda: encode(run.model, x_test))
                name = preset if args.layout_engines is None else f"{preset} ({engine})"
                rows.append({"method": name, "layout_engine": engine, "whole_s": whole,
                             "map_s": run.model.map.seconds, "place_s": place, "epochs": run.config.epochs,
                             **{k: run.metrics[k] for k in ("knn5", "knn5_encoder", "trustworthiness", "mse_test",
                                                            "round_trip")}})
            print(rows[-1], flush=True)
    reference = next((r for r in rows if r["method"] == "opentsne"), None)
    print(f"\n{'method':24s} {'job s':>8s} {'x openTSNE':>10s} {'5-NN':>6s} {'trust':>6s}")
    for r in rows:
        job = r.get("whole_s", r.get("fit_s", 0) + r["place_s"])
        ratio = job / (reference["fit_s"] + reference["place_s"]) if reference else float("nan")
        print(f"{r['method']:24s} {job:8.1f} {ratio:10.2f} {r['knn5']:6.3f} {r['trustworthiness']:6.3f}")
    if args.json:
        atomic_write_json(args.json, {"machine": hardware.describe(), "data": args.data, "threads": threads,
                                      "rows": rows})


if __name__ == "__main__":
    main()
