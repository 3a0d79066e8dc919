"""Speed of the explorer page in headless Chromium: time until interactive, and one decode, per run.

    python benchmarks/explorer.py RUN [RUN ...] [--screenshot docs/explorer.png]

For each run it writes the page, opens it from a file:// URL and reports the page's own clock: milliseconds from
navigation start until the page is interactive (every point drawn, handlers attached), and the median time of one
decode over 20 batches of 50 random latent points. Needs Chromium (apt-get install chromium) and playwright.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import WatchedPage, launch_chromium  # noqa: E402

from latentatlas import hardware
from latentatlas.viz.explorer import write_explorer  # noqa: E402

TIMING = """() => {
  const dim = atlas.data.dim, out = [];
  const point = () => { const z = Array.from({length: dim}, () => 2 * Math.random() - 1);
                        const n = Math.hypot(...z); return atlas.data.globe ? z.map(v => v / n) : z; };
  for (let b = 0; b < 20; b++) {
    const zs = Array.from({length: 50}, point);
    const t0 = performance.now();
    for (const z of zs) atlas.decode(z);
    out.push((performance.now() - t0) / zs.length);
  }
  out.sort((a, b) => a - b);
  return out[out.length >> 1];
}"""


def measure(browser, run: Path, page_path: Path) -> dict:
    write_explorer(run, page_path)
    page = WatchedPage(browser, page_path.as_uri()).wait_ready(60_000)
    result = {
        "run": str(run),
        "points": page.page.evaluate("atlas.data.points.n"),
        "page_mb": round(page_path.stat().st_size / 2**20, 1),
        "interactive_ms": round(page.page.evaluate("atlas.readyMs"), 1),
        "decode_ms_median": round(page.page.evaluate(TIMING), 3),
        "console_errors": len(page.errors),
        "requests": len(page.requests),
    }
    page.close()
    return result


def screenshot(browser, page_path: Path, out: Path) -> None:
    """The explorer mid-use: a point hovered on the equal-area map, two positions pinned."""
    page = WatchedPage(browser, page_path.as_uri(), viewport=(1500, 1240)).wait_ready(60_000)
    p = page.page
    views = p.evaluate("atlas.views")
    target = "map:equal-area" if "map:equal-area" in views else views[-1]
    box = p.locator(f"[data-view='{target}'] canvas.overlay").bounding_box()
    for fx, fy in ((0.35, 0.45), (0.62, 0.35)):
        p.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        p.mouse.down()
        p.mouse.up()
    x, y = p.evaluate(f"atlas.pointPosition('{target}', 0)")
    p.mouse.move(box["x"] + x, box["y"] + y)
    out.parent.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(out))  # not full_page: resizing the viewport would end the hover
    page.close()


def main() -> None:
    print(hardware.header(), flush=True)  # what these figures were measured on
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--screenshot", type=Path, default=None, help="Save a screenshot of the first run's page.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, launch_chromium() as browser:
        for k, run in enumerate(args.runs):
            page_path = Path(tmp) / f"page{k}.html"
            print(json.dumps({**measure(browser, run, page_path), "machine": hardware.describe()}))
            if k == 0 and args.screenshot is not None:
                screenshot(browser, page_path, args.screenshot)
                print(f"wrote {args.screenshot}")


if __name__ == "__main__":
    main()
