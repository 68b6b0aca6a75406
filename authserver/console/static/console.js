// Progressive enhancement only: every action works without this file.
(function () {
  "use strict";

  function announce(text) {
    var region = document.getElementById("live-region");
    if (region) {
      region.textContent = "";
      window.setTimeout(function () { region.textContent = text; }, 50);
    }
  }

  // A page that shows a freshly created secret came from a POST: point the history entry at the
  // plain app page, so a reload shows the app (without the secret) instead of posting again.
  var replaceUrl = document.body.getAttribute("data-replace-url");
  if (replaceUrl && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", replaceUrl);
  }

  function copyText(input) {
    var text = input.value;
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    input.focus();
    input.select();
    var ok = document.execCommand && document.execCommand("copy");
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-copy-target]"), function (button) {
    var input = document.getElementById(button.getAttribute("data-copy-target"));
    if (!input) { return; }
    var label = button.querySelector("span");
    button.hidden = false;
    button.addEventListener("click", function () {
      copyText(input).then(function () {
        if (label) { label.textContent = "Copied"; }
        button.classList.add("is-done");
        announce("Copied to the clipboard.");
        window.setTimeout(function () {
          if (label) { label.textContent = "Copy"; }
          button.classList.remove("is-done");
        }, 2000);
      }, function () {
        input.focus();
        input.select();
        announce("Press Control+C or Command+C to copy the selected text.");
      });
    });
  });

  // Select the whole value when a read-only field gets focus, ready to copy by keyboard.
  Array.prototype.forEach.call(document.querySelectorAll(".copy-field input[readonly]"), function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });

  // Destructive actions: open the confirmation <dialog> instead of going to the confirmation page.
  Array.prototype.forEach.call(document.querySelectorAll("form[data-confirm-dialog]"), function (form) {
    var dialog = document.getElementById(form.getAttribute("data-confirm-dialog"));
    if (!dialog || typeof dialog.showModal !== "function") { return; }
    var opener = form.querySelector("button");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      dialog.showModal();
    });
    dialog.addEventListener("close", function () {
      if (opener) { opener.focus(); }
    });
  });
})();
