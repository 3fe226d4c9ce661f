// The jobs panel of the Circles console: create or run a job from the editor, see every job's
// status change live (a `jobs` subscription: no polling), start, stop, delete, open a job's output,
// error and logs. The owner and admins may tick "every caller's" to see and stop everyone's jobs.
// A subscription dies with its socket: after a reconnect console.js signs in again and fires
// circles:identity, and the panel subscribes again (a new id) and reloads the list, so a job that
// changed while the page was disconnected shows its real status. No inline code.
(() => {
  "use strict";
  const { element, problem } = window.CirclesConsole;

  const $ = (id) => document.getElementById(id);
  const ui = {
    panel: $("jobs"), list: $("jobs-list"), count: $("jobs-count"), live: $("jobs-live"),
    refresh: $("jobs-refresh"), clear: $("jobs-clear"), error: $("jobs-error"), timeout: $("job-timeout"),
    all: $("jobs-all"), allLabel: $("jobs-all-label"), run: $("job-run"), create: $("job-create"),
  };
  const MANAGERS = ["owner", "admin"];
  const FINAL = ["finished", "error"];
  const RANK = { created: 0, dispatched: 1, started: 2, finished: 3, error: 3 };
  const LIST_LIMIT = 50;

  let me = null; // whoami while signed in
  let subscription = null; // the server's id of our `jobs` subscription on the current socket
  let generation = 0; // bumped on each sign-in / sign-out: answers of an older one are dropped
  const jobs = new Map(); // id -> job object (+ `logs` once opened, `open`, `fromEditor`)
  let reloadTimer = null;

  const call = (method, params) => window.CirclesConsole.call(method, params);

  function showError(error) {
    ui.error.hidden = !error;
    ui.error.textContent = error ? problem(error) : "";
  }

  const isFinal = (job) => FINAL.includes(job.status);
  const running = (job) => job.status === "dispatched" || job.status === "started";

  function elapsed(job) {
    if (job.elapsed_ms !== null && job.elapsed_ms !== undefined && isFinal(job)) return `${(job.elapsed_ms / 1000).toFixed(2)} s`;
    const since = job.started_at ? Date.parse(job.started_at) : job.startedHere;
    if (job.status === "started" && since) return `${((Date.now() - since) / 1000).toFixed(1)} s`;
    return "";
  }

  function describeError(error) {
    if (!error) return "";
    const where = error.line ? ` at line ${error.line}${error.column ? `, column ${error.column}` : ""}` : "";
    return `${error.kind || "execution"} error${where}: ${error.message}`;
  }

  // --- rendering ----------------------------------------------------------------------------------

  function button(text, className, onClick) {
    const node = element("button", className, text);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  function renderRow(job) {
    const row = element("tr", "job");
    row.dataset.job = job.id;
    row.dataset.status = job.status;
    const id = row.appendChild(element("td", "id"));
    id.append(element("code", "", job.id.slice(0, 8)));
    id.title = job.id + (job.caller_id && me && job.caller_id !== me.pubkey ? `\ncaller ${job.caller_id}` : "");
    const script = row.appendChild(element("td", "script", (job.script || "").split("\n").find((l) => l.trim()) || ""));
    script.title = job.script || "";
    const status = row.appendChild(element("td", "status")).appendChild(element("span", "job-status", job.status));
    status.dataset.status = job.status;
    status.title = job.error ? describeError(job.error) : "";
    row.append(element("td", "time", elapsed(job)));
    const actions = row.appendChild(element("td", "actions"));
    if (job.status === "created") actions.append(button("Start", "start", () => act(job, "start_job")));
    if (job.status === "created" || running(job)) actions.append(button("Stop", "stop", () => act(job, "stop_job")));
    actions.append(button(job.open ? "Hide" : "Details", "details", () => toggle(job)));
    if (!running(job)) actions.append(button("Delete", "delete", () => act(job, "delete_job")));
    return row;
  }

  function renderDetails(job) {
    const row = element("tr", "job-details");
    row.dataset.job = job.id;
    const cell = row.appendChild(element("td"));
    cell.colSpan = 5;
    if (job.status === "finished") {
      cell.append(element("div", "label", "output"), element("pre", "output", job.output === null ? "" : job.output));
    } else if (job.status === "error") {
      cell.append(element("div", "label", "error"), element("pre", "job-error", describeError(job.error)));
    }
    cell.append(element("div", "label", job.logs === undefined ? "logs (loading…)" : "logs"));
    const logs = cell.appendChild(element("pre", "logs", job.logs || ""));
    logs.scrollTop = logs.scrollHeight;
    return row;
  }

  function rowsOf(job) {
    return job.open ? [renderRow(job), renderDetails(job)] : [renderRow(job)];
  }

  function render() {
    const ordered = [...jobs.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
    ui.list.replaceChildren(...ordered.flatMap(rowsOf));
    ui.count.textContent = `(${jobs.size})`;
  }

  function renderJob(job) {
    const old = ui.list.querySelectorAll(`tr[data-job="${job.id}"]`);
    if (!old.length) { render(); return; }
    const fresh = rowsOf(job);
    old[0].replaceWith(...fresh);
    for (const extra of Array.from(old).slice(1)) extra.remove();
  }

  function tick() {
    for (const job of jobs.values()) {
      if (job.status !== "started") continue;
      const cell = ui.list.querySelector(`tr.job[data-job="${job.id}"] td.time`);
      if (cell) cell.textContent = elapsed(job);
    }
  }

  // --- talking to the server ----------------------------------------------------------------------

  const listParams = () => (ui.all.checked ? { limit: LIST_LIMIT, all: true } : { limit: LIST_LIMIT });

  async function load() {
    if (!me) return;
    const mine = generation;
    try {
      const listed = await call("list_jobs", listParams());
      if (mine !== generation) return;
      const keep = new Map(jobs);
      jobs.clear();
      for (const job of listed) {
        const before = keep.get(job.id);
        jobs.set(job.id, before ? { ...job, logs: before.logs, open: before.open, fromEditor: before.fromEditor } : job);
      }
      render();
      ui.panel.dataset.loaded = String(Date.now());
    } catch (error) {
      showError(error);
    }
  }

  function reloadSoon() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 200);
  }

  async function subscribe() {
    const mine = generation;
    subscription = null;
    ui.live.textContent = "";
    try {
      const id = await call("subscribe", ui.all.checked ? { topic: "jobs", all: true } : { topic: "jobs" });
      if (mine !== generation) return;
      subscription = id;
      ui.panel.dataset.subscription = id;
      ui.live.textContent = "· live";
    } catch (error) {
      showError(error);
    }
    await load(); // after subscribing: a change from now on is pushed, and the list is at least as new
  }

  async function resubscribe() {
    const old = subscription;
    generation += 1;
    if (old) call("unsubscribe", { subscription: old }).catch(() => {});
    await subscribe();
  }

  async function refresh(job) {
    try {
      const fresh = await call("get_job", { job_id: job.id });
      Object.assign(job, fresh);
      renderJob(job);
    } catch (error) {
      if (error.code === -32004) { jobs.delete(job.id); render(); } else showError(error);
    }
  }

  function onNotification(method, params) {
    if (method !== "subscription" || !params || !subscription || params.subscription !== subscription) return;
    const result = params.result || {};
    const job = jobs.get(result.job_id);
    if (!job) { reloadSoon(); return; } // created elsewhere (another tab, the CLI)
    if ((RANK[result.status] ?? -1) < (RANK[job.status] ?? -1) || (isFinal(job) && !isFinal(result))) return;
    if (result.status === "started" && job.status !== "started" && !job.started_at) job.startedHere = Date.now();
    job.status = result.status;
    job.updated_at = result.updated_at;
    if (result.logs && job.logs !== undefined) job.logs = job.logs ? `${job.logs}\n${result.logs}` : result.logs;
    if (isFinal(result)) {
      job.output = result.output;
      job.value = result.value;
      job.error = result.error;
      if (job.fromEditor && result.error && result.error.line) {
        window.CirclesConsole.markError(result.error.line, result.error.column, result.error.message);
      }
      refresh(job); // elapsed_ms, finished_at, and the logs of its last second
      if (job.open) loadLogs(job);
    }
    renderJob(job);
  }

  async function loadLogs(job) {
    try {
      const { logs } = await call("get_job_logs", { job_id: job.id });
      job.logs = logs || "";
      renderJob(job);
    } catch (error) {
      showError(error);
    }
  }

  function toggle(job) {
    job.open = !job.open;
    renderJob(job);
    if (job.open) loadLogs(job);
  }

  async function act(job, method) {
    showError(null);
    try {
      await call(method, { job_id: job.id });
      if (method === "delete_job") { jobs.delete(job.id); render(); } else await refresh(job);
    } catch (error) {
      showError(error);
      await refresh(job);
    }
  }

  async function createFromEditor(start) {
    const script = window.CirclesConsole.script();
    if (!script.trim()) return;
    const params = { script };
    if (ui.timeout.value) params.timeout = Number(ui.timeout.value);
    ui.run.disabled = ui.create.disabled = true;
    showError(null);
    try {
      const id = await call("create_job", params);
      const job = await call("get_job", { job_id: id });
      job.fromEditor = true;
      jobs.set(id, job); // known before it is started: its notifications find it
      render();
      if (start) await act(job, "start_job");
    } catch (error) {
      showError(error);
    } finally {
      ui.run.disabled = ui.create.disabled = false;
    }
  }

  async function clearFinished() {
    showError(null);
    try {
      await call("clear_all_jobs");
    } catch (error) {
      showError(error);
    }
    await load();
  }

  // --- who is signed in --------------------------------------------------------------------------

  function hide() {
    me = null;
    generation += 1;
    subscription = null;
    jobs.clear();
    ui.list.replaceChildren();
    ui.panel.hidden = ui.run.hidden = ui.create.hidden = true;
    delete ui.panel.dataset.subscription;
    showError(null);
  }

  document.addEventListener("circles:identity", (event) => {
    const who = event.detail;
    if (!who) { hide(); return; }
    const again = me && me.pubkey === who.pubkey && subscription; // a whoami refresh on the same socket
    me = who;
    ui.panel.hidden = ui.run.hidden = ui.create.hidden = false;
    ui.allLabel.hidden = !MANAGERS.includes(who.role);
    if (ui.allLabel.hidden) ui.all.checked = false;
    if (again) { load(); return; }
    generation += 1;
    subscribe();
  });

  window.CirclesConsole.onNotification(onNotification);
  ui.run.addEventListener("click", () => createFromEditor(true));
  ui.create.addEventListener("click", () => createFromEditor(false));
  ui.refresh.addEventListener("click", load);
  ui.clear.addEventListener("click", clearFinished);
  ui.all.addEventListener("change", resubscribe);
  setInterval(tick, 500);
})();
