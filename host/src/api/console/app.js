// The operator console. Everything it shows comes from the node's own API;
// text from plugins (errors, reasons) is untrusted and only ever set with
// textContent, never parsed as HTML.
"use strict";

const REFRESH_MS = 10000;
// The session's page token, from the login answer: kept per tab and per
// origin, so a page on another port of this host cannot send it.
const TOKEN_KEY = "outpost-console-page-token";
const api = (method, path, body) =>
  pageCall("/console/api/", TOKEN_KEY, showLogin, method, path, body);
let refreshing = null;

function say(text, bad) {
  const message = $("message");
  message.textContent = text;
  message.className = bad ? "message error" : "message";
}

function showLogin() {
  $("console").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  if (refreshing) clearInterval(refreshing);
  refreshing = null;
}

function showConsole() {
  $("login").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = false;
  if (!refreshing) refreshing = setInterval(refresh, REFRESH_MS);
}

// Per-minute differences of running totals, and the total for the hour.
function perMinute(samples, field) {
  const values = [];
  for (let i = 1; i < samples.length; i++) {
    values.push(Math.max(0, samples[i][field] - samples[i - 1][field]));
  }
  const first = samples.length ? samples[0][field] : 0;
  const last = samples.length ? samples[samples.length - 1][field] : 0;
  return { values, hour: last - first, total: last };
}

function sparkline(values) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 60 20");
  svg.setAttribute("preserveAspectRatio", "none");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  const max = Math.max(1, ...values);
  const points = values.length ? values : [0];
  const step = points.length > 1 ? 60 / (points.length - 1) : 60;
  line.setAttribute(
    "points",
    points.map((v, i) => `${(i * step).toFixed(1)},${(19 - (v / max) * 18).toFixed(1)}`).join(" ")
  );
  svg.append(line);
  return svg;
}

const CHARTS = [
  ["labels_printed", "Labels printed", false],
  ["labels_failed", "Labels failed", true],
  ["receipts_printed", "Receipts printed", false],
  ["payments_tokenized", "Payments tokenized", false],
  ["bookings_confirmed", "Bookings confirmed", false],
  ["bookings_queued", "Bookings queued", false],
  ["bookings_failed", "Bookings failed", true],
  ["plugin_call_errors", "Plugin errors", true],
];

function renderCharts(samples) {
  const charts = $("charts");
  charts.replaceChildren();
  for (const [field, title, bad] of CHARTS) {
    const series = perMinute(samples, field);
    charts.append(
      el(
        "div",
        { class: bad && series.hour > 0 ? "chart bad" : "chart", "data-measure": field },
        el("div", { class: "small" }, title),
        el("div", { class: "value" }, series.hour),
        sparkline(series.values),
        el("div", { class: "small" }, `${series.total} since start`)
      )
    );
  }
}

function updateCell(entry) {
  const update = entry.update;
  if (!update) return el("td", {}, "—");
  const id = entry.plugin.id;
  const cell = el(
    "td",
    { "data-update-state": update.state },
    `${update.to}: ${update.state}`,
    null
  );
  if (update.asks && update.asks.length) {
    cell.append(el("div", { class: "small" }, "asks for more: " + update.asks.join(", ")));
  } else if (update.reason) {
    cell.append(el("div", { class: "small" }, update.reason));
  }
  if (update.state === "held") {
    const approve = el("button", { class: "primary approve", "data-plugin": id }, "Approve");
    approve.addEventListener("click", () => steer(id, "approve", update.to));
    const reject = el("button", { class: "danger reject", "data-plugin": id }, "Reject");
    reject.addEventListener("click", () => steer(id, "reject", update.to));
    cell.append(el("div", {}, approve, " ", reject));
  }
  return cell;
}

async function steer(id, verb, version) {
  try {
    await api("POST", `admin/v1/updates/${id}/${verb}`, { version });
    say(`${verb === "approve" ? "Approved" : "Rejected"} ${id} ${version}.`);
  } catch (error) {
    say(`Could not ${verb} ${id}: ${error.message}`, true);
  }
  refresh();
}

function renderPlugins(plugins) {
  const body = $("plugins").tBodies[0];
  body.replaceChildren();
  for (const entry of plugins) {
    const p = entry.plugin;
    const status = el("td", {}, p.status);
    if (p.reason) status.append(el("div", { class: "small error" }, p.reason));
    if (p.last_failure) status.append(el("div", { class: "small error" }, "last failure: " + p.last_failure));
    body.append(
      el(
        "tr",
        { "data-plugin": p.id, "data-version": p.version },
        el("td", {}, p.id, el("div", { class: "small" }, p.world)),
        el("td", { class: "version" }, p.version),
        status,
        el("td", {}, `${p.calls} (${p.failed} stopped, ${p.refused} refused)`),
        updateCell(entry)
      )
    );
  }
}

