// The members panel of the Circles console, for the circle's owner and its admins. Everything it
// does is a script run with `play` (circle::members, add_member, set_role, remove_member), so the
// server's rules apply: an admin sees admins' rows read-only and cannot add one. No inline code.
(() => {
  "use strict";
  const { element, problem } = window.CirclesConsole;

  const $ = (id) => document.getElementById(id);
  const ui = {
    panel: $("members"), list: $("members-list"), count: $("members-count"), refresh: $("members-refresh"),
    form: $("member-add"), key: $("member-key"), name: $("member-name"), role: $("member-role"),
    add: $("member-add-button"), error: $("members-error"),
  };
  const MANAGERS = ["owner", "admin"];
  const ROLES = ["admin", "member", "guest"];
  let me = null; // whoami of the signed-in key, while it is an owner or admin

  const rhaiString = (text) => window.CirclesConsole.rhaiString(text);

  async function run(script) {
    const result = await window.CirclesConsole.call("play", { script });
    return result.value;
  }

  function showError(error) {
    ui.error.hidden = !error;
    ui.error.textContent = error ? problem(error) : "";
  }

  // Whether the signed-in key may change a row with this role (the server checks it again).
  const mayChange = (role) => role !== "owner" && (me.role === "owner" || role !== "admin");

  function renderRow(member) {
    const key = member.pubkey || member.address;
    const row = element("tr");
    row.dataset.key = key;
    row.dataset.role = member.role;
    const cell = row.appendChild(element("td", "key"));
    cell.append(element("code", "", key.length > 20 ? `${key.slice(0, 10)}…${key.slice(-8)}` : key));
    cell.title = member.pubkey ? `${member.pubkey}\n${member.address}` : `${member.address} (added by address)`;
    row.append(element("td", "name", member.name || ""));
    const roleCell = row.appendChild(element("td", "role"));
    const actions = row.appendChild(element("td", "actions"));
    if (!mayChange(member.role)) {
      roleCell.append(element("span", "role-fixed", member.role));
      return row;
    }
    const select = roleCell.appendChild(element("select", "role-select"));
    select.setAttribute("aria-label", `role of ${key}`);
    for (const role of ROLES) {
      if (role === "admin" && me.role !== "owner") continue;
      const option = select.appendChild(element("option", "", role));
      option.value = role;
      option.selected = role === member.role;
    }
    select.addEventListener("change", () => change(select, `circle::set_role(${rhaiString(key)}, ${rhaiString(select.value)})`));
    const remove = actions.appendChild(element("button", "remove", "Remove"));
    remove.type = "button";
    remove.addEventListener("click", () => {
      if (remove.dataset.confirm !== "yes") { // a second click removes
        remove.dataset.confirm = "yes";
        remove.textContent = "Confirm remove";
        return;
      }
      change(remove, `circle::remove_member(${rhaiString(key)})`);
    });
    return row;
  }

  async function change(control, script) {
    control.disabled = true;
    try {
      await run(script);
      showError(null);
    } catch (error) {
      showError(error);
    }
    await load();
  }

  async function load() {
    if (!me) return;
    try {
      const members = await run("circle::members()");
      ui.list.replaceChildren(...members.map(renderRow));
      ui.count.textContent = `(${members.length})`;
      ui.panel.dataset.loaded = String(Date.now());
    } catch (error) {
      showError(error);
      if (error.code === -32003) hide(); // no longer allowed to play at all
    }
  }

  function hide() {
    me = null;
    ui.panel.hidden = true;
    ui.list.replaceChildren();
    showError(null);
  }

  document.addEventListener("circles:identity", (event) => {
    const who = event.detail;
    if (!who || !MANAGERS.includes(who.role)) { hide(); return; }
    me = who;
    ui.panel.hidden = false;
    ui.panel.dataset.viewer = who.role;
    for (const option of ui.role.options) { // an admin may not add admins: not offered
      option.hidden = option.disabled = option.value === "admin" && who.role !== "owner";
    }
    if (ui.role.selectedOptions[0] && ui.role.selectedOptions[0].disabled) ui.role.value = "member";
    load();
  });

  ui.refresh.addEventListener("click", async () => {
    // The role may have changed since sign-in: ask again, which re-opens or hides the panel.
    try { await window.CirclesConsole.whoami(); } catch (error) { showError(error); }
  });

  ui.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = ui.key.value.trim();
    if (!key) return;
    const name = ui.name.value.trim();
    const args = [rhaiString(key), rhaiString(ui.role.value)].concat(name ? [rhaiString(name)] : []);
    ui.add.disabled = true;
    try {
      const added = await run(`circle::add_member(${args.join(", ")})`);
      showError(added ? null : { message: "already a member with that role" });
      ui.key.value = "";
      ui.name.value = "";
    } catch (error) {
      showError(error);
    } finally {
      ui.add.disabled = false;
    }
    await load();
  });
})();
