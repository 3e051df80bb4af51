// The sandbox page: shows what the server draws (escaped HTML fragments) and sends what
// the person does to /_ui/*, where it becomes the signed request Slack would send.
// Text from the page itself only ever goes into textContent.
"use strict";

const state = {
  as: null, place: null, thread: null, version: -1, generation: -1,
  modalKey: null, people: "", seen: {}, known: {}, busy: false, dirty: false, lastPlace: null,
  // Bumped whenever the person moves (user, place, thread): an answer to an older
  // question is dropped rather than drawn over where they are now.
  moves: 0,
};

function move(changes) {
  Object.assign(state, changes);
  state.moves += 1;
  writeUrl();
}

const $ = (selector, root = document) => root.querySelector(selector);

function readUrl() {
  const query = new URLSearchParams(location.search);
  state.as = query.get("as");
  state.place = query.get("in");
  state.thread = query.get("thread");
}

function writeUrl() {
  const query = new URLSearchParams();
  if (state.as) query.set("as", state.as);
  if (state.place) query.set("in", state.place);
  if (state.thread) query.set("thread", state.thread);
  history.replaceState(null, "", "?" + query.toString());
}

function toast(message, kind = "error") {
  const box = $("#toast");
  box.textContent = message;
  box.className = kind;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 8000);
}

async function post(path, body) {
  try {
    const response = await fetch(path, {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({as: state.as, ...body}),
    });
    const answer = await response.json();
    if (!answer.ok) toast(answer.error || "that did not work");
    return answer;
  } catch (error) {
    toast("the sandbox does not answer: " + error);
    return {ok: false, error: String(error)};
  } finally {
    refresh();
  }
}

// -- drawing -------------------------------------------------------------------------
function setHTML(element, html) {
  // `html` is drawn by the server, every text in it escaped there.
  if (element._html === html) return false;
  element.innerHTML = html;
  element._html = html;
  return true;
}

async function refresh() {
  if (state.busy) { state.dirty = true; return; }
  state.busy = true;
  try {
    do {
      state.dirty = false;
      const moves = state.moves;
      const query = new URLSearchParams({as: state.as || "", in: state.place || "", thread: state.thread || ""});
      const response = await fetch("/_ui/state?" + query.toString());
      const snapshot = await response.json();
      if (moves !== state.moves) { state.dirty = true; continue; }
      if (!response.ok) {
        toast(snapshot.error || "the sandbox could not draw this page");
        if (state.as) { move({as: null}); state.dirty = true; }
        continue;
      }
      apply(snapshot);
    } while (state.dirty);
  } catch (error) {
    toast("the sandbox does not answer: " + error);
  } finally {
    state.busy = false;
  }
}

function apply(snapshot) {
  const placeChanged = state.lastPlace !== snapshot.viewer.id + "|" + snapshot.place.id;
  state.as = snapshot.viewer.id;
  state.place = snapshot.place.id;
  state.lastPlace = snapshot.viewer.id + "|" + snapshot.place.id;
  state.version = snapshot.version;
  state.generation = snapshot.generation;
  if (snapshot.thread === null) state.thread = null;
  writeUrl();
  drawPeople(snapshot.people, snapshot.viewer.id);

  setHTML($("#sidebar"), snapshot.sidebar);
  markUnread(snapshot.viewer.id, snapshot.place.id);
  setHTML($("#title"), snapshot.place.title);
  const tabs = $("#tabs");
  tabs.hidden = !(snapshot.place.id === "home" || snapshot.place.id === "dm");
  for (const tab of tabs.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.place === snapshot.place.id);

  const list = $("#messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  if (setHTML(list, snapshot.main) && (atBottom || placeChanged) && snapshot.place.id !== "home") {
    list.scrollTop = list.scrollHeight;
  }
  if (placeChanged && snapshot.place.id === "home") list.scrollTop = 0;
  list.classList.toggle("home-tab", snapshot.place.id === "home");

  const composer = $("#composer");
  composer.hidden = snapshot.place.composer === null;
  if (snapshot.place.composer !== null) $("#compose").placeholder = snapshot.place.composer + " or type /baton …";

  const thread = $("#thread");
  thread.hidden = snapshot.thread === null;
  document.body.classList.toggle("with-thread", snapshot.thread !== null);
  if (snapshot.thread !== null) {
    const body = $("#thread-body");
    const threadAtBottom = body.scrollHeight - body.scrollTop - body.clientHeight < 60;
    if (setHTML(body, snapshot.thread) && threadAtBottom) body.scrollTop = body.scrollHeight;
  }

  const root = $("#modal-root");
  if (snapshot.modal === null) {
    if (root._html) { root.innerHTML = ""; root._html = ""; }  // closed, or another person's
    state.modalKey = null;
  } else if (snapshot.modal.key !== state.modalKey) {
    state.modalKey = snapshot.modal.key;
    setHTML(root, snapshot.modal.html);
    const first = root.querySelector(".bk-field .error.from-app")?.closest(".bk-field")?.querySelector(".bk-control")
      || root.querySelector("input.bk-control, textarea.bk-control");
    if (first) first.focus();
  }
  drawClock(snapshot.clock);
  if (!snapshot.bot) toast("No bot is connected to this sandbox: start it with baton dev.", "info");
  document.body.dataset.version = String(snapshot.version);
  document.body.dataset.viewer = snapshot.viewer.name;
}

