"use strict";
// The queue page (issue 18): keyboard shortcuts, ticking rows for a change to all of them, and
// noticing new posts. Everything here only helps: without JavaScript every control is a plain
// form or link. No inline scripts: the page's Content-Security-Policy forbids them.
//
// Shortcuts: j/k next/previous row, o or Enter open it, a assign to me, h handled, n not
// relevant, x tick, u undo, ? help (Esc closes). None of them while typing in a field.
// New posts: every data-poll-seconds the page asks /api/queue/version how many posts its
// filters would show arrived since it was drawn; it says so, and reloads by itself only when
// nobody is in the middle of something (no ticked row, no field in use, help closed).
(function () {
  const table = document.getElementById("queue");
  if (!table) return;
  const help = document.getElementById("queue-help");
  const helpButton = document.getElementById("shortcuts-button");
  const live = document.getElementById("queue-live");
  const bulk = document.getElementById("bulk");
  const FOCUS_KEY = "listener.queue.focus"; // the row to come back to after a change
  const FRESH_KEY = "listener.queue.fresh"; // rows above this post id arrived while away
  const TEXT_INPUTS = /^(text|search|date|email|number|password|url|tel|time|datetime-local|month|week)$/;

  const rows = () => Array.from(table.querySelectorAll("tbody tr[data-post-id]"));
  const ticks = () => Array.from(table.querySelectorAll("input[name=post_id][type=checkbox]"));
  const current = () => table.querySelector("tbody tr.current");

  function typing(el) {
    if (!el || !el.tagName) return false;
    const tag = el.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select" || el.isContentEditable) return true;
    return tag === "input" && TEXT_INPUTS.test((el.getAttribute("type") || "text").toLowerCase());
  }

  // -- the current row ---------------------------------------------------------------------
  function setCurrent(row, focus) {
    rows().forEach((r) => {
      r.classList.toggle("current", r === row);
      r.removeAttribute("aria-current");
    });
    if (!row) return;
    row.setAttribute("aria-current", "true");
    if (focus) row.focus();
  }

  function move(step) {
    const list = rows();
    if (!list.length) return;
    const at = list.indexOf(current());
    const next = at < 0 ? 0 : Math.min(Math.max(at + step, 0), list.length - 1);
    setCurrent(list[next], true);
  }

  function remember(postId, index) {
    try {
      sessionStorage.setItem(FOCUS_KEY, JSON.stringify({ path: location.pathname, id: postId, index }));
    } catch (e) { /* storage off: the page just starts at the top */ }
  }

  function restore() {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(FOCUS_KEY) || "null");
      sessionStorage.removeItem(FOCUS_KEY);
    } catch (e) { return; }
    if (!saved || saved.path !== location.pathname) return;
    const list = rows();
    if (!list.length) return;
    const same = list.find((r) => r.dataset.postId === String(saved.id));
    setCurrent(same || list[Math.min(Math.max(saved.index || 0, 0), list.length - 1)], true);
  }

  // a change from a row (mouse or key) comes back to that row, or to where it was
  table.addEventListener("submit", (event) => {
    const row = event.target.closest("tr[data-post-id]");
    if (row) remember(row.dataset.postId, rows().indexOf(row));
  });
  table.addEventListener("focusin", (event) => {
    const row = event.target.closest("tbody tr[data-post-id]");
    if (row && row !== current()) setCurrent(row, false);
  });

  // submit as a click would (the submit event fires, so the row is remembered); old browsers
  // without requestSubmit get the click itself
  function submit(form, button) {
    if (form.requestSubmit) form.requestSubmit(button);
    else if (button) button.click();
    else form.submit();
  }

  function press(row, selector) {
    const button = row && row.querySelector(selector);
    if (!button) return false;
    remember(row.dataset.postId, rows().indexOf(row));
    submit(button.form, button);
    return true;
  }

  function openPost(row) {
    const link = row && row.querySelector("a.post-link");
    if (link) location.assign(link.href);
  }

  // -- ticking rows ------------------------------------------------------------------------
  const selectAll = document.getElementById("select-all");
  const selectAllLabel = document.getElementById("select-all-label");
  const tickedCount = document.getElementById("selected-count");

  function updateSelection() {
    if (!bulk) return;
    const boxes = ticks();
    const ticked = boxes.filter((b) => b.checked).length;
    boxes.forEach((b) => b.closest("tr").classList.toggle("ticked", b.checked));
    if (selectAll) {
      selectAll.checked = ticked > 0 && ticked === boxes.length;
      selectAll.indeterminate = ticked > 0 && ticked < boxes.length;
    }
    if (tickedCount) {
      tickedCount.textContent = ticked ? `${ticked} ticked:` : "tick posts to change them together:";
    }
    bulk.querySelectorAll("button[name=apply]").forEach((b) => { b.disabled = ticked === 0; });
  }

  function tick(row) {
    const box = row && row.querySelector("input[name=post_id][type=checkbox]");
    if (!box) return;
    box.checked = !box.checked;
    updateSelection();
  }

  if (bulk) {
    if (selectAllLabel) selectAllLabel.hidden = false;
    if (selectAll) {
      selectAll.addEventListener("change", () => {
        ticks().forEach((b) => { b.checked = selectAll.checked; });
        updateSelection();
      });
    }
    table.addEventListener("change", (event) => {
      if (event.target.matches("input[name=post_id]")) updateSelection();
    });
    bulk.addEventListener("submit", () => {
      const row = current();
      if (row) remember(row.dataset.postId, rows().indexOf(row));
    });
    updateSelection();
  }

  // -- help --------------------------------------------------------------------------------
  let before = null; // where focus was when help opened

  function showHelp(open) {
    if (!help) return;
    help.hidden = !open;
    if (helpButton) helpButton.setAttribute("aria-expanded", String(open));
    if (open) {
      before = document.activeElement;
      const close = document.getElementById("shortcuts-close");
      if (close) close.focus();
    } else if (before && before.focus) {
      before.focus();
    }
  }

  if (helpButton) {
    helpButton.hidden = false;
    helpButton.addEventListener("click", () => showHelp(help.hidden));
  }
  const closeButton = document.getElementById("shortcuts-close");
  if (closeButton) closeButton.addEventListener("click", () => showHelp(false));

  function undo() {
    const form = document.getElementById("undo-form");
    if (!form) return;
    const row = current();
    const posts = (form.dataset.posts || "").split(",").filter(Boolean);
    remember(posts.length === 1 ? posts[0] : row && row.dataset.postId,
             row ? rows().indexOf(row) : 0);
    submit(form, form.querySelector("button[type=submit]"));
  }

  // -- keys --------------------------------------------------------------------------------
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) return;
    if (event.key === "Escape" && help && !help.hidden) {
      showHelp(false);
    } else if (event.key === "?") {
      showHelp(help ? help.hidden : false);
    } else if (event.key === "j") {
      move(1);
    } else if (event.key === "k") {
      move(-1);
    } else if (event.key === "o" || (event.key === "Enter" && event.target === current())) {
      openPost(current());
    } else if (event.key === "a") {
      press(current(), "button[data-action=assign-me]");
    } else if (event.key === "h") {
      press(current(), "button[data-status=handled]");
    } else if (event.key === "n") {
      press(current(), "button[data-status=not_relevant]");
    } else if (event.key === "x") {
      tick(current());
    } else if (event.key === "u") {
      undo();
    } else {
      return;
    }
    event.preventDefault();
  });

  // -- new posts ---------------------------------------------------------------------------
  function markFresh() {
    let after = null;
    try {
      after = sessionStorage.getItem(FRESH_KEY);
      sessionStorage.removeItem(FRESH_KEY);
    } catch (e) { return; }
    if (after === null) return;
    rows().filter((r) => Number(r.dataset.postId) > Number(after)).forEach((r) => {
      r.classList.add("fresh");
      const when = r.querySelector("td.when");
      if (when) {
        const badge = document.createElement("span");
        badge.className = "badge fresh-badge";
        badge.textContent = "new since you looked";
        when.prepend(badge, document.createElement("br"));
      }
    });
  }

  function busy() {
    const ticked = ticks().some((b) => b.checked);
    return ticked || typing(document.activeElement) || (help && !help.hidden);
  }

  function showNew() {
    try { sessionStorage.setItem(FRESH_KEY, live.dataset.since); } catch (e) { /* no marks */ }
    const row = current();
    if (row) remember(row.dataset.postId, rows().indexOf(row));
    location.reload();
  }

  function announce(data) {
    const n = `${data.arrived}${data.arrived >= data.arrived_capped_at ? "+" : ""}`;
    live.replaceChildren(`${n} new post${data.arrived === 1 ? "" : "s"} — `);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.id = "show-new";
    button.textContent = "show them";
    button.addEventListener("click", showNew);
    live.append(button);
    live.dataset.arrived = String(data.arrived);
    if (!busy()) showNew();
  }

  let asking = false;
  function poll() {
    if (asking || document.hidden) return;
    asking = true;
    fetch(live.dataset.versionUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((data) => { if (data && data.arrived > 0) announce(data); })
      .catch(() => { /* offline for a moment: the next round asks again */ })
      .finally(() => { asking = false; });
  }

  if (live && live.dataset.versionUrl) {
    const seconds = Math.max(Number(live.dataset.pollSeconds) || 20, 5);
    setInterval(poll, seconds * 1000);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
  }

  markFresh();
  restore();
})();
