// The boocoder-bridge model picker: Favorites first, then one section per provider, kept live by the
// server's event stream (GET api/events). Plain DOM, no library, no build step. Every text that comes from a
// host is set with textContent, never parsed as HTML, and nothing here needs inline script or style, so the
// page runs under the strict Content-Security-Policy the server sends.
//
// Embedding contract (see docs/http-api.md, "The page at /"):
//   section[data-section="favorites" | <provider id>]   [data-status] holds a provider's status as text
//   button.toggle[aria-expanded]                         a provider's heading: collapses its models (count shown)
//   [data-model-id="<provider>/<model>"]                 one row per model; a favorite has a row in both sections
//   .state[data-state]                                   the model's state as text: hot, loading n %, cold, asleep
//   [data-hidden-favorite="<provider>/<model>"]          a favorite not shown now, with the reason as text
//   button.star[aria-pressed]                            accessible name "favorite <model name>"
//   document event "boocoder:select"                     detail: {id, provider, model, name, context_window}
//   ?select[=<origin>]                                   also post {type: "boocoder:select", ...} to the opener
//                                                        (or parent frame), to <origin> only when given
//   #token=<BOOCODER_BRIDGE_TOKEN>                       for a server that needs its token: sent as a bearer
//                                                        header, kept for the tab, removed from the address
"use strict";