function drawClock(clock) {
  // The bot's clock, and the control that moves it forward (only under `baton dev`).
  $("#clock").hidden = clock === null;
  if (clock === null) return;
  $("#clock-now").textContent = "Bot time " + clock.now + (clock.ahead ? " (" + clock.ahead + ")" : "");
  const select = $("#skip");
  if (select.options.length !== clock.skips.length + 1) {
    const prompt = new Option("Skip ahead…", "");
    select.replaceChildren(prompt, ...clock.skips.map((skip) => new Option("+" + skip, skip)));
  }
}

async function skipAhead(select) {
  const skip = select.value;
  select.value = "";
  if (!skip) return;
  select.disabled = true;
  const answer = await post("/_ui/clock", {skip});
  select.disabled = false;
  if (answer.ok) toast("Skipped ahead " + skip + ": what fell due meanwhile has happened.", "info");
}

function drawPeople(people, viewer) {
  const select = $("#as");
  const signature = JSON.stringify(people);
  if (state.people !== signature) {
    state.people = signature;
    select.replaceChildren(...people.map((person) => {
      const option = document.createElement("option");
      option.value = person.id;
      option.dataset.name = person.name;
      option.textContent = person.real_name + " (@" + person.name + ")" + (person.title ? " · " + person.title : "");
      return option;
    }));
  }
  select.value = viewer;
}

function markUnread(viewer, current) {
  const first = !state.known[viewer];
  state.known[viewer] = true;
  for (const link of $("#sidebar").querySelectorAll("[data-place]")) {
    const key = viewer + "|" + link.dataset.place;
    const latest = link.dataset.latest || "0";
    if (!(key in state.seen)) state.seen[key] = first ? latest : "0";
    if (link.dataset.place === current) state.seen[key] = latest;
    link.classList.toggle("unread", parseFloat(latest) > parseFloat(state.seen[key]));
  }
}

// -- where an element is, and what it holds -------------------------------------------
function where(element) {
  const view = element.closest("[data-view]");
  if (view) return {view: view.dataset.view};
  const message = element.closest("[data-ts]");
  return message ? {channel: message.dataset.channel, ts: message.dataset.ts} : {};
}

function valueOf(control) {
  const kind = control.dataset.kind || "";
  if (control.matches(".bk-choices")) {
    const picked = [...control.querySelectorAll("input:checked")].map((input) => input.value);
    return kind === "checkboxes" ? picked : (picked[0] ?? null);
  }
  if (control.tagName === "SELECT" && control.multiple) {
    return [...control.selectedOptions].map((option) => option.value);
  }
  const value = control.value;
  return value === "" ? null : value;
}

function sendAction(element, extra) {
  const block = element.closest("[data-block]");
  const body = {action_id: element.dataset.action, kind: element.dataset.kind, ...where(element), ...extra};
  if (block) body.block_id = block.dataset.block;
  element.classList.add("pending");
  return post("/_ui/action", body).finally(() => element.classList.remove("pending"));
}

function confirmFirst(template, then) {
  const root = $("#confirm-root");
  const overlay = document.createElement("div");
  overlay.className = "overlay";
  overlay.append(template.content.cloneNode(true));
  root.replaceChildren(overlay);
  const close = () => root.replaceChildren();
  overlay.querySelector("[data-deny]").addEventListener("click", close);
  overlay.querySelector("[data-confirm]").addEventListener("click", () => { close(); then(); });
  overlay.querySelector("[data-confirm]").focus();
}

