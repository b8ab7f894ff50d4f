// Staff pages: a few enhancements on top of htmx. Everything works without this file, only
// less precisely (a free block then opens the form at its first free slot).
(function () {
  "use strict";

  // Where in a free block the pointer is, snapped down to the policy's step and kept early
  // enough for the minimum duration to fit. Times are epoch seconds (data-start/-end).
  function snapped(el, clientX) {
    var rect = el.getBoundingClientRect();
    var start = Number(el.dataset.start), end = Number(el.dataset.end);
    var step = Number(el.dataset.step) || 900, min = Number(el.dataset.min) || step;
    var frac = Math.min(Math.max((clientX - rect.left) / rect.width, 0), 1);
    var t = start + Math.floor((frac * (end - start)) / step) * step;
    return Math.max(start, Math.min(t, end - min));
  }

  function zone(el) {
    var grid = el.closest("[data-tz]");
    return grid ? grid.dataset.tz : undefined;
  }

  function wall(seconds, tz) {
    return new Intl.DateTimeFormat("en-GB", {
      hour: "2-digit", minute: "2-digit", timeZone: tz, hourCycle: "h23",
    }).format(new Date(seconds * 1000));
  }

  // A click (not a keyboard activation: its detail is 0) books from the time under the pointer.
  document.addEventListener("htmx:configRequest", function (evt) {
    var el = evt.detail.elt;
    var ev = evt.detail.triggeringEvent;
    if (!el.matches) return;
    var target = evt.detail.target;
    if (target && target.id === "panel" && evt.detail.verb === "get") opening = null;
    if (el.matches("a.block")) opening = { booking: el.dataset.booking };
    if (!el.matches("a.free")) return;
    var row = el.closest("[data-evse]");
    var at = Number(el.dataset.start);
    if (ev && ev.detail && ev.clientX !== undefined && el.dataset.end) {
      at = snapped(el, ev.clientX);
      evt.detail.parameters.start = new Date(at * 1000).toISOString();
    }
    opening = { evse: row && row.dataset.evse, at: at, min: Number(el.dataset.min) || 0 };
  });

  // Show the start time a click would pick.
  document.addEventListener("mousemove", function (evt) {
    var el = evt.target.closest && evt.target.closest("a.free");
    if (!el) return;
    var hint = el.querySelector(".free-hint");
    if (hint) hint.textContent = "+ " + wall(snapped(el, evt.clientX), zone(el));
  });

  // Close the side panel in place (its link opens the day page when scripts are off). The
  // address goes back to the view's, so a reload or a shared link shows what is on screen.
  function closePanel() {
    var panel = document.getElementById("panel");
    if (!panel || !panel.firstElementChild) return false;
    panel.replaceChildren();
    var view = document.getElementById("view");
    var url = view && view.dataset.viewUrl;
    if (url && url !== location.pathname + location.search) {
      history.replaceState(history.state, "", url);
    }
    return true;
  }

  document.addEventListener("click", function (evt) {
    var close = evt.target.closest && evt.target.closest("[data-close-panel]");
    if (!close) return;
    if (!document.getElementById("panel")) return;
    evt.preventDefault();
    closePanel();
  });

  // Failed requests are never silent (issue 15). htmx swaps nothing for an error status or a
  // lost connection, so what was typed stays; the message goes where the user is looking: the
  // form that was sent, else the side panel, else a banner at the top of the page.
  function messageFor(xhr) {
    var status = xhr ? xhr.status : 0;
    if (!status) {
      return "No connection to the server: nothing was sent. Check the network and try " +
        "again; what you typed is kept.";
    }
    if (status === 403 && xhr.getResponseHeader("X-Refused") === "csrf") {
      return "This page's security token is out of date (you signed in again, perhaps in " +
        "another tab), so nothing was saved. It has been renewed: send again, what you " +
        "typed is kept.";
    }
    if (status === 403) return "Refused (403): your account may not do this.";
    if (status === 404) {
      return "Not found (404): it may have been removed meanwhile. Reload the page to see " +
        "what is there now.";
    }
    if (status === 409) {
      return "Someone else changed this at the same moment (409). Reload to see the " +
        "current state; what you typed is kept.";
    }
    if (status >= 500) {
      return "The server failed (error " + status + "). Check the booking before trying " +
        "again; what you typed is kept. Tell an administrator if this keeps happening.";
    }
    return "The request failed (error " + status + "). Try again.";
  }

  function cookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  // Django's documented way for scripts: the current token is in the csrftoken cookie.
  function renewCsrfToken() {
    var token = cookie("csrftoken");
    if (!token) return;
    document.body.setAttribute("hx-headers", JSON.stringify({ "x-csrftoken": token }));
    document.querySelectorAll("input[name=csrfmiddlewaretoken]").forEach(function (input) {
      input.value = token;
    });
  }

  function errorHost(evt) {
    var elt = evt.detail.elt;
    var form = elt.closest && elt.closest("form");
    var target = evt.detail.target;
    if (form && form.isConnected && !form.closest("#grid")) return form;
    var panel = document.getElementById("panel");
    if (panel && target === panel) {
      var body = panel.querySelector(".panel-body");
      if (body) return body;
      return panel;
    }
    return null;
  }

  function showRequestError(evt) {
    var xhr = evt.detail.xhr;
    var text = messageFor(evt.type === "htmx:sendError" ? null : xhr);
    if (xhr && xhr.status === 403 && xhr.getResponseHeader("X-Refused") === "csrf") {
      renewCsrfToken();
    }
    var host = errorHost(evt);
    var box;
    if (host) {
      box = host.querySelector(":scope > .request-error");
      if (!box) {
        box = document.createElement("div");
        box.className = "alert error request-error";
        box.setAttribute("role", "alert");
        box.tabIndex = -1;
        host.prepend(box);
      }
    } else {
      box = document.getElementById("request-error");
      box.hidden = false;
      box = box.querySelector("p");
    }
    box.textContent = text;
    if (host) {
      box.scrollIntoView({ block: "nearest" });
      box.focus({ preventScroll: true });
    }
  }

  document.addEventListener("htmx:responseError", showRequestError);
  document.addEventListener("htmx:sendError", showRequestError);

  // A request that went through clears the page banner and its own form's message.
  document.addEventListener("htmx:afterRequest", function (evt) {
    if (!evt.detail.successful) return;
    var banner = document.getElementById("request-error");
    if (banner) banner.hidden = true;
    var form = evt.detail.elt.closest && evt.detail.elt.closest("form");
    var old = form && form.querySelector(":scope > .request-error");
    if (old) old.remove();
  });

  document.addEventListener("click", function (evt) {
    var dismiss = evt.target.closest && evt.target.closest("[data-dismiss-error]");
    if (dismiss) dismiss.closest("#request-error").hidden = true;
  });
  // Typing a walk-in driver's details chooses the walk-in (the server reads a name alone so).
  document.addEventListener("input", function (evt) {
    var box = evt.target.closest && evt.target.closest("[data-walkin]");
    if (!box || evt.target.type === "radio" || !evt.target.value) return;
    var choice = box.querySelector("input[type=radio][name=driver]");
    if (choice && !choice.checked) {
      choice.checked = true;
      choice.dispatchEvent(new Event("change", { bubbles: true }));
    }
  });
  // Choosing a driver answers "Choose a driver": the old error goes at once.
  document.addEventListener("change", function (evt) {
    if (evt.target.name !== "driver") return;
    var form = evt.target.closest("form");
    var errors = form && form.querySelector("[data-driver-errors]");
    if (errors) errors.replaceChildren();
  });
  // Esc closes the side panel, as its Close link does (not while a select or dialog has it).
  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Escape" || evt.defaultPrevented) return;
    if (evt.target.matches && evt.target.matches("select")) return;
    if (evt.target.closest && evt.target.closest("dialog[open]")) return;
    closePanel();
  });
  // The browser shows a datetime-local in its own locale (12-hour clocks, month first): echo
  // the chosen wall time next to it as the rest of the desk writes times, 24-hour, day first.
  var echoFormat = new Intl.DateTimeFormat("en-GB", {
    weekday: "short", day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: "UTC",
  });

  function echo(input) {
    var id = input.id + "-echo";
    var out = document.getElementById(id);
    if (!out) {
      out = document.createElement("span");
      out.id = id;
      out.className = "when-echo muted";
      input.insertAdjacentElement("afterend", out);
      input.setAttribute("aria-describedby", id);
    }
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(input.value);
    if (!m) {
      out.textContent = "";
      return;
    }
    var p = {};
    echoFormat.formatToParts(Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5])).forEach(
      function (part) { p[part.type] = part.value; }
    );
    // As the panel writes it: "Sun 31 Oct 2027, 02:30".
    out.textContent = p.weekday + " " + p.day + " " + p.month + " " + p.year + ", " +
      p.hour + ":" + p.minute;
  }

  function echoAll(root) {
    root.querySelectorAll("input[type=datetime-local][id]").forEach(echo);
  }
  document.addEventListener("input", function (evt) {
    if (evt.target.matches && evt.target.matches("input[type=datetime-local][id]")) echo(evt.target);
  });
  document.addEventListener("htmx:afterSettle", function (evt) { echoAll(evt.detail.elt); });
  document.addEventListener("DOMContentLoaded", function () { echoAll(document); });

  // --- The timeline: zoom, sideways scroll to now and to the slot being booked (issue 15) ---

  var ZOOM_STEPS = [60, 90, 120, 160, 220]; // px per hour
  var ZOOM_KEY = "chargebook.hourWidth";
  var opening = null; // what the panel being opened is about: {evse, at, min} or {booking}

  function storedZoom() {
    try {
      var px = Number(window.localStorage.getItem(ZOOM_KEY));
      return ZOOM_STEPS.indexOf(px) >= 0 ? px : 0;
    } catch (e) {
      return 0;
    }
  }

  function hourWidth() {
    var css = getComputedStyle(document.documentElement).getPropertyValue("--hour-w");
    return parseFloat(css) || 120;
  }

  // Where instant `at` (epoch seconds) lies on the axis, in viewport pixels.
  function xOf(grid, at) {
    var track = grid.querySelector(".track-col");
    if (!track) return null;
    var start = Number(grid.dataset.start), end = Number(grid.dataset.end);
    var rect = track.getBoundingClientRect();
    return rect.left + ((at - start) / (end - start)) * rect.width;
  }

  // The part of the scroller not under the sticky EVSE labels, in viewport pixels.
  function visibleSpan(scroller) {
    var rect = scroller.getBoundingClientRect();
    var label = scroller.querySelector(".axis .label-col");
    var left = rect.left + (label ? label.getBoundingClientRect().width : 0);
    return { left: left, right: rect.right };
  }

  // Scroll sideways so [x1, x2] is in view, at `at` (0..1) of the visible track when it moves.
  function reveal(scroller, x1, x2, at) {
    var span = visibleSpan(scroller);
    var margin = 16;
    if (x1 >= span.left + margin && x2 <= span.right - margin) return;
    var width = span.right - span.left;
    scroller.scrollLeft += x1 - (span.left + Math.max(margin, width * at));
  }

  function scrollToNow(view) {
    var scroller = view.querySelector("[data-scroller]");
    var now = scroller && scroller.querySelector(".now");
    if (!now) return false;
    var x = now.getBoundingClientRect().left;
    var span = visibleSpan(scroller);
    scroller.scrollLeft += x - (span.left + (span.right - span.left) * 0.25);
    return true;
  }

  function revealOpening() {
    var scroller = document.querySelector("[data-scroller]");
    var grid = scroller && scroller.querySelector("#grid");
    if (!grid) return;
    if (!opening) {
      // Nothing on the grid was chosen (quick book, New booking): keep now in view.
      var now = grid.querySelector(".now");
      var span = visibleSpan(scroller);
      var x = now && now.getBoundingClientRect().left;
      if (now && (x < span.left || x > span.right)) scrollToNow(document);
      return;
    }
    if (opening.booking) {
      var block = grid.querySelector('[data-booking="' + opening.booking + '"]');
      if (block && !grid.classList.contains("is-week")) {
        var r = block.getBoundingClientRect();
        reveal(scroller, r.left, Math.min(r.right, r.left + 160), 0.2);
      }
      if (block) block.scrollIntoView({ block: "nearest" });
    } else if (opening.at && !grid.classList.contains("is-week")) {
      var x = xOf(grid, opening.at);
      var x2 = xOf(grid, opening.at + Math.max(opening.min, 1800));
      if (x !== null) reveal(scroller, x, x2, 0.2);
      var row = opening.evse && grid.querySelector('.row[data-evse="' + opening.evse + '"]');
      if (row) row.scrollIntoView({ block: "nearest" });
    }
  }

  function zoom(direction) {
    var scroller = document.querySelector("[data-scroller]");
    var grid = scroller && scroller.querySelector("#grid");
    if (!grid || grid.classList.contains("is-week")) return;
    var current = hourWidth();
    var i = 0;
    while (i < ZOOM_STEPS.length - 1 && ZOOM_STEPS[i] < current) i++;
    var next = ZOOM_STEPS[Math.max(0, Math.min(ZOOM_STEPS.length - 1, i + direction))];
    if (direction > 0 && next <= current) next = ZOOM_STEPS[Math.min(i + 1, ZOOM_STEPS.length - 1)];
    // Keep the time in the middle of the visible track where it is.
    var span = visibleSpan(scroller);
    var track = grid.querySelector(".track-col").getBoundingClientRect();
    var middle = (span.left + span.right) / 2;
    var frac = (middle - track.left) / track.width;
    // Back at the width's own default (120 px, 96 px on a phone): nothing to remember.
    var root = document.documentElement.style;
    root.removeProperty("--hour-w");
    var base = hourWidth();
    if (next !== base) root.setProperty("--hour-w", next + "px");
    try {
      if (next === base) window.localStorage.removeItem(ZOOM_KEY);
      else window.localStorage.setItem(ZOOM_KEY, String(next));
    } catch (e) { /* private mode: the zoom lasts for this page */ }
    var after = grid.querySelector(".track-col").getBoundingClientRect();
    scroller.scrollLeft += after.left + frac * after.width - (span.left + span.right) / 2;
  }

  // Controls that need this script are in the page hidden, and shown here.
  function enhance(root) {
    root.querySelectorAll("[data-zoom-controls], [data-print], [data-shortcut-help], " +
      "[data-scroll-now]").forEach(function (el) { el.hidden = false; });
  }

  // On a phone the date and filters fold away until asked for, and stay as the user left them
  // when the view reloads (a day changed, a filter applied).
  var PHONE = "(max-width: 699px)";
  var filtersOpen = null;

  function foldFilters(view) {
    var box = view.querySelector("[data-filter-box]");
    if (!box) return;
    var open = filtersOpen;
    if (open === null) open = !window.matchMedia(PHONE).matches;
    if (window.matchMedia(PHONE).matches) box.open = open;
    box.addEventListener("toggle", function () {
      if (window.matchMedia(PHONE).matches) filtersOpen = box.open;
    });
  }

  function settleView(view) {
    enhance(view);
    foldFilters(view);
    if (opening && document.querySelector("#panel > *")) revealOpening();
    else scrollToNow(view);
  }

  var zoomed = storedZoom();
  if (zoomed) document.documentElement.style.setProperty("--hour-w", zoomed + "px");

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    var view = document.getElementById("view");
    if (!view) return;
    // A page opened on a booking or on the form (reload, back, a shared link): show its slot.
    var params = new URLSearchParams(location.search);
    var detail = document.querySelector("#booking-detail[data-booking-uid]");
    if (detail) opening = { booking: detail.dataset.bookingUid };
    else if (params.get("start") && document.getElementById("booking-form")) {
      var at = Date.parse(params.get("start"));
      if (!isNaN(at)) opening = { evse: params.get("evse"), at: at / 1000, min: 0 };
    }
    settleView(view);
  });

  document.addEventListener("htmx:afterSettle", function (evt) {
    var target = evt.detail.target;
    if (!target) return;
    enhance(document);
    // An outerHTML swap settles on the element it replaced: read the view anew.
    if (target.id === "view") settleView(document.getElementById("view"));
    if (target.id === "panel") {
      // The page narrows for the panel first; then the slot is brought into view.
      window.requestAnimationFrame(revealOpening);
    }
  });

  document.addEventListener("click", function (evt) {
    var el = evt.target.closest && evt.target.closest("[data-zoom], [data-print], " +
      "[data-shortcut-help], [data-scroll-now]");
    if (!el) return;
    if (el.dataset.zoom) zoom(Number(el.dataset.zoom));
    else if (el.hasAttribute("data-print")) window.print();
    else if (el.hasAttribute("data-scroll-now")) scrollToNow(document.getElementById("view"));
    else openHelp();
  });

  function openHelp() {
    var help = document.getElementById("shortcuts");
    if (help && !help.open) help.showModal();
  }

  // Keyboard shortcuts: t today, arrows previous/next, n new booking, + and - zoom, ? help.
  // Never while typing in a field, and never with a modifier (the browser's own keys).
  function typing(el) {
    if (!el || !el.closest) return false;
    return Boolean(el.closest("input, textarea, select, [contenteditable=''], " +
      "[contenteditable=true], dialog[open]"));
  }

  document.addEventListener("keydown", function (evt) {
    if (evt.defaultPrevented || evt.ctrlKey || evt.metaKey || evt.altKey) return;
    if (typing(evt.target)) return;
    var key = evt.key;
    if (key === "?") {
      evt.preventDefault();
      openHelp();
      return;
    }
    if (key === "+" || key === "=" || key === "-") {
      if (!document.querySelector("[data-zoom-controls]:not([hidden])")) return;
      evt.preventDefault();
      zoom(key === "-" ? -1 : 1);
      return;
    }
    if (key === "T" || key === "N") key = key.toLowerCase();
    var target = document.querySelector('[data-shortcut="' + key + '"]');
    if (!target) return;
    evt.preventDefault();
    target.click();
  });
})();

