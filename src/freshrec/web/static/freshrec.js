/*
 * freshrec browser SDK: send a shop page's events, fetch recommendations.
 *
 *   <script src="https://recs.shop.example/freshrec.js"></script>
 *   <script>
 *     const fr = freshrec.init({ endpoint: "https://recs.shop.example", userId: "u123" });
 *     fr.view("sku-1");
 *     fr.recommend({ k: 4 }).then((answer) => show(answer.items));
 *     fr.clickRecommendation(answer, "sku-7");   // attributed to that answer
 *   </script>
 *
 * Events are queued and sent in batches (POST /v1/events) every flushIntervalMs, at once when
 * maxBatch are waiting, and with navigator.sendBeacon when the page is hidden or left. Each
 * event gets an event_id when tracked, so a batch sent twice (a retry after a timeout, a page
 * reloaded before the answer came, a beacon) is counted once: the server de-duplicates. Events
 * not yet acknowledged -- a beacon is never answered -- are kept in localStorage and sent by the
 * next page of the shop. A batch refused
 * for good (a 4xx other than 408/429) is dropped; other failures are retried with back-off.
 * Bodies go as text/plain, a CORS "simple" request: a shop on another origin needs only the
 * server's cors_origins setting, no preflight.
 */
(function (global) {
  "use strict";

  var QUEUE_KEY = "freshrec:queue";
  var ANON_KEY = "freshrec:anonymous-id";

  function randomId() {
    if (global.crypto && global.crypto.randomUUID) return global.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    global.crypto.getRandomValues(bytes);
    return Array.prototype.map
      .call(bytes, function (b) { return (b + 256).toString(16).slice(1); })
      .join("");
  }

  function storage() {
    try {
      return global.localStorage || null;
    } catch (e) {
      return null; // storage blocked (privacy settings): the queue lives in memory only
    }
  }

  function anonymousId(store) {
    var id = store && store.getItem(ANON_KEY);
    if (!id) {
      id = "anon-" + randomId();
      if (store) store.setItem(ANON_KEY, id);
    }
    return id;
  }

  function Client(options) {
    options = options || {};
    this.endpoint = String(options.endpoint || "").replace(/\/+$/, "");
    this.store = storage();
    this.userId = options.userId ? String(options.userId) : anonymousId(this.store);
    this.sessionId = options.sessionId || null;
    this.context = options.context || {};
    this.flushIntervalMs = options.flushIntervalMs != null ? options.flushIntervalMs : 1000;
    this.maxBatch = options.maxBatch || 100;
    this.maxQueue = options.maxQueue || 2000;
    this.sent = 0; // events acknowledged by the server
    this.dropped = 0; // events refused for good, or pushed out of a full queue
    this._queue = this._load();
    this._inFlight = null;
    this._retryAt = 0;
    this._backoffMs = 0;
    var self = this;
    if (this.flushIntervalMs > 0) {
      this._timer = global.setInterval(function () { self.flush(); }, this.flushIntervalMs);
    }
    this._onHide = function () { self.flush({ beacon: true }); };
    this._onVisibility = function () {
      if (global.document.visibilityState === "hidden") self._onHide();
    };
    global.addEventListener("pagehide", this._onHide);
    if (global.document) global.document.addEventListener("visibilitychange", this._onVisibility);
  }

  Client.prototype._load = function () {
    try {
      var saved = this.store && JSON.parse(this.store.getItem(QUEUE_KEY) || "[]");
      return Array.isArray(saved) ? saved : [];
    } catch (e) {
      return [];
    }
  };

  Client.prototype._save = function () {
    if (!this.store) return;
    try {
      this.store.setItem(QUEUE_KEY, JSON.stringify(this._queue));
    } catch (e) {
      /* storage full: the queue still lives in memory */
    }
  };

  Client.prototype._forget = function (batch) {
    var ids = {};
    batch.forEach(function (e) { ids[e.event_id] = true; });
    this._queue = this._queue.filter(function (e) { return !ids[e.event_id]; });
    this._save();
  };

  /* Queue one event; returns its event_id. extra: {value, recommendationId, context}. */
  Client.prototype.track = function (type, itemId, extra) {
    extra = extra || {};
    var context = { tz_offset_minutes: -new Date().getTimezoneOffset() };
    [this.context, extra.context || {}].forEach(function (part) {
      Object.keys(part).forEach(function (k) { context[k] = part[k]; });
    });
    var event = {
      type: type,
      user_id: this.userId,
      item_id: String(itemId),
      event_id: randomId(),
      timestamp: Date.now() / 1000,
      context: context,
    };
    if (this.sessionId) event.session_id = this.sessionId;
    if (extra.value != null) event.value = extra.value;
    if (extra.recommendationId) event.recommendation_id = extra.recommendationId;
    this._queue.push(event);
    if (this._queue.length > this.maxQueue) {
      this.dropped += this._queue.length - this.maxQueue;
      this._queue.splice(0, this._queue.length - this.maxQueue); // the oldest go first
    }
    this._save();
    if (this._queue.length >= this.maxBatch) this.flush();
    return event.event_id;
  };

  Client.prototype.view = function (itemId, extra) { return this.track("view", itemId, extra); };
  Client.prototype.click = function (itemId, extra) { return this.track("click", itemId, extra); };
  Client.prototype.addToCart = function (itemId, extra) {
    return this.track("add_to_cart", itemId, extra);
  };
  Client.prototype.purchase = function (itemId, value, extra) {
    extra = Object.assign({}, extra || {}, { value: value });
    return this.track("purchase", itemId, extra);
  };

  /* A click on an item of a recommendation answer: attributed to that answer. */
  Client.prototype.clickRecommendation = function (answer, itemId) {
    return this.track("click", itemId, { recommendationId: answer && answer.recommendation_id });
  };

  /* Send what is queued: a promise, resolved when the batch is answered (or failed). With
   * {beacon: true} (the page is going away) it is handed to navigator.sendBeacon. */
  Client.prototype.flush = function (options) {
    var self = this;
    if (this._queue.length === 0) return Promise.resolve();
    var batch = this._queue.slice(0, this.maxBatch);
    var body = JSON.stringify({ events: batch });
    var url = this.endpoint + "/v1/events";
    if (options && options.beacon && global.navigator && global.navigator.sendBeacon) {
      // a beacon is never answered: the batch stays queued, and a next page of the shop sends
      // it again unless a later answer acknowledges it (the server counts each event once)
      var blob = new Blob([body], { type: "text/plain;charset=UTF-8" });
      global.navigator.sendBeacon(url, blob);
      return Promise.resolve();
    }
    if (this._inFlight || Date.now() < this._retryAt) return this._inFlight || Promise.resolve();
    this._inFlight = global
      .fetch(url, {
        method: "POST",
        headers: { "content-type": "text/plain;charset=UTF-8" },
        body: body,
        keepalive: body.length < 60000,
      })
      .then(function (response) {
        var s = response.status;
        var retry = s === 408 || s === 429 || s >= 500;
        if (!retry) {
          if (s < 300) self.sent += batch.length;
          else self.dropped += batch.length; // invalid for good: never sent again
          self._forget(batch);
          self._backoffMs = 0;
          return response.json().catch(function () { return null; });
        }
        self._backOff();
        return null;
      })
      .catch(function () {
        self._backOff(); // offline or the server is down: kept, tried again later
        return null;
      })
      .then(function (answer) {
        self._inFlight = null;
        if (self._queue.length >= self.maxBatch) self.flush();
        return answer;
      });
    return this._inFlight;
  };

  Client.prototype._backOff = function () {
    this._backoffMs = Math.min(30000, Math.max(1000, this._backoffMs * 2));
    this._retryAt = Date.now() + this._backoffMs;
  };

  /* GET /v1/recommendations for this user; params: k, category, min_price, max_price,
   * exclude (array), exclude_viewed, max_per_category, device, country, strategy. */
  Client.prototype.recommend = function (params) {
    params = params || {};
    var query = ["user_id=" + encodeURIComponent(this.userId)];
    var all = Object.assign({ tz_offset_minutes: -new Date().getTimezoneOffset() }, params);
    Object.keys(all).forEach(function (k) {
      var v = all[k];
      if (v == null) return;
      if (Array.isArray(v)) v = v.join(",");
      query.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
    });
    var url = this.endpoint + "/v1/recommendations?" + query.join("&");
    return global.fetch(url).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
        return body;
      });
    });
  };

  /* Another shopper from now on (e.g. after a login); queued events keep theirs. */
  Client.prototype.setUser = function (userId) { this.userId = String(userId); };

  /* Stop the timer and the listeners (single-page apps that tear the client down). */
  Client.prototype.close = function () {
    if (this._timer) global.clearInterval(this._timer);
    global.removeEventListener("pagehide", this._onHide);
    if (global.document) {
      global.document.removeEventListener("visibilitychange", this._onVisibility);
    }
  };

  global.freshrec = {
    version: "1",
    init: function (options) { return new Client(options); },
  };
})(typeof window !== "undefined" ? window : this);
