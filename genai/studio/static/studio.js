// genai studio: the pages' behaviour. Plain browser JavaScript, no build step; charts with uPlot.
"use strict";

const studio = (() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  // POSTs carry the header the studio requires of them (another site's page cannot send it).
  async function post(url, body) {
    const res = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Genai-Studio": "1" },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await res.json(); } catch (e) { data = { error: `HTTP ${res.status}` }; }
    if (!res.ok && !data.error) data.error = `HTTP ${res.status}`;
    return data;
  }

  async function get(url) {
    const res = await fetch(url);
    let data = {};
    try { data = await res.json(); } catch (e) { data = {}; }
    return { ok: res.ok, status: res.status, data };
  }

  // ---------------------------------------------------------------- charts
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
  const LABELS = { loss: "train loss", eval_loss: "eval loss", lr: "learning rate", grad_norm: "grad norm",
    tokens_per_s: "tokens/s", reward: "reward", "rewards/accuracy": "preference accuracy",
    exact_match: "exact match" };

  // One chart per metric: lines = {name: [[step, value], ...]}.
  function lineChart(container, title, lines) {
    const names = Object.keys(lines).filter((n) => lines[n] && lines[n].length);
    if (!names.length) return null;
    const steps = Array.from(new Set(names.flatMap((n) => lines[n].map((p) => p[0])))).sort((a, b) => a - b);
    const data = [steps];
    for (const n of names) {
      const at = new Map(lines[n].map((p) => [p[0], p[1]]));
      data.push(steps.map((s) => (at.has(s) ? at.get(s) : null)));
    }
    const box = document.createElement("figure");
    box.className = "chart";
    box.dataset.metric = title;
    container.appendChild(box);
    const width = Math.max(320, Math.min(560, container.clientWidth - 16));
    const chart = new uPlot({
      title: LABELS[title] || title,
      width, height: 220,
      scales: { x: { time: false } },
      series: [{ label: "step" }, ...names.map((n, i) => ({
        label: n, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true,
        points: { show: steps.length < 40 },
      }))],
      axes: [{ label: "step" }, { size: 60, values: (u, vals) => vals.map((v) => (v == null ? "" : +v.toPrecision(3))) }],
    }, data, box);
    return chart;
  }

  // Charts of one run: {metric: points}; or of several: {run: {metric: points}} (runs overlaid).
  function drawCharts(container, byMetric) {
    container.innerHTML = "";
    let drawn = 0;
    for (const [metric, lines] of Object.entries(byMetric)) {
      if (lineChart(container, metric, lines)) drawn++;
    }
    if (!drawn) container.innerHTML = '<p class="empty">Nothing logged yet.</p>';
  }

  function oneRun(series) {
    const out = {};
    for (const [metric, points] of Object.entries(series)) out[metric] = { [metric]: points };
    return out;
  }

  function overlaid(byRun) {
    const out = {};
    for (const [run, series] of Object.entries(byRun)) {
      for (const [metric, points] of Object.entries(series)) (out[metric] = out[metric] || {})[run] = points;
    }
    const keep = ["loss", "eval_loss", "reward", "rewards/accuracy", "lr"];
    return Object.fromEntries(keep.filter((k) => out[k]).map((k) => [k, out[k]]));
  }

  // ---------------------------------------------------------------- runs
  function runsPage() {
    const table = $("#runs");
    const button = $("#compare");
    if (!table) return;
    const rows = $$("tbody tr", table);
    $("#filter").addEventListener("input", (e) => {
      const words = e.target.value.toLowerCase().split(/\s+/).filter(Boolean);
      for (const tr of rows) {
        const text = tr.textContent.toLowerCase();
        tr.hidden = !words.every((w) => text.includes(w));
      }
    });
    const picked = () => $$(".pick:checked", table).map((c) => c.value);
    table.addEventListener("change", () => {
      const n = picked().length;
      button.disabled = n < 2 || n > 4;
      button.textContent = n ? `Compare ${n} selected` : "Compare selected";
    });
    button.addEventListener("click", () => {
      const q = picked().map((id) => "run=" + encodeURIComponent(id)).join("&");
      window.location = "/compare?" + q;
    });
    $$("th[data-key]", table).forEach((th, i) => {
      th.addEventListener("click", () => {
        const col = i + 1;
        const down = th.dataset.dir !== "down";
        $$("th", table).forEach((h) => delete h.dataset.dir);
        th.dataset.dir = down ? "down" : "up";
        const value = (tr) => {
          const td = tr.children[col];
          if (th.hasAttribute("data-num")) {
            const v = parseFloat(td.dataset.value);
            return Number.isNaN(v) ? Infinity : v;
          }
          return td.textContent.trim().toLowerCase();
        };
        const sorted = rows.slice().sort((a, b) => {
          const x = value(a), y = value(b);
          return (x < y ? -1 : x > y ? 1 : 0) * (down ? 1 : -1);
        });
        const body = $("tbody", table);
        sorted.forEach((tr) => body.appendChild(tr));
      });
    });
  }

  // ---------------------------------------------------------------- one run
  function runPage(runId, series, live) {
    const charts = $("#charts");
    drawCharts(charts, oneRun(series));
    if (!live) return;
    const timer = setInterval(async () => {
      const r = await get("/api/run/" + runId.split("/").map(encodeURIComponent).join("/"));
      if (!r.ok) {
        clearInterval(timer);
        const banner = $("#gone");
        banner.textContent = r.data.error || "This run is gone.";
        banner.hidden = false;
        return;
      }
      drawCharts(charts, oneRun(r.data.series));
      $("#status").textContent = r.data.row.status;
      if (r.data.row.status !== "incomplete") clearInterval(timer);
    }, 2000);
  }

  // ---------------------------------------------------------------- compare
  function comparePage(byRun) {
    drawCharts($("#charts"), overlaid(byRun));
    const only = $("#only-diff");
    const apply = () => $$("#diff tr.same").forEach((tr) => (tr.hidden = only.checked));
    only.addEventListener("change", apply);
    apply();
  }

  // ---------------------------------------------------------------- playground
  function playgroundPage() {
    const state = $("#serve-state");
    const error = $("#serve-error");
    const columns = $$(".column");
    const history = columns.map(() => []);

    function showStatus(s) {
      state.textContent = s.state + (s.run ? `: ${s.run}` : "");
      state.className = "state " + s.state;
      error.hidden = !s.error;
      error.textContent = s.error || "";
      for (const [i, col] of columns.entries()) {
        const select = $(".target", col);
        const before = select.value;
        select.innerHTML = s.targets.map((t) => `<option value="${escapeAttr(t.id)}">${escapeHtml(t.label)}</option>`).join("");
        const ids = s.targets.map((t) => t.id);
        if (ids.includes(before)) select.value = before;
        else if (ids.length) select.value = ids[Math.min(i, ids.length - 1)];
      }
    }
    async function refresh() {
      const r = await get("/api/serve");
      if (r.ok) showStatus(r.data);
      return r.data;
    }
    let polling = null;
    function poll() {
      clearInterval(polling);
      polling = setInterval(async () => {
        const s = await refresh();
        if (s.state !== "starting") clearInterval(polling);
      }, 1000);
    }
    $("#serve").addEventListener("click", async () => {
      const run = $("#run").value;
      if (!run) return;
      const s = await post("/api/serve", { run });
      if (s.error) { error.hidden = false; error.textContent = s.error; return; }
      showStatus(s);
      poll();
    });
    $("#unserve").addEventListener("click", async () => showStatus(await post("/api/serve/stop")));
    $("#add-url").addEventListener("click", async () => {
      const r = await post("/api/targets", { base_url: $("#url").value, model: $("#url-model").value, api_key: $("#url-key").value });
      if (r.error) { error.hidden = false; error.textContent = r.error; return; }
      $("#url-key").value = "";
      refresh();
    });
    $("#side-by-side").addEventListener("change", (e) => { columns[1].hidden = !e.target.checked; });

    async function ask(col, i, prompt) {
      const target = $(".target", col).value;
      const transcript = $(".transcript", col);
      if (!target) { transcript.insertAdjacentHTML("beforeend", '<p class="error">No target: serve a run or add a URL.</p>'); return; }
      history[i].push({ role: "user", content: prompt });
      const system = $("#system").value.trim();
      const messages = (system ? [{ role: "system", content: system }] : []).concat(history[i]);
      transcript.insertAdjacentHTML("beforeend", `<div class="msg user">${escapeHtml(prompt)}</div>`);
      const answer = document.createElement("div");
      answer.className = "msg assistant streaming";
      transcript.appendChild(answer);
      const res = await fetch("/api/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Genai-Studio": "1" },
        body: JSON.stringify({ target, messages, temperature: parseFloat($("#temperature").value || "0"),
          max_tokens: parseInt($("#max-tokens").value || "64", 10) }),
      });
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "", text = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          if (!event.startsWith("data:")) continue;
          const msg = JSON.parse(event.slice(5));
          if (msg.delta) { text += msg.delta; answer.textContent = text; answer.dataset.chunks = String((+answer.dataset.chunks || 0) + 1); }
          if (msg.error) { answer.classList.add("error"); answer.textContent = (text ? text + "\n" : "") + msg.error; }
        }
      }
      answer.classList.remove("streaming");
      answer.classList.add("done");
      history[i].push({ role: "assistant", content: text });
    }
    $("#ask").addEventListener("submit", (e) => {
      e.preventDefault();
      const prompt = $("#prompt").value.trim();
      if (!prompt) return;
      $("#prompt").value = "";
      columns.forEach((col, i) => { if (!col.hidden) ask(col, i, prompt); });
    });
    $("#prompt").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#ask").requestSubmit(); }
    });
    refresh().then((s) => { if (s && s.state === "starting") poll(); });
  }

  // ---------------------------------------------------------------- launch
  function launchPage() {
    const select = $("#recipe");
    const yaml = $("#yaml");
    const gutter = $("#gutter");
    const validation = $("#validation");
    let errorsAt = new Map();
    let loaded = "";

    function paintGutter() {
      const n = yaml.value.split("\n").length;
      const out = [];
      for (let i = 1; i <= n; i++) out.push(errorsAt.has(i) ? `<span class="bad" title="${escapeAttr(errorsAt.get(i))}">${i} !</span>` : `${i}`);
      gutter.innerHTML = out.join("\n");
      gutter.scrollTop = yaml.scrollTop;
    }
    async function validate() {
      const r = await post("/api/validate", { recipe: select.value, text: yaml.value });
      errorsAt = new Map();
      if (r.ok) {
        validation.className = "validation ok";
        validation.textContent = `valid: recipe '${r.name}'`;
      } else {
        validation.className = "validation bad";
        const lines = r.lines || [{ line: null, message: r.error }];
        for (const l of lines) if (l.line) errorsAt.set(l.line, l.message);
        validation.innerHTML = lines.map((l) =>
          `<div class="problem-line" data-line="${l.line || ""}">${l.line ? `<b>line ${l.line}</b> ` : ""}${escapeHtml(l.message)}</div>`).join("");
      }
      paintGutter();
    }
    let pending = null;
    yaml.addEventListener("input", () => { paintGutter(); clearTimeout(pending); pending = setTimeout(validate, 400); });
    yaml.addEventListener("scroll", () => { gutter.scrollTop = yaml.scrollTop; });
    async function load() {
      if (!select.value) return;
      const r = await get("/api/recipe?name=" + encodeURIComponent(select.value));
      yaml.value = loaded = r.data.text || "";
      paintGutter();
      validate();
    }
    select.addEventListener("change", load);
    $("#save").addEventListener("click", async () => {
      const r = await post("/api/recipes", { recipe: select.value, name: $("#save-name").value, text: yaml.value });
      const out = $("#save-result");
      if (r.error) { out.className = "error"; out.textContent = r.error; return; }
      out.className = "ok";
      out.textContent = `saved as ${r.recipe}`;
      select.insertAdjacentHTML("beforeend", `<option value="${escapeAttr(r.recipe)}">${escapeHtml(r.recipe)}</option>`);
      select.value = r.recipe;
      loaded = yaml.value;  // the editor now holds that recipe as saved
    });

    let timer = null;
    const launchError = $("#launch-error");
    $("#launch").addEventListener("click", async () => {
      launchError.hidden = true;
      if (yaml.value !== loaded) {  // a launch runs the recipe file: unsaved edits would silently not apply
        launchError.hidden = false;
        launchError.textContent = "The editor has unsaved changes: save them as a new recipe to launch them, " +
          "or reload the recipe and give your changes as overrides.";
        return;
      }
      const r = await post("/api/launch", { recipe: select.value, overrides: $("#overrides").value });
      if (r.error) { launchError.hidden = false; launchError.textContent = r.error; return; }
      $("#job").hidden = false;
      $("#stop").disabled = false;
      $("#stop").dataset.job = r.job;
      $("#job-command").textContent = r.command;
      clearInterval(timer);
      timer = setInterval(() => watch(r.job), 1000);
      watch(r.job);
    });
    $("#stop").addEventListener("click", async (e) => {
      const job = e.target.dataset.job;
      if (!job) return;
      e.target.disabled = true;
      await post(`/api/jobs/${job}/stop`);
      watch(job);
    });
    let drawnPoints = -1;
    async function watch(job) {
      const r = await get(`/api/jobs/${job}`);
      if (!r.ok) return;
      const j = r.data;
      const state = $("#job-state");
      state.textContent = j.state;
      state.className = "state " + j.state;
      const log = $("#job-log");
      log.textContent = j.log;
      log.scrollTop = log.scrollHeight;
      if (j.run) {
        const link = $("#job-run");
        link.textContent = j.run;
        link.href = "/run/" + j.run;
        $("#job-stages").innerHTML = Object.entries(j.stages || {}).map(([k, v]) => `<span class="stage ${escapeAttr(v)}">${escapeHtml(k)}: ${escapeHtml(v)}</span>`).join(" ");
        const points = Object.values(j.series || {}).reduce((n, p) => n + p.length, 0);
        if (points !== drawnPoints) {
          drawnPoints = points;
          drawCharts($("#job-chart"), oneRun(Object.fromEntries(Object.entries(j.series || {}).filter(([k]) => k === "loss" || k === "eval_loss"))));
        }
      }
      if (j.state !== "running") { clearInterval(timer); $("#stop").disabled = true; }
    }
    load();
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  const escapeAttr = escapeHtml;

  return { runsPage, runPage, comparePage, playgroundPage, launchPage };
})();
