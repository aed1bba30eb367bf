// neural-kmeans playground: drawing on canvases (points, regions, centroids, image grids,
// charts). Plain JavaScript, no library.
"use strict";

const NKDraw = (() => {
  const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];
  const TAB20 = ["#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728",
    "#ff9896", "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f",
    "#c7c7c7", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5"];
  const GREY = [150, 150, 150];

  function hexToRgb(hex) {
    const value = parseInt(hex.slice(1), 16);
    return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
  }

  function hsvToRgb(h) {
    const i = Math.floor(h * 6), f = h * 6 - i, q = 1 - f;
    const rgb = [[1, f, 0], [q, 1, 0], [0, 1, f], [0, q, 1], [f, 0, 1], [1, 0, q]][i % 6];
    return rgb.map((v) => Math.round(255 * v));
  }

  // K distinct colours as [r, g, b]: tab10, tab20, then evenly spaced hues (as the figures).
  function clusterColors(k) {
    if (k <= 10) return TAB10.slice(0, k).map(hexToRgb);
    if (k <= 20) return TAB20.slice(0, k).map(hexToRgb);
    return Array.from({ length: k }, (_, i) => hsvToRgb(i / k));
  }

  const css = (rgb, alpha = 1) => `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${alpha})`;
  const light = (rgb) => rgb.map((v) => Math.round(255 - 0.3 * (255 - v)));

  function decode(base64, Type) {
    const text = atob(base64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return Type === Uint8Array ? bytes : new Type(bytes.buffer);
  }

  function star(ctx, x, y, radius) {
    ctx.beginPath();
    for (let i = 0; i < 10; i++) {
      const r = i % 2 === 0 ? radius : radius * 0.45;
      const a = -Math.PI / 2 + (i * Math.PI) / 5;
      ctx.lineTo(x + r * Math.cos(a), y + r * Math.sin(a));
    }
    ctx.closePath();
  }

  // One 2-D panel: the regions grid (ny x nx, row 0 at the bottom), the samples coloured by
  // cluster, the centroids' trails and the centroids.
  function drawPlane(canvas, p) {
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height;
    const [x0, x1, y0, y1] = p.view;
    const sx = (x) => ((x - x0) / (x1 - x0)) * W;
    const sy = (y) => H - ((y - y0) / (y1 - y0)) * H;
    const colors = p.colors || [];
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, W, H);
    if (p.regions && p.grid) {
      const { nx, ny } = p.grid;
      const off = document.createElement("canvas");
      off.width = nx;
      off.height = ny;
      const octx = off.getContext("2d");
      const image = octx.createImageData(nx, ny);
      const shades = colors.map(light);
      for (let j = 0; j < ny; j++) {
        const row = (ny - 1 - j) * nx;
        for (let i = 0; i < nx; i++) {
          const c = shades[p.regions[j * nx + i]] || GREY;
          const o = (row + i) * 4;
          image.data[o] = c[0];
          image.data[o + 1] = c[1];
          image.data[o + 2] = c[2];
          image.data[o + 3] = 255;
        }
      }
      octx.putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(off, 0, 0, W, H);
    }
    const pts = p.points;
    if (pts) {
      const n = pts.length / 2;
      const small = n > 3000;
      for (let i = 0; i < n; i++) {
        const c = p.labels ? colors[p.labels[i]] || GREY : GREY;
        ctx.fillStyle = css(c);
        const x = sx(pts[2 * i]), y = sy(pts[2 * i + 1]);
        if (small) {
          ctx.fillRect(x - 1, y - 1, 2.5, 2.5);
        } else {
          ctx.beginPath();
          ctx.arc(x, y, 2.4, 0, 2 * Math.PI);
          ctx.fill();
        }
      }
    }
    if (p.trails) {
      ctx.strokeStyle = "rgba(0,0,0,0.6)";
      ctx.lineWidth = 1.2;
      for (const trail of p.trails) {
        if (trail.length < 2) continue;
        ctx.beginPath();
        trail.forEach(([x, y], i) => (i ? ctx.lineTo(sx(x), sy(y)) : ctx.moveTo(sx(x), sy(y))));
        ctx.stroke();
      }
    }
    if (p.centroids) {
      ctx.lineWidth = 1.3;
      ctx.strokeStyle = "#000";
      p.centroids.forEach(([x, y], k) => {
        star(ctx, sx(x), sy(y), 10);
        ctx.fillStyle = css(colors[k] || GREY);
        ctx.fill();
        ctx.stroke();
      });
    }
  }

  // Columns of a centroid grid: 5 up to 25 clusters (2x5 for K = 10), as the figures.
  function gridColumns(k) {
    return k <= 25 ? Math.min(k, 5) : Math.ceil(Math.sqrt(k));
  }

  // The K centroid images (uint8, K x h x w x c with c = 1 or 3) with their cluster sizes.
  function drawImageGrid(canvas, g) {
    const { images, k, h, w, c, sizes, repaired } = g;
    const cols = gridColumns(k), rows = Math.ceil(k / cols);
    const gap = 8, label = 15;
    const tile = Math.max(24, Math.min(84, Math.floor((canvas.width - gap * (cols + 1)) / cols)));
    const tileH = Math.round((tile * h) / w);
    const height = gap + rows * (label + tileH + gap);
    if (canvas.height !== height) canvas.height = height;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const off = document.createElement("canvas");
    off.width = w;
    off.height = h;
    const octx = off.getContext("2d");
    const image = octx.createImageData(w, h);
    ctx.imageSmoothingEnabled = false;
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    const moved = new Set(repaired || []);
    const tiles = [];
    for (let j = 0; j < k; j++) {
      const base = j * h * w * c;
      for (let p = 0; p < h * w; p++) {
        const o = p * 4;
        const v = base + p * c;
        image.data[o] = images[v];
        image.data[o + 1] = images[v + (c === 3 ? 1 : 0)];
        image.data[o + 2] = images[v + (c === 3 ? 2 : 0)];
        image.data[o + 3] = 255;
      }
      octx.putImageData(image, 0, 0);
      const col = j % cols, row = Math.floor(j / cols);
      const x = gap + col * (tile + gap), y = gap + row * (label + tileH + gap);
      ctx.fillStyle = "#333";
      const text = moved.has(j) ? `${j}: re-seeded` : sizes ? `${j}: n=${sizes[j]}` : `${j}`;
      ctx.fillText(text, x, y + label - 2);
      ctx.drawImage(off, x, y + label, tile, tileH);
      tiles.push([x, y + label, tile, tileH]);
    }
    canvas.dataset.tiles = JSON.stringify(tiles); // where each centroid is (for tests)
  }

  // A small line chart: series of [x, y] points; dashed series for K-means.
  function drawChart(canvas, chart) {
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height;
    const left = 44, right = 8, top = 20, bottom = 20;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, W, H);
    ctx.fillStyle = "#222";
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "top";
    ctx.fillText(chart.title, 6, 4);
    const all = chart.series.flatMap((s) => s.points);
    if (!all.length) {
      ctx.fillStyle = "#888";
      ctx.fillText(chart.empty || "no iterations yet", left, H / 2 - 6);
      return;
    }
    const xmax = Math.max(1, ...all.map((p) => p[0]));
    let ymin = chart.ymin ?? Math.min(...all.map((p) => p[1]));
    let ymax = chart.ymax ?? Math.max(...all.map((p) => p[1]));
    if (ymax - ymin < 1e-12) {
      ymin -= 0.5 * Math.abs(ymin || 1);
      ymax += 0.5 * Math.abs(ymax || 1);
    }
    const px = (x) => left + (x / xmax) * (W - left - right);
    const py = (y) => H - bottom - ((y - ymin) / (ymax - ymin)) * (H - top - bottom);
    ctx.strokeStyle = "#bbb";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(left, top);
    ctx.lineTo(left, H - bottom);
    ctx.lineTo(W - right, H - bottom);
    ctx.stroke();
    ctx.fillStyle = "#555";
    ctx.font = "10px system-ui, sans-serif";
    const plain = (v) => v !== 0 && (Math.abs(v) >= 1000 || Math.abs(v) < 0.01);
    const format = chart.format || ((v) => (plain(v) ? v.toExponential(1) : v.toPrecision(3)));
    ctx.textBaseline = "middle";
    for (const v of [ymin, (ymin + ymax) / 2, ymax]) ctx.fillText(format(v), 2, py(v));
    ctx.textBaseline = "top";
    ctx.fillText("0", left - 3, H - bottom + 4);
    ctx.fillText(String(xmax), W - right - 14, H - bottom + 4);
    for (const s of chart.series) {
      if (!s.points.length) continue;
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1.6;
      ctx.setLineDash(s.dashed ? [5, 4] : []);
      ctx.beginPath();
      s.points.forEach(([x, y], i) => (i ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))));
      ctx.stroke();
    }
    ctx.setLineDash([]);
    let x = W - right;
    ctx.textBaseline = "top";
    ctx.font = "10px system-ui, sans-serif";
    for (const item of (chart.legend || []).slice().reverse()) {
      x -= ctx.measureText(item.text).width + 8;
      ctx.fillStyle = item.color;
      ctx.fillText(item.text, x, 5);
    }
  }

  return { clusterColors, decode, drawPlane, drawImageGrid, drawChart, gridColumns };
})();