// Notices while a page is open (issue 15): the grid's poll sends where the page's notices
// stand (data-desk-seen) and appends new ones to #notices, a polite live region; a notice the
// page has shown already is not shown again, and Dismiss removes one.
(function () {
  "use strict";
  var shown = new Set();

  document.addEventListener("htmx:configRequest", function (evt) {
    var grid = evt.detail.elt;
    if (grid && grid.id === "grid" && grid.dataset.deskSeen) {
      evt.detail.headers["X-Desk-Seen"] = grid.dataset.deskSeen;
    }
  });
  // Nothing new on the grid (204): the poll's cursor moved on all the same.
  document.addEventListener("htmx:afterRequest", function (evt) {
    var grid = evt.detail.elt;
    var xhr = evt.detail.xhr;
    if (!grid || grid.id !== "grid" || !xhr || xhr.status !== 204) return;
    var seen = xhr.getResponseHeader("X-Desk-Seen");
    if (seen) grid.dataset.deskSeen = seen;
  });
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var fragment = evt.detail.fragment;
    if (!evt.detail.target || evt.detail.target.id !== "notices" || !fragment) return;
    fragment.querySelectorAll("[data-notice-key]").forEach(function (notice) {
      var key = notice.dataset.noticeKey;
      if (shown.has(key)) notice.remove();
      else shown.add(key);
    });
  });
  document.addEventListener("click", function (evt) {
    var button = evt.target.closest && evt.target.closest("[data-dismiss-notice]");
    if (!button) return;
    var notice = button.closest(".notice");
    var next = notice.nextElementSibling || notice.previousElementSibling;
    notice.remove();
    var focus = next && next.querySelector("[data-dismiss-notice]");
    if (focus) focus.focus();
    else document.getElementById("main").focus({ preventScroll: true });
  });
})();
