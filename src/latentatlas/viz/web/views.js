// latentatlas explorer: the views (2-D charts and the rotatable 3-D view) and their drawing helpers.
// A script of its own, run before explorer.js: it defines one function, which explorer.js calls with what the views
// use of the page (the number of points and their drawing order, the decoder of embedded arrays, the drawing
// helpers, and the interaction state and pins that the views' overlays show), each named here; it returns the two
// kinds of view.
window.LATENTATLAS_VIEWS = (page) => {
  const { N, ORDER, drawDot, f32, fmt, makeStack, niceTicks, pins, state, viewBox } = page;

  // ---- a 2-D chart of the latent space -----------------------------------------------------------------
  const M = { l: 48, r: 10, t: 8, b: 38 };

  class MapView {
    constructor(chart) {
      this.chart = chart;
      this.name = "map:" + chart.name;
      this.fromMap = window.LATENTATLAS_CHARTS[chart.name]; // the geometry's own inverse, embedded as script
      [[this.u0, this.u1], [this.v0, this.v1]] = chart.extent;
      const aspect = chart.bounded ? (this.v1 - this.v0) / (this.u1 - this.u0) : 1;
      this.pw = 520;
      this.ph = Math.round(Math.min(520, this.pw * aspect));
      const box = viewBox(chart.name + " chart", "map");
      box.dataset.view = this.name;
      const reset = document.createElement("button");
      reset.type = "button";
      reset.className = "reset";
      reset.textContent = "reset zoom";
      reset.addEventListener("click", () => this.setWindow(...this.home));
      box.querySelector("h3").appendChild(reset);
      [this.base, this.overlay] = makeStack(box, this.pw + M.l + M.r, this.ph + M.t + M.b);
      this.home = [this.u0, this.u1, this.v0, this.v1];
      this.uv = f32(chart.uv);
      this.sx = new Float32Array(N);
      this.sy = new Float32Array(N);
      this.setWindow(...this.home);
    }
    // The part of the chart on screen; zoom and pan change it, "reset zoom" restores the whole chart.
    setWindow(u0, u1, v0, v1) {
      [this.u0, this.u1, this.v0, this.v1] = [u0, u1, v0, v1];
      for (let i = 0; i < N; i++) [this.sx[i], this.sy[i]] = this.toScreen(this.uv[2 * i], this.uv[2 * i + 1]);
      this.drawBase();
    }
    zoom(x, y, factor) {
      // About the point under the mouse, which stays where it is; never wider than the whole chart.
      const [hu0, hu1, hv0, hv1] = this.home;
      const f = Math.min(factor, (hu1 - hu0) / (this.u1 - this.u0));
      const [u, v] = this.fromScreen(x, y);
      this.setWindow(u - (u - this.u0) * f, u + (this.u1 - u) * f, v - (v - this.v0) * f, v + (this.v1 - v) * f);
    }
    pan(dx, dy) {
      const du = (-dx / this.pw) * (this.u1 - this.u0);
      const dv = ((this.chart.yDown ? -dy : dy) / this.ph) * (this.v1 - this.v0);
      this.setWindow(this.u0 + du, this.u1 + du, this.v0 + dv, this.v1 + dv);
    }
    toScreen(u, v) {
      const x = M.l + ((u - this.u0) / (this.u1 - this.u0)) * this.pw;
      const f = (v - this.v0) / (this.v1 - this.v0);
      return [x, M.t + (this.chart.yDown ? f : 1 - f) * this.ph];
    }
    fromScreen(x, y) {
      const u = this.u0 + ((x - M.l) / this.pw) * (this.u1 - this.u0);
      const f = (y - M.t) / this.ph;
      return [u, this.v0 + (this.chart.yDown ? f : 1 - f) * (this.v1 - this.v0)];
    }
    latentAt(x, y) {
      if (x < M.l || x > M.l + this.pw || y < M.t || y > M.t + this.ph) return null;
      const [u, v] = this.fromScreen(x, y);
      return this.fromMap(u, v);
    }
    drawBase() {
      const ctx = this.base.getContext("2d");
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, this.base.width, this.base.height);
      // The chart's domain, shaded by asking its own inverse (an ellipse for an equal-area map).
      ctx.fillStyle = "#f1f1f4";
      // One rectangle per run of inside cells in a row: this redraws on every drag-move while panning.
      const cell = 2;
      for (let y = M.t; y < M.t + this.ph; y += cell) {
        let start = null;
        for (let x = M.l; x <= M.l + this.pw; x += cell) {
          const [u, v] = this.fromScreen(x + cell / 2, y + cell / 2);
          const inside = x < M.l + this.pw && this.fromMap(u, v) !== null;
          if (inside && start === null) start = x;
          if (!inside && start !== null) {
            ctx.fillRect(start, y, x - start, cell);
            start = null;
          }
        }
      }
      ctx.strokeStyle = "#999";
      ctx.strokeRect(M.l, M.t, this.pw, this.ph);
      ctx.fillStyle = "#444";
      ctx.font = "11px system-ui, sans-serif";
      ctx.textAlign = "center";
      for (const t of niceTicks(this.u0, this.u1, 6)) {
        const [x] = this.toScreen(t, this.v0);
        ctx.fillRect(x, M.t + this.ph, 1, 4);
        ctx.fillText(fmt(t), x, M.t + this.ph + 15);
      }
      ctx.textAlign = "right";
      for (const t of niceTicks(this.v0, this.v1, 5)) {
        const [, y] = this.toScreen(this.u0, t);
        ctx.fillRect(M.l - 4, y, 4, 1);
        ctx.fillText(fmt(t), M.l - 6, y + 4);
      }
      ctx.textAlign = "center";
      ctx.fillText(this.chart.labels[0], M.l + this.pw / 2, M.t + this.ph + 32);
      ctx.save();
      ctx.translate(12, M.t + this.ph / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText(this.chart.labels[1], 0, 0);
      ctx.restore();
      ctx.save();
      ctx.beginPath();
      ctx.rect(M.l, M.t, this.pw, this.ph);
      ctx.clip();
      ctx.globalAlpha = 0.75;
      for (const i of ORDER) drawDot(ctx, i, this.sx[i], this.sy[i]);
      ctx.restore();
    }
    pointAt(x, y, radius) {
      return nearestDrawn(this.sx, this.sy, null, x, y, radius);
    }
    drawOverlay(cursor, point) {
      const ctx = this.overlay.getContext("2d");
      ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
      markPoints(ctx, (i) => [this.sx[i], this.sy[i]], point);
      if (cursor) crosshair(ctx, cursor[0], cursor[1]);
    }
  }

  // ---- a rotatable 3-D view of the geometry's 3-D picture; where that is a surface, it is the latent space ---
  class GlobeView {
    constructor(V) {
      this.V = V; // what the geometry offers: title, radius, wireframe, marks, axis labels
      this.js = window.LATENTATLAS_VIEW3D; // its map to 3-D and its pick (ray -> latent point), as script
      this.P = f32(V.points); // (N, 3) the test points in the picture
      this.name = "globe";
      this.size = 420;
      this.r = this.size / 2 - 14;
      this.c = this.size / 2;
      let m = V.radius || 0;
      if (!V.radius) for (let i = 0; i < N; i++) m = Math.max(m, Math.hypot(...this.pointOf(i)));
      this.scale = 1 / (m || 1); // without a radius of its own, the farthest point touches the rim
      const box = viewBox(V.title + " (drag to turn)", "globe");
      box.dataset.view = this.name;
      [this.base, this.overlay] = makeStack(box, this.size, this.size);
      // World -> view: look at the +x axis from slightly above the equator, north (+z) up.
      this.R = matMul(rotX(-0.35), [[0, 1, 0], [0, 0, 1], [1, 0, 0]]);
      this.sx = new Float32Array(N);
      this.sy = new Float32Array(N);
      this.front = new Uint8Array(N);
      this.drawBase();
    }
    pointOf(i) {
      return Array.from(this.P.subarray(3 * i, 3 * i + 3));
    }
    project(p) {
      const q = matVec(this.R, p.map((v) => v * this.scale));
      return [this.c + this.r * q[0], this.c - this.r * q[1], q[2]];
    }
    rotate(dx, dy) {
      this.R = matMul(rotX(dy * 0.008), matMul(rotY(dx * 0.008), this.R));
      this.drawBase();
    }
    latentAt(x, y) {
      if (!this.js.pick) return null; // a cloud of points, not a surface: nothing between them to decode
      // The viewer looks along -z of the view; a ray through the pixel, in world coordinates.
      const vx = (x - this.c) / this.r;
      const vy = (this.c - y) / this.r;
      const o = matTVec(this.R, [vx, vy, 4]).map((v) => v / this.scale);
      const d = matTVec(this.R, [0, 0, -1]);
      return this.js.pick(o, d);
    }
    drawBase() {
      const ctx = this.base.getContext("2d");
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, this.size, this.size);
      ctx.beginPath();
      ctx.arc(this.c, this.c, this.r, 0, 2 * Math.PI);
      ctx.fillStyle = this.js.pick ? "#f1f1f4" : "#fff";
      ctx.fill();
      ctx.strokeStyle = "#999";
      ctx.stroke();
      if (this.V.wireframe.length) this.wireframe(ctx);
      else this.axes(ctx);
      for (let i = 0; i < N; i++) {
        const [x, y, depth] = this.project(this.pointOf(i));
        this.sx[i] = x;
        this.sy[i] = y;
        this.front[i] = depth >= 0 ? 1 : 0;
      }
      for (const pass of [0, 1]) {
        ctx.globalAlpha = pass ? 0.85 : 0.12;
        for (const i of ORDER) if (this.front[i] === pass) drawDot(ctx, i, this.sx[i], this.sy[i]);
      }
      ctx.globalAlpha = 1;
    }
    wireframe(ctx) {
      // The surface's own lines, drawn where they face the viewer, and its labels (the sphere's "N").
      ctx.strokeStyle = "#d0d0d8";
      for (const line of this.V.wireframe) {
        let prev = null;
        for (const q of line) {
          const p = this.project(q);
          if (prev && p[2] >= 0 && prev[2] >= 0) {
            ctx.beginPath();
            ctx.moveTo(prev[0], prev[1]);
            ctx.lineTo(p[0], p[1]);
            ctx.stroke();
          }
          prev = p;
        }
      }
      ctx.fillStyle = "#444";
      ctx.font = "11px system-ui, sans-serif";
      for (const [text, at] of this.V.marks) {
        const n = this.project(at);
        if (n[2] >= 0) ctx.fillText(text, n[0] + 4, n[1] - 4);
      }
    }
    axes(ctx) {
      ctx.font = "11px system-ui, sans-serif";
      this.V.axisLabels.forEach((name, k) => {
        const e = [0, 0, 0];
        e[k] = 1 / this.scale;
        const [x, y] = this.project(e);
        ctx.strokeStyle = "#bbb";
        ctx.beginPath();
        ctx.moveTo(this.c, this.c);
        ctx.lineTo(x, y);
        ctx.stroke();
        ctx.fillStyle = "#444";
        ctx.fillText(name, x + 3, y - 3);
      });
    }
    pointAt(x, y, radius) {
      return nearestDrawn(this.sx, this.sy, this.front, x, y, radius);
    }
    drawOverlay(cursor, point) {
      const ctx = this.overlay.getContext("2d");
      ctx.clearRect(0, 0, this.size, this.size);
      markPoints(ctx, (i) => (this.front[i] ? [this.sx[i], this.sy[i]] : null), point);
      // The current latent point, wherever it was chosen, is shown on the globe when it faces us.
      if (state.z) {
        const [x, y, depth] = this.project(this.js.to3d(state.z));
        if (depth >= 0) crosshair(ctx, x, y);
      }
    }
  }

  const rotX = (a) => [[1, 0, 0], [0, Math.cos(a), -Math.sin(a)], [0, Math.sin(a), Math.cos(a)]];
  const rotY = (a) => [[Math.cos(a), 0, Math.sin(a)], [0, 1, 0], [-Math.sin(a), 0, Math.cos(a)]];
  const matMul = (A, B) => A.map((row) => [0, 1, 2].map((j) => row[0] * B[0][j] + row[1] * B[1][j] + row[2] * B[2][j]));
  const matVec = (A, v) => A.map((row) => row[0] * v[0] + row[1] * v[1] + row[2] * v[2]);
  const matTVec = (A, v) => [0, 1, 2].map((j) => A[0][j] * v[0] + A[1][j] * v[1] + A[2][j] * v[2]);

  // The drawn point nearest to (x, y) within ``radius`` screen pixels, among the ``visible`` ones (all if null); -1 if none.
  function nearestDrawn(sx, sy, visible, x, y, radius) {
    let best = -1;
    let bestD = radius * radius;
    for (let i = 0; i < N; i++) {
      if (visible && !visible[i]) continue;
      const d = (sx[i] - x) ** 2 + (sy[i] - y) ** 2;
      if (d < bestD) [best, bestD] = [i, d];
    }
    return best;
  }

  function crosshair(ctx, x, y) {
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.arc(x, y, 7, 0, 2 * Math.PI);
    ctx.moveTo(x - 12, y);
    ctx.lineTo(x - 4, y);
    ctx.moveTo(x + 4, y);
    ctx.lineTo(x + 12, y);
    ctx.moveTo(x, y - 12);
    ctx.lineTo(x, y - 4);
    ctx.moveTo(x, y + 4);
    ctx.lineTo(x, y + 12);
    ctx.stroke();
  }

  function markPoints(ctx, where, point) {
    ctx.lineWidth = 2;
    for (const [i, colour] of [...state.neighbours.map((i) => [i, "#555"]), ...pins.map((p) => [p.point, "#c00"]), [point, "#000"]]) {
      if (i < 0) continue;
      const at = where(i);
      if (!at) continue;
      ctx.strokeStyle = colour;
      ctx.beginPath();
      ctx.arc(at[0], at[1], 4, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  return { MapView, GlobeView };
};
