// Fanout console: live refresh over server-sent events, confirmations,
// select-all, busy buttons. Pages work without this script.
(function () {
  "use strict";
  const body = document.body;
  const live = body.getAttribute("data-live");

  // Someone is typing, has a selection checked, or has a <details> toggled:
  // refreshing now would lose it, so wait for the next change.
  function busy() {
    const a = document.activeElement;
    if (a && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName) && a.type !== "submit") return true;
    return document.querySelector("main input[type=checkbox]:checked") !== null;
  }

  let inFlight = false;
  let pending = false;
  async function refresh() {
    if (inFlight) { pending = true; return; }
    if (busy() || document.hidden) return;
    inFlight = true;
    try {
      const r = await fetch(location.href, { headers: { "Accept": "text/html" }, credentials: "same-origin" });
      if (r.ok) {
        const doc = new DOMParser().parseFromString(await r.text(), "text/html");
        const next = doc.getElementById("content");
        const cur = document.getElementById("content");
        if (next && cur && !busy()) {
          // Keep collapsed/expanded JSON blocks as the reader left them.
          const open = Array.from(cur.querySelectorAll("details")).map(d => d.open);
          cur.replaceWith(next);
          next.querySelectorAll("details").forEach((d, i) => { if (i < open.length) d.open = open[i]; });
          wire(next);
        }
      }
    } catch (_) { /* the next change retries */ }
    inFlight = false;
    if (pending) { pending = false; refresh(); }
  }

  if (live && window.EventSource) {
    const es = new EventSource(live);
    es.addEventListener("change", refresh);
    es.onopen = () => body.classList.add("live");
    es.onerror = () => body.classList.remove("live");
    // Browsers allow six HTTP/1.1 connections per host: a page kept in the
    // back/forward cache must not keep its stream (and a socket) open.
    window.addEventListener("pagehide", () => es.close());
  }

  function wire(root) {
    root.querySelectorAll("[data-confirm]").forEach(el => {
      el.addEventListener("click", e => { if (!confirm(el.getAttribute("data-confirm"))) e.preventDefault(); });
    });
    root.querySelectorAll("[data-select-all]").forEach(el => {
      el.addEventListener("change", () => {
        const form = el.closest("form");
        form.querySelectorAll("input[name=" + el.getAttribute("data-select-all") + "]").forEach(c => { c.checked = el.checked; });
      });
    });
    root.querySelectorAll("form[data-busy]").forEach(f => {
      f.addEventListener("submit", () => {
        f.querySelectorAll("button").forEach(b => { b.disabled = true; });
        const p = document.createElement("p");
        p.className = "muted";
        p.textContent = f.getAttribute("data-busy");
        f.appendChild(p);
      });
    });
  }
  wire(document);
})();
