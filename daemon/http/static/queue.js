// The queue, live: every two seconds the rows are read again (with the page's filters) and
// redrawn.  Every string from a job goes in as text (textContent), never as markup.
"use strict";
(function () {
  const body = document.getElementById("jobs");
  const nodes = document.getElementById("nodes");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const filters = new URLSearchParams(window.location.search);

  function cell(row, text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text == null ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  function action(id, what, label) {
    const form = document.createElement("form");
    form.method = "post";
    form.action = "/jobs/" + id + "/" + what;
    const token = document.createElement("input");
    token.type = "hidden"; token.name = "csrf"; token.value = csrf;
    const button = document.createElement("button");
    button.type = "submit"; button.textContent = label;
    form.append(token, button);
    return form;
  }

  function row(job) {
    const tr = document.createElement("tr");
    tr.dataset.jobId = job.id;
    tr.dataset.status = job.status;
    cell(tr, job.id);
    let file = document.createTextNode(job.name);
    if (job.status === "done") {
      file = document.createElement("a");
      file.href = "/jobs/" + job.id;
      file.textContent = job.name;
    }
    cell(tr, file, "file");
    const badge = document.createElement("span");
    badge.className = "badge st-" + job.status;
    badge.textContent = job.status;
    cell(tr, badge, "status");
    const bar = document.createElement("progress");
    bar.max = 1; bar.value = job.progress;
    bar.setAttribute("aria-label", "progress of " + job.name);
    bar.textContent = Math.round(job.progress * 100) + "%";
    cell(tr, bar);
    cell(tr, job.eta);
    cell(tr, job.profile);
    cell(tr, job.node);
    cell(tr, job.error, "error");
    const acts = cell(tr, "", "actions");
    if (job.can_requeue) acts.appendChild(action(job.id, "requeue", "Requeue"));
    if (job.can_cancel) acts.appendChild(action(job.id, "cancel", "Cancel"));
    return tr;
  }

  function node(n) {
    const li = document.createElement("li");
    li.dataset.node = n.node;
    const badge = document.createElement("span");
    badge.className = "badge " + (n.alive ? "st-done" : "st-failed");
    badge.textContent = n.alive ? "running" : "stopped";
    const more = document.createElement("span");
    more.className = "muted";
    more.textContent = (n.host || "") + (n.plan ? " · " + n.plan : "");
    li.append(badge, " " + n.node + " ", more);
    return li;
  }

  async function refresh() {
    try {
      const answer = await fetch("/ui/queue.json?" + filters.toString(), {credentials: "same-origin"});
      if (answer.status === 401) { window.location = "/login?next=/"; return; }
      if (!answer.ok) return;
      const data = await answer.json();
      const focused = document.activeElement && document.activeElement.closest("tr");
      if (focused && body.contains(focused)) return;  // never pull a row from under a keyboard
      body.replaceChildren(...data.jobs.map(row));
      nodes.replaceChildren(...data.nodes.map(node));
      const empty = document.getElementById("empty");
      if (empty) empty.hidden = data.jobs.length > 0;
    } catch (e) { /* the server restarts: try again next time */ }
  }
  window.setInterval(refresh, 2000);
})();