function renderPrinters(printers) {
  const body = $("printers").tBodies[0];
  body.replaceChildren();
  for (const printer of printers) {
    const result = el("span", { class: "small" });
    const check = el("button", {}, "Check");
    check.addEventListener("click", async () => {
      const kind = printer.default_for[0] || "receipt";
      result.textContent = "asking…";
      try {
        const answer = await api(
          "GET",
          `v1/printers/${encodeURIComponent(printer.name)}/status?kind=${kind}`
        );
        const status = answer.status || {};
        result.textContent = [status.state, status.detail].filter(Boolean).join(": ") || JSON.stringify(status);
      } catch (error) {
        result.textContent = error.message;
      }
    });
    body.append(
      el(
        "tr",
        { "data-printer": printer.name },
        el("td", {}, printer.name),
        el("td", {}, printer.destination),
        el("td", {}, printer.default_for.join(", ") || "—"),
        el("td", {}, check, " ", result)
      )
    );
  }
}

function renderOutbox(outbox) {
  const counts = outbox.counts || {};
  $("outbox-counts").textContent =
    `${counts.pending || 0} waiting, ${counts.dead || 0} given up, ${counts.delivered || 0} delivered recently`;
  const body = $("outbox").tBodies[0];
  body.replaceChildren();
  if (outbox.waiting.length === 0) {
    body.append(el("tr", {}, el("td", { colSpan: 7, class: "small" }, "Nothing waits for the network.")));
  }
  for (const entry of outbox.waiting) {
    const actions = el("td");
    if (entry.state === "dead") {
      const retry = el("button", { class: "primary retry", "data-entry": entry.id }, "Retry");
      retry.addEventListener("click", () => outboxAction(entry.id, "POST", `v1/outbox/${entry.id}/retry`));
      actions.append(retry, " ");
    }
    const drop = el("button", { class: "danger drop", "data-entry": entry.id }, "Drop");
    drop.addEventListener("click", () => {
      if (confirm(`Drop message ${entry.id}? It will not be delivered.`)) {
        outboxAction(entry.id, "DELETE", `v1/outbox/${entry.id}`);
      }
    });
    actions.append(drop);
    body.append(
      el(
        "tr",
        { "data-entry": entry.id },
        el("td", {}, entry.id),
        el("td", {}, entry.owner),
        el("td", {}, entry.destination),
        el("td", {}, entry.state),
        el("td", {}, entry.attempts),
        el("td", { class: "small" }, entry.last_error || ""),
        actions
      )
    );
  }
}

async function outboxAction(id, method, path) {
  try {
    await api(method, path);
    say(`Message ${id}: done.`);
  } catch (error) {
    say(`Message ${id}: ${error.message}`, true);
  }
  refresh();
}

function renderTelemetry(telemetry) {
  const select = $("consent");
  if (document.activeElement !== select) select.value = telemetry.consent;
  const backlog = telemetry.backlog || { rollups: 0, bytes: 0 };
  $("telemetry-detail").textContent = telemetry.remote_write_url
    ? `Ships to ${telemetry.remote_write_url}; ${backlog.rollups} rollups (${backlog.bytes} bytes) waiting.`
    : "No centre is configured (telemetry.remote-write-url), so nothing is shipped.";
}

async function refresh() {
  let overview;
  try {
    overview = await api("GET", "overview");
  } catch (error) {
    if (!$("login").hidden) return;
    say("The node did not answer: " + error.message, true);
    return;
  }
  showConsole();
  const node = overview.node;
  const status = $("status");
  status.textContent = node.status;
  status.className = "badge " + node.status;
  $("version").textContent = `v${node.version}, up ${Math.floor(node.uptime_seconds / 60)} min`;
  const problems = $("problems");
  problems.replaceChildren(...node.problems.map((p) => el("li", { class: "error" }, `${p.what}: ${p.detail}`)));
  $("problems-section").hidden = node.problems.length === 0;
  renderCharts(overview.measures);
  renderPlugins(overview.plugins);
  renderPrinters(overview.printers);
  renderOutbox(overview.outbox);
  renderTelemetry(overview.telemetry);
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const refused = await pageLogIn("/console/login", TOKEN_KEY, $("password").value);
  $("login-error").textContent = refused || "";
  if (refused) return;
  $("password").value = "";
  refresh();
});

$("logout").addEventListener("click", async () => {
  await fetch("/console/logout", { method: "POST", credentials: "same-origin" });
  showLogin();
});

$("save-consent").addEventListener("click", async () => {
  const consent = $("consent").value;
  try {
    await api("PUT", "admin/v1/telemetry", { consent });
    say(`Telemetry consent: ${consent}.`);
  } catch (error) {
    say("Could not change the consent: " + error.message, true);
  }
  refresh();
});

if ("serviceWorker" in navigator && window.isSecureContext) {
  navigator.serviceWorker.register("sw.js").catch(() => {});
}

refresh().then(() => {
  if ($("console").hidden) showLogin();
});
