// The call log page: appends the rows the server draws (escaped there) as calls happen.
"use strict";

const seen = {calls: 0, sent: 0, busy: false, again: false};
const list = document.getElementById("calls");

function filter() {
  const needle = document.getElementById("filter").value.trim().toLowerCase();
  const showSent = document.getElementById("show-sent").checked;
  const onlyFailed = document.getElementById("only-failed").checked;
  let shown = 0;
  for (const row of list.querySelectorAll(".call")) {
    const text = row.querySelector("summary").textContent.toLowerCase();
    const visible = (!needle || text.includes(needle)) && (showSent || !row.classList.contains("sent"))
      && (!onlyFailed || row.classList.contains("failed"));
    row.hidden = !visible;
    if (visible) shown += 1;
  }
  document.getElementById("count").textContent = `${seen.calls} Web API calls, ${seen.sent} requests to the bot, ${shown} shown`;
}

async function more() {
  if (seen.busy) { seen.again = true; return; }
  seen.busy = true;
  try {
    do {
      seen.again = false;
      const response = await fetch(`/_ui/calls?since=${seen.calls}&sent=${seen.sent}`);
      const page = await response.json();
      if (page.calls < seen.calls || page.sent < seen.sent) { // the workspace was reset
        list.replaceChildren();
        seen.calls = 0; seen.sent = 0; seen.again = true;
        continue;
      }
      const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      list.insertAdjacentHTML("beforeend", page.html);  // drawn and escaped by the server
      seen.calls = page.calls;
      seen.sent = page.sent;
      filter();
      if (atBottom) window.scrollTo(0, document.body.scrollHeight);
    } while (seen.again);
  } finally {
    seen.busy = false;
  }
}

for (const id of ["filter", "show-sent", "only-failed"]) document.getElementById(id).addEventListener("input", filter);
more();
if (window.EventSource) new EventSource("/_ui/events").onmessage = more; else setInterval(more, 1000);
