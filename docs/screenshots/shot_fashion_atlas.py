"""A screenshot in Chromium of a Fashion-MNIST atlas map in the explorer (issue 25: the map laid out by the auto
engine, openTSNE's optimiser above 16,384 images, with the cursor decoding between clusters).

From the repository root: PYTHONPATH=src python docs/screenshots/shot_fashion_atlas.py [RUN]
RUN: a finished atlas run on fashion-mnist (for example one of `latentatlas compare --presets atlas-s2 --data
fashion-mnist`); without it, atlas-s2 is trained into /tmp/shotruns/fashion-atlas-s2 (about two minutes on 2 cores)."""
import subprocess, sys
from pathlib import Path

sys.path.insert(0, "tests")
from browser import launch_chromium

ROOT, OUT = Path("/tmp/shotruns"), Path("docs/screenshots")
LA = [sys.executable, "-m", "latentatlas"]


def la(*args):
    r = subprocess.run([*LA, *map(str, args)], capture_output=True, text=True)
    print(" ".join(map(str, args)), "->", r.returncode, (r.stdout + r.stderr).strip().splitlines()[-1:])
    assert r.returncode == 0, r.stdout + r.stderr


run = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fashion-atlas-s2"
if not (run / "manifest.json").exists():
    la("train", "--preset", "atlas-s2", "--data", "fashion-mnist", "--out", run)
page_file = ROOT / "fashion_atlas.html"
ROOT.mkdir(parents=True, exist_ok=True)
la("explore", run, "--out", page_file, "--overwrite")
with launch_chromium() as b:
    page = b.new_page(viewport={"width": 1300, "height": 900})
    page.goto(page_file.as_uri())
    page.wait_for_timeout(2500)
    view = page.evaluate("atlas.views")[-1]  # the last map of the page, with the cursor on it
    canvas = page.locator(f"[data-view='{view}'] canvas.overlay")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(round(box["x"] + box["width"] * 0.45), round(box["y"] + box["height"] * 0.4))
    page.wait_for_timeout(800)
    page.screenshot(path=OUT / "explorer_atlas_s2_fashion.png", full_page=True)
print("done")
