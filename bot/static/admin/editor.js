// Flow/template editor: keep the line-number gutter in step with the text, jump to a problem's line.
(function () {
  "use strict";
  function init() {
    var text = document.getElementById("flow-text");
    var gutter = document.getElementById("gutter");
    if (!text || !gutter) { return; }
    var bad = {};
    Array.prototype.forEach.call(gutter.querySelectorAll("span.bad"), function (s) { bad[s.textContent] = true; });
    function fit() {
      text.style.height = "auto";
      text.style.height = text.scrollHeight + "px";
    }
    function renumber() {
      var n = text.value.split("\n").length;
      var out = [];
      for (var i = 1; i <= n; i++) { out.push(bad[String(i)] ? '<span class="bad">' + i + "</span>" : "<span>" + i + "</span>"); }
      gutter.innerHTML = out.join("\n");
      fit();
    }
    text.addEventListener("input", renumber);
    text.addEventListener("keydown", function (e) {
      if (e.key === "Tab") {
        e.preventDefault();
        var s = text.selectionStart;
        text.setRangeText("  ", s, text.selectionEnd, "end");
        renumber();
      }
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-line]"), function (a) {
      a.addEventListener("click", function (e) {
        e.preventDefault();
        var line = parseInt(a.getAttribute("data-line"), 10);
        var lines = text.value.split("\n");
        var start = 0;
        for (var i = 0; i < line - 1 && i < lines.length; i++) { start += lines[i].length + 1; }
        text.focus();
        text.setSelectionRange(start, start + (lines[line - 1] || "").length);
        var row = gutter.children[line - 1];
        if (row) { row.scrollIntoView({ block: "center" }); }
      });
    });
    renumber();
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
