"""The live explorer: one self-contained HTML page that decodes the latent point under the mouse.

The page embeds the decoder's weights and runs its forward pass in plain JavaScript, so it needs no server, no
network and no Python once written: it opens from a ``file://`` URL and can be mailed. It draws every test point
of the run on each chart of the geometry (and on a rotatable globe for 3-D latents); the geometry supplies each
chart's inverse as JavaScript (``Chart.js_from_map``), so nothing here knows which latent space it shows.
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import math
import re
import socket
import sys
import threading
import time
import webbrowser
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .._limits import IDLE_TIMEOUT_S, MAX_CONNECTIONS, REQUEST_TIMEOUT_S
from ..data.spec import held_out
from ..errors import LatentAtlasError
from ..atlas_map import placement_said
from ..metrics import METRIC, neighbourhood_preservation
from .colour import ColorBy, resolve
from .plots import image_shape, map_limits
from .style import TAB10, class_names, plain_label

if TYPE_CHECKING:  # a run is only read here: loading one from its folder is runs.py's (write_explorer)
    from ..runs import Run

# Shown in the page and enforced by the browser: nothing may be fetched, whatever the page's scripts try.
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
       "connect-src 'none'; base-uri 'none'; form-action 'none'")


SUMMARY = ("bce_test", "knn5")  # the metrics in the page's header line
MAX_POINTS = 20_000  # every test point of MNIST-sized sets; larger test sets get a fixed random subset


def explorer_html(run: Run, dataset, max_points: int = MAX_POINTS, latents: dict | None = None,
                  color_by=None) -> str:
    """The page as a string: the template with the run's data embedded as JSON; ``latents`` (``z_test`` and
    ``y_test`` of ``dataset``'s test set) instead of the run folder's, for a model that has no folder; points
    coloured by ``color_by`` first (``viz.colour``), by class or neighbourhood kept on the page's choice."""
    data = explorer_data(run, dataset, max_points, latents, color_by)
    # Each chart's inverse is code, so it goes into a script, not the JSON (the page's policy forbids eval).
    inverses = ",\n".join(f"{json.dumps(c.name)}: {c.js_from_map}" for c in _charts(run.model.geometry))
    embedding = run.model.geometry.embedding_3d()
    view3d = "" if embedding is None else f"to3d: {embedding.js_to_3d},\npick: {embedding.js_pick or 'null'}"
    web = resources.files("latentatlas") / "viz" / "web"
    page = (web / "explorer.html").read_text()
    replacements = {"__CSP__": CSP, "__TITLE__": _escape(run.path.name), "/*__STYLE__*/": (web / "explorer.css").read_text(),
                    "/*__DATA__*/null": _script_json(data), "/*__CHARTS__*/": inverses, "/*__VIEW3D__*/": view3d,
                    "/*__VIEWS__*/": (web / "views.js").read_text(), "/*__SCRIPT__*/": (web / "explorer.js").read_text()}
    return re.sub("|".join(re.escape(k) for k in replacements), lambda m: replacements[m.group(0)], page)


def explorer_data(run: Run, dataset, max_points: int = MAX_POINTS, latents: dict | None = None,
                  color_by=None) -> dict:
    """Everything the page needs, as JSON-ready values (arrays as base64 little-endian bytes)."""
    if not isinstance(max_points, int) or max_points < 1:
        raise LatentAtlasError(f"max_points={max_points!r} is out of range: it must be an integer >= 1")
    model, geometry = run.model, run.model.geometry
    charts = _charts(geometry)
    embedding = geometry.embedding_3d()
    if not charts and embedding is None:
        raise LatentAtlasError(f"{run.path}: the explorer draws 2-D charts or 3-D latents; this run's latent space "
                               f"({geometry.name}, {geometry.dim}-D) has neither")
    lat = run.latents() if latents is None else latents
    z, y = lat["z_test"].astype(np.float32), lat["y_test"]
    x_test, y_data = dataset.flat("test")
    if len(x_test) != len(z) or not np.array_equal(y_data, y):
        raise LatentAtlasError(f"{run.path}: its test latents do not belong to the test set of {dataset.name} "
                               f"({len(z)} latents, {len(x_test)} images): re-run `latentatlas evaluate {run.path}`")
    total = len(z)
    colour = resolve(color_by, dataset, total)
    if total > max_points:  # a fixed subset, the same on every call; sorted, so a memory map reads in order
        keep = np.sort(np.random.default_rng(0).choice(total, max_points, replace=False))
        z, y, x_test = z[keep], y[keep], x_test[keep]
        colour = None if colour is None else colour.take(keep)
    pixels = x_test if x_test.dtype == np.uint8 else np.round(np.asarray(x_test, np.float32) * 255)
    classes = class_names(dataset.classes, max(len(dataset.classes or ()), int(y.max()) + 1))
    return {
        "preset": run.config.preset,
        "geometry": geometry.name,
        "dim": geometry.dim,
        "imageShape": list(image_shape(dataset, model.n_features) or (1, model.n_features)),
        "classes": classes,
        "unseen": list(held_out(run.config.transforms)),  # classes held out of training: drawn in their own style
        "colors": list(TAB10),
        "metrics": {k: v for k, v in run.metrics.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)},
        # The page's header line: a few metrics as the metrics table labels and formats them.
        "summary": [f"{METRIC[k].label} {METRIC[k].format(run.metrics[k])}" for k in SUMMARY
                    if isinstance(run.metrics.get(k), (int, float))] + [s for s in [placement_said(model)] if s],
        "decoder": decoder_layers(model.decoder),
        "points": {"n": len(z), "total": total, "z": _b64(z), "y": _b64(y.astype(np.uint16)),
                   "pixels": _b64(pixels.astype(np.uint8)),
                   "kept": _b64(np.round(neighbourhood_preservation(pixels, z) * 255).astype(np.uint8))},
        "colourBy": None if colour is None else _colour_data(colour),
        "charts": [_chart_data(c, z) for c in charts],
        "view3d": None if embedding is None else _view3d_data(embedding, z),
    }


