// Live preview for the rule form: posts the form to /console/rules/preview as the
// merchandiser edits and swaps the preview pane. Without JavaScript the "Preview" button
// does the same with a full page.
(function () {
  "use strict";
  function showActionFields(form) {
    var kind = form.querySelector("#action_type").value;
    form.querySelectorAll("[data-for]").forEach(function (el) {
      el.hidden = el.getAttribute("data-for").split(" ").indexOf(kind) < 0;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("rule-form");
    var pane = document.getElementById("preview");
    if (!form || !pane) return;
    showActionFields(form);
    var timer = null, seq = 0;
    function refresh() {
      var mine = ++seq;
      var body = new URLSearchParams(new FormData(form));
      pane.setAttribute("aria-busy", "true");
      fetch("/console/rules/preview", {method: "POST", body: body, credentials: "same-origin",
        headers: {"Content-Type": "application/x-www-form-urlencoded"}})
        .then(function (r) { return r.text(); })
        .then(function (html) { if (mine === seq) { pane.innerHTML = html; pane.removeAttribute("aria-busy"); } })
        .catch(function () { pane.removeAttribute("aria-busy"); });
    }
    function later() { clearTimeout(timer); timer = setTimeout(refresh, 400); }
    form.addEventListener("input", later);
    form.addEventListener("change", function (e) { if (e.target.id === "action_type") showActionFields(form); later(); });
    document.getElementById("preview-button").addEventListener("click", function (e) { e.preventDefault(); refresh(); });
    if (form.querySelector("[name=name]").value) refresh();
  });
})();
