// pei serve's page: reads /v2/_pei/repositories and /v2/_pei/builds and
// follows a build's log over Server-Sent Events. fetch() is used for the
// stream (not EventSource) so the token goes in a header, never the URL.
"use strict";

let token = sessionStorage.getItem("pei-token") || "";
let follow = null; // AbortController of the log being followed

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token) h["Authorization"] = "Basic " + btoa("pei:" + token);
  return h;
}

async function getJSON(path) {
  const resp = await fetch(path, { headers: headers() });
  if (!resp.ok) {
    let msg = resp.status + " " + resp.statusText;
    try { msg = (await resp.json()).errors[0].message; } catch (e) { /* keep status */ }
    throw new Error(path + ": " + msg);
  }
  return resp.json();
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function showError(err) {
  const p = document.getElementById("error");
  p.hidden = !err;
  p.textContent = err ? String(err.message || err) : "";
}

async function loadRepos() {
  const data = await getJSON("/v2/_pei/repositories");
  const body = document.querySelector("#repos tbody");
  body.replaceChildren();
  for (const r of data.repositories) {
    const tr = document.createElement("tr");
    tr.dataset.repo = r.name;
    cell(tr, r.name, "mono");
    cell(tr, r.tags.join(", "), "mono");
    body.appendChild(tr);
  }
  document.getElementById("repos-empty").hidden = data.repositories.length > 0;
}

async function loadBuilds() {
  const data = await getJSON("/v2/_pei/builds?n=50");
  builds = data.builds;
  const body = document.querySelector("#builds tbody");
  body.replaceChildren();
  for (const b of data.builds) {
    const tr = document.createElement("tr");
    tr.className = "build";
    tr.dataset.id = b.id;
    cell(tr, b.id, "mono");
    cell(tr, b.repository + ":" + b.tag, "mono");
    cell(tr, b.platform);
    cell(tr, b.state, "state " + b.state);
    cell(tr, new Date(b.created).toLocaleString());
    const d = cell(tr, b.digest ? b.digest.slice(0, 19) + "…" : b.error || "", "mono");
    d.title = b.image || b.error || "";
    tr.addEventListener("click", () => { location.hash = "build=" + b.id; });
    body.appendChild(tr);
  }
  document.getElementById("builds-empty").hidden = data.builds.length > 0;
}

async function followLog(b) {
  if (follow) follow.abort();
  follow = new AbortController();
  const pre = document.getElementById("log");
  const state = document.getElementById("log-state");
  document.getElementById("log-section").hidden = false;
  const title = document.getElementById("log-build");
  title.textContent = b.id + " (" + b.repository + ":" + b.tag + ")";
  title.dataset.id = b.id;
  state.textContent = b.state;
  state.className = "state " + b.state;
  pre.textContent = "";
  pre.dataset.ended = "";
  let lastId = "";
  // Reconnect with Last-Event-ID until the server sends "end".
  for (let tries = 0; tries < 100 && !pre.dataset.ended; tries++) {
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (lastId) h["Last-Event-ID"] = lastId;
      const resp = await fetch(b.links.logs, { headers: h, signal: follow.signal });
      if (!resp.ok) throw new Error("log: " + resp.status);
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const ev = parseEvent(buf.slice(0, i));
          buf = buf.slice(i + 2);
          if (ev.id) lastId = ev.id;
          if (ev.event === "log") {
            pre.textContent += ev.data + "\n";
            pre.scrollTop = pre.scrollHeight;
          } else if (ev.event === "end") {
            const end = JSON.parse(ev.data);
            state.textContent = end.state;
            state.className = "state " + end.state;
            pre.dataset.ended = end.state;
            loadBuilds().catch(showError);
          }
        }
      }
    } catch (err) {
      if (err.name === "AbortError") return;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

function parseEvent(block) {
  const ev = { event: "message", data: "", id: "" };
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? "" : line.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") ev.event = value;
    else if (field === "id") ev.id = value;
  }
  ev.data = data.join("\n");
  return ev;
}

let builds = [];

async function refresh() {
  try {
    await Promise.all([loadRepos(), loadBuilds()]);
    showError(null);
    openFromHash();
  } catch (err) {
    showError(err);
  }
}

// #build=ID opens that build's log (links can point at a build).
function openFromHash() {
  const m = /^#build=([\w-]+)$/.exec(location.hash);
  if (!m || (follow && document.getElementById("log-build").dataset.id === m[1])) return;
  const b = builds.find((x) => x.id === m[1]);
  if (b) followLog(b);
}
window.addEventListener("hashchange", openFromHash);

document.getElementById("login").addEventListener("submit", (e) => {
  e.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("pei-token", token);
  document.getElementById("who").textContent = token ? "token set" : "anonymous";
  refresh();
});

document.getElementById("who").textContent = token ? "token set" : "anonymous";
refresh();
setInterval(refresh, 5000);
