"use strict";
// Everything that comes from a torrent or a peer is set with textContent: never as markup.
const token = new URLSearchParams(location.search).get("token");
const headers = token ? { "Authorization": "Bearer " + token } : {};
const PAGE = 50;
// The torrent shown in full: the one named after `#` in the address, else the first.
let offset = 0, picked = location.hash.slice(1) || null, busy = false;

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#17becf", "#bcbd22", "#393b79", "#ad494a", "#637939", "#7b4173", "#3182bd", "#e6550d", "#31a354"];
const MISSING = "#e4e4e4", IN_FLIGHT = "#f5d033", LOCAL = "#888888", OTHER = "#000000";
const KEYS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
function colour(c) {
  if (c === ".") return MISSING;
  if (c === "-") return IN_FLIGHT;
  if (c === "#") return LOCAL;
  const i = KEYS.indexOf(c);
  return i < 0 ? OTHER : PALETTE[i % PALETTE.length];
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(2) : n) + " " + u[i];
}
function rate(n) { return bytes(n) + "/s"; }
function eta(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  return Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min";
}
async function api(method, path, body) {
  const init = { method, headers: Object.assign({}, headers) };
  if (body !== undefined) { init.body = body; init.headers["Content-Type"] = "application/x-bittorrent"; }
  const r = await fetch(path, init);
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const [text, cls] of cells) tr.appendChild(el("td", text, cls));
  return tr;
}

function showList(list) {
  const body = document.querySelector("#torrents tbody");
  body.replaceChildren();
  for (const t of list.torrents) {
    const tr = row([[t.name], [bytes(t.total_bytes), "num"], [""], [rate(t.down_rate), "num"],
      [rate(t.up_rate), "num"], [eta(t.eta_secs), "num"], [t.peers, "num"], [t.state]]);
    const bar = el("span", undefined, "bar"), fill = el("span");
    fill.style.width = t.percent.toFixed(1) + "%";
    bar.appendChild(fill);
    tr.children[2].append(bar, " " + t.percent.toFixed(1) + "%");
    tr.className = "torrent" + (t.info_hash === picked ? " picked" : "");
    tr.dataset.hash = t.info_hash;
    tr.onclick = () => { picked = t.info_hash; refresh(); };
    body.appendChild(tr);
  }
  if (picked === null && list.torrents.length) picked = list.torrents[0].info_hash;
  const pager = document.getElementById("pager");
  pager.replaceChildren();
  pager.append(el("span", list.count + " torrents, down " + rate(list.down_rate) + ", up " + rate(list.up_rate) + " "));
  if (list.offset > 0) { const b = el("button", "previous"); b.onclick = () => { offset = Math.max(0, offset - PAGE); refresh(); }; pager.append(b); }
  if (list.next !== null) { const b = el("button", "next"); b.onclick = () => { offset = list.next; refresh(); }; pager.append(b); }
}

function showMap(m) {
  const map = document.getElementById("map");
  const cells = [];
  let n = 0;
  for (const c of m.map) {
    if (c >= "0" && c <= "9") { n = n * 10 + (c.charCodeAt(0) - 48); continue; }
    for (let k = 0; k < Math.max(n, 1); k++) cells.push(c);
    n = 0;
  }
  map.className = cells.length > 2000 ? "small" : "";
  const have = map.children;
  while (have.length > cells.length) map.lastChild.remove();
  while (have.length < cells.length) map.appendChild(document.createElement("span"));
  cells.forEach((c, i) => {
    const s = have[i];
    if (s.dataset.c !== c) { s.dataset.c = c; s.style.background = colour(c); }
  });
  map.title = m.per_cell > 1 ? m.per_cell + " pieces per cell" : "one cell per piece";
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  const key = (c, text) => {
    const sw = el("span", undefined, "swatch");
    sw.style.background = colour(c);
    legend.append(sw, el("span", text));
  };
  key(".", "missing");
  key("-", "in flight");
  key("#", "had at start");
  for (const o of m.origins) {
    const sw = el("span", undefined, "swatch");
    sw.style.background = colour(o.key);
    sw.dataset.origin = o.addr;
    legend.append(sw, el("span", o.addr + " " + o.peer_id + " (" + o.pieces + (o.pieces === 1 ? " piece)" : " pieces)")));
  }
  if (m.more_origins > 0) key("*", m.more_origins + " more peers");
}

function showDetail(d) {
  document.getElementById("detail").hidden = false;
  document.getElementById("dname").textContent = d.name;
  document.getElementById("dinfo").textContent = d.info_hash + " \u2014 " + d.state + ", " +
    d.have_pieces + "/" + d.pieces + " pieces" + (d.error ? ", " + d.error : "");
  showMap(d.piece_map);
  const peers = document.querySelector("#peers tbody");
  peers.replaceChildren();
  for (const p of d.peer_list) {
    peers.appendChild(row([[p.addr], [p.client], [p.peer_id], [p.source], [rate(p.down_rate), "num"],
      [rate(p.up_rate), "num"], [bytes(p.downloaded), "num"], [bytes(p.uploaded), "num"], [p.pieces, "num"],
      [p.choking_us ? "yes" : "no"], [p.interested ? "yes" : "no"]]));
  }
  const files = document.querySelector("#files tbody");
  files.replaceChildren();
  for (const f of d.files) files.appendChild(row([[f.path], [bytes(f.length), "num"]]));
  if (d.file_count > d.files.length) files.appendChild(row([["and " + (d.file_count - d.files.length) + " more"]]));
}

async function refresh() {
  if (busy) return;
  busy = true;
  const status = document.getElementById("status");
  try {
    showList(await api("GET", "/api/torrents?offset=" + offset + "&limit=" + PAGE));
    if (picked !== null) {
      try { showDetail(await api("GET", "/api/torrents/" + picked)); }
      catch (e) { picked = null; document.getElementById("detail").hidden = true; }
    }
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "";
  } catch (e) {
    status.textContent = "cannot reach bt: " + e.message;
    status.className = "err";
  } finally {
    busy = false;
  }
}

async function control(what) {
  if (picked === null) return;
  try {
    if (what === "remove") { await api("DELETE", "/api/torrents/" + picked); picked = null; }
    else await api("POST", "/api/torrents/" + picked + "/" + what);
  } catch (e) { document.getElementById("dinfo").textContent = e.message; }
  refresh();
}
document.getElementById("pause").onclick = () => control("pause");
document.getElementById("resume").onclick = () => control("resume");
document.getElementById("remove").onclick = () => control("remove");
document.getElementById("file").onchange = async (ev) => {
  const f = ev.target.files[0];
  const out = document.getElementById("added");
  if (!f) return;
  try { const t = await api("POST", "/api/torrents", await f.arrayBuffer()); out.textContent = "added " + t.name; picked = t.info_hash; }
  catch (e) { out.textContent = e.message; }
  refresh();
};
refresh();
setInterval(refresh, 1000);
