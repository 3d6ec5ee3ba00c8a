// The central team's fleet page. What nodes report (names, labels, failure
// reasons) is untrusted text: it is only ever set with textContent.
"use strict";

let refreshing = null;
// The session's page token, from the login answer (see page.js).
const TOKEN_KEY = "outpost-fleet-page-token";
const api = (method, path) => pageCall("/fleet/api/", TOKEN_KEY, showLogin, method, path);

function ago(now, at) {
  if (!at) return "never";
  const seconds = Math.max(0, now - at);
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

function showLogin() {
  $("fleet").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  if (refreshing) clearInterval(refreshing);
  refreshing = null;
}

function showFleet() {
  $("login").hidden = true;
  $("fleet").hidden = false;
  $("logout").hidden = false;
  if (!refreshing) refreshing = setInterval(refresh, 10000);
}

async function steer(id, action) {
  try {
    await api("POST", `rollouts/${encodeURIComponent(id)}/${action}`);
    $("message").textContent = `Rollout ${id}: ${action} done.`;
  } catch (error) {
    $("message").textContent = `Rollout ${id}: ${error.message}`;
  }
  refresh();
}

function renderRollouts(rollouts) {
  const box = $("rollouts");
  box.replaceChildren();
  if (rollouts.length === 0) box.append(el("p", { class: "small" }, "No rollouts yet."));
  for (const status of rollouts) {
    const rollout = status.rollout;
    const state = rollout.state.state;
    const card = el(
      "div",
      { class: "rollout", "data-rollout": rollout.id, "data-state": state },
      el("h3", {}, `${rollout.id}: ${rollout.plugin}@${rollout.version} `, el("span", { class: "state" }, state))
    );
    if (rollout.state.reason) card.append(el("p", { class: "error" }, rollout.state.reason));
    const waves = el("div");
    status.waves.forEach((wave, index) => {
      const counts = Object.entries(wave.counts)
        .map(([stage, count]) => `${count} ${stage}`)
        .join(", ");
      waves.append(
        el(
          "span",
          { class: wave.open ? "wave open" : "wave", "data-wave": index },
          `wave ${index + 1} (${wave.percent}%, ${wave.nodes} nodes): ${counts || "none"}`
        )
      );
    });
    card.append(waves);
    const reasons = Object.entries(status.reasons);
    if (reasons.length) {
      const list = el("ul", { class: "reasons" });
      for (const [reason, count] of reasons) list.append(el("li", { class: "error" }, `${count} × ${reason}`));
      card.append(el("div", { class: "small" }, "Why nodes failed:"), list);
    }
    const actions = el("div");
    const buttons = { running: ["pause", "abort"], paused: ["resume", "abort"] };
    for (const action of buttons[state] || []) {
      const button = el("button", { class: action, "data-rollout": rollout.id }, action);
      button.addEventListener("click", () => {
        if (action !== "abort" || confirm(`Abort rollout ${rollout.id}? Nodes go back.`)) steer(rollout.id, action);
      });
      actions.append(button, " ");
    }
    card.append(actions);
    box.append(card);
  }
}

function renderNodes(now, nodes) {
  const body = $("nodes").tBodies[0];
  body.replaceChildren();
  for (const node of nodes) {
    const labels = Object.entries(node.labels).map(([k, v]) => `${k}=${v}`).join(", ");
    const releases = el("td");
    for (const [plugin, release] of Object.entries(node.releases)) {
      releases.append(
        el(
          "div",
          { "data-plugin": plugin },
          `${plugin}@${release.version}: ${release.stage}`,
          release.reason ? el("div", { class: "small error" }, release.reason) : null
        )
      );
    }
    body.append(
      el(
        "tr",
        { "data-node": node.id },
        el("td", {}, node.name, el("div", { class: "small" }, node.id.slice(0, 16))),
        el("td", {}, labels || "—"),
        el("td", {}, ago(now, node.last_seen)),
        el("td", { class: "health-" + node.health }, node.health),
        releases
      )
    );
  }
}

async function refresh() {
  let overview;
  try {
    overview = await api("GET", "overview");
  } catch (error) {
    if ($("login").hidden) $("message").textContent = "The registry did not answer: " + error.message;
    return;
  }
  showFleet();
  const failing = overview.nodes.filter((n) => n.health === "failing").length;
  $("summary").textContent = `${overview.nodes.length} nodes, ${failing} failing, ${overview.rollouts.length} rollouts`;
  renderRollouts(overview.rollouts);
  renderNodes(overview.now, overview.nodes);
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const refused = await pageLogIn("/fleet/login", TOKEN_KEY, $("password").value);
  $("login-error").textContent = refused || "";
  if (refused) return;
  $("password").value = "";
  refresh();
});

$("logout").addEventListener("click", async () => {
  await fetch("/fleet/logout", { method: "POST", credentials: "same-origin" });
  showLogin();
});

refresh().then(() => {
  if ($("fleet").hidden) showLogin();
});
