// The book's own behaviour (loaded by book/_ext/fancybook.py).
(function () {
  "use strict";

  // Sidebar toggles. pydata-sphinx-theme 0.17 and sphinx-book-theme bind their
  // handlers to the FIRST .primary-toggle / .secondary-toggle in the page, a header
  // button that this layout hides; the visible buttons got no handler (pydata-sphinx-theme
  // issue 2451). Forward every other toggle's click to the first one.
  function forwardToggles(selector) {
    const toggles = document.querySelectorAll(selector);
    if (toggles.length < 2) return;
    const first = toggles[0];
    toggles.forEach(function (toggle) {
      if (toggle === first) return;
      toggle.addEventListener("click", function (event) {
        event.preventDefault();
        event.stopPropagation();
        first.click();
      });
    });
  }

  // Any figure opens full size in a dialog (click, or Enter when focused).
  function zoomable(img) {
    if (img.closest("a") || img.closest(".fancydl-explorer-noclick")) return;
    img.classList.add("fancybook-zoomable");
    img.tabIndex = 0;
    img.setAttribute("role", "button");
    if (!img.title) img.title = "Open the figure full size";
    function open() {
      const dialog = document.createElement("dialog");
      dialog.className = "fancybook-zoom";
      const close = document.createElement("button");
      close.className = "fancybook-zoom-close btn btn-sm";
      close.textContent = "Close";
      close.addEventListener("click", function () { dialog.close(); });
      const big = document.createElement("img");
      big.src = img.currentSrc || img.src;
      big.alt = img.alt;
      big.addEventListener("click", function () { dialog.close(); });
      dialog.append(close, big);
      dialog.addEventListener("close", function () { dialog.remove(); img.focus(); });
      document.body.appendChild(dialog);
      dialog.showModal();
    }
    img.addEventListener("click", open);
    img.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        open();
      }
    });
  }

  function ready() {
    forwardToggles(".primary-toggle");
    forwardToggles(".secondary-toggle");
    document.querySelectorAll(".cell_output img, figure img").forEach(zoomable);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
