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
})();
