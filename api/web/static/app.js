// crosscheck pages: a little JavaScript on top of pages that work without it.
//   [data-drop]   a file drop zone around a file input: drag a roll file onto it
//   [data-poll]   a block that replaces itself with a fresh copy from its URL until the copy
//                 has no data-poll any more (a batch that finished)
//   forms         the submit button is disabled while the form is sent (no double posts)
//   [data-error]  a form's problem, sent back with the page: scrolled into view and focused
(function () {
  "use strict";

  function dropZones() {
    document.querySelectorAll("[data-drop]").forEach(function (zone) {
      var input = zone.querySelector("input[type=file]");
      var hint = zone.querySelector("[data-drop-hint]");
      if (!input) return;
      function show() {
        if (hint && input.files && input.files.length) hint.textContent = "已选择：" + input.files[0].name;
      }
      ["dragenter", "dragover"].forEach(function (name) {
        zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
      });
      ["dragleave", "drop"].forEach(function (name) {
        zone.addEventListener(name, function () { zone.classList.remove("over"); });
      });
      zone.addEventListener("drop", function (event) {
        event.preventDefault();
        if (event.dataTransfer && event.dataTransfer.files.length) {
          input.files = event.dataTransfer.files;
          show();
        }
      });
      input.addEventListener("change", show);
    });
  }

  function poll(block) {
    var url = block.getAttribute("data-poll");
    if (!url) return;
    window.setTimeout(function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.redirected) { window.location.reload(); return new Promise(function () {}); }
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var fresh = holder.querySelector("#" + block.id);
          if (!fresh) throw new Error("no #" + block.id);
          block.replaceWith(fresh);
          poll(fresh);
        })
        .catch(function () { window.setTimeout(function () { poll(block); }, 3000); });
    }, 1000);
  }

  function oneSubmit() {
    document.querySelectorAll("form[method=post]").forEach(function (form) {
      form.addEventListener("submit", function () {
        var button = form.querySelector("button[type=submit]");
        if (!button) return;
        window.setTimeout(function () {
          button.disabled = true;
          if (button.dataset.busyText) button.textContent = button.dataset.busyText;
        }, 0);
      });
    });
  }

  // A form sent back with a problem: the page reloads at its top; bring the problem into view.
  function showError() {
    var error = document.querySelector("[data-error]");
    if (error) { error.scrollIntoView({ block: "center" }); error.focus({ preventScroll: true }); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    showError();
    dropZones();
    document.querySelectorAll("[data-poll]").forEach(poll);
    oneSubmit();
  });
})();
