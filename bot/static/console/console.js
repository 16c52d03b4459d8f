// The console's own script (no inline script anywhere: the CSP forbids it).
// The grid filter offers only the grids of the community chosen.
"use strict";
(function () {
  function limitGrids(form) {
    var community = form.querySelector("select[name=community]");
    var grid = form.querySelector("select[name=grid]");
    if (!community || !grid) return;
    var chosen = community.value;
    Array.prototype.forEach.call(grid.options, function (option) {
      var parent = option.getAttribute("data-community");
      option.hidden = Boolean(chosen && parent && parent !== chosen);
    });
    var selected = grid.options[grid.selectedIndex];
    if (selected && selected.hidden) grid.value = "";
  }
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("filters");
    if (!form) return;
    limitGrids(form);
    form.addEventListener("change", function (event) {
      if (event.target && event.target.name === "community") limitGrids(form);
    });
  });
})();
