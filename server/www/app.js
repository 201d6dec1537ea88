/* firebreak dashboard: one page a SOC operator can leave open. Views: the
 * board (active rollouts), one rollout's page, history, audit, customers
 * (tenants, their groups' content modes and their hosts on each active
 * rollout's content; issue 18). Each view fetches only while it is shown.
 *
 * Everything here talks to the firebreakd that served it (same origin, no
 * external resources; the CSP forbids inline scripts and styles). Behind a
 * single-sign-on proxy (server/README.md, "Single sign-on") the proxy's
 * session authenticates every request and no token is needed; otherwise the
 * API token lives in sessionStorage only and goes out as a bearer header.
 * Every request carries X-Requested-With, which the server requires of
 * changes made through the proxy (no other site can send it); the
 * event stream is read with fetch() and a small SSE parser because
 * EventSource cannot send headers. The DOM is built with createElement and
 * textContent only, never from HTML strings. */
(function () {
  "use strict";

  var TOKEN_KEY = "firebreak.token";
  var REFRESH_MS = 5000; /* gate WAIT evaluations are not streamed: poll counts */
  var CONTROLLER_MS = 2000; /* how often the controller's state is fetched */
  var SERIES_MS = 30000; /* the plots' points, when nothing happened meanwhile */
  var ENDED_WINDOW_S = 24 * 3600; /* ended rollouts stay on the board this long */
  var RECENT_HALT_S = 3600; /* a halt this recent stays open on the board */
  var OPERATORS = { soc: 1, release: 1, admin: 1 };
  var RELEASERS = { release: 1, admin: 1 }; /* pause, resume, approve (routes.c) */
  var SVGNS = "http://www.w3.org/2000/svg";
  var SERIES = [
    { k: "healthy", label: "healthy" },
    { k: "crashed", label: "crashed" },
    { k: "boot_looped", label: "boot-looping" },
    { k: "silent", label: "silent" },
    { k: "treated", label: "treated" }, /* last: the reference line on top */
  ];

  var S = {
    me: null, /* GET /v1/whoami: {name, role, roles, via, ...} */
    channels: {}, /* id -> name */
    view: null, /* "board" | "rollout" */
    viewId: 0,
    data: {}, /* rollout id -> {r, series, exposure, at} */
    recent: [], /* last stream events, newest first */
    lastEventId: null,
    stream: null, /* AbortController of the running stream */
    timer: 0,
    pending: {}, /* rollout ids to refresh soon */
    pendingTimer: 0,
    ctlTimer: 0,
    renderGen: 0,
    haltedHere: {}, /* rollouts halted from this page: no second flash */
  };

  /* ---- small DOM helpers -------------------------------------------------- */

  function h(tag, attrs) {
    var el = document.createElement(tag);
    setAttrs(el, attrs);
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function s(tag, attrs) {
    var el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function setAttrs(el, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") el.textContent = String(v);
      else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    });
  }
  function append(el, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) c.forEach(function (x) { append(el, x); });
    else if (typeof c === "string" || typeof c === "number") el.appendChild(document.createTextNode(String(c)));
    else el.appendChild(c);
  }
  function $(id) { return document.getElementById(id); }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

  /* ---- formatting ---------------------------------------------------------- */

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock(t) {
    if (!t) return "—";
    var d = new Date(t * 1000);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }
  function stamp(t) {
    if (!t) return "—";
    var d = new Date(t * 1000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " + clock(t) + " UTC";
  }
  function ago(t) {
    if (!t) return "";
    var s = Math.max(0, Math.round(Date.now() / 1000 - t));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min ago";
    return Math.floor(s / 86400) + " d ago";
  }
  function dur(s) {
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }
  function short(sha) { return sha ? sha.slice(0, 12) : "—"; }
  function channelName(id) { return S.channels[id] ? S.channels[id] + " (" + id + ")" : "channel " + id; }
  function isActive(st) { return st === "rolling" || st === "paused" || st === "staged" || st === "watching"; }
  function decisionWord(d) {
    d = String(d || "").toUpperCase();
    return { WAIT: "waiting", PROMOTE: "promoted", HALT: "halt", COMPLETE: "completed" }[d] || d.toLowerCase();
  }

  /* ---- API ------------------------------------------------------------------ */

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  /* Whether the signed-in user holds a role of set (a token holds one,
   * a user behind the proxy may hold several). */
  function holds(set) {
    if (!S.me) return false;
    var roles = S.me.roles || [S.me.role];
    for (var i = 0; i < roles.length; i++) if (set[roles[i]]) return true;
    return false;
  }
  function viaProxy() { return !!(S.me && S.me.via === "proxy"); }

  /* The request headers: the token when there is one (none behind the proxy). */
  function authHeaders() {
    var hd = { "X-Requested-With": "firebreak" };
    if (token()) hd.Authorization = "Bearer " + token();
    return hd;
  }

  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }
  ApiError.prototype.toString = function () {
    return this.message + " (HTTP " + this.status + (this.code ? ", " + this.code : "") + ")";
  };

  function api(method, path, body) {
    var opts = { method: method, headers: authHeaders(), cache: "no-store" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(
      function (res) {
        return res.text().then(function (text) {
          var j = null;
          try { j = text ? JSON.parse(text) : null; } catch (e) { j = null; }
          if (!res.ok) {
            var e = j && j.error ? j.error : {};
            if (res.status === 401 && path !== "/v1/whoami") loggedOut((viaProxy() ? "Your single sign-on session was refused: " : "Your token was refused: ") + (e.message || "unauthenticated") + ". Log in again.");
            throw new ApiError(res.status, e.code || "", e.message || res.statusText || "request failed");
          }
          return j;
        });
      },
      function (err) { throw new ApiError(0, "network", "cannot reach the server (" + err.message + ")"); }
    );
  }

  /* ---- the event stream: fetch + SSE parser, resumable ---------------------- */

  function setLive(state, text) {
    var el = $("live");
    el.hidden = false;
    el.setAttribute("data-state", state);
    $("live-text").textContent = text;
  }

  function streamStart() {
    if (S.stream) return;
    var ctl = new AbortController();
    S.stream = ctl;
    var headers = authHeaders();
    headers.Accept = "text/event-stream";
    if (S.lastEventId !== null) headers["Last-Event-ID"] = S.lastEventId;
    var retry = 2000;
    setLive("connecting", S.streamed ? "reconnecting…" : "connecting…");
    fetch("/v1/events", { headers: headers, signal: ctl.signal, cache: "no-store" })
      .then(function (res) {
        if (!res.ok || !res.body) throw new Error("event stream: HTTP " + res.status);
        setLive("live", "live");
        if (S.streamed) refreshAll(); /* whatever was missed while away */
        S.streamed = true;
        var reader = res.body.getReader();
        var dec = new TextDecoder();
        var buf = "";
        var ev = { id: null, type: "message", data: [] };
        function line(l) {
          if (l === "") {
            if (ev.data.length) dispatch(ev.id, ev.type, ev.data.join("\n"));
            ev = { id: null, type: "message", data: [] };
            return;
          }
          if (l.charAt(0) === ":") return;
          var i = l.indexOf(":");
          var f = i < 0 ? l : l.slice(0, i);
          var v = i < 0 ? "" : l.slice(i + 1);
          if (v.charAt(0) === " ") v = v.slice(1);
          if (f === "id") { ev.id = v; S.lastEventId = v; }
          else if (f === "event") ev.type = v;
          else if (f === "data") ev.data.push(v);
          else if (f === "retry" && /^\d+$/.test(v)) retry = parseInt(v, 10);
        }
        function pump() {
          return reader.read().then(function (r) {
            if (r.done) return;
            buf += dec.decode(r.value, { stream: true });
            var m;
            while ((m = /\r\n|\r|\n/.exec(buf))) {
              line(buf.slice(0, m.index));
              buf = buf.slice(m.index + m[0].length);
            }
            return pump();
          });
        }
        return pump();
      })
      .catch(function () { /* reconnect below */ })
      .then(function () {
        if (S.stream !== ctl || ctl.signal.aborted) return;
        S.stream = null;
        setLive("down", "reconnecting…");
        setTimeout(function () { if (S.me && !S.stream) streamStart(); }, retry);
      });
  }

  /* The latest events from the API, so the list is not empty on arrival;
   * the stream then resumes after the newest of them (Last-Event-ID). */
  function backfill() {
    return api("GET", "/v1/events/recent?limit=200").then(function (j) {
      S.recent = [];
      (j.events || []).forEach(function (e) {
        if (e.type === "gate.evaluation" && e.data && e.data.decision === "WAIT") return;
        if (S.recent.length < 12) S.recent.push({ id: String(e.id), type: e.type, rollout: e.rollout_id, at: e.at, data: e.data || {}, past: true });
      });
      S.lastEventId = String(j.last_id || 0);
    }, function () { /* the stream alone, then */ });
  }

  function streamStop() {
    if (S.stream) S.stream.abort();
    S.stream = null;
    $("live").hidden = true;
  }

  function dispatch(id, type, data) {
    var j = null;
    try { j = JSON.parse(data); } catch (e) { return; }
    var rid = j && j.rollout_id;
    /* A gate that only waits is noise here (the periodic refresh shows its
     * counts); servers at debug log level stream every evaluation. */
    if (type === "gate.evaluation" && j.data && j.data.decision === "WAIT") return;
    /* a customer's policy changed: the customers view shows it now */
    if (type.indexOf("customer_policy.") === 0 && S.view === "customers") refreshAll();
    S.recent.unshift({ id: id, type: type, rollout: rid, at: j.at || Math.floor(Date.now() / 1000), data: j.data || {} });
    S.recent.length = Math.min(S.recent.length, 12);
    if (rid) {
      if (type === "rollout.halted" && !S.haltedHere[rid]) flash("Rollout #" + rid + " HALTED", "halt");
      if (type === "rollout.stalled") flash("Rollout #" + rid + " stalled: paused for an operator", "stall");
      if (type === "rollout.started") S.pending.list = 1;
      S.pending[rid] = 1;
      if (!S.pendingTimer) S.pendingTimer = setTimeout(flushPending, 250);
    }
    renderEvents();
  }

  function flushPending() {
    var ids = Object.keys(S.pending);
    S.pending = {};
    S.pendingTimer = 0;
    if (ids.indexOf("list") >= 0 && S.view === "board") { refreshAll(); return; }
    ids = ids.filter(function (id) { return id !== "list"; });
    Promise.all(ids.map(function (id) { return load(Number(id), true); })).then(render, render);
  }

  /* ---- data ------------------------------------------------------------------ */

  /* One rollout, its exposure and (when due or forced) its series: the
   * series can hold thousands of points, so the periodic refresh takes it
   * only every SERIES_MS; events and state changes take it at once. */
  function load(id, force) {
    var p = "/v1/rollouts/" + id;
    var old = S.data[id] || {};
    var wantSeries = force || !old.series || Date.now() - (old.seriesAt || 0) >= SERIES_MS;
    return Promise.all([api("GET", p), wantSeries ? api("GET", p + "/series") : null, api("GET", p + "/exposure"),
      wantSeries ? api("GET", p + "/statistics") : null, wantSeries ? signals(p) : null]).then(function (x) {
      old = S.data[id] || {};
      if (!wantSeries && old.r && old.r.state !== x[0].state) {
        wantSeries = true; /* a state change: draw the final points now */
        return Promise.all([api("GET", p + "/series"), api("GET", p + "/statistics"), signals(p)]).then(function (sr) { x[1] = sr[0]; x[3] = sr[1]; x[4] = sr[2]; return store(x); });
      }
      return store(x);
      function store(y) {
        S.data[id] = {
          r: y[0], series: y[1] ? y[1].points || [] : old.series, seriesAt: y[1] ? Date.now() : old.seriesAt,
          stats: y[3] ? y[3].points || [] : old.stats,
          signals: y[4] ? y[4].rings || [] : old.signals,
          exposure: y[2].rings || {}, at: Date.now(), err: null, audit: old.audit, content: old.content,
        };
      }
    }, function (e) {
      if (S.data[id]) S.data[id].err = e;
      else S.data[id] = { r: null, err: e };
    });
  }

  /* The health signals per ring (GET .../signals); a server that cannot
   * answer them leaves the rest of the page as it was. */
  function signals(p) {
    return api("GET", p + "/signals").then(null, function () { return null; });
  }

  function loadChannels() {
    return api("GET", "/v1/channels").then(function (j) {
      (j.channels || []).forEach(function (c) { S.channels[c.id] = c.name; });
    }, function () {});
  }

  function refreshAll() {
    if (S.view === "history" || S.view === "audit") return Promise.resolve(); /* fetched on demand */
    var gen = ++S.renderGen;
    if (S.view === "customers") {
      return customersRefresh().then(function () { if (gen === S.renderGen) render(); });
    }
    if (S.view === "rollout") {
      return Promise.all([load(S.viewId), loadLiveness()]).then(function () { if (gen === S.renderGen) render(); });
    }
    return api("GET", "/v1/rollouts").then(function (j) {
      var now = Date.now() / 1000;
      var keep = (j.rollouts || []).filter(function (r) {
        return isActive(r.state) || (r.finished && now - r.finished < ENDED_WINDOW_S);
      });
      S.board = keep.map(function (r) { return r.id; });
      Object.keys(S.data).forEach(function (id) { /* forget what left the board */
        if (S.board.indexOf(Number(id)) < 0) delete S.data[id];
      });
      S.boardAt = Date.now();
      S.boardErr = null;
      var unknown = keep.some(function (r) { return !S.channels[r.channel]; });
      return Promise.all([unknown ? loadChannels() : null, loadLiveness()].concat(keep.map(function (r) { return load(r.id); })));
    }, function (e) { S.boardErr = e; }).then(function () { if (gen === S.renderGen) render(); });
  }

  /* ---- login ------------------------------------------------------------------ */

  function showLogin(msg) {
    streamStop();
    $("who").hidden = true;
    $("logout").hidden = true;
    $("nav").hidden = true;
    var app = $("app");
    clear(app);
    var err = h("p", { id: "login-error", class: "login-error", role: "alert", text: msg || "" });
    err.hidden = !msg;
    var input = h("input", { id: "token", type: "password", autocomplete: "off", spellcheck: "false", placeholder: "fb_…", required: true });
    var form = h("form", { id: "login", class: "login", method: "post", action: "#" },
      h("h1", { text: "Sign in" }),
      h("p", { class: "muted", text: "Paste your firebreak API token. It is kept for this browser tab only (session storage) and never put in a URL." }),
      h("label", { for: "token", text: "API token" }),
      input,
      err,
      h("button", { class: "btn btn-primary", type: "submit", id: "login-submit", text: "Sign in" }));
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var t = input.value.trim();
      if (!t) return;
      sessionStorage.setItem(TOKEN_KEY, t);
      input.value = "";
      start().catch(function (ex) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin("Sign-in refused: " + ex);
      });
    });
    app.appendChild(form);
    input.focus();
  }

  function loggedOut(msg) {
    sessionStorage.removeItem(TOKEN_KEY);
    S.me = null;
    S.data = {};
    S.recent = [];
    S.lastEventId = null;
    S.streamed = false;
    S.live = null;
    S.board = null;
    S.boardErr = null;
    S.haltedHere = {};
    S.cust = null;
    if ($("halt-dialog").open) $("halt-dialog").close();
    if ($("action-dialog").open) $("action-dialog").close();
    clearInterval(S.timer);
    S.timer = 0;
    clearInterval(S.ctlTimer);
    S.ctlTimer = 0;
    $("ctl").hidden = true;
    showLogin(msg);
  }

  function start() {
    return api("GET", "/v1/whoami").then(function (me) {
      S.me = me;
      var who = $("who");
      clear(who);
      var roles = me.roles && me.roles.length ? me.roles : [me.role];
      append(who, [h("span", { class: "who-name", text: me.name }), " "].concat(roles.map(function (r) {
        return h("span", { class: "role role-" + r, text: r });
      })));
      if (me.via === "proxy") append(who, [" ", h("span", { class: "muted via", text: "(single sign-on)" })]);
      who.hidden = false;
      $("logout").hidden = false;
      $("nav").hidden = !holds(OPERATORS);
      if (!holds(OPERATORS)) {
        route();
        return;
      }
      return Promise.all([loadChannels(), backfill()]).then(function () {
        streamStart();
        clearInterval(S.timer);
        S.timer = setInterval(function () { if (!document.hidden) refreshAll(); }, REFRESH_MS);
        controllerRefresh();
        clearInterval(S.ctlTimer);
        S.ctlTimer = setInterval(function () { if (!document.hidden) controllerRefresh(); }, CONTROLLER_MS);
        route();
      });
    });
  }

  /* ---- the controller: which replica runs the gates, and whether it does ------- */

  /* GET /v1/controller into the top bar; red when the server says no
   * controller cycle completed for three intervals (healthy: false). */
  function controllerRefresh() {
    return api("GET", "/v1/controller").then(function (c) {
      var el = $("ctl");
      var who = c.leader ? "replica " + c.leader : "no replica";
      var age = c.last_cycle_age_s === null ? "no cycle yet" : "last cycle " + Math.round(c.last_cycle_age_s) + " s ago";
      el.textContent = "controller: " + who + ", " + age;
      el.setAttribute("data-state", c.healthy ? "ok" : "down");
      el.title = c.healthy ? "" : "no controller cycle completed for 3 intervals: gates are not being evaluated";
      el.hidden = false;
    }, function () { /* the next refresh tries again */ });
  }

  /* ---- routing ------------------------------------------------------------------ */

  function route() {
    var m = /^#\/rollouts\/(\d+)$/.exec(location.hash);
    S.view = m ? "rollout" : location.hash === "#/history" ? "history" : location.hash === "#/audit" ? "audit" :
      location.hash === "#/customers" ? "customers" : "board";
    S.viewId = m ? Number(m[1]) : 0;
    Array.prototype.forEach.call(document.querySelectorAll("#nav a"), function (a) {
      a.setAttribute("aria-current", a.getAttribute("data-view") === (S.view === "rollout" ? "board" : S.view) ? "page" : "false");
    });
    var app = $("app");
    if (!S.me) return;
    if (!holds(OPERATORS)) {
      /* Ask anyway and show the server's answer: the role check is the server's. */
      api("GET", "/v1/rollouts?state=active").then(function () { refreshAll(); }, function (e) {
        clear(app);
        app.appendChild(h("section", { class: "panel refused", id: "refused" },
          h("h1", { text: "This token cannot watch rollouts" }),
          h("p", { class: "big-error", text: "The server refused: " + e }),
          h("p", { class: "muted", text: "Signed in as " + S.me.name + " with role '" + (S.me.roles || [S.me.role]).join("', '") + "'. The dashboard needs the soc, release or admin role." })));
      });
      return;
    }
    clear(app);
    if (S.view === "history") { renderHistory(app); return; }
    if (S.view === "audit") { renderAudit(app); return; }
    if (S.view === "customers") { renderCustomers(app); refreshAll(); return; }
    app.appendChild(h("p", { class: "muted", text: "Loading…" }));
    refreshAll();
  }

  /* ---- rendering ------------------------------------------------------------------ */

  function render() {
    if (!S.me || !holds(OPERATORS)) return;
    if (S.view === "history" || S.view === "audit") return; /* their forms stay as typed */
    var app = $("app");
    var y = window.scrollY;
    clear(app);
    if (S.view === "rollout") renderRollout(app, S.viewId);
    else if (S.view === "customers") renderCustomers(app);
    else renderBoard(app);
    window.scrollTo(0, y);
  }

  function renderBoard(app) {
    if (S.boardErr) {
      /* A failed refresh keeps the last board on screen, marked stale. */
      app.appendChild(h("p", { class: "big-error", id: "board-error", text: "Cannot list rollouts: " + S.boardErr + (S.board ? " — showing what was known at " + clock(S.boardAt / 1000) + " UTC" : "") }));
      if (!S.board) return;
    }
    var ids = S.board || [];
    var rs = ids.map(function (id) { return S.data[id]; }).filter(function (d) { return d && d.r; });
    var active = rs.filter(function (d) { return isActive(d.r.state); });
    var ended = rs.filter(function (d) { return !isActive(d.r.state); });
    var halted = ended.filter(function (d) { return d.r.state === "halted" || d.r.state === "reverted"; });

    app.appendChild(h("section", { class: "summary" },
      stat(active.length, "active", active.length ? "ok" : "idle"),
      stat(halted.length, "halted in 24 h", halted.length ? "bad" : "idle"),
      stat(ended.length - halted.length, "completed in 24 h", "idle"),
      fleetStat(),
      h("div", { class: "summary-clock" }, h("span", { class: "muted", text: "updated " }), h("span", { id: "updated", text: clock(Date.now() / 1000) + " UTC" }))));

    var events = h("aside", { class: "events panel", id: "events" });
    var main = h("div", { class: "board" });
    /* Active first; a halt of the last hour stays open below them (it needs
     * eyes); everything else that ended is one line each, collapsed. */
    var nowS = Date.now() / 1000;
    var fresh = halted.filter(function (d) { return d.r.finished && nowS - d.r.finished < RECENT_HALT_S; });
    var rest = ended.filter(function (d) { return fresh.indexOf(d) < 0; });
    main.appendChild(h("h2", { class: "section-title", text: "Active rollouts" }));
    if (!active.length) main.appendChild(h("p", { class: "empty", text: "No rollout is active. Nothing is being shipped right now." }));
    active.forEach(function (d) { main.appendChild(card(d, false)); });
    if (fresh.length) {
      main.appendChild(h("h2", { class: "section-title section-bad", text: "Halted in the last hour" }));
      fresh.forEach(function (d) { main.appendChild(card(d, false)); });
    }
    var det = h("details", { class: "ended", id: "ended", open: S.endedOpen },
      h("summary", { class: "section-title", text: "Ended in the last 24 hours (" + rest.length + ")" }),
      rest.length ? h("ul", { class: "rows" }, rest.map(row)) : h("p", { class: "muted", text: "None." }),
      h("p", {}, h("a", { href: "#/history", text: "Older rollouts: history →" })));
    det.addEventListener("toggle", function () { S.endedOpen = det.open; });
    main.appendChild(det);
    app.appendChild(h("div", { class: "layout" }, main, events));
    renderEvents();
  }

  /* The fleet's median heartbeat age: stale beyond 5 minutes. */
  function fleetStat() {
    if (!S.live) return null;
    var m = S.live.median;
    var el = stat(m === null || m === undefined ? "—" : age(m), "fleet heartbeat age (median of " + S.live.agents + " agents" + (S.live.never ? ", " + S.live.never + " never heard from" : "") + ")", m === null || m > ONLINE_S ? "bad" : "ok");
    el.id = "fleet-age";
    return el;
  }

  /* One line for a rollout that ended: state, id, channel, when, why. */
  function row(d) {
    var r = d.r || d;
    return h("li", { class: "row row-" + r.state, "data-rollout": r.id, "data-state": r.state },
      h("span", { class: "row-state badge-mini badge-" + r.state, text: r.state.toUpperCase() }),
      h("a", { class: "row-id", href: "#/rollouts/" + r.id, text: "#" + r.id }),
      h("span", { class: "row-ch", text: channelName(r.channel) + " v" + r.version }),
      h("span", { class: "row-when muted", title: stamp(r.finished || r.started), text: r.finished ? "ended " + ago(r.finished) : "started " + ago(r.started) }),
      h("span", { class: "row-why", text: r.state_reason || "" }));
  }

  function stat(n, label, tone) {
    return h("div", { class: "stat stat-" + tone }, h("span", { class: "stat-n", text: n }), h("span", { class: "stat-l", text: label }));
  }

  function renderEvents() {
    var el = $("events");
    if (!el) return;
    clear(el);
    el.appendChild(h("h2", { text: "Live events" }));
    if (!S.recent.length) {
      el.appendChild(h("p", { class: "muted", text: "Waiting for rollout events… (gate evaluations that only wait are not streamed)" }));
      return;
    }
    var ul = h("ul", { class: "event-list" });
    S.recent.forEach(function (e) {
      var kind = e.type === "gate.evaluation" ? "gate " + String((e.data && e.data.decision) || "").toLowerCase() : e.type.replace("rollout.", "");
      var tone = /halt|revert/.test(e.type) ? "bad" : /promot|complet/.test(e.type) ? "good" : "";
      var dec = e.data && e.data.decision ? String(e.data.decision) : "";
      var why = e.data && e.data.reason ? String(e.data.reason) : "";
      var what = why.indexOf(dec) === 0 ? why : dec + (why ? ": " + why : "");
      ul.appendChild(h("li", { class: "ev ev-" + tone },
        h("span", { class: "ev-time", text: clock(e.at) }),
        e.rollout ? h("a", { class: "ev-kind", href: "#/rollouts/" + e.rollout, text: kind + " #" + e.rollout }) : h("span", { class: "ev-kind", text: kind }),
        what ? h("span", { class: "ev-what", text: what }) : null));
    });
    el.appendChild(ul);
  }

  function badge(state) {
    return h("span", { class: "badge badge-" + state, "data-state": state, text: state.toUpperCase() });
  }

  function lastEval(d) {
    var ev = d.r.evaluations && d.r.evaluations[0];
    if (ev) return ev;
    var p = d.series && d.series[d.series.length - 1];
    return p ? { decision: p.decision, reason: "", at: p.at } : null;
  }

  function card(d, detail) {
    var r = d.r;
    var canHalt = holds(OPERATORS) && isActive(r.state);
    var head = h("div", { class: "card-head" },
      badge(r.state),
      h("div", { class: "card-title" },
        h("a", { class: "rollout-link", href: "#/rollouts/" + r.id, text: "Rollout #" + r.id }),
        h("span", { class: "card-sub" },
          h("span", { class: "channel", text: channelName(r.channel) }),
          " · content v" + r.version + " ",
          h("code", { title: r.content, text: short(r.content) }),
          r.started ? " · started " + ago(r.started) : r.state === "staged" ? " · staged: waits for a second approver" : "")),
      h("span", { class: "spacer" }),
      actionButtons(r),
      canHalt ? h("button", { class: "btn btn-danger halt", type: "button", "data-rollout": r.id, onclick: function () { openHalt(r); }, text: "Halt…" }) : null,
      detail ? null : h("a", { class: "btn btn-quiet", href: "#/rollouts/" + r.id, text: "Details" }));

    var el = h("article", { class: "card card-" + r.state, "data-rollout": r.id, "data-state": r.state }, head);
    if (r.state === "halted" || r.state === "reverted") {
      el.appendChild(h("div", { class: "halt-reason" },
        h("strong", { text: (r.state === "halted" ? "Halted " : "Halted, then reverted ") + (r.finished ? "at " + clock(r.finished) + " UTC (" + ago(r.finished) + ")" : "") + ": " }),
        h("span", { text: r.state_reason || "no reason recorded" })));
    }
    el.appendChild(rings(r));
    var ev = lastEval(d);
    var stopped = r.state === "halted" || r.state === "reverted";
    if (ev && stopped && ev.decision === "HALT" && ev.reason === r.state_reason) {
      /* the halt box above already says it */
    } else if (ev) {
      el.appendChild(h("div", { class: "gate" },
        h("span", { class: "gate-label", text: "Gate" }),
        h("span", { class: "decision decision-" + String(ev.decision).toLowerCase(), text: decisionWord(ev.decision) }),
        h("span", { class: "gate-reason", text: ev.reason || "" }),
        h("span", { class: "gate-time", text: (ev.ring ? "in " + ev.ring + ", " : "") + clock(ev.at) + " UTC" })));
    } else if (isActive(r.state)) {
      el.appendChild(h("div", { class: "gate" }, h("span", { class: "gate-label", text: "Gate" }), h("span", { class: "gate-reason", text: "no evaluation yet" })));
    }
    el.appendChild(health(d, detail));
    if (d.err) el.appendChild(h("p", { class: "stale", text: "Could not refresh: " + d.err + " (showing data from " + clock(d.at / 1000) + ")" }));
    return el;
  }

  function rings(r) {
    var plan = r.rings || [];
    var ol = h("ol", { class: "rings", "aria-label": "ring progress" });
    plan.forEach(function (name, i) {
      var st = i < r.ring_index || r.state === "completed" ? "done" : i === r.ring_index ? (r.state === "halted" || r.state === "reverted" ? "stopped" : "now") : "todo";
      ol.appendChild(h("li", { class: "ring ring-" + st, "data-ring": name },
        h("span", { class: "ring-i", text: String(i + 1) }),
        h("span", { class: "ring-name", text: name }),
        h("span", { class: "ring-st", text: { done: "passed", now: "in progress", stopped: "stopped here", todo: "" }[st] })));
    });
    var since = r.ring_started ? " for " + dur(Math.max(0, Math.round(Date.now() / 1000 - r.ring_started))) : "";
    var now = r.state === "completed" ? "Completed: every ring has it" :
      r.state === "watching" ? "Watching after the last ring for latent failures" + (r.watch_started ? " for " + dur(Math.max(0, Math.round(Date.now() / 1000 - r.watch_started))) : "") + "; the holdout gets it when the watch ends" :
      "Ring " + (r.ring_index + 1) + " of " + plan.length + ": " + (r.ring || plan[r.ring_index] || "?") + (isActive(r.state) ? since : "");
    return h("div", { class: "progress" }, h("div", { class: "ring-where", text: now }), ol);
  }

  /* Per ring, two things kept apart: what is true now (liveness from the
   * agents' last heartbeats, and exposure counted now) and what the gate
   * saw (its inputs and statistics at each evaluation, plotted). */
  function health(d, detail) {
    var r = d.r;
    var wrap = h("div", { class: "health" });
    var plan = r.rings || [];
    plan.forEach(function (name, i) {
      if (!detail && i > r.ring_index) return;
      var x = d.exposure[name] || {};
      var pts = (d.series || []).filter(function (p) { return p.ring === name; });
      var sts = (d.stats || []).filter(function (p) { return p.ring === name; });
      var sg = (d.signals || []).filter(function (x) { return x.ring === name; })[0];
      var sgOn = sg && Object.keys(sg.signals || {}).some(function (k) { return (sg.signals[k].points || []).length; });
      var lv = liveness(name);
      var counts = h("dl", { class: "counts", "data-ring": name },
        cnt("agents", x.agents, "in ring"),
        cnt("holdout", x.holdout, "holdout (control)"),
        cnt("treated", x.treated, "treated"),
        cnt("healthy", x.healthy, "healthy"),
        cnt("crashed", x.crashed, "crashed"),
        cnt("boot_looped", x.boot_looped, "boot-looping"),
        cnt("silent", x.silent, "silent"),
        cnt("pending", x.pending, "pending"));
      var showStats = detail || i === r.ring_index;
      var saw = h("div", { class: "saw" },
        h("h4", { class: "block-title" }, h("span", { text: "What the gate saw" }), h("span", { class: "muted", text: pts.length ? " · " + pts.length + (pts.length === 1 ? " evaluation" : " evaluations") + " in this ring" : " · no evaluations in this ring" })),
        pts.length ? plot(pts, detail) : null,
        pts.length ? legend() : null,
        showStats && sts.length ? (detail ? statPlots(sts, true) : statsFolded(r.id + "/" + name, sts)) : null,
        showStats && sgOn ? (detail ? signalPlots(sg, sts, true) : signalsFolded(r.id + "/" + name, sg, sts)) : null);
      wrap.appendChild(h("section", { class: "ring-health" + (i === r.ring_index && isActive(r.state) ? " ring-health-now" : "") + (lv && lv.state === "dead" ? " ring-health-dead" : ""), "data-ring": name },
        h("h3", {}, h("span", { text: "Ring " + (i + 1) + " · " + name })),
        h("div", { class: "now" },
          h("h4", { class: "block-title" }, h("span", { text: "Now" }), h("span", { class: "muted", text: S.live ? " · as of " + clock(S.live.now) + " UTC" : "" })),
          livenessBlock(name, lv),
          counts),
        saw));
    });
    return wrap;
  }

  /* ---- liveness: agents heard from, per ring (GET /v1/liveness) --------------- */

  var ONLINE_S = 300; /* heard from within 5 minutes: online */

  function liveness(name) {
    var L = S.live && S.live.byRing[name];
    if (!L) return null;
    var online = L.seen_5m;
    var st = !L.agents ? "empty" : online === 0 ? "dead" : online < L.agents ? "partial" : "online";
    return { L: L, online: online, state: st };
  }

  function livenessBlock(name, lv) {
    if (!lv) return h("p", { class: "muted liveness", "data-ring": name, text: S.liveErr ? "liveness unavailable: " + S.liveErr : "liveness: loading…" });
    var L = lv.L;
    var head;
    if (lv.state === "dead") {
      head = h("span", { class: "live-tag live-dead", text: "DEAD" });
    } else if (lv.state === "partial") {
      head = h("span", { class: "live-tag live-partial", text: (L.agents - lv.online) + " SILENT" });
    } else if (lv.state === "online") {
      head = h("span", { class: "live-tag live-online", text: "ONLINE" });
    } else {
      head = h("span", { class: "live-tag live-empty", text: "NO AGENTS" });
    }
    var said = lv.state === "empty" ? "no agent in this ring" :
      lv.online + " of " + L.agents + " online (heard from within 5 min)" +
      (lv.state === "dead" ? (L.last_seen_age_s === null ? "; none has ever been heard from" : "; the last one was heard from " + age(L.last_seen_age_s) + " ago") :
        L.median_age_s !== null ? "; median heartbeat age " + age(L.median_age_s) : "");
    /* the last-seen distribution: a stacked bar */
    var parts = [
      { k: "1m", n: L.seen_1m, label: "≤ 1 min" },
      { k: "5m", n: L.seen_5m - L.seen_1m, label: "1–5 min" },
      { k: "60m", n: L.seen_60m - L.seen_5m, label: "5–60 min" },
      { k: "old", n: L.seen - L.seen_60m, label: "> 60 min" },
      { k: "never", n: L.never, label: "never" },
    ];
    var total = parts.reduce(function (a, p) { return a + p.n; }, 0);
    var bar = h("div", { class: "seen-bar", role: "img", "aria-label": "last seen: " + parts.map(function (p) { return p.label + " " + p.n; }).join(", ") });
    parts.forEach(function (p) {
      if (!(p.n > 0 && total > 0)) return;
      var seg = h("span", { class: "seen seen-" + p.k, title: p.label + ": " + p.n, "data-n": p.n });
      seg.style.width = (100 * p.n / total).toFixed(2) + "%"; /* CSSOM: allowed by the CSP */
      bar.appendChild(seg);
    });
    var keys = h("div", { class: "seen-keys" }, parts.map(function (p) {
      return h("span", { class: "seen-key seen-key-" + p.k, "data-k": p.k }, h("span", { class: "seen-sw seen-" + p.k }), p.label + " ", h("b", { text: String(p.n) }));
    }));
    return h("div", { class: "liveness liveness-" + lv.state, "data-ring": name, "data-live": lv.state, "data-online": lv.online, "data-agents": L.agents },
      h("div", { class: "live-line" }, head, h("span", { class: "live-said", text: said })),
      bar, keys);
  }

  function age(s) {
    s = Math.round(s);
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }

  function loadLiveness() {
    return api("GET", "/v1/liveness").then(function (j) {
      var by = {};
      (j.rings || []).forEach(function (x) { by[x.ring] = x; });
      S.live = { now: j.now, byRing: by, median: j.median_heartbeat_age_s, agents: j.agents, never: j.never };
      S.liveErr = null;
    }, function (e) { S.liveErr = e; });
  }

  function cnt(k, v, label) {
    var n = v === undefined || v === null ? 0 : v;
    return h("div", { class: "cnt cnt-" + k + (n > 0 ? " cnt-nz" : ""), "data-k": k },
      h("dt", { text: label }), h("dd", { text: String(n) }));
  }

  function legend() {
    return h("div", { class: "legend", "aria-hidden": "true" }, SERIES.map(function (x) {
      return h("span", { class: "lg lg-" + x.k }, h("span", { class: "lg-sw" }), x.label);
    }));
  }

  /* ---- plots (inline SVG) ------------------------------------------------------- */

  /* Time ticks at round steps, so labels run along the axis. */
  function timeTicks(t0, t1, n) {
    var steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
    var span = Math.max(1, t1 - t0), step = steps[steps.length - 1];
    for (var i = 0; i < steps.length; i++) if (span / steps[i] <= n) { step = steps[i]; break; }
    var out = [];
    for (var t = Math.ceil(t0 / step) * step; t <= t1; t += step) out.push(t);
    return { ticks: out, step: step };
  }
  function tickLabel(t, step) {
    var d = new Date(t * 1000);
    if (step >= 86400) return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
    return step >= 60 ? pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) : clock(t);
  }
  function numLabel(v, integer) {
    var a0 = Math.abs(v);
    if (a0 >= 1e6) return (v / 1e6).toFixed(a0 % 1e6 ? 1 : 0) + "M";
    if (a0 >= 1e4) return (v / 1e3).toFixed(a0 % 1e3 ? 1 : 0) + "k";
    if (integer || v === Math.round(v)) return String(Math.round(v));
    var a = Math.abs(v);
    return a >= 10 ? v.toFixed(0) : a >= 1 ? v.toFixed(1) : v.toFixed(2);
  }

  /* A frame: grid, y ticks (only integers for counts: no "1, 1, 0"), time
   * ticks along the axis; returns {svg, X, Y}. */
  function frame(t0, t1, ymin, ymax, o) {
    var W = o.W || 640, H = o.H, L = 44, R = 12, T = 12, B = 24;
    if (t1 <= t0) t1 = t0 + 1;
    if (ymax <= ymin) ymax = ymin + 1;
    function X(t) { return L + (W - L - R) * (t - t0) / (t1 - t0); }
    function Y(v) { return T + (H - T - B) * (1 - (v - ymin) / (ymax - ymin)); }
    var svg = s("svg", { class: "plot " + (o.cls || ""), viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": o.label });
    [ymin, (ymin + ymax) / 2, ymax].forEach(function (v) {
      if (o.integer && v !== Math.floor(v)) return;
      svg.appendChild(s("line", { class: "grid", x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
      svg.appendChild(s("text", { class: "axis axis-y", x: L - 6, y: Y(v) + 4, "text-anchor": "end" }, numLabel(v, o.integer)));
    });
    var tt = timeTicks(t0, t1, o.ticks || 6);
    tt.ticks.forEach(function (t) {
      var x = X(t);
      svg.appendChild(s("line", { class: "tick", x1: x, x2: x, y1: H - B, y2: H - B + 4 }));
      svg.appendChild(s("text", { class: "axis axis-t", x: x, y: H - 6, "text-anchor": x < L + 30 ? "start" : x > W - R - 30 ? "end" : "middle" }, tickLabel(t, tt.step)));
    });
    return { svg: svg, X: X, Y: Y, T: T, B: B, H: H, L: L };
  }

  function marks(f, pts) {
    pts.forEach(function (p) {
      if (p.decision && p.decision !== "WAIT") {
        var x = f.X(p.at);
        f.svg.appendChild(s("line", { class: "mark mark-" + p.decision.toLowerCase(), x1: x, x2: x, y1: f.T, y2: f.H - f.B }));
        var left = x - f.L < 70; /* no room on the left: write it to the right */
        f.svg.appendChild(s("text", { class: "mark-label mark-label-" + p.decision.toLowerCase(), x: left ? x + 4 : x - 4, y: f.T + 10, "text-anchor": left ? "start" : "end" }, p.decision));
      }
    });
  }

  function line(f, pts, get, cls) {
    var d = "", first = true, last = null;
    pts.forEach(function (p) {
      var v = get(p);
      if (v === null || v === undefined || !isFinite(v)) return;
      d += (first ? "M" : " L") + f.X(p.at).toFixed(1) + " " + f.Y(v).toFixed(1);
      first = false;
      last = { p: p, v: v };
    });
    if (!last) return;
    if (pts.length === 1) d += " L" + (f.X(last.p.at) + 4) + " " + f.Y(last.v).toFixed(1);
    f.svg.appendChild(s("path", { class: "line line-" + cls, d: d }));
    f.svg.appendChild(s("circle", { class: "dot dot-" + cls, cx: f.X(last.p.at), cy: f.Y(last.v), r: 3 }));
  }

  /* An inline SVG of the gate's counts over time within one ring. */
  function plot(pts, big) {
    var ymax = 1;
    pts.forEach(function (p) { SERIES.forEach(function (x) { ymax = Math.max(ymax, p[x.k] || 0); }); });
    var f = frame(pts[0].at, pts[pts.length - 1].at, 0, niceMax(ymax), { H: big ? 200 : 150, integer: true, label: "counts over time", cls: "plot-counts" });
    marks(f, pts);
    SERIES.forEach(function (x) { line(f, pts, function (p) { return p[x.k] || 0; }, x.k); });
    return f.svg;
  }

  function num(v) { return v === null || v === undefined || !isFinite(v) ? null : Number(v); }
  function rel(p, k) { return p.relative ? num(p.relative[k]) : null; }

  /* The statistics behind the decisions, from GET .../statistics: treated
   * vs control failure rate, the excess bound vs its limit, the relative
   * test's statistic vs its threshold. Each carries the last point's values
   * (data-*) and says them in words. */
  function statPlots(pts, big) {
    var defs = [
      { k: "rates", title: "Failure rate per 1000 host-hours", unit: 1000, fmt: function (v) { return v.toFixed(2); },
        lines: [{ k: "treated", label: "treated", get: function (p) { return rel(p, "treated_rate"); } },
                { k: "control", label: "control", get: function (p) { return rel(p, "control_rate"); } }] },
      { k: "excess", title: "Excess failed share, upper bound vs limit", unit: 100, fmt: function (v) { return v.toFixed(2) + " %"; },
        lines: [{ k: "bound", label: "excess upper bound", get: function (p) { return num(p.excess_upper); } },
                { k: "limit", label: "max_excess", get: function (p) { return num(p.max_excess); } }] },
      { k: "test", title: "Relative test: log-LR vs threshold", unit: 1, fmt: function (v) { return v.toFixed(2); },
        lines: [{ k: "statistic", label: "statistic", get: function (p) { return rel(p, "statistic"); } },
                { k: "threshold", label: "threshold", get: function (p) { return rel(p, "threshold"); } }] },
    ];
    var box = h("div", { class: "stats" });
    defs.forEach(function (def) {
      var lo = 0, hi = 0, any = false;
      pts.forEach(function (p) {
        def.lines.forEach(function (l) {
          var v = l.get(p);
          if (v === null) return;
          any = true;
          v *= def.unit;
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        });
      });
      var lastP = pts[pts.length - 1];
      var attrs = { class: "stat-plot stat-" + def.k, "data-stat": def.k, "data-eval": lastP.id };
      var words = [];
      def.lines.forEach(function (l) {
        var v = l.get(lastP);
        attrs["data-" + l.k] = v === null ? "" : String(v);
        words.push(l.label + " " + (v === null ? "—" : def.fmt(v * def.unit)));
      });
      var el = h("figure", attrs,
        h("figcaption", {}, h("span", { class: "stat-title", text: def.title }), h("span", { class: "stat-now", text: words.join(" · ") })));
      if (any) {
        var f = frame(pts[0].at, lastP.at, lo < 0 ? -niceMax(-lo) : 0, niceMax(hi > 0 ? hi : 1e-9), { H: big ? 150 : 120, label: def.title, cls: "plot-stat" });
        marks(f, pts);
        def.lines.forEach(function (l) { line(f, pts, function (p) { var v = l.get(p); return v === null ? null : v * def.unit; }, "s-" + l.k); });
        el.appendChild(f.svg);
      } else {
        el.appendChild(h("p", { class: "muted", text: "no values in these evaluations" }));
      }
      box.appendChild(el);
    });
    return box;
  }

  /* On the board the statistics fold into one line (the page stays short
   * with several rollouts); the rollout's page shows them open. */
  function statsFolded(key, sts) {
    var p = sts[sts.length - 1];
    var f2 = function (v) { return v === null ? "—" : v.toFixed(2); };
    var tr = rel(p, "treated_rate"), cr = rel(p, "control_rate");
    var line = "Statistics: treated " + f2(tr === null ? null : tr * 1000) + " vs control " + f2(cr === null ? null : cr * 1000) +
      " per 1000 host-hours; log-LR " + f2(rel(p, "statistic")) + " of " + f2(rel(p, "threshold"));
    S.statsOpen = S.statsOpen || {};
    var det = h("details", { class: "stats-fold", open: !!S.statsOpen[key] }, h("summary", { text: line }), statPlots(sts, false));
    det.addEventListener("toggle", function () { S.statsOpen[key] = det.open; });
    return det;
  }

  /* ---- health signals: per ring, each signal treated vs control -------------- */

  function f2(v) { return v === null || v === undefined || !isFinite(v) ? "—" : Number(v).toFixed(2); }

  /* "4 of 60 degraded vs 1 of 55 in control; log-LR 1.02 of 4.38" */
  function signalWords(p) {
    return p.degraded + " of " + p.treated + " degraded vs " + p.control_degraded + " of " + p.control +
      " in control; log-LR " + f2(p.statistic) + " of " + f2(p.threshold);
  }

  /* A line of per-minute values: each holds over its minute (the gate's last
   * look in it), so one minute is a segment, not a lone dot. */
  function stepLine(f, pts, get, cls) {
    var d = "", last = null;
    pts.forEach(function (p) {
      var v = get(p);
      if (v === null || v === undefined || !isFinite(v)) return;
      var y = f.Y(v).toFixed(1);
      d += (last ? " L" : "M") + f.X(p.at).toFixed(1) + " " + y + " L" + f.X(p.at + 60).toFixed(1) + " " + y;
      last = { p: p, v: v };
    });
    if (!last) return;
    f.svg.appendChild(s("path", { class: "line line-" + cls, d: d }));
    f.svg.appendChild(s("circle", { class: "dot dot-" + cls, cx: f.X(last.p.at + 60), cy: f.Y(last.v), r: 3 }));
  }

  /* One ring's health signals (a ring of GET .../signals): per signal, the
   * degraded rate of treated vs control hosts per 1000 host-hours and the
   * relative test's statistic vs its threshold, per minute, with the gate's
   * decisions (evals) marked. Each figure carries its last point's values
   * (data-*) and says them in words; the ring's worst signal is marked. */
  function signalPlots(sg, evals, big) {
    var worst = sg.worst ? sg.worst.signal : null;
    var box = h("div", { class: "signals", "data-ring": sg.ring },
      h("div", { class: "sig-head" }, h("span", { class: "stat-title", text: "Health signals" }),
        h("span", { class: "stat-now", text: "hosts degraded on each signal, treated vs control, per minute" })),
      h("div", { class: "legend sig-legend", "aria-hidden": "true" },
        [["s-treated", "treated (new content)"], ["s-control", "control"], ["s-statistic", "log-LR"], ["s-threshold", "halts at"]].map(function (x) {
          return h("span", { class: "lg lg-" + x[0] }, h("span", { class: "lg-sw" }), x[1]);
        })));
    Object.keys(sg.signals || {}).forEach(function (k) {
      var sig = sg.signals[k], pts = sig.points || [];
      var lastP = pts[pts.length - 1];
      var attrs = { class: "sig-plot" + (k === worst ? " sig-worst" : ""), "data-signal": k };
      if (lastP) {
        attrs["data-at"] = String(lastP.at);
        ["treated", "degraded", "control", "control_degraded", "statistic", "threshold"].forEach(function (x) {
          attrs["data-" + x.replace("_", "-")] = String(lastP[x]);
        });
        attrs["data-treated-rate"] = lastP.treated_per_1000h === null ? "" : String(lastP.treated_per_1000h);
        attrs["data-control-rate"] = lastP.control_per_1000h === null ? "" : String(lastP.control_per_1000h);
      }
      var el = h("figure", attrs,
        h("figcaption", {},
          h("span", { class: "stat-title", text: sig.label + (k === worst ? " (worst)" : "") }),
          h("span", { class: "stat-now", text: lastP ? "treated " + f2(lastP.treated_per_1000h) + " vs control " + f2(lastP.control_per_1000h) +
            " per 1000 host-hours · " + signalWords(lastP) : "no looks in this ring yet" })));
      if (lastP) {
        /* one point per minute, holding over it */
        var t0 = pts[0].at, t1 = lastP.at + 60;
        var inRange = (evals || []).filter(function (p) { return p.at >= t0 && p.at <= t1; });
        var pair = h("div", { class: "sig-pair" });
        [{ k: "rate", title: "degraded per 1000 host-hours",
           lines: [["s-treated", "treated_per_1000h"], ["s-control", "control_per_1000h"]] },
         { k: "test", title: "relative test: log-LR vs threshold",
           lines: [["s-statistic", "statistic"], ["s-threshold", "threshold"]] }].forEach(function (def) {
          var lo = 0, hi = 0;
          pts.forEach(function (p) {
            def.lines.forEach(function (l) {
              var v = num(p[l[1]]);
              if (v === null) return;
              lo = Math.min(lo, v);
              hi = Math.max(hi, v);
            });
          });
          /* half a plot's width each: a narrower frame keeps the labels legible */
          var f = frame(t0, t1, lo < 0 ? -niceMax(-lo) : 0, hi > 0 ? niceMax(hi) : 1,
            { W: 340, H: big ? 150 : 130, ticks: 3, label: sig.label + ": " + def.title, cls: "plot-sig plot-sig-" + def.k });
          marks(f, inRange);
          def.lines.forEach(function (l) { stepLine(f, pts, function (p) { return num(p[l[1]]); }, l[0]); });
          pair.appendChild(h("div", { class: "sig-half" }, h("div", { class: "sig-axis", text: def.title }), f.svg));
        });
        el.appendChild(pair);
      }
      box.appendChild(el);
    });
    return box;
  }

  /* On the board a ring's signals fold into one line naming the worst. */
  function signalsFolded(key, sg, evals) {
    var w = sg.worst;
    var text = w ? "Signals: worst " + w.label + ": " + signalWords(w) : "Signals: no host degraded on " +
      Object.keys(sg.signals || {}).map(function (k) { return sg.signals[k].label; }).join(", ");
    S.sigOpen = S.sigOpen || {};
    var det = h("details", { class: "signals-fold", open: !!S.sigOpen[key], "data-worst": w ? w.signal : "" },
      h("summary", { text: text }), signalPlots(sg, evals, false));
    det.addEventListener("toggle", function () { S.sigOpen[key] = det.open; });
    return det;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var m = v / p;
    var n = m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : m <= 5 ? 5 : 10;
    return n * p;
  }

  /* ---- history: every rollout, beyond 24 h, a page at a time ------------------- */

  var RANGES = [["1", "last 24 h"], ["7", "last 7 days"], ["30", "last 30 days"], ["0", "all time"]];
  var STATES = ["", "active", "completed", "halted", "reverted", "superseded", "staged", "rolling", "paused", "watching"];

  function select(id, opts, value) {
    var el = h("select", { id: id });
    opts.forEach(function (o) {
      var op = h("option", { value: o[0], text: o[1] });
      if (o[0] === value) op.selected = true;
      el.appendChild(op);
    });
    return el;
  }

  function renderHistory(app) {
    var H = S.hist = S.hist || { days: "7", state: "", limit: 50, seq: 0 };
    var days = select("hist-days", RANGES, H.days);
    var state = select("hist-state", STATES.map(function (x) { return [x, x || "any state"]; }), H.state);
    var out = h("div", { id: "hist-out" }, h("p", { class: "muted", text: "Loading…" }));
    var more = h("button", { class: "btn", type: "button", id: "hist-more", text: "Show more" });
    function fetchPage() {
      var q = ["limit=" + H.limit];
      if (H.days !== "0") q.push("since=" + Math.floor(Date.now() / 1000 - Number(H.days) * 86400));
      if (H.state) q.push("state=" + encodeURIComponent(H.state));
      more.disabled = true;
      var seq = ++H.seq; /* an older answer arriving late is dropped */
      api("GET", "/v1/rollouts?" + q.join("&")).then(function (j) {
        if (seq !== H.seq) return;
        clear(out);
        var rs = j.rollouts || [];
        out.appendChild(h("p", { class: "muted", id: "hist-count", text: rs.length + " rollout" + (rs.length === 1 ? "" : "s") + (rs.length >= H.limit ? " (newest first; more exist)" : "") }));
        out.appendChild(h("ul", { class: "rows" }, rs.map(row)));
        more.hidden = rs.length < H.limit;
        more.disabled = false;
      }, function (e) {
        if (seq !== H.seq) return;
        clear(out);
        out.appendChild(h("p", { class: "big-error", text: "Cannot list rollouts: " + e }));
        more.disabled = false;
      });
    }
    days.addEventListener("change", function () { H.days = days.value; H.limit = 50; fetchPage(); });
    state.addEventListener("change", function () { H.state = state.value; H.limit = 50; fetchPage(); });
    more.addEventListener("click", function () { H.limit = Math.min(10000, H.limit * 2); fetchPage(); });
    app.appendChild(h("section", { class: "panel history", id: "history" },
      h("h1", { text: "Rollout history" }),
      h("div", { class: "filters" }, h("label", { for: "hist-days", text: "Range" }), days, h("label", { for: "hist-state", text: "State" }), state),
      out, more));
    fetchPage();
  }

  /* ---- audit: who did what, filtered, older pages on demand ------------------------ */

  function renderAudit(app) {
    var A = S.aud = S.aud || { action: "", object: "", actor: "", seq: 0 };
    var f = {};
    var form = h("form", { class: "filters", id: "audit-filters" });
    [["action", "action", "e.g. rollout.halt"], ["object", "object", "e.g. rollout/12"], ["actor", "actor", "e.g. soc:alice"]].forEach(function (x) {
      f[x[0]] = h("input", { id: "audit-" + x[0], type: "text", value: A[x[0]], placeholder: x[2], spellcheck: "false" });
      form.appendChild(h("label", { for: "audit-" + x[0], text: x[1] }));
      form.appendChild(f[x[0]]);
    });
    form.appendChild(h("button", { class: "btn btn-primary", type: "submit", id: "audit-apply", text: "Filter" }));
    var list = h("ol", { class: "tl audit-list", id: "audit-list" });
    var note = h("p", { class: "muted", id: "audit-note", text: "Loading…" });
    var older = h("button", { class: "btn", type: "button", id: "audit-older", text: "Older", hidden: true });
    var before = null;
    function fetchPage(reset) {
      var q = ["limit=50"];
      ["action", "object", "actor"].forEach(function (k) { if (A[k]) q.push(k + "=" + encodeURIComponent(A[k])); });
      if (!reset && before) q.push("before=" + before);
      older.disabled = true;
      var seq = ++A.seq; /* an older answer arriving late is dropped */
      api("GET", "/v1/audit?" + q.join("&")).then(function (j) {
        if (seq !== A.seq) return;
        if (reset) clear(list);
        (j.audit || []).forEach(function (a) {
          var ch = a.before || a.after ? JSON.stringify(a.before) + " → " + JSON.stringify(a.after) : "";
          list.appendChild(h("li", { class: "tl-item audit-item" + (/halt|revert/.test(a.action) ? " tl-bad" : ""), "data-action": a.action },
            h("span", { class: "tl-time", title: stamp(a.at), text: stamp(a.at).slice(5, 16) }),
            h("span", { class: "tl-what", text: a.action }),
            h("span", { class: "tl-who", text: a.actor + " · " + a.object }),
            a.reason || ch ? h("p", { class: "tl-text", text: (a.reason || "") + (ch ? (a.reason ? " — " : "") + ch : "") }) : null));
        });
        before = j.next_before || null;
        older.hidden = !before;
        older.disabled = false;
        note.textContent = list.children.length ? list.children.length + " record" + (list.children.length === 1 ? "" : "s") + " shown, newest first" : "No audit record matches.";
      }, function (e) {
        if (seq !== A.seq) return;
        note.textContent = "Cannot read the audit log: " + e;
        older.disabled = false;
      });
    }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      ["action", "object", "actor"].forEach(function (k) { A[k] = f[k].value.trim(); });
      before = null;
      fetchPage(true);
    });
    older.addEventListener("click", function () { fetchPage(false); });
    app.appendChild(h("section", { class: "panel audit", id: "audit" }, h("h1", { text: "Audit log" }), form, note, list, older));
    fetchPage(true);
  }

  /* ---- customers: tenants, their host groups' content modes, their exposure ---- */

  /* A fleet may have hundreds of tenants: the list is one request
   * (GET /v1/tenants, counts only); a tenant's groups, policies and exposure
   * (GET /v1/tenants/{t} and .../rollouts) are fetched only while it is open
   * on the page, at most CUSTOMERS_OPEN of them (opening another closes the
   * one opened longest ago). With CUSTOMERS_AUTO or fewer tenants every one
   * is open on arrival. So a refresh of this view, every REFRESH_MS while it
   * is shown and never otherwise, costs 1 + 2 x open requests. */
  var CUSTOMERS_OPEN = 8;
  var CUSTOMERS_AUTO = 5;
  /* modes whose hosts a rollout does not reach before general availability or
   * at all: the customer holds them back (server/README.md, tenants) */
  var HELD = { delayed: 1, paused: 1, "n-1": 1, version: 1 };

  function cust() {
    return S.cust || (S.cust = { list: null, err: null, at: 0, open: {}, n: 0, detail: {}, seeded: false });
  }

  function customersRefresh() {
    var C = cust();
    /* a tenant's own credential lists nothing: its own tenant only */
    var list = S.me.tenant ? Promise.resolve({ tenants: [{ name: S.me.tenant }] }) : api("GET", "/v1/tenants");
    return list.then(function (j) {
      C.list = j.tenants || [];
      C.err = null;
      C.at = Date.now();
      var names = {};
      C.list.forEach(function (t) { names[t.name] = 1; });
      if (!C.seeded) {
        C.seeded = true;
        if (C.list.length <= CUSTOMERS_AUTO) C.list.forEach(function (t) { C.open[t.name] = ++C.n; });
      }
      Object.keys(C.open).forEach(function (k) { if (!names[k]) delete C.open[k]; });
      Object.keys(C.detail).forEach(function (k) { if (!C.open[k]) delete C.detail[k]; });
      return Promise.all(Object.keys(C.open).map(loadTenant));
    }, function (e) { C.err = e; });
  }

  function loadTenant(name) {
    var C = cust();
    var p = "/v1/tenants/" + encodeURIComponent(name);
    return Promise.all([api("GET", p), api("GET", p + "/rollouts")]).then(function (x) {
      C.detail[name] = { t: x[0], rollouts: x[1].rollouts || [], at: Date.now(), err: null };
    }, function (e) {
      var d = C.detail[name];
      if (d) d.err = e;
      else C.detail[name] = { err: e };
    });
  }

  /* Open or close a tenant on the page; opening fetches it at once. */
  function customerToggle(name, open) {
    var C = cust();
    if (!open) {
      delete C.open[name];
      return;
    }
    if (C.open[name]) return;
    C.open[name] = ++C.n;
    var names = Object.keys(C.open);
    if (names.length > CUSTOMERS_OPEN) {
      names.sort(function (a, b) { return C.open[a] - C.open[b]; });
      delete C.open[names[0]];
      delete C.detail[names[0]];
    }
    loadTenant(name).then(function () { if (S.view === "customers") render(); });
  }

  function delayWords(s) {
    if (s % 86400 === 0) return s / 86400 + " d";
    if (s % 3600 === 0) return s / 3600 + " h";
    if (s % 60 === 0) return s / 60 + " min";
    return s + " s";
  }

  /* The policy that decides a group's mode on a channel: the most specific of
   * (group, channel), (group, every channel), (tenant, channel), (tenant,
   * every channel), as content_mode() in migration 0009; null: the tenant's
   * default mode. */
  function policyOf(t, group, ch) {
    var best = null, rank = 9;
    (t.policies || []).forEach(function (p) {
      if ((p.group !== null && p.group !== group) || (p.channel !== null && Number(p.channel) !== ch)) return;
      var r = (p.group === null ? 2 : 0) + (p.channel === null ? 1 : 0);
      if (r < rank) { rank = r; best = p; }
    });
    return best;
  }

  function modeLabel(p) {
    if (p.mode === "delayed") return "delayed " + delayWords(p.delay_s);
    if (p.mode === "version") return "version " + p.version;
    return p.mode;
  }

  function renderCustomers(app) {
    var C = cust();
    var panel = h("section", { class: "panel customers", id: "customers" }, h("h1", { text: "Customers" }));
    app.appendChild(panel);
    if (C.err && (C.err.status === 403 || C.err.status === 404)) {
      /* not for this credential (or a server without tenants): say so quietly */
      panel.appendChild(h("p", { class: "muted", id: "cust-note", text: "No customers to show: the server answered " + C.err + "." }));
      return;
    }
    if (C.err) panel.appendChild(h("p", { class: "big-error", id: "cust-error", text: "Cannot list customers: " + C.err + (C.list ? " — showing what was known at " + clock(C.at / 1000) + " UTC" : "") }));
    if (!C.list) {
      if (!C.err) panel.appendChild(h("p", { class: "muted", text: "Loading…" }));
      return;
    }
    var agents = C.list.reduce(function (a, t) { return a + (t.agents || 0); }, 0);
    panel.appendChild(h("p", { class: "muted", id: "cust-note", text: C.list.length + (C.list.length === 1 ? " customer" : " customers") +
      (S.me.tenant ? "" : ", " + agents + " agents") + ". Open a customer for its host groups' content mode per channel and its hosts on each active rollout's content (at most " +
      CUSTOMERS_OPEN + " open at once; only those are fetched)." }));
    var ul = h("ul", { class: "tenants" });
    C.list.forEach(function (t) {
      var open = !!C.open[t.name];
      /* the page decides what is open (a refresh re-renders it): a click on
       * the summary changes C.open, not the element */
      var det = h("details", { class: "tenant", "data-tenant": t.name, open: open },
        h("summary", { onclick: function (e) { e.preventDefault(); customerToggle(t.name, !C.open[t.name]); render(); } },
          h("span", { class: "tenant-name", text: t.name }),
          t.default_mode ? h("span", { class: "muted", text: "default " + t.default_mode }) : null,
          t.groups !== undefined ? h("span", { class: "muted tenant-counts", text: t.groups + (t.groups === 1 ? " group · " : " groups · ") + t.agents + (t.agents === 1 ? " agent" : " agents") }) : null));
      if (open) det.appendChild(tenantBody(t.name, C.detail[t.name]));
      ul.appendChild(h("li", {}, det));
    });
    panel.appendChild(ul);
  }

  function tenantBody(name, d) {
    var box = h("div", { class: "tenant-body" });
    if (!d) {
      box.appendChild(h("p", { class: "muted", text: "Loading…" }));
      return box;
    }
    if (d.err) box.appendChild(h("p", { class: d.err.status === 404 || d.err.status === 403 ? "muted" : "big-error", text: "Cannot show " + name + ": " + d.err + (d.t ? " (showing data from " + clock(d.at / 1000) + ")" : "") }));
    if (!d.t) return box;
    var t = d.t;
    /* columns: the channels known, and any a policy names */
    var chs = {};
    Object.keys(S.channels).forEach(function (id) { chs[id] = 1; });
    (t.policies || []).forEach(function (p) { if (p.channel !== null) chs[p.channel] = 1; });
    var cols = Object.keys(chs).map(Number).sort(function (a, b) { return a - b; });
    var head = h("tr", {}, h("th", { text: "Group" }), h("th", { class: "num", text: "Agents" }), cols.map(function (c) { return h("th", { text: channelName(c) }); }));
    var rows = (t.groups || []).map(function (g) {
      return h("tr", { "data-group": g.name, "data-agents": g.agents },
        h("td", { class: "grp", text: g.name }), h("td", { class: "num", text: String(g.agents) }),
        cols.map(function (c) {
          var p = policyOf(t, g.name, c);
          var m = p ? p.mode : t.default_mode;
          return h("td", { class: "mode mode-" + m, "data-channel": c, "data-mode": m,
            title: p ? "policy #" + p.id + (p.group === null ? " (whole tenant)" : "") + ": " + p.reason + (p.updated_by ? " — " + p.updated_by : "") : "the tenant's default mode",
            text: p ? modeLabel(p) : m });
        }));
    });
    box.appendChild(h("h3", { text: "Host groups: content mode per channel" }));
    box.appendChild(h("table", { class: "modes" }, h("thead", {}, head), h("tbody", {}, rows)));
    box.appendChild(h("h3", { text: "Rollouts rolling, paused, watching or halted: this customer's hosts on their content" }));
    if (!d.rollouts.length) {
      box.appendChild(h("p", { class: "muted", text: "No rollout is rolling, paused, watching or halted." }));
      return box;
    }
    var xrows = d.rollouts.map(function (r) {
      var modes = r.modes || {};
      var held = Object.keys(modes).reduce(function (a, k) { return a + (HELD[k] ? modes[k] : 0); }, 0);
      var zero = r.exposed === 0 && r.agents > 0;
      return h("tr", { class: "tx" + (zero ? " tx-none" : ""), "data-rollout": r.id, "data-agents": r.agents, "data-exposed": r.exposed },
        h("td", {}, h("a", { href: "#/rollouts/" + r.id, text: "#" + r.id })),
        h("td", { text: channelName(r.channel) }),
        h("td", {}, h("span", { class: "badge-mini badge-" + r.state, text: r.state.toUpperCase() })),
        h("td", { class: "tx-on" }, h("b", { text: String(r.exposed) }), " of " + r.agents + (r.agents === 1 ? " host" : " hosts"),
          held ? h("span", { class: "tx-held", text: " · " + held + " held back by the customer" }) : null),
        h("td", { class: "tx-modes" }, Object.keys(modes).sort().map(function (k) {
          return h("span", { class: "mode-n mode-" + k, "data-mode": k, "data-n": modes[k], text: k + " " + modes[k] });
        })));
    });
    box.appendChild(h("table", { class: "exposure" },
      h("thead", {}, h("tr", {}, ["Rollout", "Channel", "State", "On its content", "Hosts by content mode"].map(function (x) { return h("th", { text: x }); }))),
      h("tbody", {}, xrows)));
    return box;
  }

  /* ---- one rollout's page ---------------------------------------------------------- */

  function renderRollout(app, id) {
    var d = S.data[id];
    app.appendChild(h("p", { class: "crumbs" }, h("a", { href: "#/", text: "← all rollouts" })));
    if (!d || !d.r) {
      app.appendChild(h("p", { class: "big-error", text: d && d.err ? "Cannot show rollout #" + id + ": " + d.err : "Loading…" }));
      return;
    }
    app.appendChild(card(d, true));
    var cols = h("div", { class: "detail-cols" });
    var tl = h("section", { class: "panel timeline", id: "timeline" }, h("h2", { text: "Timeline" }), h("p", { class: "muted", text: "Loading the audit log…" }));
    var ct = h("section", { class: "panel content", id: "content" }, h("h2", { text: "Content" }), h("p", { class: "muted", text: "Loading the manifest…" }));
    if (d.audit) fillTimeline(tl, d, d.audit);
    if (d.content) fillContent(ct, d.content);
    cols.appendChild(tl);
    cols.appendChild(ct);
    app.appendChild(cols);
    var gen = S.renderGen;
    Promise.all([api("GET", "/v1/audit?object=rollout/" + id).catch(function (e) { return { err: e }; }),
 api("GET", "/v1/content/" + d.r.content).catch(function (e) { return { err: e }; })])
      .then(function (x) {
        if (gen !== S.renderGen || !tl.isConnected) return;
        if (!x[1].err) d.content = x[1];
        if (!x[0].err) d.audit = x[0];
        fillTimeline(tl, d, x[0]);
        fillContent(ct, x[1]);
      });
  }

  function fillTimeline(el, d, audit) {
    clear(el);
    el.appendChild(h("h2", { text: "Timeline" }));
    if (audit.err) el.appendChild(h("p", { class: "big-error", text: "Audit log: " + audit.err }));
    var items = [];
    (audit.audit || []).forEach(function (a) {
      items.push({ at: a.at, id: a.id, kind: "action", what: a.action.replace("rollout.", ""), who: a.actor, text: a.reason || "", tone: /halt|revert/.test(a.action) ? "bad" : /promote|complete/.test(a.action) ? "good" : "" });
    });
    /* Evaluations: the last 20, with runs of identical waits folded. */
    var evs = (d.r.evaluations || []).slice().reverse();
    var prev = null;
    evs.forEach(function (e) {
      if (prev && prev.decision === e.decision && prev.reason === e.reason && prev.ring === e.ring) { prev.n++; prev.at = e.at; return; }
      prev = { at: e.at, id: 0, kind: "gate", what: decisionWord(e.decision), who: "gate in " + e.ring, text: e.reason, decision: e.decision, ring: e.ring, reason: e.reason, n: 1, tone: e.decision === "HALT" ? "bad" : e.decision === "PROMOTE" ? "good" : "" };
      items.push(prev);
    });
    items.sort(function (a, b) { return b.at - a.at || (b.kind === "action") - (a.kind === "action"); });
    var ol = h("ol", { class: "tl" });
    items.forEach(function (it) {
      ol.appendChild(h("li", { class: "tl-item tl-" + it.kind + (it.tone ? " tl-" + it.tone : "") },
        h("span", { class: "tl-time", title: stamp(it.at), text: clock(it.at) }),
        h("span", { class: "tl-what", text: it.what + (it.n > 1 ? " ×" + it.n : "") }),
        h("span", { class: "tl-who", text: it.who }),
        it.text ? h("p", { class: "tl-text", text: it.text }) : null));
    });
    if (!items.length) ol.appendChild(h("li", { class: "muted", text: "Nothing recorded yet." }));
    el.appendChild(ol);
  }

  function fillContent(el, c) {
    clear(el);
    el.appendChild(h("h2", { text: "Content" }));
    if (c.err) {
      el.appendChild(h("p", { class: "big-error", text: "Content: " + c.err }));
      return;
    }
    var m = c.manifest || {};
    var sg = m.signed || {};
    var pf = c.preflight || {};
    el.appendChild(h("dl", { class: "kv" },
      kv("sha256", h("code", { class: "sha", text: c.sha256 })),
      kv("channel", channelName(c.channel)),
      kv("version", String(c.version)),
      kv("size", c.size + " bytes"),
      kv("templates", (c.templates || []).map(function (t) { return t.id + " v" + t.version; }).join(", ") || "—"),
      kv("uploaded", stamp(c.created)),
      kv("manifest", "created " + stamp(sg.created) + ", expires " + stamp(sg.expires)),
      kv("preflight", h("span", { class: "pf pf-" + (pf.outcome || "none") }, pf.reason && pf.reason.indexOf(pf.outcome + ":") === 0 ? pf.reason : (pf.outcome || "none") + (pf.reason ? " — " + pf.reason : ""))),
      kv("status", c.bad ? h("span", { class: "bad-content", text: "marked BAD: " + (c.bad_reason || "") }) : "good")));
    var sigs = m.signatures || [];
    el.appendChild(h("h3", { text: "Signers (" + sigs.length + ")" }));
    var ul = h("ul", { class: "signers" });
    sigs.forEach(function (x) { ul.appendChild(h("li", {}, h("span", { class: "muted", text: "release key " }), h("code", { class: "keyid", text: x.keyid }))); });
    el.appendChild(ul);
    var det = h("details", { open: S.manifestOpen }, h("summary", { text: "Signed manifest (JSON)" }), h("pre", { class: "json", text: JSON.stringify(sg, null, 2) }));
    det.addEventListener("toggle", function () { S.manifestOpen = det.open; });
    el.appendChild(det);
  }

  function kv(k, v) { return h("div", { class: "kv-row" }, h("dt", { text: k }), h("dd", {}, v)); }

  /* ---- halt ------------------------------------------------------------------------ */

  var haltTarget = null;

  function openHalt(r) {
    haltTarget = r;
    $("halt-title").textContent = "Halt rollout #" + r.id + "?";
    $("halt-what").textContent = channelName(r.channel) + ", content v" + r.version + " (" + short(r.content) + "), now " + r.state + " in ring " + (r.ring || "?") + ".";
    $("halt-reason").value = "";
    $("halt-error").hidden = true;
    $("halt-confirm").disabled = false;
    $("halt-dialog").showModal();
    $("halt-reason").focus();
  }

  function haltError(msg) {
    var e = $("halt-error");
    e.textContent = msg;
    e.hidden = false;
  }

  function submitHalt(ev) {
    ev.preventDefault();
    var r = haltTarget;
    if (!r) return;
    var reason = $("halt-reason").value.trim();
    if (!reason) {
      haltError("A reason is required: it goes into the audit log.");
      $("halt-reason").focus();
      return;
    }
    $("halt-confirm").disabled = true;
    S.haltedHere[r.id] = 1;
    api("POST", "/v1/rollouts/" + r.id + "/halt", { reason: reason }).then(function (res) {
      $("halt-dialog").close();
      haltTarget = null;
      flash("Rollout #" + r.id + " is " + ((res && res.state) || "halted") + ": you halted it", "halt");
      return load(r.id, true).then(refreshAll);
    }, function (e) {
      delete S.haltedHere[r.id];
      $("halt-confirm").disabled = false;
      haltError("The server refused the halt: " + e);
    });
  }

  /* ---- pause, resume, approve ------------------------------------------------------ */

  /* What each action does, for whom (the roles routes.c admits) and when
   * (the states rollouts.c accepts); buttons the token's role may not use
   * are not shown, and whatever the server refuses is shown in the dialog. */
  var ACTIONS = {
    pause: { label: "Pause…", title: "Pause", when: function (r) { return r.state === "rolling"; },
      effect: "Pausing stops promotion to the next ring; agents keep what they run and the gate keeps watching. Recorded in the audit log under your name." },
    resume: { label: "Resume…", title: "Resume", when: function (r) { return r.state === "paused" || r.state === "halted" || r.state === "reverted"; },
      effect: function (r) {
        return r.state === "paused" ? "Resuming lets the gate promote again from the ring it is in. Recorded in the audit log under your name." :
          "Restarting a halted rollout needs two different approvers: it starts again from the first ring and clears the content's bad mark. Your approval is recorded; a second person must approve too.";
      } },
    approve: { label: "Approve…", title: "Approve", when: function (r) { return r.state === "staged"; },
      effect: "This emergency rollout waits for a second, different approver; approving starts it at the first ring. Recorded in the audit log under your name." },
  };

  function actionButtons(r) {
    if (!S.me || !holds(RELEASERS)) return null;
    return Object.keys(ACTIONS).filter(function (k) { return ACTIONS[k].when(r); }).map(function (k) {
      return h("button", { class: "btn act " + k, type: "button", "data-rollout": r.id, "data-action": k, onclick: function () { openAction(r, k); }, text: ACTIONS[k].label });
    });
  }

  var actionTarget = null;

  function openAction(r, k) {
    var a = ACTIONS[k];
    actionTarget = { r: r, k: k };
    $("action-title").textContent = a.title + " rollout #" + r.id + "?";
    $("action-what").textContent = channelName(r.channel) + ", content v" + r.version + " (" + short(r.content) + "), now " + r.state + (r.ring ? " in ring " + r.ring : "") + ".";
    $("action-effect").textContent = typeof a.effect === "function" ? a.effect(r) : a.effect;
    $("action-confirm").textContent = a.title;
    $("action-reason").value = "";
    $("action-error").hidden = true;
    $("action-confirm").disabled = false;
    $("action-dialog").showModal();
    $("action-reason").focus();
  }

  function actionError(msg) {
    var e = $("action-error");
    e.textContent = msg;
    e.hidden = false;
  }

  function submitAction(ev) {
    ev.preventDefault();
    var t = actionTarget;
    if (!t) return;
    var reason = $("action-reason").value.trim();
    if (!reason) {
      actionError("A reason is required: it goes into the audit log.");
      $("action-reason").focus();
      return;
    }
    $("action-confirm").disabled = true;
    api("POST", "/v1/rollouts/" + t.r.id + "/" + t.k, { reason: reason }).then(function (res) {
      $("action-dialog").close();
      actionTarget = null;
      if (res && res.needed) flash("Rollout #" + t.r.id + ": your approval is recorded (" + res.approvals + " of " + res.needed + "); another approver must " + t.k + " too", "info");
      else flash("Rollout #" + t.r.id + " is " + ((res && res.state) || "updated") + ": you " + { pause: "paused", resume: "resumed", approve: "approved" }[t.k] + " it", "info");
      return load(t.r.id, true).then(refreshAll);
    }, function (e) {
      $("action-confirm").disabled = false;
      actionError("The server refused: " + e);
    });
  }

  /* ---- flash messages ----------------------------------------------------------------- */

  function flash(text, tone) {
    var box = $("flash") || document.body.appendChild(h("div", { id: "flash", class: "flash-box", role: "status" }));
    var el = h("div", { class: "flash flash-" + tone, text: text });
    box.appendChild(el);
    setTimeout(function () { if (el.parentNode) el.parentNode.removeChild(el); }, 8000);
  }

  /* ---- start -------------------------------------------------------------------------- */

  document.addEventListener("DOMContentLoaded", function () {
    $("halt-form").addEventListener("submit", submitHalt);
    $("action-form").addEventListener("submit", submitAction);
    $("action-cancel").addEventListener("click", function () { $("action-dialog").close(); actionTarget = null; });
    $("halt-cancel").addEventListener("click", function () { $("halt-dialog").close(); haltTarget = null; });
    $("logout").addEventListener("click", function () {
      /* behind the proxy, its session is what signs in: end it there */
      if (viaProxy()) { location.href = "/oauth2/sign_out"; return; }
      loggedOut("Logged out.");
    });
    window.addEventListener("hashchange", function () { if (S.me) route(); });
    if (location.search || /token/i.test(location.hash)) history.replaceState(null, "", location.pathname + "#/");
    if (!token()) {
      /* behind a single-sign-on proxy the session is enough: ask who we are */
      start().catch(function (e) {
        S.me = null;
        showLogin(e && e.status === 403 ? "Single sign-on refused: " + e : "");
      });
      return;
    }
    start().catch(function (e) { loggedOut("Sign-in refused: " + e); });
  });
})();
