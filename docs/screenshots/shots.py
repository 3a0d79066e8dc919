"""Screenshots in Chromium of issue 27's figure and report changes and of an atlas-2d map in the explorer (issue 25),
from the code as it is (docs/screenshots/).

From the repository root: PYTHONPATH=src python docs/screenshots/shots.py (trains two small runs under
/tmp/shotruns; needs the test extras, Playwright and the system Chromium)."""
import os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "tests")
from test_any_matrix import HEADINGS, firing_rates
from browser import launch_chromium

ROOT, OUT = Path("/tmp/shotruns"), Path("docs/screenshots")
OUT.mkdir(parents=True, exist_ok=True)
LA = [sys.executable, "-m", "latentatlas"]


def la(*args):
    r = subprocess.run([*LA, *map(str, args)], capture_output=True, text=True)
    print(" ".join(map(str, args)), "->", r.returncode, (r.stdout + r.stderr).strip().splitlines()[-1:])
    assert r.returncode == 0, r.stdout + r.stderr


x, y, heading = firing_rates(n=3000, k=48, heading=True)
rates = ROOT / "rates.npz"
np.savez(rates, x_train=x[:2500], y_train=y[:2500], x_test=x[2500:], y_test=y[2500:], class_names=np.array(HEADINGS),
         heading_test=heading[2500:], population_rate_test=x[2500:].mean(1))
if not (ROOT / "rates" / "manifest.json").exists():
    la("train", "--preset", "deep-s2", "--data", rates, "--out", ROOT / "rates")
if not (ROOT / "s2" / "manifest.json").exists():
    la("train", "--preset", "deep-s2", "--data", "mnist-5k", "--epochs", "20", "--out", ROOT / "s2")
if not (ROOT / "atlas-2d" / "manifest.json").exists():
    la("train", "--preset", "atlas-2d", "--data", "mnist-5k", "--out", ROOT / "atlas-2d")
la("explore", ROOT / "atlas-2d", "--out", ROOT / "atlas.html", "--overwrite")
la("explore", ROOT / "rates", "--color-by", "population_rate", "--out", ROOT / "explorer.html", "--overwrite")
la("report", ROOT / "rates", "--color-by", "heading:circular", "--out", ROOT / "report.html", "--overwrite")
la("plot", ROOT / "s2")
la("probe", ROOT / "s2", "--rotate", "0:180:7", "--noise", "", "--saltpepper", "", "--occlude", "")

with launch_chromium() as b:
    page = b.new_page(viewport={"width": 1300, "height": 900})
    for html_page, (u, v), png in (("explorer.html", (0.36, 0.3), "explorer_continuous.png"),
                                   ("atlas.html", (0.5, 0.45), "explorer_atlas_2d.png")):
        page.goto((ROOT / html_page).as_uri())
        page.wait_for_timeout(1500)
        view = page.evaluate("atlas.views")[-1]  # the last map of the page, with the cursor on it
        canvas = page.locator(f"[data-view='{view}'] canvas.overlay")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        page.mouse.move(round(box["x"] + box["width"] * u), round(box["y"] + box["height"] * v))
        page.wait_for_timeout(500)
        page.screenshot(path=OUT / png, full_page=True)
    page.goto((ROOT / "report.html").as_uri())
    page.wait_for_timeout(1500)
    page.screenshot(path=OUT / "report.png")
    figs = ROOT / "s2" / "figures"
    print(sorted(p.name for p in figs.iterdir()))
    for name, pattern in (("equal_area_map.png", "encoder_map_equal-area.png"), ("probe_trail_seam.png", "probe_trails_rotate*equal*")):
        found = sorted(figs.glob(pattern))
        if not found:
            print("missing", pattern); continue
        page.goto(found[0].as_uri())
        page.wait_for_timeout(500)
        page.screenshot(path=OUT / name, full_page=True)
print("done")
