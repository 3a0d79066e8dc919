// latentatlas explorer: decodes the latent point under the mouse with the run's own decoder, in the page.
// Everything it needs is in the JSON block above (written by latentatlas/viz/explorer.py); it fetches nothing.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("atlas-data").textContent);
  const [H0, W0] = D.imageShape;
  const NF = H0 * W0;
  // Samples that are not images (one row of features) are drawn as a near-square tile, padded in grey.
  const W = H0 === 1 && W0 > 16 ? Math.ceil(Math.sqrt(W0)) : W0;
  const H = Math.ceil(NF / W);
  const SIDE = Math.max(H, W);
  const N = D.points.n;

  // ---- data ---------------------------------------------------------------------------------------------
  function bytes(b64) {
    const s = atob(b64);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  const f32 = (b64) => new Float32Array(bytes(b64).buffer);
  const Z = f32(D.points.z); // (N, dim) test latents
  const Y = new Uint16Array(bytes(D.points.y).buffer); // (N,) labels
  const PIX = bytes(D.points.pixels); // (N, NF) uint8 originals
  const KEPT = bytes(D.points.kept); // (N,) neighbourhood kept, 0..255 for 0..1
  // Classes held out of training (a holdout transform): drawn larger, edged in black, on top of the others.
  const UNSEEN = new Set(D.unseen);
  const ORDER = [...Array(N).keys()].sort((a, b) => UNSEEN.has(Y[a]) - UNSEEN.has(Y[b]));
  // A point's colour: a value given when the page was written (D.colourBy, each point's colour computed in
  // Python), its class, or how much of its input-space neighbourhood the map keeps (dark purple: none, yellow: all;
  // viridis's end points and middle).
  const RAMP = [[68, 1, 84], [33, 145, 140], [253, 231, 37]];
  const VALUE_RGB = D.colourBy ? bytes(D.colourBy.rgb) : null; // (N, 3)
  let colourBy = D.colourBy ? "value" : "class";
  function colourOf(i) {
    if (colourBy === "class") return D.colors[Y[i] % 10];
    if (colourBy === "value") return `rgb(${VALUE_RGB[3 * i]},${VALUE_RGB[3 * i + 1]},${VALUE_RGB[3 * i + 2]})`;
    const t = KEPT[i] / 255;
    const [a, b, u] = t < 0.5 ? [RAMP[0], RAMP[1], 2 * t] : [RAMP[1], RAMP[2], 2 * t - 1];
    return `rgb(${a.map((v, c) => Math.round(v + u * (b[c] - v))).join(",")})`;
  }
  const dim = D.dim;
  const latentOf = (i) => Array.from(Z.subarray(i * dim, (i + 1) * dim));

  // ---- the decoder: the same layers as the PyTorch module, in float64 ------------------------------------
  const layers = D.decoder.map((l) => (l.kind === "linear" ? { ...l, w: f32(l.w), b: f32(l.b) } : l));

  function decode(z) {
    let x = Float64Array.from(z);
    for (const l of layers) {
      if (l.kind === "linear") {
        const y = new Float64Array(l.out);
        for (let o = 0; o < l.out; o++) {
          let s = l.b[o];
          const row = o * l.in;
          for (let i = 0; i < l.in; i++) s += l.w[row + i] * x[i];
          y[o] = s;
        }
        x = y;
      } else if (l.kind === "prelu") {
        const a = l.a;
        for (let i = 0; i < x.length; i++) if (x[i] < 0) x[i] *= a.length === 1 ? a[0] : a[i];
      } else {
        throw new Error("unknown decoder layer " + l.kind);
      }
    }
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = 1 / (1 + Math.exp(-x[i])); // the model's sigmoid
    return out;
  }

  // ---- drawing helpers ---------------------------------------------------------------------------------
  const scratch = document.createElement("canvas");
  scratch.width = W;
  scratch.height = H;
  const scratchCtx = scratch.getContext("2d");

  function drawImage(canvas, pixels, scale255) {
    const img = scratchCtx.createImageData(W, H);
    for (let i = NF; i < W * H; i++) img.data.set([96, 96, 96, 255], 4 * i);
    for (let i = 0; i < NF; i++) {
      const v = scale255 ? pixels[i] : Math.round(Math.min(1, Math.max(0, pixels[i])) * 255);
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
    scratchCtx.putImageData(img, 0, 0);
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const s = Math.min(canvas.width / W, canvas.height / H);
    ctx.drawImage(scratch, (canvas.width - W * s) / 2, (canvas.height - H * s) / 2, W * s, H * s);
  }
  const original = (i) => PIX.subarray(i * NF, (i + 1) * NF);

  function imageCanvas(size, pixels, scale255) {
    const c = document.createElement("canvas");
    c.width = c.height = size;
    c.className = "img";
    drawImage(c, pixels, scale255);
    return c;
  }

  function niceTicks(lo, hi, n) {
    const step0 = (hi - lo) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0);
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) ticks.push(Math.abs(t) < 1e-12 ? 0 : t);
    return ticks;
  }
  const fmt = (v) => (Math.abs(v) >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toPrecision(2));

  function makeStack(parent, w, h) {
    const stack = document.createElement("div");
    stack.className = "stack";
    stack.style.width = w + "px";
    stack.style.height = h + "px";
    const base = document.createElement("canvas");
    const overlay = document.createElement("canvas");
    overlay.className = "overlay";
    for (const c of [base, overlay]) {
      c.width = w;
      c.height = h;
      stack.appendChild(c);
    }
    parent.appendChild(stack);
    return [base, overlay];
  }

  function viewBox(title, cls) {
    const box = document.createElement("div");
    box.className = "view " + cls;
    const h = document.createElement("h3");
    h.textContent = title;
    box.appendChild(h);
    document.getElementById("views").appendChild(box);
    return box;
  }

  function drawDot(ctx, i, x, y) {
    ctx.fillStyle = colourOf(i);
    if (!UNSEEN.has(Y[i])) return ctx.fillRect(x - 1, y - 1, 2.5, 2.5);
    ctx.fillRect(x - 2.5, y - 2.5, 5, 5);
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 1;
    ctx.strokeRect(x - 2.5, y - 2.5, 5, 5);
  }

  // ---- state and interaction ---------------------------------------------------------------------------
  const state = { z: null, view: null, point: -1, neighbours: [], decodeMs: null, image: null };
  const pins = [];
  const views = [];
  const decodedCanvas = document.getElementById("decoded");

  function nearest(z, k) {
    const best = [];
    for (let i = 0; i < N; i++) {
      let d = 0;
      for (let j = 0; j < dim; j++) d += (Z[i * dim + j] - z[j]) ** 2;
      if (best.length < k || d < best[best.length - 1][1]) {
        best.push([i, d]);
        best.sort((a, b) => a[1] - b[1]);
        if (best.length > k) best.pop();
      }
    }
    return best.map(([i, d]) => [i, Math.sqrt(d)]);
  }

  function setLatent(z, view) {
    state.z = z;
    state.view = view ? view.name : null;
    const t0 = performance.now();
    state.image = decode(z);
    state.decodeMs = performance.now() - t0;
    drawImage(decodedCanvas, state.image, false);
    const norm = Math.hypot(...z);
    document.getElementById("latent-info").textContent =
      "z = (" + z.map((v) => v.toFixed(3)).join(", ") + ")" + (D.view3d && D.view3d.surface ? "  |z| = " + norm.toFixed(6) : "");
    document.getElementById("decode-time").textContent = "decoded in " + state.decodeMs.toFixed(2) + " ms";
    const list = document.getElementById("neighbours");
    list.replaceChildren();
    const near = nearest(z, 5);
    state.neighbours = near.map(([i]) => i);
    for (const [i, d] of near) {
      const li = document.createElement("li");
      li.appendChild(imageCanvas(SIDE, original(i), true));
      li.append(`#${i} ${D.classes[Y[i]]}  (distance ${d.toFixed(3)})`);
      list.appendChild(li);
    }
  }

  function setPoint(i) {
    state.point = i;
    const info = document.getElementById("point-info");
    if (i < 0) {
      info.textContent = "none";
      for (const id of ["original", "reconstruction"]) {
        const c = document.getElementById(id);
        c.getContext("2d").clearRect(0, 0, c.width, c.height);
      }
      return;
    }
    drawImage(document.getElementById("original"), original(i), true);
    drawImage(document.getElementById("reconstruction"), decode(latentOf(i)), false);
    info.textContent = `test #${i}, class ${D.classes[Y[i]]}, z = (${latentOf(i).map((v) => v.toFixed(3)).join(", ")})`;
  }

  function redrawOverlays(active, cursor) {
    for (const v of views) v.drawOverlay(v === active ? cursor : null, state.point);
  }

  function pin() {
    if (!state.z) return;
    const box = document.getElementById("pinned");
    if (!pins.length) box.replaceChildren();
    const card = document.createElement("div");
    card.className = "pin";
    const close = document.createElement("button");
    close.type = "button";
    close.textContent = "×";
    card.appendChild(close);
    card.appendChild(imageCanvas(SIDE * 3, state.image, false));
    if (state.point >= 0) {
      card.appendChild(imageCanvas(SIDE * 3, original(state.point), true));
      card.appendChild(imageCanvas(SIDE * 3, decode(latentOf(state.point)), false));
    }
    const caption = document.createElement("div");
    caption.textContent = "decoded at (" + state.z.map((v) => v.toFixed(3)).join(", ") + ")" +
      (state.point >= 0 ? ` | test #${state.point} (${D.classes[Y[state.point]]}): original, reconstruction` : "");
    card.appendChild(caption);
    const entry = { z: state.z.slice(), point: state.point, card };
    close.addEventListener("click", () => {
      pins.splice(pins.indexOf(entry), 1);
      card.remove();
      redrawOverlays(null, null);
    });
    pins.push(entry);
    box.appendChild(card);
    redrawOverlays(null, null);
  }

  function attach(view) {
    const el = view.overlay;
    let drag = null;
    const at = (e) => {
      const r = el.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    el.addEventListener("pointerdown", (e) => {
      drag = { start: at(e), last: at(e), moved: false };
      el.setPointerCapture(e.pointerId);
    });
    el.addEventListener("pointerup", () => {
      if (drag && !drag.moved && state.view === view.name) pin();
      drag = null;
    });
    el.addEventListener("pointermove", (e) => {
      const [x, y] = at(e);
      if (drag) {
        const [lx, ly] = drag.last;
        if (Math.abs(x - drag.start[0]) + Math.abs(y - drag.start[1]) > 3) drag.moved = true;
        if (drag.moved && view.rotate) view.rotate(x - lx, y - ly);
        if (drag.moved && view.pan) view.pan(x - lx, y - ly);
        drag.last = [x, y];
      }
      const i = view.pointAt(x, y, 6);
      const z = view.latentAt(x, y) || (i >= 0 ? latentOf(i) : null);
      if (z) setLatent(z, view);
      else state.view = null; // outside this view's domain: nothing here to pin
      setPoint(i);
      redrawOverlays(view, [x, y]);
    });
    if (view.zoom)
      el.addEventListener("wheel", (e) => {
        e.preventDefault();
        const [x, y] = at(e);
        view.zoom(x, y, e.deltaY > 0 ? 1.25 : 0.8);
        redrawOverlays(view, [x, y]);
      }, { passive: false });
    el.addEventListener("pointerleave", () => {
      setPoint(-1);
      redrawOverlays(null, null);
    });
  }

  // ---- build the page ----------------------------------------------------------------------------------
  document.getElementById("run-info").textContent =
    `${D.preset || "custom"} | ${D.geometry} ${D.dim}-D | ` +
    (D.points.total > N ? `${N.toLocaleString()} of ${D.points.total.toLocaleString()} test points (a fixed random subset)`
                        : `${N.toLocaleString()} test points`) +
    D.summary.map((text) => " | " + text).join("");
  const select = document.getElementById("colour-by");
  function showLegends() {
    document.getElementById("legend").hidden = colourBy !== "class";
    document.getElementById("kept-legend").hidden = colourBy !== "kept";
    document.getElementById("value-legend").hidden = colourBy !== "value";
  }
  if (D.colourBy) {
    const c = D.colourBy;
    const option = document.createElement("option");
    option.value = "value";
    option.textContent = `by ${c.label}`;
    select.prepend(option);
    select.value = "value";
    const legendBox = document.getElementById("value-legend");
    const title = document.createElement("b");
    title.textContent = c.label + (c.kind === "circular" ? " (circular)" : "");
    legendBox.append(title, " ");
    if (c.key) { // two angles: the scheme's square, angle 1 across, angle 2 up
      const img = document.createElement("img");
      img.src = c.key;
      img.alt = "colour key of the two angles";
      img.className = "key2d";
      legendBox.append(`${fmt(c.range[0])} `, img, ` ${fmt(c.range[1])} (angle 1 across, angle 2 up)`);
    } else {
      const ramp = document.createElement("span");
      ramp.className = "ramp";
      ramp.style.background = `linear-gradient(to right, ${c.ramp.join(", ")})`;
      legendBox.append(`${fmt(c.range[0])} `, ramp, ` ${fmt(c.range[1])}`);
    }
  }
  showLegends();
  select.addEventListener("change", (e) => {
    colourBy = e.target.value;
    showLegends();
    views.forEach((v) => v.drawBase());
  });
  const legend = document.getElementById("legend");
  D.classes.forEach((name, k) => {
    const s = document.createElement("span");
    const dot = document.createElement("i");
    dot.style.background = D.colors[k % 10];
    s.append(dot, UNSEEN.has(k) ? `${name} (never seen in training)` : name);
    if (UNSEEN.has(k)) s.className = "unseen";
    legend.appendChild(s);
  });
  const { MapView, GlobeView } = window.LATENTATLAS_VIEWS({
    N, ORDER, drawDot, f32, fmt, makeStack, niceTicks, pins, state, viewBox });
  if (D.view3d) views.push(new GlobeView(D.view3d));
  for (const chart of D.charts) views.push(new MapView(chart));
  views.forEach(attach);
  document.getElementById("clear-pins").addEventListener("click", () => {
    pins.splice(0).forEach((p) => p.card.remove());
    redrawOverlays(null, null);
  });

  // For tests and scripting: the decoder, the charts' inverses and the current state.
  window.atlas = {
    data: D,
    decode: (z) => Array.from(decode(z)),
    colourOf,
    unseen: (i) => UNSEEN.has(Y[i]),
    fromMap: (name, u, v) => views.find((w) => w.name === "map:" + name).fromMap(u, v),
    latentOf,
    // Where test point i is drawn in a view, in that view's canvas pixels (null when hidden behind the globe).
    pointPosition: (name, i) => {
      const v = views.find((w) => w.name === name);
      return v.front && !v.front[i] ? null : [v.sx[i], v.sy[i]];
    },
    state,
    views: views.map((v) => v.name),
    window: (name) => { const v = views.find((w) => w.name === name); return [v.u0, v.u1, v.v0, v.v1]; },
    readyMs: performance.now(),
  };
  document.body.dataset.ready = "1";
})();
