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
    if (!el.matches || !el.matches("a.free") || !ev || !ev.detail || ev.clientX === undefined) {
      return;
    }
    evt.detail.parameters.start = new Date(snapped(el, ev.clientX) * 1000).toISOString();
  });

  // Show the start time a click would pick.
  document.addEventListener("mousemove", function (evt) {
    var el = evt.target.closest && evt.target.closest("a.free");
    if (!el) return;
    var hint = el.querySelector(".free-hint");
    if (hint) hint.textContent = "+ " + wall(snapped(el, evt.clientX), zone(el));
  });

  // Close the side panel in place (its link opens the day page when scripts are off).
  document.addEventListener("click", function (evt) {
    var close = evt.target.closest && evt.target.closest("[data-close-panel]");
    if (!close) return;
    var panel = document.getElementById("panel");
    if (!panel) return;
    evt.preventDefault();
    panel.replaceChildren();
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
    var panel = document.getElementById("panel");
    if (!panel || !panel.firstElementChild) return;
    if (evt.target.matches && evt.target.matches("select")) return;
    panel.replaceChildren();
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
})();