(function () {
  const SELECT_EVENT = "boocoder:select";
  const main = document.getElementById("picker");
  const live = document.getElementById("live");
  const params = new URLSearchParams(window.location.search);
  const selectMode = params.has("select");
  const targetOrigin = originOf(params.get("select"));
  const TOKEN_KEY = "boocoder-bridge-token";
  let catalog = null;
  let fromStream = false;
  let chosen = null;
  let pollTimer = null;
  const COLLAPSE_KEY = "boocoder-bridge-collapsed";
  const AUTO_COLLAPSE = 30;  // more models than this in the catalog: provider groups start collapsed
  let collapsed = loadCollapsed();  // provider id -> true (collapsed) / false (opened), as the user left it
  // A server with BOOCODER_BRIDGE_TOKEN: the token is typed into the form the page shows, or given as
  // #token=<token> (an app's frame or popup). A fragment is never sent anywhere, and it is taken out of the
  // address at once. It is kept for the tab (sessionStorage), except in ?select mode, where another site may be
  // the opener: there only a token given to this page is used.
  let token = tokenFromFragment() || (selectMode ? null : stored());

  function tokenFromFragment() {
    const hash = window.location.hash;
    if (!hash.startsWith("#token=")) return null;
    let value = hash.slice("#token=".length);
    try {
      value = decodeURIComponent(value);  // "+" stays "+": a fragment is not form data
    } catch (error) {
      // not %-encoded: used as given
    }
    history.replaceState(null, "", window.location.pathname + window.location.search);
    if (!selectMode) store(value);
    return value;
  }

  function stored() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (error) {
      return null;  // no storage here (a sandboxed frame): the token lasts as long as the page
    }
  }

  function store(value) {
    try {
      sessionStorage.setItem(TOKEN_KEY, value);
    } catch (error) {
      // as above
    }
  }

  function loadCollapsed() {
    try {
      return JSON.parse(sessionStorage.getItem(COLLAPSE_KEY) || "{}") || {};
    } catch (error) {
      return {};
    }
  }

  function saveCollapsed() {
    try {
      sessionStorage.setItem(COLLAPSE_KEY, JSON.stringify(collapsed));
    } catch (error) {
      // no storage: kept for the page only
    }
  }

  function headers() {
    return token ? { Accept: "application/json", Authorization: "Bearer " + token } : { Accept: "application/json" };
  }

  function useToken(value) {
    if (!/^[\x21-\x7e]+$/.test(value)) {  // what an HTTP header can carry
      setLive("error", "That token holds characters an HTTP header cannot carry (spaces, line breaks or non-ASCII)");
      return;
    }
    token = value;
    if (!selectMode) store(value);
    const form = document.getElementById("token-form");
    if (form) form.remove();
    fromStream = false;
    poll();  // with a token there is no event stream: EventSource sends no headers
  }

  function askForToken() {
    if (document.getElementById("token-form")) return;
    const input = el("input", { type: "password", id: "token", autocomplete: "off", spellcheck: "false" });
    const form = el("form", { id: "token-form", class: "token" },
      [el("label", { for: "token" }, ["Token"]), input, el("button", { type: "submit" }, ["Use it"])]);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      useToken(input.value.trim());
    });
    main.before(form);
    input.focus();
  }

  function problem(response) {
    if (response.status === 401) {
      askForToken();
      return new Error((token ? "the token was refused" : "this bridge needs its token") + ": enter it above, " +
        "or open this page as " + window.location.pathname + window.location.search + "#token=<token>");
    }
    return new Error("HTTP " + response.status);
  }

  window.addEventListener("hashchange", () => {
    const value = tokenFromFragment();  // "#token=..." added to the address of a page already open
    if (value) useToken(value);
  });

  function originOf(text) {
    try {
      return text ? new URL(text).origin : "*";
    } catch (error) {
      return "*";
    }
  }

  function el(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    for (const child of children || []) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function contextText(size) {
    if (!size) return "context unknown";
    const k = size / 1024;
    return (Number.isInteger(k) ? k + "K" : size.toLocaleString("en")) + " context";
  }

  // A model's state in words, never a colour alone: [label, longer explanation for the accessible name].
  function stateText(model) {
    if (model.state === "loaded") return ["hot", "loaded, answers at once"];
    if (model.state === "loading") {
      const share = model.load_progress === null || model.load_progress === undefined
        ? "" : " " + Math.round(model.load_progress * 100) + " %";
      return ["loading" + share, "loading" + share];
    }
    if (model.state === "unloaded") return ["cold", "not loaded: choosing it loads it first"];
    if (model.state === "sleeping") return ["asleep", "unloaded after idling: choosing it loads it first"];
    return null;  // the host does not say
  }

  function setLive(state, text) {
    live.dataset.live = state;
    live.textContent = text;
  }

  // --- rendering ------------------------------------------------------------------------------------------

  function row(model, note) {
    const state = stateText(model);
    const star = el("button", {
      type: "button", class: "star", "aria-pressed": model.favorite ? "true" : "false",
      "aria-label": "favorite " + model.name, title: model.favorite ? "Remove from favorites" : "Add to favorites",
      tabindex: "-1",
    }, [model.favorite ? "★" : "☆"]);
    const names = el("span", { class: "names" }, [
      el("span", { class: "name" }, [model.name]),
      el("span", { class: "id" }, [note ? model.id + " · " + note : model.id]),
    ]);
    const li = el("li", {
      class: "row", tabindex: "0", "data-model-id": model.id,
      "aria-current": chosen === model.id ? "true" : null,
      "aria-label": model.name + ", " + model.id + ", " + contextText(model.context_window)
        + (state ? ", " + state[0] + " (" + state[1] + ")" : "") + (model.favorite ? ", favorite" : ""),
    }, [star, names, el("span", { class: "ctx" }, [
      state ? el("span", { class: "state", "data-state": model.state, title: state[1] }, [state[0]]) : "",
      contextText(model.context_window)])]);
    li.modelData = model;
    return li;
  }

  function section(id, title, headerExtras, body, fold) {
    // fold: {open, count} makes the heading a button that shows or hides the body (its model count beside it)
    const label = fold
      ? el("button", { type: "button", class: "toggle", "aria-expanded": fold.open ? "true" : "false",
        "aria-controls": "body-" + id }, [title])
      : title;
    const heading = el("h2", { id: "section-" + id }, [label]);
    const content = el("div", { id: "body-" + id, class: "body", hidden: fold && !fold.open ? "" : null }, body);
    return el("section", { "data-section": id, "aria-labelledby": "section-" + id }, [
      el("header", { class: "section-head" }, [heading, ...(fold ? [fold.count] : []), ...headerExtras]),
      content,
    ]);
  }

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  function note(text) {
    return el("p", { class: "note" }, [text]);
  }

  function render(data) {
    catalog = data;
    const focus = rememberFocus();
    const labels = Object.fromEntries(data.providers.map((group) => [group.id, group.label]));
    const sections = [];
    const hidden = data.hidden_favorites || [];
    const favorites = [];
    if (data.favorites.length) {
      favorites.push(el("ul", { class: "rows" }, data.favorites.map((m) => row(m, labels[m.provider]))));
    } else if (!hidden.length) {
      favorites.push(note("No favorites to show. Star a model to add it; favorites of a provider that is down "
        + "come back when it is up again."));
    }
    if (hidden.length) {
      favorites.push(el("ul", { class: "hidden-favorites", "aria-label": "favorites hidden now" },
        hidden.map((h) => el("li", { "data-hidden-favorite": h.id }, [
          el("span", { class: "id" }, [h.id]), " hidden: " + h.reason]))));
    }
    sections.push(section("favorites", "Favorites", [], favorites, null));
    const total = data.providers.reduce((sum, group) => sum + group.models.length, 0);
    for (const group of data.providers) {
      const status = el("span", { class: "status", "data-status": group.status }, [group.status]);
      const extras = [el("span", { class: "kind" }, [group.kind]), status];
      const body = [];
      if (group.error) body.push(el("p", { class: "reason", "data-for": group.status }, [group.error]));
      const hot = group.models.filter((m) => m.state === "loaded").length;
      if (group.max_loaded && group.models.some((m) => m.state)) {
        body.push(el("p", { class: "hint", "data-max-loaded": group.max_loaded }, [
          "Holds " + plural(group.max_loaded, "model") + " at a time: choosing a cold model loads it first, "
          + "and may unload " + (hot === 1 ? "the hot one" : "a hot one") + "."]));
      }
      if (group.models.length) {
        body.push(el("ul", { class: "rows" }, group.models.map((m) => row(m, null))));
      } else if (group.status === "online" || group.status === "static") {
        body.push(note("No models."));
      }
      const open = group.id in collapsed ? !collapsed[group.id] : total <= AUTO_COLLAPSE;
      const count = el("span", { class: "count" }, [
        plural(group.models.length, "model") + (hot ? ", " + hot + " hot" : "")]);
      sections.push(section(group.id, group.label, extras, body, { open, count }));
    }
    main.replaceChildren(...sections);
    main.setAttribute("aria-busy", "false");
    restoreFocus(focus);
  }

  function rememberFocus() {
    const active = document.activeElement;
    if (active && active.classList && active.classList.contains("toggle")) {
      return { toggle: active.closest("[data-section]").dataset.section };
    }
    const rowNode = active && active.closest ? active.closest("[data-model-id]") : null;
    if (!rowNode) return null;
    return {
      section: rowNode.closest("[data-section]").dataset.section,
      id: rowNode.dataset.modelId,
      star: active.classList.contains("star"),
      index: rows().indexOf(rowNode),
    };
  }

  function restoreFocus(focus) {
    if (!focus) return;
    if (focus.toggle) {
      const button = main.querySelector('[data-section="' + CSS.escape(focus.toggle) + '"] button.toggle');
      if (button) button.focus();
      return;
    }
    let target = rows().find((node) => node.dataset.modelId === focus.id
      && node.closest("[data-section]").dataset.section === focus.section);
    if (!target) target = rows()[Math.min(focus.index, rows().length - 1)];  // its row left: stay close by
    if (!target) return;
    (focus.star && target.dataset.modelId === focus.id ? target.querySelector(".star") : target).focus();
  }

  function rows() {  // the rows one can see (a collapsed group's are skipped)
    return Array.from(main.querySelectorAll("[data-model-id]")).filter((node) => !node.closest("[hidden]"));
  }

  function toggleGroup(button) {
    const id = button.closest("[data-section]").dataset.section;
    const open = button.getAttribute("aria-expanded") !== "true";
    collapsed[id] = !open;
    saveCollapsed();
    button.setAttribute("aria-expanded", open ? "true" : "false");
    document.getElementById("body-" + id).hidden = !open;
  }

  // --- actions ----------------------------------------------------------------------------------------------

  function choose(rowNode) {
    const model = rowNode.modelData;
    chosen = model.id;
    for (const node of rows()) {
      if (node.dataset.modelId === chosen) node.setAttribute("aria-current", "true");
      else node.removeAttribute("aria-current");
    }
    const detail = {
      id: model.id, provider: model.provider, model: model.model, name: model.name,
      context_window: model.context_window,
    };
    document.dispatchEvent(new CustomEvent(SELECT_EVENT, { detail, bubbles: true }));
    if (selectMode) {
      const target = window.opener || (window.parent !== window ? window.parent : null);
      if (target) target.postMessage({ type: SELECT_EVENT, ...detail }, targetOrigin);
    }
    const group = catalog && catalog.providers.find((g) => g.id === model.provider);
    const cold = model.state === "unloaded" || model.state === "sleeping";
    setLive(live.dataset.live, "Chosen: " + model.id + (cold && group && group.max_loaded
      ? " (cold: its first request loads it, and may unload a hot model)" : ""));
  }

  async function toggleFavorite(rowNode) {
    const model = rowNode.modelData;
    const on = !model.favorite;
    const stars = rows().filter((node) => node.dataset.modelId === model.id).map((node) => node.querySelector(".star"));
    for (const star of stars) {
      star.setAttribute("aria-pressed", on ? "true" : "false");
      star.textContent = on ? "★" : "☆";
    }
    try {
      const response = await fetch("api/favorites/" + encodeURIComponent(model.id), {
        method: on ? "PUT" : "DELETE", headers: headers(),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw response.status === 401 ? problem(response) : new Error(body.error || "HTTP " + response.status);
      }
      if (!fromStream) await load();  // no event stream: read the catalog again ourselves
    } catch (error) {
      for (const star of stars) {
        star.setAttribute("aria-pressed", model.favorite ? "true" : "false");
        star.textContent = model.favorite ? "★" : "☆";
      }
      setLive("error", "Could not change the favorite " + model.id + ": " + error.message);
    }
  }

  function moveFocus(from, step) {
    const all = rows();
    const index = all.indexOf(from);
    const next = all[step === Infinity ? all.length - 1 : step === -Infinity ? 0 : index + step];
    if (next) next.focus();
  }

  main.addEventListener("click", (event) => {
    const toggle = event.target.closest("button.toggle");
    if (toggle) return toggleGroup(toggle);
    const rowNode = event.target.closest("[data-model-id]");
    if (!rowNode) return;
    if (event.target.closest(".star")) toggleFavorite(rowNode);
    else choose(rowNode);
  });

  main.addEventListener("keydown", (event) => {
    const rowNode = event.target.closest("[data-model-id]");
    if (!rowNode || event.altKey || event.ctrlKey || event.metaKey) return;
    const onStar = event.target.classList.contains("star");
    const key = event.key;
    if ((key === "Enter" || key === " ") && !onStar) choose(rowNode);
    else if (key === "f" || key === "F" || key === "*") toggleFavorite(rowNode);
    else if (key === "ArrowDown") moveFocus(rowNode, 1);
    else if (key === "ArrowUp") moveFocus(rowNode, -1);
    else if (key === "Home") moveFocus(rowNode, -Infinity);
    else if (key === "End") moveFocus(rowNode, Infinity);
    else return;
    event.preventDefault();
  });

  // --- data -------------------------------------------------------------------------------------------------

  async function load(first) {
    const response = await fetch("api/models", { headers: headers() });
    if (!response.ok) throw problem(response);
    const data = await response.json();
    if (!(first && fromStream)) render(data);  // the stream's snapshot may already be newer
  }

  function poll() {
    clearTimeout(pollTimer);
    load().then(() => setLive("polling", "updated " + new Date().toLocaleTimeString()),
      (error) => setLive("error", "Cannot reach the bridge: " + error.message));
    pollTimer = setTimeout(poll, token ? 3000 : 10000);
  }

  function connect() {
    if (!window.EventSource || token) return poll();
    const stream = new EventSource("api/events");
    stream.addEventListener("catalog", (event) => {
      fromStream = true;
      clearTimeout(pollTimer);
      render(JSON.parse(event.data).catalog);
      setLive("live", "live");
    });
    stream.addEventListener("open", () => setLive("live", "live"));
    stream.addEventListener("error", () => {
      if (stream.readyState === EventSource.CLOSED) {  // refused for good (e.g. 401): fall back to polling
        fromStream = false;
        poll();
      } else {
        setLive("reconnecting", "reconnecting…");
      }
    });
  }

  if (token) {
    connect();  // polls: its first round is the first load
  } else {
    load(true).catch((error) => setLive("error", "Cannot reach the bridge: " + error.message));
    connect();
  }
})();
