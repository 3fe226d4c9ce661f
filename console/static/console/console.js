// The Circles console: connect to this page's circle over WebSocket (same path), sign in with a
// browser wallet (EIP-1193: eth_requestAccounts, then personal_sign of the nonce text, signing in
// by address), run Rhai scripts with `play`, show results, logs and errors. No build step.
// What the server pushes (`{"method": "subscription"}` frames) goes to the listeners other panels
// register with CirclesConsole.onNotification (jobs.js).
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const root = $("console");
  const circle = root.dataset.circle;
  const socketUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/${circle}`;
  const ui = {
    connection: $("connection"), identity: $("identity"), signIn: $("sign-in"), signOut: $("sign-out"),
    script: $("script"), gutter: $("gutter"), mark: $("line-mark"), run: $("run"),
    errorMessage: $("error-message"), output: $("output"), clear: $("clear"),
  };

  // --- JSON-RPC over the WebSocket, reconnecting ---------------------------------------------

  let ws = null;
  let nextId = 1;
  const pending = new Map();
  const notificationListeners = [];
  let wantAddress = null; // the wallet address to sign in with again after a reconnect
  let retryTimer = null;
  let retryAttempt = 0; // failed attempts since the connection was last open

  // Reconnecting waits a random time between 0 and min(cap, base * 2^attempt) ("full jitter"):
  // every page of a circle loses the server at the same instant when it restarts, and must not
  // all come back at the same instant too.
  const RETRY_BASE_MS = 500;
  const RETRY_CAP_MS = 10000;
  const retryDelay = (attempt) => Math.random() * Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** attempt);

  function setState(state, text) {
    ui.connection.dataset.state = state;
    ui.connection.textContent = text || state;
  }

  function connect() {
    clearTimeout(retryTimer);
    setState("connecting", "connecting…");
    ws = new WebSocket(socketUrl);
    ws.addEventListener("open", async () => {
      retryAttempt = 0;
      setState("connected");
      if (wantAddress) {
        note("Reconnected: signing in again.");
        try { await signIn(wantAddress); } catch (error) { note(`Sign-in failed: ${describe(error)}`, true); }
      }
    });
    ws.addEventListener("message", (event) => {
      let messages;
      try { messages = [].concat(JSON.parse(event.data)); } catch { return; }
      for (const message of messages) {
        if (message && message.method && message.id === undefined) {
          for (const listener of notificationListeners) {
            try { listener(message.method, message.params); } catch (error) { console.error(error); }
          }
          continue;
        }
        const waiter = pending.get(message.id);
        if (!waiter) continue;
        pending.delete(message.id);
        if ("error" in message) waiter.reject(Object.assign(new Error(message.error.message), message.error));
        else waiter.resolve(message.result);
      }
    });
    ws.addEventListener("close", (event) => {
      for (const waiter of pending.values()) {
        waiter.reject(new Error(`connection closed (${event.code}${event.reason ? " " + event.reason : ""})`
          + " before the answer came; the request may or may not have run"));
      }
      pending.clear();
      showIdentity(null);
      if (event.code === 4404) {
        setState("not-found", "circle not found");
        note("This circle does not exist or was disabled (close 4404).", true);
        return;
      }
      const delay = retryDelay(retryAttempt);
      ui.connection.dataset.retry = `${retryAttempt} ${Math.round(delay)}`; // attempt, then ms
      retryAttempt += 1;
      setState("reconnecting", `disconnected (${event.code}) · retrying in ${(delay / 1000).toFixed(1)}s`);
      retryTimer = setTimeout(connect, delay);
    });
  }

  function call(method, params) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(new Error("not connected (reconnecting)"));
        return;
      }
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify(params === undefined ? { jsonrpc: "2.0", method, id } : { jsonrpc: "2.0", method, params, id }));
    });
  }

  // --- signing in with a wallet ------------------------------------------------------------------

  const utf8Hex = (text) =>
    "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");

  async function signIn(address) {
    if (!window.ethereum) throw new Error("no browser wallet found (install MetaMask or another EIP-1193 wallet)");
    if (!address) [address] = await window.ethereum.request({ method: "eth_requestAccounts" });
    if (!address) throw new Error("the wallet gave no account");
    const text = await call("fetch_nonce", { pubkey: address });
    const signature = await window.ethereum.request({ method: "personal_sign", params: [utf8Hex(text), address] });
    await call("authenticate", { pubkey: address, signature });
    wantAddress = address;
    showIdentity(await call("whoami"), address);
  }

  function showIdentity(me, address) {
    const signedIn = Boolean(me && me.authenticated);
    ui.identity.classList.toggle("signed-in", signedIn);
    ui.identity.textContent = signedIn ? `${address || me.pubkey.slice(0, 12) + "…"} · ${me.role}` : "signed out";
    ui.identity.title = signedIn ? `public key ${me.pubkey}` : "";
    ui.signIn.hidden = signedIn;
    ui.signOut.hidden = !signedIn;
    if (signedIn) setState("signed-in", `signed in · ${me.role}`);
    else if (ws && ws.readyState === WebSocket.OPEN) setState("connected");
    // Other panels (members.js) follow who is signed in.
    document.dispatchEvent(new CustomEvent("circles:identity", { detail: signedIn ? me : null }));
  }

  ui.signIn.addEventListener("click", async () => {
    ui.signIn.disabled = true;
    try { await signIn(); } catch (error) { note(`Sign-in failed: ${describe(error)}`, true); }
    finally { ui.signIn.disabled = false; }
  });

  ui.signOut.addEventListener("click", async () => {
    wantAddress = null;
    // Unlike a dropped socket (circles:identity with null, then a sign-in again), the caller is gone:
    // panels that keep state across a reconnect (records.js) forget it.
    document.dispatchEvent(new CustomEvent("circles:sign-out"));
    try { await call("logout"); } catch { /* closed: signed out anyway */ }
    showIdentity(null);
  });

  // --- the editor: line numbers, error line -------------------------------------------------------

  const lineHeight = () => parseFloat(getComputedStyle(ui.script).lineHeight) || 20;
  const paddingTop = () => parseFloat(getComputedStyle(ui.script).paddingTop) || 0;
  let errorLine = null;

  function renderGutter() {
    const count = ui.script.value.split("\n").length;
    const lines = [];
    for (let n = 1; n <= count; n++) {
      lines.push(`<div data-line="${n}"${n === errorLine ? ' class="error"' : ""}>${n}</div>`);
    }
    ui.gutter.innerHTML = lines.join("");
    syncScroll();
  }

  function syncScroll() {
    ui.gutter.scrollTop = ui.script.scrollTop;
    if (errorLine !== null) {
      ui.mark.style.top = `${paddingTop() + (errorLine - 1) * lineHeight() - ui.script.scrollTop}px`;
    }
  }

  function markError(line, column, message) {
    errorLine = line || null;
    ui.mark.hidden = errorLine === null;
    ui.errorMessage.hidden = false;
    ui.errorMessage.textContent = (line ? `line ${line}${column ? `, column ${column}` : ""}: ` : "") + message;
    renderGutter();
    if (line) { // put the caret where the engine stopped, and bring that line into view
      const lines = ui.script.value.split("\n");
      let offset = 0;
      for (let i = 0; i < Math.min(line - 1, lines.length); i++) offset += lines[i].length + 1;
      offset += Math.max(0, Math.min((column || 1) - 1, (lines[line - 1] || "").length));
      ui.script.focus();
      ui.script.setSelectionRange(offset, offset);
      const top = (line - 1) * lineHeight();
      if (top < ui.script.scrollTop || top > ui.script.scrollTop + ui.script.clientHeight - 2 * lineHeight()) {
        ui.script.scrollTop = Math.max(0, top - ui.script.clientHeight / 2);
      }
      syncScroll();
    }
  }

  function clearError() {
    if (errorLine === null && ui.errorMessage.hidden) return;
    errorLine = null;
    ui.mark.hidden = true;
    ui.errorMessage.hidden = true;
    renderGutter();
  }

  ui.script.addEventListener("input", () => { clearError(); renderGutter(); });
  ui.script.addEventListener("scroll", syncScroll);
  ui.script.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run();
    } else if (event.key === "Tab" && !event.shiftKey) {
      event.preventDefault();
      ui.script.setRangeText("  ", ui.script.selectionStart, ui.script.selectionEnd, "end");
      renderGutter();
    }
  });

  // --- running and showing results ---------------------------------------------------------------

  // A DOM element with an optional class and text (the panels build their rows with it).
  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // An RPC error as the panels show it: the script's message, or the error's message, code and reason.
  function problem(error) {
    if (!error) return "";
    if (error.code === -32000 && error.data) return error.data.message;
    const data = error.data && error.data.reason ? `: ${error.data.reason}` : "";
    return `${error.message}${error.code !== undefined ? ` (${error.code})` : ""}${data}`;
  }

  // A Rhai string literal: quotes and backslashes escaped, control characters as \xHH.
  function rhaiString(text) {
    let out = '"';
    for (const char of String(text)) {
      const code = char.codePointAt(0);
      if (char === "\\" || char === '"') out += "\\" + char;
      else if (char === "\n") out += "\\n";
      else if (char === "\t") out += "\\t";
      else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
      else out += char;
    }
    return out + '"';
  }

  function describe(error) {
    const code = error && error.code !== undefined ? ` (${error.code})` : "";
    const data = error && error.data ? ` ${JSON.stringify(error.data)}` : "";
    return `${error && error.message ? error.message : error}${code}${data}`;
  }

  function addEntry(kind) {
    const entry = element("li", `entry ${kind}`);
    ui.output.prepend(entry);
    return entry;
  }

  function note(text, bad) {
    addEntry(bad ? "error note" : "note").append(element("div", "", text));
  }

  async function run() {
    const script = ui.script.value;
    if (!script.trim()) return;
    clearError();
    const entry = addEntry("running");
    entry.append(element("div", "script", script.split("\n").find((l) => l.trim()) || script));
    const status = entry.appendChild(element("div", "meta", "running…"));
    ui.run.disabled = true;
    try {
      const result = await call("play", { script });
      entry.className = "entry ok";
      status.remove();
      if (result.logs && result.logs.length) {
        const logs = entry.appendChild(element("div", "logs"));
        for (const line of result.logs) logs.append(element("div", "", line));
      }
      entry.append(element("pre", "value", JSON.stringify(result.value, null, 2)));
      entry.append(element("div", "meta", `${result.elapsed_ms.toFixed(1)} ms · run ${result.run_id}`));
    } catch (error) {
      entry.className = "entry error";
      status.remove();
      if (error.code === -32000 && error.data) {
        const { kind, message, line, column } = error.data;
        const where = line ? `line ${line}${column ? `, column ${column}` : ""}` : "";
        entry.append(element("div", "where", `${kind} error${where ? " at " + where : ""}`));
        entry.append(element("pre", "message", message));
        markError(line, column, message);
      } else {
        entry.append(element("pre", "message", describe(error)));
        if (error.code === -32001) entry.append(element("div", "meta", "Sign in with your wallet first."));
      }
    } finally {
      ui.run.disabled = false;
    }
  }

  ui.run.addEventListener("click", run);
  ui.clear.addEventListener("click", () => { ui.output.textContent = ""; });

  // What other panels of the page use: the socket's JSON-RPC call, the identity check, the pushed
  // notifications (a subscription dies with its socket: panels subscribe again on circles:identity),
  // the editor's script and its error mark, and Rhai quoting for the scripts panels run.
  window.CirclesConsole = {
    call,
    element,
    problem,
    rhaiString,
    whoami: () => call("whoami").then((me) => { showIdentity(me, wantAddress); return me; }),
    onNotification: (listener) => { notificationListeners.push(listener); },
    script: () => ui.script.value,
    markError,
  };

  renderGutter();
  connect();
})();
