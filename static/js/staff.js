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

  // --- In-page notices (#notices): what a change did, Undo after a cancel (issue 15) ---
  // A notice with data-timeout goes away after that many seconds, but never while the pointer
  // is on it or the focus in it; one without (an error) stays until dismissed.
  function armNotice(notice) {
    if (notice.dataset.armed) return;
    notice.dataset.armed = "1";
    var left = Number(notice.dataset.timeout) * 1000;
    if (!left) return;
    var timer = null, since = 0, hovered = false;
    function run() {
      if (timer || hovered || notice.contains(document.activeElement)) return;
      since = Date.now();
      timer = window.setTimeout(function () { notice.remove(); }, left);
    }
    function pause() {
      if (!timer) return;
      window.clearTimeout(timer);
      timer = null;
      left -= Date.now() - since;
    }
    notice.addEventListener("pointerenter", function () { hovered = true; pause(); });
    notice.addEventListener("pointerleave", function () { hovered = false; run(); });
    notice.addEventListener("focusin", pause);
    notice.addEventListener("focusout", function (evt) {
      if (!notice.contains(evt.relatedTarget)) window.setTimeout(run, 0);
    });
    run();
  }

  function armNotices() {
    document.querySelectorAll("#notices [data-notice]").forEach(armNotice);
  }

  document.addEventListener("DOMContentLoaded", armNotices);
  document.addEventListener("htmx:afterSettle", armNotices);
  document.addEventListener("htmx:oobAfterSwap", armNotices);
  // A page restored from htmx's history cache brings back old notices: they are over.
  // A new notice of a drag or a cancel takes the place of the last one (one at a time).
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var target = evt.detail.target, fragment = evt.detail.fragment;
    if (!target || target.id !== "notices" || !fragment) return;
    if (!fragment.querySelector("[data-notice]")) return;
    target.querySelectorAll("[data-notice]").forEach(function (old) { old.remove(); });
  });
  document.addEventListener("htmx:historyRestore", function () {
    document.querySelectorAll("#notices [data-notice]").forEach(function (old) { old.remove(); });
  });


  // --- Confirm in the page's own dialog, not window.confirm (hx-confirm + data-confirm-dialog) ---
  document.addEventListener("htmx:confirm", function (evt) {
    var elt = evt.detail.elt;
    var dialog = document.getElementById("confirm");
    if (!evt.detail.question || !elt.hasAttribute("data-confirm-dialog")) return;
    if (!dialog || typeof dialog.showModal !== "function") return; // window.confirm then
    evt.preventDefault();
    dialog.querySelector("#confirm-title").textContent =
      elt.getAttribute("data-confirm-title") || "Are you sure?";
    dialog.querySelector("#confirm-text").textContent = evt.detail.question;
    dialog.querySelector("[data-confirm-yes]").textContent =
      elt.getAttribute("data-confirm-yes") || "Yes";
    dialog.querySelector("[data-confirm-no]").textContent =
      elt.getAttribute("data-confirm-no") || "No";
    dialog.returnValue = "";
    dialog.addEventListener("close", function () {
      if (dialog.returnValue === "yes") evt.detail.issueRequest(true);
    }, { once: true });
    dialog.showModal();
  });

  // --- Drag a booking on the day or week view: the block to another time, day or EVSE, its
  // end edge to resize it (issue 15); one drag, parameterised by the grid's geometry. Mouse and pen pick a block up once it moves a few pixels (a click
  // still opens it); a finger holds still on it for a moment first, so a swipe still scrolls.
  // Times snap to the EVSE's step; the server's booking_change decides. The booking panel's
  // move form is the keyboard way to do the same. ---
  var HOLD_MS = 450; // a touch held this long picks the block up
  var drag = null;
  var suppressClick = false;

  // An instant as ISO 8601 with the UTC offset it has in tz: "2026-12-05T10:00:00+01:00".
  function wallParts(seconds, tz) {
    var p = {};
    new Intl.DateTimeFormat("en-GB", {
      timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }).formatToParts(new Date(seconds * 1000)).forEach(function (part) {
      p[part.type] = part.value;
    });
    return p;
  }

  // The UTC offset an instant has in tz, in minutes (60 for CET).
  function offsetOf(seconds, tz) {
    var p = wallParts(seconds, tz);
    var wallSeconds = Date.UTC(+p.year, p.month - 1, +p.day, +p.hour, +p.minute, +p.second) / 1000;
    return Math.round((wallSeconds - seconds) / 60);
  }

  function isoIn(seconds, tz) {
    var p = wallParts(seconds, tz);
    var offset = offsetOf(seconds, tz);
    var sign = offset < 0 ? "-" : "+";
    offset = Math.abs(offset);
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return p.year + "-" + p.month + "-" + p.day + "T" + p.hour + ":" + p.minute + ":" +
      p.second + sign + pad(Math.floor(offset / 60)) + ":" + pad(offset % 60);
  }

  // The instant a wall time (seconds after midnight) names on the local day that begins at
  // dayStart: 09:00 is 9 hours after midnight on most days, 10 on a fall-back day.
  function atWall(dayStart, wallSeconds, tz) {
    var guess = dayStart + wallSeconds;
    return guess - (offsetOf(guess, tz) - offsetOf(dayStart, tz)) * 60;
  }

  function wallSecondsOf(seconds, tz) {
    var p = wallParts(seconds, tz);
    return +p.hour * 3600 + +p.minute * 60 + +p.second;
  }

  function rowName(row) {
    var name = row.querySelector(".evse-name strong");
    return name ? name.textContent : "";
  }

  // A local day, and how the desk names it ("Tue 8 Dec"), on the location's clock.
  function dayKey(seconds, tz) {
    return new Intl.DateTimeFormat("en-CA", { timeZone: tz }).format(new Date(seconds * 1000));
  }

  function dayName(seconds, tz) {
    var p = {};
    new Intl.DateTimeFormat("en-GB", {
      weekday: "short", day: "numeric", month: "short", timeZone: tz,
    }).formatToParts(new Date(seconds * 1000)).forEach(function (part) {
      p[part.type] = part.value;
    });
    return p.weekday + " " + p.day + " " + p.month;
  }

  // The geometry of the grid a block is dragged on, so one drag serves both views: where a
  // pointer's x lies in time (timeAt), how resizing reads a pointer's travel, and how the block
  // is drawn where it would land (place, which answers the row or day to outline).
  //
  // The day view is one time axis: the shown hours across the track.
  function dayGeometry(grid, block) {
    var start = Number(grid.dataset.start), end = Number(grid.dataset.end);
    var track = block.closest(".track");
    return {
      week: false,
      timeAt: function (x) {
        var rect = track.getBoundingClientRect();
        return start + ((x - rect.left) / rect.width) * (end - start);
      },
      place: function (d) {
        var span = end - start;
        var left = ((d.newStart - start) / span) * 100;
        var width = ((d.newEnd - d.newStart) / span) * 100;
        d.block.style.left = left.toFixed(3) + "%";
        d.block.style.width = width.toFixed(3) + "%";
        var dy = d.row.getBoundingClientRect().top - d.home.getBoundingClientRect().top;
        d.block.style.transform = dy ? "translateY(" + dy + "px)" : "";
        return d.row !== d.home ? d.row : null;
      },
    };
  }

  // The week view is seven day columns of chips: each column is its local day (23 or 25 hours
  // on a DST day), so the week is one time axis too, a day a column. The pointer level with
  // where the block was picked up in another column keeps its time of day (a few pixels
  // either way still do: MAGNET_PX), so a booking goes to another day at the same time. A
  // chip is not drawn to scale, so its end edge reads the day view's hour width instead.
  var MAGNET_PX = 10;
  function weekGeometry(grid, block, x0) {
    var starts = [];
    grid.querySelectorAll(".week-days .tick.day[data-start]").forEach(function (tick) {
      starts.push(Number(tick.dataset.start));
    });
    var ends = starts.slice(1).concat([Number(grid.dataset.end)]);
    var homeCell = block.closest(".cell");
    var homeCells = homeCell.parentElement.children;
    var home = Array.prototype.indexOf.call(homeCells, homeCell);
    var homeRect = homeCell.getBoundingClientRect();
    var grabFrac = (x0 - homeRect.left) / homeRect.width;

    var level = null; // whole days moved when the pointer is level with the grab, else null

    function column(x) {
      var rects = Array.prototype.map.call(homeCells, function (c) {
        return c.getBoundingClientRect();
      });
      var i = 0;
      while (i < rects.length - 1 && x >= rects[i].right) i++;
      var frac = (x - rects[i].left) / rects[i].width;
      var near = (frac - grabFrac) * rects[i].width;
      if (Math.abs(near) <= MAGNET_PX) frac = grabFrac;
      else frac -= (near > 0 ? MAGNET_PX : -MAGNET_PX) / rects[i].width;
      return { index: i, frac: Math.min(Math.max(frac, 0), 1) };
    }

    function dayOf(at) {
      for (var i = 0; i < starts.length; i++) if (starts[i] <= at && at < ends[i]) return i;
      return -1;
    }

    // Which day of the week shown an instant falls on, counting on past either end.
    function dayIndex(at) {
      var i = dayOf(at);
      if (i >= 0) return i;
      if (at < starts[0]) return -Math.ceil((starts[0] - at) / 86400);
      return starts.length + Math.floor((at - ends[ends.length - 1]) / 86400);
    }

    return {
      week: true,
      timeAt: function (x) {
        var c = column(x);
        level = c.frac === grabFrac ? c.index - home : null;
        return starts[c.index] + c.frac * (ends[c.index] - starts[c.index]);
      },
      // Level with the grab in another column: the same wall time that many days on (DST
      // days included), as long as that day is in the week shown.
      levelStart: function (d) {
        var from = dayOf(d.start);
        if (level === null || from < 0 || !starts[from + level]) return null;
        var tz = zone(d.block);
        return atWall(starts[from + level], wallSecondsOf(d.start, tz), tz);
      },
      resizeSecondsPerPx: function () { return 3600 / hourWidth(); },
      place: function (d) {
        if (d.mode === "resize") return null;
        // As many columns on from the chip's own as days the start moved (a booking across
        // midnight has a chip on both days).
        var i = home + dayIndex(d.newStart) - dayIndex(d.start);
        i = Math.min(Math.max(i, 0), starts.length - 1);
        var cells = d.row.querySelector(".week-cells").children;
        var target = cells[i];
        var from = homeCell.getBoundingClientRect(), to = target.getBoundingClientRect();
        var dx = to.left - from.left, dy = to.top - from.top;
        d.block.style.transform = dx || dy ? "translate(" + dx + "px, " + dy + "px)" : "";
        return target !== homeCell ? target : null;
      },
    };
  }

  document.addEventListener("pointerdown", function (evt) {
    if (drag || !evt.isPrimary || evt.button !== 0) return;
    var block = evt.target.closest && evt.target.closest("#grid a.block[data-change]");
    if (!block) return;
    var grid = block.closest("#grid");
    var rules = block.closest("[data-step]"); // the EVSE's track or week cells
    var geo = grid.classList.contains("is-week")
      ? weekGeometry(grid, block, evt.clientX)
      : dayGeometry(grid, block);
    var scroller = block.closest("[data-scroller]");
    drag = {
      block: block, grid: grid, geo: geo, row: block.closest(".row"),
      scroller: scroller, home: block.closest(".row"),
      mode: evt.target.closest("[data-resize]") ? "resize" : "move",
      touch: evt.pointerType === "touch",
      x0: evt.clientX, y0: evt.clientY, x: evt.clientX, y: evt.clientY,
      grabAt: geo.timeAt(evt.clientX),
      start: Number(block.dataset.start), end: Number(block.dataset.end),
      step: Number(rules.dataset.step) || 900,
      min: Number(rules.dataset.min) || 0,
      max: Number(rules.dataset.max) || Infinity,
      style: block.getAttribute("style") || "",
      active: false, timer: null,
    };
    drag.newStart = drag.start;
    drag.newEnd = drag.end;
    if (drag.touch) drag.timer = window.setTimeout(pickUp, HOLD_MS);
  });

  function pickUp() {
    if (!drag || drag.active) return;
    drag.active = true;
    drag.block.classList.add("dragging");
    drag.grid.classList.add("is-dragging");
    var tip = document.createElement("span");
    tip.className = "drag-tip";
    drag.block.appendChild(tip);
    drag.tip = tip;
    follow();
    drag.raf = window.requestAnimationFrame(edgeScroll);
  }

  // Held near the left or right edge of the timeline's box, the timeline scrolls on under the
  // block, so it can go to any time of the day (any day of the week on a phone).
  var EDGE_PX = 40, EDGE_STEP_PX = 12;
  function edgeScroll() {
    var d = drag;
    if (!d || !d.active || !d.scroller) return;
    var span = visibleSpan(d.scroller);
    // Only once the pointer has gone towards that edge: a block picked up near an edge stays.
    var step = 0;
    if (d.x < span.left + EDGE_PX && d.x < d.x0 - EDGE_PX / 2) step = -EDGE_STEP_PX;
    else if (d.x > span.right - EDGE_PX && d.x > d.x0 + EDGE_PX / 2) step = EDGE_STEP_PX;
    if (step && !(d.geo.week && d.mode === "resize")) {
      var before = d.scroller.scrollLeft;
      d.scroller.scrollLeft += step;
      if (d.scroller.scrollLeft !== before) follow();
    }
    d.raf = window.requestAnimationFrame(edgeScroll);
  }

  // What the label over a dragged block says: its new times, the day first when the day
  // changes, and the EVSE when the row does ("Tue 8 Dec 11:00–12:00 · 1B").
  function dragLabel(d) {
    var tz = zone(d.block);
    var day = dayKey(d.newStart, tz) !== dayKey(d.start, tz) ? dayName(d.newStart, tz) + " " : "";
    return day + wall(d.newStart, tz) + "–" + wall(d.newEnd, tz) +
      (d.row !== d.home ? " · " + rowName(d.row) : "");
  }

  // Snap the pointer's travel to the step, then draw the block where it would land.
  function follow() {
    var d = drag;
    var travel = d.mode === "resize" && d.geo.resizeSecondsPerPx
      ? (d.x - d.x0) * d.geo.resizeSecondsPerPx()
      : d.geo.timeAt(d.x) - d.grabAt;
    var delta = Math.round(travel / d.step) * d.step;
    if (d.mode === "resize") {
      var length = Math.min(Math.max(d.end - d.start + delta, d.min || d.step), d.max);
      d.newStart = d.start;
      d.newEnd = d.start + length;
    } else {
      var level = d.geo.levelStart ? d.geo.levelStart(d) : null;
      d.newStart = level === null ? d.start + delta : level;
      d.newEnd = d.newStart + (d.end - d.start);
      var under = document.elementFromPoint(d.x, d.y);
      var row = under && under.closest && under.closest("#grid .row[data-evse]");
      if (row && row.querySelector(".track, .week-cells")) d.row = row;
    }
    d.grid.querySelectorAll(".drop-target").forEach(function (el) {
      el.classList.remove("drop-target");
    });
    var target = d.geo.place(d);
    if (target) target.classList.add("drop-target");
    d.tip.textContent = dragLabel(d);
    keepInView(d.tip, d.scroller);
  }

  // The label stays readable inside the timeline's box (a block at its right edge, a phone).
  function keepInView(tip, scroller) {
    tip.style.left = "";
    if (!scroller) return;
    var span = visibleSpan(scroller), rect = tip.getBoundingClientRect();
    var shift = Math.max(Math.min(span.right - 4 - rect.right, 0), span.left + 4 - rect.left);
    if (shift) tip.style.left = shift + "px";
  }

  function putBack(d) {
    d.block.setAttribute("style", d.style);
    d.block.classList.remove("dragging", "saving");
    d.block.removeAttribute("aria-busy");
    if (d.tip) d.tip.remove();
    d.grid.classList.remove("is-dragging");
    d.grid.querySelectorAll(".drop-target").forEach(function (el) {
      el.classList.remove("drop-target");
    });
  }

  function endDrag(cancel) {
    var d = drag;
    drag = null;
    if (!d) return;
    window.clearTimeout(d.timer);
    window.cancelAnimationFrame(d.raf);
    if (!d.active) return; // a click or a scroll, not a drag
    suppressClick = true;
    window.setTimeout(function () { suppressClick = false; }, 0);
    var unchanged = d.newStart === d.start && d.newEnd === d.end && d.row === d.home;
    if (cancel || unchanged) {
      putBack(d);
      return;
    }
    d.block.classList.remove("dragging");
    d.block.classList.add("saving");
    d.block.setAttribute("aria-busy", "true");
    d.grid.classList.remove("is-dragging");
    var tz = zone(d.block);
    var notices = document.getElementById("notices");
    // The last drag's or cancel's notice gives way; other notices (arrivals, faults) stay.
    notices.querySelectorAll("[data-notice]").forEach(function (old) { old.remove(); });
    var values = {
      evse: d.row.dataset.evse,
      start: isoIn(d.newStart, tz),
      end: isoIn(d.newEnd, tz),
      override_reason: "",
    };
    htmx.ajax("POST", d.block.dataset.change, {
      source: notices, target: notices, swap: "beforeend", values: values,
    }).then(function () {
      var notice = notices.querySelector("[data-notice]");
      // Refused, or nothing came back (the banner says why): the block goes back at once;
      // the grid reloads from the server either way.
      if (!notice || notice.classList.contains("notice-error")) putBack(d);
      if (d.block.isConnected) refreshPanel(d.block.dataset.booking, d.block.getAttribute("href"));
    });
  }

  // The open panel of a booking just moved shows it where it is now.
  function refreshPanel(uid, href) {
    var open = document.querySelector("#booking-detail[data-booking-uid]");
    if (!open || open.dataset.bookingUid !== uid) return;
    htmx.ajax("GET", href || location.pathname + location.search,
      { target: "#panel", swap: "innerHTML" });
  }

  // Undo in a drag's notice (the same change back, offered once): the notice answers in its
  // place; the grid reloads on the server's "changed" event; the panel follows here.
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var form = evt.detail.elt;
    if (!form.matches || !form.matches("#notices form[data-booking]")) return;
    var uid = form.dataset.booking;
    evt.detail.xhr.addEventListener("loadend", function () { refreshPanel(uid); });
  });

  document.addEventListener("pointermove", function (evt) {
    if (!drag || !evt.isPrimary) return;
    drag.x = evt.clientX;
    drag.y = evt.clientY;
    var moved = Math.abs(evt.clientX - drag.x0) + Math.abs(evt.clientY - drag.y0);
    if (!drag.active) {
      if (drag.touch && moved > 8) endDrag(true); // the finger scrolls instead
      else if (!drag.touch && moved > 4) pickUp();
      return;
    }
    evt.preventDefault();
    follow();
  });
  document.addEventListener("pointerup", function (evt) {
    if (drag && evt.isPrimary) endDrag(false);
  });
  document.addEventListener("pointercancel", function () { endDrag(true); });
  // While a finger drags, the page must not scroll under it.
  document.addEventListener("touchmove", function (evt) {
    if (drag && drag.active && evt.cancelable) evt.preventDefault();
  }, { passive: false });
  document.addEventListener("keydown", function (evt) {
    if (evt.key === "Escape" && drag && drag.active) {
      evt.preventDefault();
      endDrag(true);
    }
  }, true);
  // The click that ends a drag does not open the booking (capture: before htmx sees it).
  document.addEventListener("click", function (evt) {
    if (!suppressClick) return;
    suppressClick = false;
    evt.preventDefault();
    evt.stopPropagation();
  }, true);
  document.addEventListener("dragstart", function (evt) {
    if (evt.target.closest && evt.target.closest("a.block[data-change]")) evt.preventDefault();
  });
  document.addEventListener("contextmenu", function (evt) {
    if (drag) evt.preventDefault(); // a long press picks the block up, it opens no menu
  });
  // The grid does not reload under a block being dragged (the poll waits for the next turn).
  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (drag && drag.active && evt.detail.elt.id === "grid") evt.preventDefault();
  });

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
