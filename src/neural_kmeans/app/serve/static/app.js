// neural-kmeans playground: the page's logic. It speaks to its server over one WebSocket
// (the server pushes every iteration), uploads and exports over plain HTTP. No library.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const D = NKDraw;
  // What tests and the benchmark read: frames drawn and when (performance.now()).
  const pg = (window.playground = {
    framesDrawn: 0, frameTimes: [], paintTimes: [], runClickedAt: null, lastIteration: null,
    state: "connecting", errors: [], session: null,
  });
  const DEFAULT_K = { moons: 2, circles: 2, blobs: 3, digits: 10, mnist: 10, "fashion-mnist": 10 };
  const UPLOAD = "__upload__";

  let ws = null;
  let limits = null;
  let data = null; // {summary, points}
  let run = null; // the run whose messages are drawn
  let info = null; // its start message
  let hist = { neural: [], kmeans: [] }; // per method: [{iteration, record, scores}]
  let trails = { neural: [], kmeans: [] }; // per method: K trails of [x, y]
  let last = { neural: null, kmeans: null }; // per method: the last part drawn
  let colors = [];
  let runState = "idle";

  // ------------------------------------------------------------------ connection
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${scheme}://${location.host}/ws`);
    ws.onmessage = (event) => handle(JSON.parse(event.data));
    ws.onclose = () => {
      setRunState("closed");
      setStatus("disconnected from the server: reload the page to reconnect");
    };
  }

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  const handlers = { hello, data: onData, start, frame, status, done, reset: onReset, error: onError };

  function handle(message) {
    const handler = handlers[message.type];
    if (handler) handler(message);
  }

  // ------------------------------------------------------------------ messages
  function hello(m) {
    pg.session = m.session;
    limits = m.limits;
    fill($("dataset"), [...m.datasets, UPLOAD], (name) =>
      name === UPLOAD ? "upload a file…" : ["mnist", "fashion-mnist"].includes(name) ? `${name} (subset)` : name);
    fill($("network"), m.networks);
    fill($("init"), m.inits);
    fill($("features"), m.features);
    $("init").value = "k-means++";
    $("k").max = limits.max_clusters;
    $("max-iter").max = limits.max_iter;
    $("steps").max = limits.max_steps;
    $("n-samples").max = limits.max_samples;
    $("subset").max = limits.max_samples;
    $("dataset").value = "moons";
    datasetChanged();
    setRunState("idle");
  }

  function onData(m) {
    data = { summary: m.summary, points: m.points ? D.decode(m.points, Float32Array) : null };
    const s = m.summary;
    const classes = s.n_classes === null ? "no labels" : `${s.n_classes} classes`;
    const shape = s.image_shape ? `${s.image_shape.join("×")} images` : `${s.n_features} features`;
    $("data-summary").textContent =
      `${s.name}: ${s.n_samples.toLocaleString()} samples, ${shape}, ${classes}` +
      (s.edited ? ` (edited; scores on the ${s.n_labelled.toLocaleString()} labelled points)` : "") +
      (s.mode === "rows" ? "; drawn through a PCA projection" : "");
    $("edit-hint").hidden = !s.editable;
    pg.view = s.view;
    const images = s.mode === "images";
    $("panels-points").hidden = images;
    $("panels-images").hidden = !images;
    clearRun();
    setStatus("ready");
  }

  function start(m) {
    run = m.run;
    info = m;
    hist = { neural: [], kmeans: [] };
    trails = { neural: [], kmeans: [] };
    last = { neural: null, kmeans: null };
    colors = D.clusterColors(m.params.n_clusters);
    pg.framesDrawn = 0;
    pg.frameTimes = [];
    pg.paintTimes = [];
    pg.lastIteration = null;
    $("final").hidden = true;
    setExports(false);
    const title = `neural-kmeans (${m.network})`;
    $("neural-title").textContent = title;
    $("neural-grid-title").textContent = `${title} centroids`;
  }

  function frame(m) {
    if (m.run !== run) return;
    for (const method of ["neural", "kmeans"]) {
      const part = m[method];
      if (!part) continue;
      const previous = last[method];
      const fresh = !previous || part.iteration !== previous.iteration;
      if (fresh && part.record) hist[method].push(part);
      if (fresh && part.centroids) {
        part.centroids.forEach((c, k) => (trails[method][k] = [...(trails[method][k] || []), c]));
      }
      last[method] = decodePart(part);
    }
    drawAll();
    pg.centroids = { neural: last.neural && last.neural.centroids, kmeans: last.kmeans && last.kmeans.centroids };
    pg.framesDrawn += 1;
    pg.frameTimes.push(performance.now());
    const index = pg.frameTimes.length - 1;
    requestAnimationFrame(() => (pg.paintTimes[index] = performance.now())); // on screen

    pg.lastIteration = m.iteration;
    $("iteration").textContent = String(m.iteration);
    if (runState === "running") setStatus(`running: iteration ${m.iteration}`);
  }

  function decodePart(part) {
    return {
      ...part,
      labels: part.labels ? D.decode(part.labels, Uint8Array) : null,
      regions: part.regions ? D.decode(part.regions, Uint8Array) : null,
      images: part.images ? D.decode(part.images, Uint8Array) : null,
    };
  }

  function status(m) {
    if (m.run !== undefined && m.run !== run) return;
    setRunState(m.state);
    const at = pg.lastIteration === null ? "" : ` at iteration ${pg.lastIteration}`;
    const text = {
      preparing: "preparing the learned features (gradient histograms, neighbours, UMAP)…",
      running: "running",
      paused: `paused${at}`,
      stopping: "stopping after this iteration…",
      failed: "the run failed (see the message)",
    }[m.state];
    if (text) setStatus(text);
  }

  function done(m) {
    if (m.run !== run) return;
    hist.kmeans = m.kmeans.history;
    const final = decodePart(m.kmeans.final);
    if (final.centroids && (!last.kmeans || last.kmeans.iteration !== final.iteration)) {
      final.centroids.forEach((c, k) => (trails.kmeans[k] = [...(trails.kmeans[k] || []), c]));
    }
    last.kmeans = final;
    last.kmeans.converged = m.kmeans.converged;
    last.neural.converged = m.converged;
    drawAll();
    const how = m.stopped ? "stopped" : m.converged ? "converged" : "reached the iteration limit";
    setStatus(`done: ${how} after ${m.n_iter} iterations (K-means: ${m.kmeans.n_iter})`);
    showFinal(m);
    setExports(true);
  }

  function onReset() {
    run = null;
    clearRun();
    setRunState("idle");
    setStatus("ready");
  }

  function onError(m) {
    pg.errors.push(m.message);
    const box = $("error");
    box.textContent = m.message;
    box.hidden = false;
  }

  // ------------------------------------------------------------------ drawing
  function clearRun() {
    run = null;
    info = null;
    hist = { neural: [], kmeans: [] };
    trails = { neural: [], kmeans: [] };
    last = { neural: null, kmeans: null };
    pg.lastIteration = null;
    pg.centroids = null;
    $("iteration").textContent = "–";
    $("final").hidden = true;
    setExports(false);
    drawAll();
  }

  function drawAll() {
    if (!data) return;
    const mode = data.summary.mode;
    if (mode === "images") {
      for (const method of ["neural", "kmeans"]) drawGrid(method);
    } else {
      for (const method of ["neural", "kmeans"]) drawPoints(method, mode);
    }
    drawCharts();
  }

  function drawPoints(method, mode) {
    const part = last[method];
    D.drawPlane($(`${method}-canvas`), {
      view: data.summary.view,
      points: data.points,
      labels: part && part.labels,
      regions: part && part.regions,
      grid: info && info.grid,
      colors,
      centroids: part && part.centroids,
      trails: trails[method],
    });
    let caption = mode === "rows" ? "PCA projection (no regions: the network sees every feature)" : "";
    if (part && part.record) {
      caption = `iteration ${part.iteration}: changed ${(100 * part.record.changed).toFixed(1)}%, ` +
        `inertia ${part.record.inertia.toPrecision(4)}${part.converged ? " (converged)" : ""}`;
    } else if (part) {
      caption = "initial centroids";
    }
    $(`${method}-caption`).textContent = caption;
  }

  function drawGrid(method) {
    const canvas = $(`${method}-grid`);
    const part = last[method];
    if (!part || !part.images || !info) {
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      return;
    }
    const shape = info.image_shape;
    const [h, w] = shape.slice(-2);
    const c = shape.length === 3 && shape[0] === 3 ? 3 : 1;
    D.drawImageGrid(canvas, {
      images: part.images, k: info.params.n_clusters, h, w, c,
      sizes: part.record && part.record.sizes,
      repaired: part.record && part.record.empty_repaired,
    });
  }

  const METRICS = [["acc", "#1f77b4"], ["nmi", "#ff7f0e"], ["ari", "#2ca02c"]];

  function series(method, value, color) {
    const points = (hist[method] || []).map((p) => [p.iteration, value(p)]).filter((p) => p[1] !== null);
    return { points, color, dashed: method === "kmeans" };
  }

  function drawCharts() {
    const both = (value) => [series("neural", value, "#1f6fd1"), series("kmeans", value, "#444")];
    const legend = [{ text: "— neural", color: "#1f6fd1" }, { text: "- - K-means", color: "#444" }];
    D.drawChart($("chart-loss"), {
      title: "training loss", series: [series("neural", (p) => p.record.loss, "#1f6fd1")],
    });
    D.drawChart($("chart-changed"), {
      title: "changed (%)", legend, ymin: 0,
      series: both((p) => 100 * p.record.changed), format: (v) => v.toFixed(0),
    });
    D.drawChart($("chart-inertia"), { title: "inertia", legend, series: both((p) => p.record.inertia) });
    const labelled = data && data.summary.n_classes !== null;
    D.drawChart($("chart-scores"), {
      title: "ACC / NMI / ARI", ymin: 0, ymax: 1,
      empty: labelled ? "no iterations yet" : "no labels: no scores",
      legend: METRICS.map(([name, color]) => ({ text: name.toUpperCase(), color })),
      series: labelled
        ? METRICS.flatMap(([name, color]) => ["neural", "kmeans"].map((method) =>
          series(method, (p) => (p.scores ? p.scores[name] : null), color)))
        : [],
      format: (v) => v.toFixed(2),
    });
  }

  function showFinal(m) {
    const table = $("final-scores");
    const names = ["acc", "nmi", "ari", "rand", "purity"];
    const rows = [["neural-kmeans", "neural-kmeans", m.n_iter], ["K-means", "kmeans", m.kmeans.n_iter]];
    const inertia = { "neural-kmeans": last.neural.record, kmeans: last.kmeans.record };
    let html = "<tr><th>method</th>" + names.map((n) => `<th>${n.toUpperCase()}</th>`).join("") +
      "<th>inertia</th><th>iterations</th><th>seconds</th></tr>";
    for (const [label, key, iterations] of rows) {
      const scores = m.scores[key];
      html += `<tr><th>${label}</th>` +
        names.map((n) => `<td>${scores ? scores[n].toFixed(3) : "—"}</td>`).join("") +
        `<td>${inertia[key] ? inertia[key].inertia.toPrecision(5) : "—"}</td>` +
        `<td>${iterations}</td><td>${m.seconds[key].toFixed(2)}</td></tr>`;
    }
    table.innerHTML = html;
    fillContingency($("contingency"), m.contingency);
    fillContingency($("kmeans-contingency"), m.kmeans_contingency);
    $("final").hidden = false;
  }

  // Classes x clusters counts, shaded by each row's largest count.
  function fillContingency(table, t) {
    table.replaceChildren();
    const cell = (row, tag, text) => {
      const element = document.createElement(tag);
      element.textContent = text;
      row.appendChild(element);
      return element;
    };
    if (!t) {
      cell(table.insertRow(), "td", "no labels");
      return;
    }
    const head = table.insertRow();
    cell(head, "th", "class \\ cluster");
    t.clusters.forEach((c) => cell(head, "th", c));
    t.counts.forEach((counts, i) => {
      const row = table.insertRow();
      cell(row, "th", t.classes[i]);
      const most = Math.max(1, ...counts);
      counts.forEach((v) => {
        // the style property, not a style attribute: the page's policy forbids inline styles
        cell(row, "td", v).style.backgroundColor = `rgba(31,111,209,${((0.6 * v) / most).toFixed(2)})`;
      });
    });
  }

  // ------------------------------------------------------------------ controls
  function fill(select, values, label = (v) => v) {
    select.innerHTML = "";
    for (const value of values) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label(value);
      select.appendChild(option);
    }
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  function setRunState(state) {
    runState = state;
    pg.state = state;
    const active = ["running", "preparing", "paused", "stopping"].includes(state);
    const closed = state === "closed";
    $("run").disabled = closed || (active && state !== "paused");
    $("run").textContent = state === "paused" ? "Resume" : "Run";
    $("pause").disabled = !(state === "running");
    $("step").disabled = closed || state === "stopping" || state === "preparing";
    $("stop").disabled = !(state === "running" || state === "paused");
    $("reset").disabled = closed;
  }

  function setExports(enabled) {
    for (const id of ["export-results", "export-gif", "export-model"]) $(id).disabled = !enabled;
  }

  function params() {
    return {
      n_clusters: $("k").value, network: $("network").value, init: $("init").value,
      steps_per_iter: $("steps").value, learning_rate: $("lr").value.trim(), seed: $("seed").value,
      features: $("features").value, max_iter: $("max-iter").value, tol: $("tol").value,
      speed: $("speed").value,
    };
  }

  function hideError() {
    $("error").hidden = true;
  }

  function datasetChanged() {
    hideError();
    const name = $("dataset").value;
    const toy = ["moons", "blobs", "circles"].includes(name);
    $("toy-options").hidden = !toy;
    $("noise").disabled = name === "blobs";
    $("subset-options").hidden = !["mnist", "fashion-mnist"].includes(name);
    $("upload-options").hidden = name !== UPLOAD;
    if (DEFAULT_K[name]) $("k").value = DEFAULT_K[name];
    $("network").value = ["mnist", "fashion-mnist"].includes(name) ? "mlp" : "auto";
    if (name !== UPLOAD) loadData();
  }

  function loadData() {
    const name = $("dataset").value;
    const toy = ["moons", "blobs", "circles"].includes(name);
    const source = { name };
    if (toy) {
      source.n_samples = $("n-samples").value;
      source.noise = name === "blobs" ? null : $("noise").value;
      source.seed = $("data-seed").value;
    } else if (["mnist", "fashion-mnist"].includes(name)) {
      source.n_samples = $("subset").value;
      source.seed = $("subset-seed").value;
    }
    setStatus(`loading ${name}…`);
    send({ type: "load", source });
  }

  async function upload() {
    hideError();
    const file = $("upload").files[0];
    if (!file) return onError({ message: "choose a .npy, .npz or .csv file first" });
    if (limits && file.size > limits.max_upload_bytes) {
      return onError({
        message: `${file.name}: ${file.size.toLocaleString()} bytes is over the limit of ` +
          `${limits.max_upload_bytes.toLocaleString()}`,
      });
    }
    const query = new URLSearchParams({ session: pg.session, name: file.name });
    if ($("label-column").value.trim()) query.set("label_column", $("label-column").value.trim());
    setStatus(`uploading ${file.name}…`);
    try {
      const response = await fetch(`/api/upload?${query}`, {
        method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" },
      });
      const answer = await response.json();
      if (!response.ok) {
        onError({ message: answer.error || `upload refused (${response.status})` });
        setStatus("ready");
      }
    } catch (problem) {
      onError({ message: `upload failed: ${problem}` });
    }
  }

  async function exportFile(what, filename, button) {
    hideError();
    const label = button.textContent;
    button.textContent = "preparing…";
    try {
      const response = await fetch(`/api/export/${what}?session=${encodeURIComponent(pg.session)}`);
      if (!response.ok) {
        const answer = await response.json().catch(() => ({}));
        onError({ message: answer.error || `export refused (${response.status})` });
        return;
      }
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = filename;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } finally {
      button.textContent = label;
    }
  }

  function planeClick(event) {
    if (!data || !data.summary.editable) return;
    event.preventDefault();
    const canvas = event.currentTarget;
    const box = canvas.getBoundingClientRect();
    const fx = (event.clientX - box.left) / box.width;
    const fy = (event.clientY - box.top) / box.height;
    const [x0, x1, y0, y1] = data.summary.view;
    const x = x0 + fx * (x1 - x0), y = y1 - fy * (y1 - y0);
    hideError();
    if (event.shiftKey || event.type === "contextmenu") {
      const radius = (8 / box.width) * Math.max(x1 - x0, y1 - y0);
      send({ type: "edit", remove: [x, y, radius] });
    } else {
      send({ type: "edit", add: [x, y] });
    }
  }

  function wire() {
    $("dataset").addEventListener("change", datasetChanged);
    for (const id of ["n-samples", "noise", "data-seed", "subset", "subset-seed"]) {
      $(id).addEventListener("change", loadData);
    }
    $("upload-button").addEventListener("click", upload);
    $("run").addEventListener("click", () => {
      hideError();
      if (runState === "paused") return send({ type: "run" });
      pg.runClickedAt = performance.now();
      send({ type: "run", params: params() });
    });
    $("step").addEventListener("click", () => {
      hideError();
      const active = ["running", "paused"].includes(runState);
      if (!active) pg.runClickedAt = performance.now();
      send(active ? { type: "step" } : { type: "step", params: params() });
    });
    $("pause").addEventListener("click", () => send({ type: "pause" }));
    $("stop").addEventListener("click", () => send({ type: "stop" }));
    $("reset").addEventListener("click", () => {
      hideError();
      send({ type: "reset" });
    });
    $("speed").addEventListener("change", () => send({ type: "speed", value: $("speed").value }));
    $("export-results").addEventListener("click", (e) => exportFile("results", "results.json", e.target));
    $("export-gif").addEventListener("click", (e) => exportFile("gif", "run.gif", e.target));
    $("export-model").addEventListener("click", (e) => exportFile("model", "model.nkm", e.target));
    for (const id of ["neural-canvas", "kmeans-canvas"]) {
      $(id).addEventListener("click", planeClick);
      $(id).addEventListener("contextmenu", planeClick);
    }
  }

  wire();
  setRunState("connecting");
  drawCharts();
  connect();
})();
