// The live records panel of the Circles console: pick a collection (and a key prefix), see its
// records (key, data, version, updated by) change as anyone writes them: a `records` subscription,
// no polling. Loading reads the circle's head first (`records_head`), then the records (`db::list`
// run with `play`), then subscribes with `since` = that head: a write made between the read and
// the subscription is pushed, never missed (one already in the list is applied again, harmlessly).
// Every change seen moves `since` on; after a reconnect (console.js signs in again and fires
// circles:identity) the panel subscribes again with it and gets exactly what it missed. When the
// server no longer keeps those changes (-32006) it loads everything again. No inline code.
(() => {
  "use strict";
  const { element, problem } = window.CirclesConsole;

  const $ = (id) => document.getElementById(id);
  const ui = {
    panel: $("records"), list: $("records-list"), count: $("records-count"), live: $("records-live"),
    form: $("records-watch"), collection: $("records-collection"), prefix: $("records-prefix"),
    watch: $("records-watch-button"), error: $("records-error"),
  };
  const LIST_LIMIT = 100;
  const COMPACTED = -32006;

  let me = null; // whoami while signed in
  let viewer = null; // the pubkey the rows were read for (a different one reads them again)
  let watched = null; // { collection, prefix } while watching
  let subscription = null; // the server's id of our `records` subscription on the current socket
  let lastSeq = null; // the latest change applied (or the head the list was read at)
  let truncated = false; // the first read had LIST_LIMIT rows: there may be more
  let generation = 0; // bumped when what is watched changes: answers of an older one are dropped
  const rows = new Map(); // key -> { data, version, updated_by }

  const call = (method, params) => window.CirclesConsole.call(method, params);
  const quote = (text) => window.CirclesConsole.rhaiString(text);

  function showError(error) {
    ui.error.hidden = !error;
    ui.error.textContent = error ? problem(error) : "";
  }

  // --- rendering ----------------------------------------------------------------------------------

  function renderRow(key, record, fresh) {
    const row = element("tr", fresh ? "record fresh" : "record");
    row.dataset.key = key;
    row.dataset.version = String(record.version);
    row.appendChild(element("td", "key")).append(element("code", "", key));
    const data = JSON.stringify(record.data);
    const dataCell = row.appendChild(element("td", "data"));
    dataCell.append(element("code", "", data));
    dataCell.title = JSON.stringify(record.data, null, 2);
    row.append(element("td", "version", String(record.version)));
    const by = record.updated_by || "";
    const byCell = row.appendChild(element("td", "updated-by", by.length > 20 ? `${by.slice(0, 10)}…${by.slice(-6)}` : by));
    byCell.title = by;
    return row;
  }

  function render(freshKey) {
    const keys = [...rows.keys()].sort();
    ui.list.replaceChildren(...keys.map((key) => renderRow(key, rows.get(key), key === freshKey)));
    ui.count.textContent = `(${rows.size}${truncated ? "+" : ""})`;
    ui.count.title = truncated ? `the first ${LIST_LIMIT} keys were read, then the changes since` : "";
  }

  function showLive() {
    ui.live.textContent = subscription ? `· live after seq ${lastSeq}` : watched ? "· reconnecting…" : "";
    if (lastSeq !== null) ui.panel.dataset.seq = String(lastSeq);
    if (subscription) ui.panel.dataset.subscription = subscription;
    else delete ui.panel.dataset.subscription;
  }

  // --- talking to the server ----------------------------------------------------------------------

  function listScript({ collection, prefix }) {
    const args = [quote(collection), String(LIST_LIMIT)].concat(prefix ? [quote(prefix)] : []);
    return `db::list(${args.join(", ")})`;
  }

  async function subscribe(mine) {
    const params = { topic: "records", collection: watched.collection, since: lastSeq };
    if (watched.prefix) params.prefix = watched.prefix;
    const id = await call("subscribe", params);
    if (mine !== generation) { call("unsubscribe", { subscription: id }).catch(() => {}); return; }
    subscription = id;
    showLive();
  }

  // Read everything again: the head, then the records, then subscribe after that head.
  async function load() {
    const mine = ++generation;
    const old = subscription;
    subscription = null;
    if (old) call("unsubscribe", { subscription: old }).catch(() => {});
    showError(null);
    showLive();
    try {
      const head = await call("records_head");
      const listed = (await call("play", { script: listScript(watched) })).value || [];
      if (mine !== generation) return;
      rows.clear();
      for (const record of listed) rows.set(record.key, record);
      truncated = listed.length >= LIST_LIMIT;
      lastSeq = head.seq;
      viewer = me.pubkey;
      ui.panel.dataset.collection = watched.collection;
      render();
      await subscribe(mine);
      ui.panel.dataset.loaded = String(Date.now());
    } catch (error) {
      if (mine === generation) showError(error);
    }
  }

  // After a reconnect: the same rows, and the changes after the last one applied.
  async function resume() {
    const mine = generation;
    try {
      await subscribe(mine);
    } catch (error) {
      if (mine !== generation) return;
      if (error.code === COMPACTED || (error.data && error.data.field === "since")) await load();
      else showError(error);
    }
  }

  function onNotification(method, params) {
    if (method !== "subscription" || !params || !subscription || params.subscription !== subscription) return;
    const change = params.result || {};
    if (typeof change.seq !== "number" || (lastSeq !== null && change.seq <= lastSeq)) return; // seen
    lastSeq = change.seq;
    if (change.op === "delete") rows.delete(change.key);
    else rows.set(change.key, { data: change.data, version: change.version, updated_by: change.updated_by });
    render(change.key);
    showLive();
  }

  // --- who is signed in --------------------------------------------------------------------------

  function forget() {
    generation += 1;
    watched = viewer = subscription = lastSeq = null;
    rows.clear();
    ui.list.replaceChildren();
    ui.count.textContent = "";
    delete ui.panel.dataset.seq;
    delete ui.panel.dataset.collection;
    showLive();
    showError(null);
  }

  document.addEventListener("circles:identity", (event) => {
    const who = event.detail;
    if (!who) { // the socket closed (or signed out): keep the rows, to resume after them
      me = null;
      subscription = null;
      ui.panel.hidden = rows.size === 0 && !watched;
      showLive();
      return;
    }
    const again = me && me.pubkey === who.pubkey; // a whoami refresh on the same socket
    me = who;
    ui.panel.hidden = false;
    if (again || !watched) return;
    if (viewer === who.pubkey && lastSeq !== null) resume();
    else load();
  });

  document.addEventListener("circles:sign-out", () => { forget(); ui.panel.hidden = true; });

  ui.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const collection = ui.collection.value.trim();
    if (!collection || !me) return;
    watched = { collection, prefix: ui.prefix.value };
    ui.watch.disabled = true;
    try { await load(); } finally { ui.watch.disabled = false; }
  });

  window.CirclesConsole.onNotification(onNotification);
})();
