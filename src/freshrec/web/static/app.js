// freshrec live dashboard: counters from /v1/stats, a few shoppers' recommendations, look-ups,
// the models (weights, versions, drift detections).
// No build step, no dependencies. Text from the server is only ever set with textContent.
"use strict";

(function () {
  // The simulated shop's regular customers (see freshrec.sim.shoppers): busy enough to watch.
  const SHOPPERS = ["shopper-0001", "shopper-0002", "shopper-0003",
                    "shopper-0004", "shopper-0005", "shopper-0006"];
  const K = 5;
  const REFRESH_MS = 1000;
  const RATE_WINDOW_MS = 5000;
  const CHART_POINTS = 120;

  const $ = (id) => document.getElementById(id);
  const number = new Intl.NumberFormat("en-US");

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  async function getJSON(path) {
    const response = await fetch(path, { cache: "no-store", headers: { accept: "application/json" } });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const error = new Error((body && typeof body.error === "string") ? body.error : `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  // -- reasons ---------------------------------------------------------------------------------
  const PHRASES = {
    because_you_viewed: (id) => `because you viewed ${id}`,
    because_you_added_to_cart: (id) => `because you added ${id} to your cart`,
    because_you_bought: (id) => `because you bought ${id}`,
    because_you_liked: (id) => `because you liked ${id}`,
    because_you_rated: (id) => `because you rated ${id}`,
    also_viewed: (id) => `viewed together with ${id}`,
  };

  function reasonText(reason) {
    if (!reason || typeof reason.type !== "string") return "";
    if (reason.type === "popular") return "popular right now";
    const id = typeof reason.item_id === "string" ? reason.item_id : "";
    const phrase = PHRASES[reason.type];
    if (phrase && id) return phrase(id);
    return reason.type.replace(/_/g, " ") + (id ? ` ${id}` : "");
  }

  // -- recommendation lists ----------------------------------------------------------------------
  function signature(items) {
    return items.map((i) => `${i.item_id}:${i.reason && i.reason.type}:${i.reason && i.reason.item_id}`).join("|");
  }

  function renderList(list, items, previousIds) {
    const top = Math.max(0, ...items.map((i) => Number(i.score) || 0));
    const rows = items.map((item) => {
      const id = String(item.item_id);
      const li = el("li");
      li.dataset.itemId = id;
      if (previousIds && !previousIds.has(id)) li.classList.add("fresh");
      const button = el("button", "item", id);
      button.type = "button";
      button.title = `items similar to ${id}`;
      button.addEventListener("click", () => lookUp("item", id));
      const reason = el("span", "reason", reasonText(item.reason));
      if (item.reason && item.reason.type !== "popular") reason.classList.add("personal");
      reason.title = reason.textContent;
      const bar = el("span", "bar");
      const fill = el("span");
      const share = top > 0 ? Math.max(2, (100 * (Number(item.score) || 0)) / top) : 0;
      fill.style.width = `${share.toFixed(1)}%`;
      bar.append(fill);
      li.append(button, reason, bar);
      return li;
    });
    list.replaceChildren(...rows);
  }

  // A rendered list and what it showed last, so a refresh can highlight the items that are new.
  function liveList(list) {
    return { list, ids: null, signature: null, changes: 0, changedAt: null };
  }

  function update(live, items) {
    const sig = signature(items);
    if (sig === live.signature) return false;
    renderList(live.list, items, live.ids);
    if (live.signature !== null) {
      live.changes += 1;
      live.changedAt = Date.now();
    }
    live.ids = new Set(items.map((i) => String(i.item_id)));
    live.signature = sig;
    return true;
  }

  function ago(time) {
    const seconds = Math.round((Date.now() - time) / 1000);
    return seconds < 1 ? "just now" : `${seconds} s ago`;
  }

  // -- shoppers ----------------------------------------------------------------------------------
  const shoppers = SHOPPERS.map((userId) => {
    const card = el("article", "card shopper");
    card.dataset.userId = userId;
    const title = el("h3");
    const meta = el("span", "meta", "loading…");
    title.append(el("span", "name", userId), meta);
    const list = el("ol", "recs");
    card.append(title, list);
    $("shoppers").append(card);
    return { userId, meta, live: liveList(list) };
  });

  async function refreshShopper(shopper) {
    try {
      const body = await getJSON(`/v1/recommendations?user_id=${encodeURIComponent(shopper.userId)}&k=${K}`);
      update(shopper.live, Array.isArray(body.items) ? body.items : []);
      const live = shopper.live;
      shopper.meta.textContent = live.changedAt === null
        ? "watching…"
        : `${live.changes} change${live.changes === 1 ? "" : "s"} · last ${ago(live.changedAt)}`;
    } catch (error) {
      shopper.meta.textContent = "unavailable";
    }
  }

  // -- counters ----------------------------------------------------------------------------------
  const samples = [];  // {t, accepted} over the last RATE_WINDOW_MS
  const rates = [];

  function setCounter(id, value) {
    $(id).textContent = value;
  }

  async function refreshStats() {
    const status = $("status");
    let stats;
    try {
      stats = await getJSON("/v1/stats");
    } catch (error) {
      status.textContent = "server unreachable · retrying";
      status.className = "status bad";
      return;
    }
    status.textContent = `live · model ${stats.model_version}`;
    status.className = "status ok";
    const now = performance.now();
    if (samples.length && stats.events_accepted < samples[samples.length - 1].accepted) samples.length = 0;
    samples.push({ t: now, accepted: stats.events_accepted });
    while (samples.length > 2 && now - samples[0].t > RATE_WINDOW_MS) samples.shift();
    setCounter("c-accepted", number.format(stats.events_accepted));
    setCounter("c-processed", number.format(stats.events_processed));
    setCounter("c-users", number.format(stats.users));
    setCounter("c-items", number.format(stats.items));
    setCounter("c-lag", number.format(stats.processor_lag));
    if (samples.length >= 2) {
      const first = samples[0];
      const rate = Math.max(0, (stats.events_accepted - first.accepted) / ((now - first.t) / 1000));
      setCounter("c-rate", rate >= 100 ? number.format(Math.round(rate)) : rate.toFixed(1));
      rates.push(rate);
      if (rates.length > CHART_POINTS) rates.shift();
      drawChart();
    }
  }

  function drawChart() {
    const canvas = $("rate-chart");
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    if (rates.length < 2) return;
    const top = Math.max(1, ...rates) * 1.15;
    const step = width / (CHART_POINTS - 1);
    const x0 = width - step * (rates.length - 1);
    ctx.beginPath();
    rates.forEach((rate, i) => {
      const x = x0 + i * step;
      const y = height - (rate / top) * height;
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.strokeStyle = "#2f6fed";
    ctx.lineWidth = 2 * ratio;
    ctx.stroke();
    ctx.lineTo(width, height);
    ctx.lineTo(x0, height);
    ctx.closePath();
    ctx.fillStyle = "rgba(47, 111, 237, 0.12)";
    ctx.fill();
    ctx.fillStyle = "#6b7482";
    ctx.font = `${11 * ratio}px system-ui, sans-serif`;
    ctx.fillText(`events/s, last ${CHART_POINTS} s · peak ${Math.round(Math.max(...rates))}`, 8 * ratio, 14 * ratio);
  }

  // -- look-ups ----------------------------------------------------------------------------------
  let lookup = null;  // {kind: "user" | "item", id, live}

  function lookUp(kind, id) {
    $(kind === "user" ? "user-input" : "item-input").value = id;
    lookup = { kind, id, live: liveList($("lookup-list")) };
    $("lookup-list").replaceChildren();
    $("lookup").hidden = false;
    $("lookup-title-text").textContent = kind === "user" ? `Recommendations for ${id}` : `Similar to ${id}`;
    $("lookup-message").textContent = "loading…";
    refreshLookup();
  }

  async function refreshLookup() {
    const current = lookup;
    if (current === null) return;
    const path = current.kind === "user"
      ? `/v1/recommendations?user_id=${encodeURIComponent(current.id)}&k=10`
      : `/v1/items/${encodeURIComponent(current.id)}/similar?k=10`;
    try {
      const body = await getJSON(path);
      if (current !== lookup) return;
      const items = Array.isArray(body.items) ? body.items : [];
      update(current.live, items);
      $("lookup-message").textContent = items.length ? "" : "nothing to show yet";
    } catch (error) {
      if (current !== lookup) return;
      current.live = liveList($("lookup-list"));
      $("lookup-list").replaceChildren();
      $("lookup-message").textContent = error.status === 404
        ? `unknown item ${current.id}: no shopper has interacted with it yet`
        : `could not load: ${error.message}`;
    }
  }

  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("user-input").value.trim();
    if (id) lookUp("user", id);
  });
  $("item-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("item-input").value.trim();
    if (id) lookUp("item", id);
  });

  // -- models: weights and live hit rates, versions, drift detections ---------------------------
  const MODELS_EVERY_MS = 5000;  // versions are read from disk (or Redis): not every second
  let modelsAt = -Infinity;

  function percent(x) {
    return typeof x === "number" ? `${(x * 100).toFixed(1)} %` : "–";
  }

  function row(values, className) {
    const tr = el("tr", className);
    for (const value of values) tr.append(el("td", null, value));
    return tr;
  }

  async function refreshModels() {
    const now = performance.now();
    if (now - modelsAt < MODELS_EVERY_MS) return;
    modelsAt = now;
    let info, drift;
    try {
      [info, drift] = await Promise.all([getJSON("/v1/models"), getJSON("/v1/drift/events")]);
    } catch (_) {
      modelsAt = -Infinity;  // try again at the next tick
      return;
    }
    const models = Array.isArray(info.models) ? info.models : [];
    $("models-body").replaceChildren(
      ...models.map((m) => row([m.name, percent(m.weight), percent(m.hit_rate)], m.disabled ? "disabled" : "")));
    const versions = (Array.isArray(info.versions) ? info.versions : []).slice(0, 8);
    $("versions-body").replaceChildren(...versions.map((v) => {
      const rate = v.metrics && v.metrics.hit_rate ? v.metrics.hit_rate.ensemble : undefined;
      const seen = typeof v.events_seen === "number" ? number.format(v.events_seen) : "–";
      return row([v.version, seen, percent(rate), v.status], v.current ? "current" : "");
    }));
    $("versions-empty").hidden = versions.length > 0;
    const recent = (Array.isArray(drift) ? drift : []).slice(-5).reverse();
    $("drift-list").replaceChildren(...recent.map((d) => el(
      "li", null, `event ${number.format(d.at_event)} · ${d.detector} on ${d.signal} → ${d.action}`)));
    $("drift-empty").hidden = recent.length > 0;
  }

  // -- the refresh loop --------------------------------------------------------------------------
  async function tick() {
    await Promise.allSettled(
      [refreshStats(), ...shoppers.map(refreshShopper), refreshLookup(), refreshModels()]);
    window.setTimeout(tick, REFRESH_MS);
  }
  tick();
})();
