// The web page's script: it fills the page from the JSON API (/api/v1) and keeps it current. The job list
// is asked for every second, and at once whenever the live event stream says something happened. Every
// value from the server is inserted as text (textContent), never as markup: recording names are user data.
"use strict";

(function () {
  const POLL_MS = 1000;
  const IDLE_POLL_MS = 5000;
  const SPEND_MS = 10000;
  const byId = (id) => document.getElementById(id);
  const rows = new Map(); // job id -> {tr, cells}
  const states = new Map(); // job id -> last state seen
  let nudge = null;

  // --- helpers -----------------------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    return node;
  }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
    if (response.status === 401) {
      window.location.assign("/"); // the session is gone (signed out, or the server restarted)
      throw new Error("sign in again");
    }
    const body = (response.headers.get("content-type") || "").includes("json") ? await response.json() : null;
    if (!response.ok) {
      throw new Error((body && body.detail) || response.status + " " + response.statusText);
    }
    return { status: response.status, body: body };
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + (s % 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function clock(seconds) {
    const tenths = Math.round(seconds * 10);
    const h = Math.floor(tenths / 36000);
    const m = Math.floor((tenths % 36000) / 600);
    const s = (tenths % 600) / 10;
    const ss = (s < 10 ? "0" : "") + s.toFixed(1);
    return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + ss;
  }

  function usd(value) {
    if (value === null || value === undefined) return "—";
    return "$" + (value < 0.01 ? value.toFixed(4) : value.toFixed(2));
  }

  // --- the queue ---------------------------------------------------------------------------------------

  function progressText(job) {
    const parts = [];
    if (job.progress !== null) parts.push(Math.round(job.progress * 100) + "%");
    if (job.chunks_total) parts.push(job.chunks_done + " of " + job.chunks_total + " chunks");
    else if (job.chunks_done) parts.push(job.chunks_done + " chunks");
    if (job.audio_s) parts.push(duration(job.audio_done_s) + " of " + duration(job.audio_s));
    return parts.join(" · ");
  }

  function newRow(job) {
    const cells = {
      id: el("td", { class: "num" }, String(job.id)),
      recording: el("td", { class: "recording" }),
      state: el("td"),
      progress: el("td", { class: "progress" }),
      eta: el("td", { class: "eta" }),
      cost: el("td", { class: "cost" }),
      actions: el("td", { class: "actions" }),
    };
    const tr = el("tr", { "data-job-id": String(job.id) });
    for (const cell of Object.values(cells)) tr.append(cell);
    const bar = el("progress", { max: "1" });
    const text = el("span", { class: "progress-text" });
    cells.progress.append(bar, text);
    return { tr: tr, cells: cells, bar: bar, text: text, shape: "" };
  }

  function actionButton(label, path, job) {
    const button = el("button", { type: "button", class: label.toLowerCase() }, label);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api(path, { method: "POST" });
      } catch (error) {
        window.alert("Job " + job.id + ": " + error.message);
      }
      refreshSoon();
    });
    return button;
  }

  // The name (a button once done), the reason of a failure and the row's buttons: rebuilt only when they
  // change, so a click is never lost to a refresh.
  function fillShape(row, job) {
    const { cells } = row;
    const name = job.state === "done"
      ? el("button", { type: "button", class: "link open" }, job.recording)
      : el("span", {}, job.recording);
    if (job.state === "done") name.addEventListener("click", () => showTranscript(job));
    const detail = [job.task === "translate" ? "→ " + (job.to || "en") : job.task];
    if (job.language) detail.push(job.language);
    if (job.diarize) detail.push("speakers");
    cells.recording.replaceChildren(name, el("small", {}, " " + detail.join(", ")));
    if (job.error) cells.recording.append(el("div", { class: "error reason" }, job.error));
    cells.actions.replaceChildren();
    if (job.state === "failed") {
      cells.actions.append(actionButton("Retry", "/api/v1/jobs/" + job.id + "/retry", job));
    } else if ((job.state === "queued" || job.state === "running") && !job.cancel_requested) {
      cells.actions.append(actionButton("Cancel", "/api/v1/jobs/" + job.id + "/cancel", job));
    }
  }

  function fillRow(row, job) {
    const { tr, cells, bar } = row;
    tr.dataset.state = job.state;
    const shape = JSON.stringify([job.state, job.recording, job.error, job.cancel_requested, job.outputs]);
    if (shape !== row.shape) {
      row.shape = shape;
      fillShape(row, job);
    }
    const stateText = job.cancel_requested && job.state === "running" ? "cancelling" : job.state;
    cells.state.replaceChildren(el("span", { class: "badge " + job.state }, stateText));
    if (job.progress !== null) {
      bar.value = job.progress;
      tr.dataset.progress = String(job.progress);
    } else {
      delete tr.dataset.progress;
      if (job.state === "running") bar.removeAttribute("value"); // under way, not yet measured
      else bar.value = 0;
    }
    row.text.textContent = progressText(job);
    cells.eta.textContent = job.state === "running" ? duration(job.eta_s) : "";
    cells.cost.textContent = job.usd !== null ? usd(job.usd)
      : job.reserved_usd !== null ? "≤ " + usd(job.reserved_usd) : "";
  }

  function renderJobs(jobs) {
    const tbody = byId("jobs").tBodies[0];
    const seen = new Set();
    let finished = false;
    for (const job of jobs) {
      seen.add(job.id);
      let row = rows.get(job.id);
      if (!row) {
        row = newRow(job);
        rows.set(job.id, row);
      }
      const before = states.get(job.id);
      if (before !== undefined && before !== job.state && job.state === "done") finished = true;
      states.set(job.id, job.state);
      fillRow(row, job);
      tbody.append(row.tr); // in the server's order, newest first
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
        states.delete(id);
      }
    }
    byId("no-jobs").hidden = jobs.length > 0;
    const count = (state) => jobs.filter((j) => j.state === state).length;
    byId("queue-summary").textContent = ["queued", "running", "done", "failed"]
      .map((s) => count(s) + " " + s).join(" · ");
    if (finished) refreshSpend();
  }

  let polling = false;
  async function refreshJobs() {
    if (polling) return;
    polling = true;
    try {
      const { body } = await api("/api/v1/jobs?limit=200");
      renderJobs(body.jobs);
    } catch (error) {
      byId("queue-summary").textContent = "cannot reach the server: " + error.message;
    } finally {
      polling = false;
    }
  }

  function refreshSoon() {
    if (nudge !== null) return;
    nudge = window.setTimeout(() => {
      nudge = null;
      refreshJobs();
    }, 100);
  }

  // Every second while jobs wait or run; slower when the queue is still or nobody is looking (the event
  // stream still calls for a refresh the moment work starts here).
  function poll() {
    refreshJobs().finally(() => {
      const active = Array.from(states.values()).some((s) => s === "queued" || s === "running");
      window.setTimeout(poll, active && !document.hidden ? POLL_MS : IDLE_POLL_MS);
    });
  }

  function listen() {
    const live = byId("live");
    const stream = new EventSource("/api/v1/events");
    stream.addEventListener("hello", () => {
      live.dataset.state = "live";
      live.textContent = "live";
    });
    for (const kind of ["job.started", "job.progress", "job.finished"]) {
      stream.addEventListener(kind, refreshSoon);
    }
    stream.onerror = () => {
      live.dataset.state = "reconnecting";
      live.textContent = "reconnecting…";
    };
  }

  // --- adding recordings -------------------------------------------------------------------------------

  function optionFields() {
    const form = byId("options");
    const data = new FormData(form);
    const fields = { task: data.get("task") };
    const language = String(data.get("language") || "").trim();
    if (language) fields.language = language;
    const to = String(data.get("to") || "").trim();
    if (fields.task === "translate" && to) fields.to = to;
    const formats = data.getAll("format");
    if (formats.length) fields.format = formats.join(",");
    if (data.get("diarize")) fields.diarize = "true";
    return fields;
  }

  // An upload with its progress shown (fetch cannot tell how much of a body has gone).
  function send(form, line, name) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", "/api/v1/jobs");
      request.responseType = "json";
      request.upload.onprogress = (event) => {
        if (event.lengthComputable) {
          line.textContent = name + ": uploading… " + Math.floor((100 * event.loaded) / event.total) + "%";
        }
      };
      request.onload = () => {
        if (request.status === 401) window.location.assign("/");
        const body = request.response;
        if (request.status >= 200 && request.status < 300) resolve({ status: request.status, body: body });
        else reject(new Error((body && body.detail) || String(request.status)));
      };
      request.onerror = () => reject(new Error("the connection failed"));
      request.send(form);
    });
  }

  async function upload(file, fields) {
    const line = el("li", {}, file.name + ": uploading…");
    byId("uploads").prepend(line);
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append("file", file, file.name);
    try {
      const { status, body: job } = await send(form, line, file.name);
      const how = status === 201 ? "queued as job " : "already job ";
      line.textContent = file.name + ": " + how + job.id + " (" + job.state + ")";
      line.className = "ok";
    } catch (error) {
      line.textContent = file.name + ": refused: " + error.message;
      line.className = "error";
    }
    refreshSoon();
  }

  async function uploadAll(files) {
    const fields = optionFields();
    for (const file of Array.from(files)) await upload(file, fields);
  }

  function setUpAdding() {
    const input = byId("files");
    input.addEventListener("change", () => {
      const files = Array.from(input.files);
      input.value = "";
      uploadAll(files);
    });
    const zone = document.body;
    const carriesFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");
    zone.addEventListener("dragover", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", (event) => {
      if (event.relatedTarget === null) zone.classList.remove("dragging");
    });
    zone.addEventListener("drop", (event) => {
      zone.classList.remove("dragging");
      if (!carriesFiles(event)) return;
      event.preventDefault();
      uploadAll(event.dataTransfer.files);
    });
    const form = byId("options");
    const sync = () => {
      const data = new FormData(form);
      form.querySelector(".to").hidden = data.get("task") !== "translate";
      const speakers = Boolean(data.get("diarize"));
      for (const box of form.querySelectorAll("input[data-speakers]")) {
        box.disabled = !speakers;
        if (!speakers) box.checked = false;
      }
    };
    form.addEventListener("change", sync);
    sync();
  }

  // --- the transcript viewer ---------------------------------------------------------------------------

  async function showTranscript(job) {
    const viewer = byId("viewer");
    const tbody = byId("cues").tBodies[0];
    viewer.hidden = false;
    viewer.dataset.jobId = String(job.id);
    byId("viewer-name").textContent = job.recording;
    const links = byId("viewer-links");
    links.replaceChildren("Download: ");
    for (const [format, url] of Object.entries(job.outputs)) {
      if (!url.startsWith("/api/v1/")) continue;
      links.append(el("a", { href: url, download: "", class: "format" }, format), " ");
    }
    tbody.replaceChildren();
    const note = byId("viewer-note");
    note.textContent = "loading…";
    if (!job.outputs.json) {
      note.textContent = "This job has no json output to show; download a format above.";
      return;
    }
    try {
      const { body } = await api(job.outputs.json);
      const segments = body.segments || [];
      for (const cue of segments) {
        tbody.append(el("tr", { class: "cue" },
          el("td", { class: "time" }, clock(cue.start_s) + " → " + clock(cue.end_s)),
          el("td", { class: "speaker" }, cue.speaker || ""),
          el("td", { class: "text" }, cue.text)));
      }
      note.textContent = segments.length + (segments.length === 1 ? " cue" : " cues") + (body.language ? ", language " + body.language : "");
    } catch (error) {
      note.textContent = "cannot load the transcript: " + error.message;
    }
    viewer.scrollIntoView({ block: "start" });
  }

  // --- spend -------------------------------------------------------------------------------------------

  function drawBars(items) {
    const chart = byId("spend-chart");
    const shown = items.slice(-30);
    const width = 600;
    const height = 120;
    // Dollars where anything was paid; minutes billed where everything ran offline, at $0.
    const paid = shown.some((i) => (i.usd || 0) > 0);
    const value = (i) => (paid ? i.usd || 0 : i.billed_min || 0);
    const most = Math.max(...shown.map(value), 0);
    const graph = svg("svg", { viewBox: "0 0 " + width + " " + (height + 16), role: "img", class: "bars" });
    const slot = Math.min(40, width / Math.max(shown.length, 1));
    shown.forEach((item, n) => {
      const h = most > 0 ? Math.max(1, (value(item) / most) * height) : 1;
      const bar = svg("rect", { x: n * slot + 2, y: height - h, width: Math.max(1, slot - 4), height: h });
      const title = svg("title");
      title.textContent = item.day + ": " + usd(item.usd) + ", " + item.billed_min + " min";
      bar.append(title);
      graph.append(bar);
    });
    if (shown.length > 1) {
      const first = svg("text", { x: 0, y: height + 14 });
      first.textContent = shown[0].day;
      const last = svg("text", { x: shown.length * slot, y: height + 14, "text-anchor": "end" });
      last.textContent = shown[shown.length - 1].day;
      graph.append(first, last);
    } else if (shown.length) {
      const only = svg("text", { x: 2, y: height + 14 });
      only.textContent = shown[0].day;
      graph.append(only);
    }
    chart.replaceChildren(graph);
  }

  async function refreshSpend() {
    try {
      const { body } = await api("/api/v1/spend?by=day");
      const total = body.total;
      let text = usd(total.usd) + " spent on " + total.files + " files (" + total.billed_min + " min billed)";
      text += body.budget_usd === null ? "; no budget set"
        : "; budget " + usd(body.budget_usd) + ", " + usd(body.left_usd) + " left";
      byId("spend-summary").textContent = text;
      drawBars(body.items);
      const tbody = byId("spend-days").tBodies[0];
      tbody.replaceChildren(...body.items.slice().reverse().map((item) => el("tr", {},
        el("td", {}, item.day), el("td", { class: "num" }, String(item.files)),
        el("td", { class: "num" }, String(item.billed_min)), el("td", { class: "num" }, usd(item.usd)))));
    } catch (error) {
      byId("spend-summary").textContent = "cannot read the spend: " + error.message;
    }
  }

  // --- the set-up check --------------------------------------------------------------------------------

  async function refreshChecks() {
    const button = byId("recheck");
    const list = byId("check-list");
    const summary = byId("checks-summary");
    button.disabled = true;
    summary.textContent = "checking…";
    try {
      const { body } = await api("/api/v1/checks");
      list.replaceChildren(...body.checks.map((check) => {
        const item = el("li", { class: check.ok ? "ok" : "bad" },
          el("span", { class: "mark" }, check.ok ? "✔" : "✘"), " ",
          el("strong", {}, check.name), ": " + check.detail);
        if (!check.ok && check.fix) item.append(el("div", { class: "fix" }, "fix: " + check.fix));
        return item;
      }));
      const bad = body.checks.filter((c) => !c.ok).length;
      summary.textContent = bad ? bad + " of " + body.checks.length + " checks failed" : "all checks pass";
      summary.dataset.ok = String(body.ok);
    } catch (error) {
      summary.textContent = "cannot run the checks: " + error.message;
    } finally {
      button.disabled = false;
    }
  }

  // --- start -------------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    setUpAdding();
    byId("viewer-close").addEventListener("click", () => { byId("viewer").hidden = true; });
    byId("recheck").addEventListener("click", refreshChecks);
    poll();
    listen();
    refreshSpend();
    window.setInterval(refreshSpend, SPEND_MS);
    refreshChecks();
  });
})();
