/* Client-side filter for the archive: narrows the article list as you type.
   Plain JavaScript, no network; without JavaScript the form stays hidden and
   every article is shown. */
(function () {
  "use strict";
  var form = document.querySelector("form.filter");
  var box = document.getElementById("filter");
  var status = document.getElementById("filter-status");
  if (!form || !box) { return; }
  var entries = Array.prototype.slice.call(document.querySelectorAll("[data-entry]"));
  // Fold case and accents so "fluckiger" finds "Flückiger".
  function fold(text) { return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase(); }
  var texts = entries.map(function (e) { return fold(e.textContent); });
  var groups = Array.prototype.slice.call(document.querySelectorAll("[data-group]"));

  function apply() {
    var words = fold(box.value).split(/\s+/).filter(Boolean);
    var shown = 0;
    entries.forEach(function (entry, i) {
      var match = words.every(function (w) { return texts[i].indexOf(w) !== -1; });
      entry.hidden = !match;
      if (match) { shown += 1; }
    });
    groups.forEach(function (group) {
      group.hidden = !group.querySelector("[data-entry]:not([hidden])");
    });
    if (!words.length) {
      status.textContent = "";
    } else if (shown === 0) {
      status.textContent = "No articles match \u201c" + box.value.trim() + "\u201d.";
    } else {
      status.textContent = shown + " of " + entries.length + " articles match.";
    }
  }

  form.hidden = false;
  form.addEventListener("submit", function (event) { event.preventDefault(); apply(); });
  box.addEventListener("input", apply);
  var initial = new URLSearchParams(window.location.search).get("q");
  if (initial) { box.value = initial; }
  if (box.value) { apply(); }
}());