function clickButton(button) {
  const send = () => {
    if (button.dataset.url) window.open(button.dataset.url, "_blank", "noopener");
    return sendAction(button, {kind: "button", value: button.dataset.value});
  };
  const confirm = button.parentElement.querySelector("template.confirm");
  if (confirm) confirmFirst(confirm, send); else send();
}

function collect(modal) {
  const values = {};
  let missing = false;
  for (const field of modal.querySelectorAll(".bk-field[data-input]")) {
    const control = field.querySelector("[data-action]");
    if (!control) continue; // drawn as JSON: Slack's client would send its initial value
    const value = valueOf(control);
    const local = field.querySelector(".error.local");
    const empty = value === null || (Array.isArray(value) && value.length === 0);
    if (empty && !("optional" in field.dataset)) {
      local.textContent = "Please complete this required field.";
      local.hidden = false;
      missing = true;
    } else {
      local.hidden = true;
    }
    values[field.dataset.input || control.dataset.action] = value;
  }
  return missing ? null : values;
}

async function submitModal(modal) {
  const values = collect(modal);
  if (values === null) return;
  const button = modal.querySelector("[data-submit]");
  button.disabled = true;
  const answer = await post("/_ui/submit", {view: modal.dataset.view, values});
  button.disabled = false;
  if (!answer.ok) {
    const box = modal.querySelector(".submit-error");
    box.textContent = answer.error;
    box.hidden = false;
  }
}

function go(place) {
  move({place, thread: null});
  if (place === "home") post("/_ui/home", {}); else refresh();
}

// -- what people do ---------------------------------------------------------------------
function showSidebar(shown) {
  document.body.classList.toggle("show-sidebar", shown);
  $("#menu").setAttribute("aria-expanded", String(shown));
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("button, a");
  if (document.body.classList.contains("show-sidebar") && !event.target.closest("#sidebar, #menu")) {
    showSidebar(false);  // a tap outside the open conversations list closes it
  }
  if (!target) return;
  if (target.id === "menu") { showSidebar(!document.body.classList.contains("show-sidebar")); return; }
  if (target.matches("[data-place]")) { showSidebar(false); go(target.dataset.place); return; }
  if (target.matches("[data-thread]")) { move({thread: target.dataset.thread}); refresh(); return; }
  if (target.id === "thread-close") { move({thread: null}); refresh(); return; }
  if (target.matches("[data-dismiss]")) { post("/_ui/dismiss", {ts: target.dataset.dismiss}); return; }
  const modal = target.closest(".modal");
  if (modal && target.matches("[data-close]")) { post("/_ui/close", {view: modal.dataset.view}); return; }
  if (modal && target.matches("[data-submit]")) { submitModal(modal); return; }
  if (target.matches("button.bk-button[data-action]")) clickButton(target);
});

document.addEventListener("change", (event) => {
  if (event.target.id === "skip") { skipAhead(event.target); return; }
  if (event.target.id === "as") {
    move({as: event.target.value, modalKey: null});
    $("#confirm-root").replaceChildren();
    if (state.place === "home") go("home"); else refresh();
    return;
  }
  const control = event.target.closest("[data-action]");
  if (!control || control.closest(".bk-field")) return; // inputs of a modal wait for submit
  sendAction(control, {chosen: valueOf(control)});
});

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const confirm = $("#confirm-root .overlay");
  if (confirm) { $("#confirm-root").replaceChildren(); return; }
  const modal = $("#modal-root .modal");
  if (modal) post("/_ui/close", {view: modal.dataset.view});
});

async function send(input, thread) {
  const text = input.value.trim();
  if (!text) return;
  input.disabled = true;
  const answer = text.startsWith("/")
    ? await post("/_ui/command", {in: state.place, text})
    : await post("/_ui/message", {in: state.place, text, thread});
  input.disabled = false;
  if (answer.ok) input.value = "";
  input.focus();
}

$("#composer").addEventListener("submit", (event) => { event.preventDefault(); send($("#compose"), null); });
$("#thread-composer").addEventListener("submit", (event) => {
  event.preventDefault();
  send($("#thread-compose"), state.thread);
});

// -- live updates -----------------------------------------------------------------------
function listen() {
  if (!window.EventSource) { setInterval(refresh, 1000); return; }
  const events = new EventSource("/_ui/events");
  events.onmessage = (event) => {
    const change = JSON.parse(event.data);
    if (change.version !== state.version || change.generation !== state.generation) refresh();
  };
}

readUrl();
refresh().then(() => { if (state.place === "home") post("/_ui/home", {}); });
listen();
