// The live tail: polls for events newer than the newest row shown and adds
// them to the top of the list, until paused. Everything else works without
// JavaScript. Text goes in through textContent, never as HTML.
"use strict";
(function () {
  const table = document.getElementById("events");
  const button = document.getElementById("tail");
  const status = document.getElementById("tail-status");
  if (!table || !button) return;
  let paused = false;
  let newest = table.dataset.newest || "";
  button.addEventListener("click", function () {
    paused = !paused;
    button.textContent = paused ? "Resume live tail" : "Pause live tail";
    status.textContent = paused ? "paused" : "live";
  });
  function cell(row, text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    row.appendChild(td);
    return td;
  }
  async function poll() {
    if (!paused) {
      try {
        const response = await fetch("/console/tail?" + table.dataset.query + "&newer=" + encodeURIComponent(newest), {
          credentials: "same-origin",
          headers: { "Accept": "application/json" },
        });
        if (response.ok) {
          const data = await response.json();
          const body = table.tBodies[0];
          for (const event of data.events.reverse()) {
            const row = document.createElement("tr");
            row.className = "new";
            row.dataset.id = event.event_id;
            cell(row, event.received);
            const link = document.createElement("a");
            link.href = "/console/events/" + encodeURIComponent(event.event_id);
            link.textContent = event.event_id;
            cell(row, "").appendChild(link);
            cell(row, event.slug);
            const badge = document.createElement("span");
            badge.className = "state state-" + event.state;
            badge.textContent = event.state;
            cell(row, "").appendChild(badge);
            cell(row, String(event.attempts));
            cell(row, event.last_error || "", "error");
            body.insertBefore(row, body.firstChild);
          }
          if (data.newest) newest = data.newest;
          status.textContent = "live";
        }
      } catch (e) {
        status.textContent = "live tail: no answer";
      }
    }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
})();
