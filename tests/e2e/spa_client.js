// What a single-page app does with the API: fetch in cors mode, a Bearer header, JSON bodies,
// ReadableStream for NDJSON. Loaded into a page on the app origin by tests/e2e/test_browser_app.py.
// Every call resolves to a plain object the test can inspect: {status, json, text, headers}
// (headers: only those JavaScript may read, i.e. CORS-safelisted or exposed), or {error} when
// the browser refused to hand the answer over (a CORS failure or a network error).
"use strict";

window.api = {
  base: "",
  token: null,
  watches: {},

  headers(extra = {}, token = api.token, json = false) {
    const h = {...extra};
    if (token) h["authorization"] = "Bearer " + token;
    if (json) h["content-type"] = "application/json";
    return h;
  },

  async call(method, path, {body, headers = {}, token = api.token, base = api.base,
                            timeoutMs = 15000} = {}) {
    const init = {method, mode: "cors", headers: api.headers(headers, token, body !== undefined),
                  signal: AbortSignal.timeout(timeoutMs)};
    if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
    const started = performance.now();
    try {
      const r = await fetch(base + path, init);
      const text = await r.text();
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
      return {status: r.status, json, text: text.slice(0, 300),
              headers: Object.fromEntries(r.headers.entries()),
              ms: performance.now() - started};
    } catch (e) {
      return {error: String(e), ms: performance.now() - started};
    }
  },

  // Read newline-delimited JSON from a ReadableStream, calling onItem for each line.
  // Register and log in; later calls carry the access token.
  async signUp(email, password = "correct horse battery") {
    const register = await api.call("POST", "/api/v1/auth/register",
                                    {body: {email, password, name: "Spa"}, token: null});
    const login = await api.call("POST", "/api/v1/auth/login",
                                 {body: {email, password}, token: null});
    api.token = login.json ? login.json.access_token : null;
    return {register, login};
  },

  async readNdjson(response, onItem) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line) onItem(JSON.parse(line));
      }
    }
    if (buffer.trim()) onItem(JSON.parse(buffer));
  },

  async stream(path) {
    try {
      const r = await fetch(api.base + path, {mode: "cors", headers: api.headers()});
      const items = [];
      if (r.ok) await api.readNdjson(r, (item) => items.push(item));
      return {status: r.status, items, contentType: r.headers.get("content-type")};
    } catch (e) {
      return {error: String(e)};
    }
  },

  // Open a watch stream in the background; api.watches[name] collects its events.
  openWatch(name, base = api.base) {
    const controller = new AbortController();
    const watch = {events: [], status: null, error: null, controller};
    api.watches[name] = watch;
    fetch(base + "/api/v1/users/me/tasks:watch", {mode: "cors", headers: api.headers(),
                                                   signal: controller.signal})
      .then(async (r) => {
        watch.status = r.status;
        await api.readNdjson(r, (event) => watch.events.push(event));
      })
      .catch((e) => { watch.error = String(e); });
    return name;
  },

  closeWatch(name) {
    api.watches[name].controller.abort();
  },

  // The protocol each finished request used ("h2", "http/1.1"), from Resource Timing.
  protocols() {
    return performance.getEntriesByType("resource").map((e) => [e.name, e.nextHopProtocol]);
  },
};