def decoder_layers(decoder: nn.Module) -> list[dict]:
    """The decoder as a list of layers the page can run: linear (W row-major (out, in), b) and prelu (a)."""
    layers = []
    for m in decoder.modules():  # a bare Linear is its own only module
        if isinstance(m, nn.Linear):
            w = m.weight.detach().float().cpu().numpy()
            b = m.bias.detach().float().cpu().numpy() if m.bias is not None else np.zeros(w.shape[0], np.float32)
            layers.append({"kind": "linear", "in": w.shape[1], "out": w.shape[0], "w": _b64(w), "b": _b64(b)})
        elif isinstance(m, nn.PReLU):
            layers.append({"kind": "prelu", "a": m.weight.detach().float().cpu().tolist()})
        elif isinstance(m, nn.ReLU):
            layers.append({"kind": "prelu", "a": [0.0]})  # a ReLU is a PReLU of slope 0
        elif isinstance(m, nn.Sequential):
            continue
        else:
            raise LatentAtlasError(f"the explorer runs decoders of Linear, PReLU and ReLU layers; this one has {type(m).__name__}")
    return layers


def _charts(geometry) -> list:
    """The charts the page can draw: those whose inverse the geometry also gives as JavaScript."""
    return [c for c in geometry.charts() if c.js_from_map is not None]


def _chart_data(chart, z: np.ndarray) -> dict:
    uv = chart.to_map(torch.as_tensor(z)).numpy().astype(np.float32)
    (u0, u1), (v0, v1) = map_limits(chart, uv)  # unbounded: every point visible, with a margin
    return {"name": chart.name, "labels": [plain_label(s) for s in chart.labels],
            "bounded": chart.extent is not None, "extent": [[float(u0), float(u1)], [float(v0), float(v1)]],
            "yDown": chart.y_down, "uv": _b64(uv)}


def _colour_data(colour: ColorBy) -> dict:
    """Each point's colour (N, 3) bytes, and the legend: a ramp of CSS colours with its range, or for two angles
    the scheme's square as a PNG."""
    lo, hi = colour.range()
    legend = ({"key": "data:image/png;base64," + base64.b64encode(colour.key_png()).decode("ascii")}
              if colour.two_angles else {"ramp": colour.ramp()})
    return {"label": colour.label, "kind": colour.kind, "range": [lo, hi], **legend,
            "rgb": _b64(np.round(255 * colour.rgb()).astype(np.uint8))}


