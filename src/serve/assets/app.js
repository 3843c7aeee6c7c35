// Refreshes the dashboard's live part every few seconds from /live (the
// same server-rendered HTML); without JavaScript the page is complete as
// served and a reload shows new figures.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var note = document.getElementById("refresh");
  if (!live || !window.fetch) return;
  var every = 3000;
  note.textContent = "Live: refreshes every " + every / 1000 + " s.";
  function tick() {
    fetch(live.getAttribute("data-src"), { cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        live.setAttribute("data-refreshed", String(Date.now()));
        note.textContent = "Live: refreshes every " + every / 1000 + " s.";
        note.classList.remove("stale");
      })
      .catch(function (e) {
        note.textContent = "Not refreshed (" + e.message + "); retrying.";
        note.classList.add("stale");
      })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