def _view3d_data(embedding, z: np.ndarray) -> dict:
    points = embedding.to_3d(torch.as_tensor(z)).numpy().astype(np.float32)
    return {"title": embedding.title, "radius": embedding.radius, "surface": embedding.is_surface,
            "axisLabels": [plain_label(a) for a in embedding.axis_labels],
            "wireframe": [[list(p) for p in line] for line in embedding.wireframe],
            "marks": [[text, list(at)] for text, at in embedding.marks], "points": _b64(points)}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _script_json(obj) -> str:
    """JSON safe inside an HTML <script> block: no "<", ">" or "&" can start markup (a name holding "<!--<script>"
    would otherwise change how the parser ends the block), and no NaN, which JSON.parse refuses."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()).decode("ascii")


REFUSED = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
           b"Connection: close\r\n\r\n")


class PageServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # connections the kernel holds until accepted: past 5 (the default) a burst waits 1 s

    def __init__(self, page: bytes, host: str, port: int, idle_timeout: float = IDLE_TIMEOUT_S, log=None,
                 request_timeout: float = REQUEST_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS):
        self.page = page
        self.idle_timeout, self.request_timeout = idle_timeout, request_timeout
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._full = False  # the cap was reached: said once, until a connection frees a slot
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        super().__init__((host, port), _PageHandler)
        self.allowed_hosts = {f"127.0.0.1:{self.server_port}", f"localhost:{self.server_port}"}

    def process_request(self, request, client_address):
        """A thread for the connection while fewer than ``max_connections`` are open; else 503 now, no thread."""
        if not self._slots.acquire(blocking=False):
            if not self._full:
                self._full = True
                self.log(f"explorer: {self.max_connections} connections open, the most served at once: refusing "
                         "more (503) until some close")
            try:
                request.setblocking(False)  # never wait on a client that does not read
                request.send(REFUSED)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._full = False
            self._slots.release()

    def handle_error(self, request, client_address):
        """A client gone mid-answer is normal for a browser (a reload, a closed tab): one line, not a traceback."""
        e = sys.exc_info()[1]
        what = "disconnected" if isinstance(e, (ConnectionError, TimeoutError)) else "failed"
        self.log(f"explorer: connection from {client_address[0]}:{client_address[1]} {what} ({type(e).__name__}: {e})")

    def load(self, page: str | Path) -> None:
        """Serve the file ``page`` (read once, now)."""
        try:
            self.page = Path(page).read_bytes()
        except OSError as e:
            self.server_close()
            raise LatentAtlasError(f"cannot serve {page}: {e.strerror or e}") from None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/"


class _Deadline(io.RawIOBase):
    """A connection's reading side that waits at most ``idle`` for each piece and never past ``deadline``."""

    def __init__(self, sock: socket.socket, deadline: float, idle: float, total: float):
        self.sock, self.deadline, self.idle, self.total = sock, deadline, idle, total

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the request did not arrive within {self.total:g} s")
        self.sock.settimeout(min(self.idle, left))
        try:
            return self.sock.recv_into(buffer)
        except TimeoutError:
            if time.monotonic() >= self.deadline:
                raise TimeoutError(f"the request did not arrive within {self.total:g} s") from None
            raise TimeoutError(f"nothing sent for {self.idle:g} s") from None


class _PageHandler(http.server.BaseHTTPRequestHandler):
    """Serves the one page at ``/``; any other path is 404, and a request with any Host but our own, or more than
    one Host, is 403 (DNS rebinding: a second Host header must not slip past the check of the first)."""

    def setup(self):
        self.timeout = self.server.idle_timeout  # StreamRequestHandler puts it on the socket
        super().setup()
        self.deadline = time.monotonic() + self.server.request_timeout
        self.rfile.close()  # the socket's own reader: unclosed, it would keep the socket open after close()
        self.rfile = io.BufferedReader(_Deadline(self.connection, self.deadline, self.server.idle_timeout,
                                                 self.server.request_timeout))

    def do_GET(self):
        self._respond(body=True)

    def do_HEAD(self):
        self._respond(body=False)

    def _respond(self, body: bool):
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or hosts[0] not in self.server.allowed_hosts:
            return self.send_error(403, "unexpected Host header")
        if self.path.split("?", 1)[0] not in ("/", "/index.html"):
            return self.send_error(404)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.server.page)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:  # the whole answer within what is left of the request's time (sendall's timeout is its total)
            self.connection.settimeout(max(self.deadline - time.monotonic(), 0.001))
            self.wfile.write(self.server.page)

    def log_message(self, *args):  # quiet: the CLI prints the URL once
        pass

    def log_error(self, format, *args):  # an idle connection timed out: one line (refusals it sent are not news)
        if not format.startswith("code "):  # an error as its words ("%r" would add its type and quotes)
            what = format.replace("%r", "%s") % args
            self.server.log(f"explorer: connection from {self.client_address[0]}:{self.client_address[1]}: {what}")


def page_server(page: str | Path | None = None, port: int = 0, idle_timeout: float = IDLE_TIMEOUT_S, log=None,
                request_timeout: float = REQUEST_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS) -> PageServer:
    """A server for the page file, bound to 127.0.0.1 (an ephemeral port unless ``port``) and not yet serving:
    call ``serve_forever()``, or run it in a thread and ``shutdown()`` it. ``page=None`` binds the port first (a
    busy port is refused before the page is written); ``load`` the page before serving. Connections idle for
    ``idle_timeout`` seconds, or not answered within ``request_timeout``, are closed; past ``max_connections`` open
    at once a connection is refused (503). ``log`` (default: stderr) gets one line per dropped or timed-out
    connection."""
    for name, value in (("idle_timeout", idle_timeout), ("request_timeout", request_timeout)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
            raise LatentAtlasError(f"{name}={value!r} is out of range: give a finite number of seconds > 0")
    if not isinstance(max_connections, int) or isinstance(max_connections, bool) or not 1 <= max_connections <= 1024:
        raise LatentAtlasError(f"max_connections={max_connections!r} is out of range: give an integer in [1, 1024]")
    try:
        server = PageServer(b"", "127.0.0.1", port, idle_timeout, log, request_timeout, max_connections)
    except OverflowError:
        raise LatentAtlasError(f"port={port!r} is out of range: give one in [0, 65535]") from None
    except OSError as e:
        raise LatentAtlasError(f"cannot serve on 127.0.0.1:{port}: {e.strerror or e}") from None
    if page is not None:
        server.load(page)
    return server


def open_in_browser(url: str) -> bool:
    """Open ``url`` in the default browser where there is one; False on a machine without."""
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False
