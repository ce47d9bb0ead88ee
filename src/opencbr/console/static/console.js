/* OpenCBR console: small progressive enhancements; every page works without them. */
(function () {
  "use strict";

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function ready() {
    // Capacity and progress bars (inline styles are not allowed by the page's CSP).
    each("[data-width]", function (el) {
      var value = Math.max(0, Math.min(100, parseFloat(el.getAttribute("data-width")) || 0));
      el.style.width = value + "%";
    });

    // Region selector: switching submits at once.
    each("form[data-autosubmit]", function (form) {
      each(".js-hide", function (el) { el.hidden = true; });
      var select = form.querySelector("select");
      if (select) {
        select.addEventListener("change", function () { form.submit(); });
      }
    });

    // Destructive actions ask first.
    each("form[data-confirm]", function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) {
          event.preventDefault();
        }
      });
    });

    // Share Backup: each project ID's format is checked as it is added, with the service's
    // pattern and message (rendered into the field); existence and region are checked on OK.
    each("form[data-recipients]", function (form) {
      var field = form.querySelector("input[pattern]");
      var note = form.querySelector(".field-error");
      var rule = new RegExp("^(?:" + field.getAttribute("pattern") + ")$");
      form.addEventListener("submit", function (event) {
        var value = field.value.trim();
        if (!event.submitter || event.submitter.value !== "add" || rule.test(value)) { return; }
        event.preventDefault();
        if (value) {
          note.textContent = field.getAttribute("data-malformed").replace("{id}", function () {
            return value;
          });
          note.hidden = false;
          field.setAttribute("aria-invalid", "true");
        }
        field.focus();
      });
      field.addEventListener("input", function () {
        note.hidden = true;
        field.removeAttribute("aria-invalid");
      });
    });

    // "More" menus: one open at a time; Escape closes. An open menu floats over the page
    // beside its button, so a table that scrolls sideways does not clip it.
    function place(details) {
      var menu = details.querySelector(".menu");
      var at = details.querySelector("summary").getBoundingClientRect();
      menu.classList.add("floating");
      var below = at.bottom + 4 + menu.offsetHeight <= window.innerHeight;
      menu.style.top = (below ? at.bottom + 4 : Math.max(4, at.top - 4 - menu.offsetHeight)) + "px";
      menu.style.left = Math.max(4, at.right - menu.offsetWidth) + "px";
    }
    ["scroll", "resize"].forEach(function (name) {
      window.addEventListener(name, function () { each("details.more[open]", place); }, true);
    });
    each("details.more", function (details) {
      details.addEventListener("toggle", function () {
        if (!details.open) { return; }
        place(details);
        each("details.more[open]", function (other) {
          if (other !== details) { other.open = false; }
        });
        var first = details.querySelector("[role=menuitem], button");
        if (first && !details.hasAttribute("data-hovered")) { first.focus(); }
      });
      details.addEventListener("keydown", function (event) {
        if (event.key === "Escape") {
          details.open = false;
          details.querySelector("summary").focus();
        }
      });
    });

    // The menu on the user name also opens while the pointer rests on it; a click keeps it.
    each("details[data-hover-open]", function (details) {
      details.addEventListener("mouseenter", function () {
        if (!details.open) { details.setAttribute("data-hovered", ""); details.open = true; }
      });
      details.addEventListener("mouseleave", function () {
        if (details.hasAttribute("data-hovered")) { details.open = false; }
        details.removeAttribute("data-hovered");
      });
      details.querySelector("summary").addEventListener("click", function (event) {
        if (details.hasAttribute("data-hovered")) {
          event.preventDefault();
          details.removeAttribute("data-hovered");
        }
      });
    });

    // Modal dialogs: keep the focus inside, Escape closes.
    each("[role=dialog][aria-modal=true]", function (dialog) {
      var focusable = function () {
        return Array.prototype.filter.call(
          dialog.querySelectorAll("a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select, textarea"),
          function (el) { return el.offsetParent !== null; }
        );
      };
      var auto = dialog.querySelector("[autofocus]") || focusable()[0];
      if (auto) { auto.focus(); }
      dialog.addEventListener("keydown", function (event) {
        if (event.key === "Escape") {
          window.location.href = dialog.getAttribute("data-close");
          return;
        }
        if (event.key !== "Tab") { return; }
        var items = focusable();
        if (!items.length) { return; }
        var first = items[0], last = items[items.length - 1];
        if (event.shiftKey && document.activeElement === first) {
          event.preventDefault(); last.focus();
        } else if (!event.shiftKey && document.activeElement === last) {
          event.preventDefault(); first.focus();
        }
      });
    });

    // Pages showing running work refresh themselves until it is done, but never under the
    // user's hands: not while a menu or dialog is open or a form field has the focus.
    var refresh = document.body.getAttribute("data-refresh");
    function busy() {
      var active = document.activeElement;
      return document.querySelector("details[open], [role=dialog]") !== null ||
        (active !== null && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName));
    }
    function reloadWhenIdle() {
      if (busy()) {
        window.setTimeout(reloadWhenIdle, parseInt(refresh, 10));
      } else {
        window.location.reload();
      }
    }
    if (refresh) {
      window.setTimeout(reloadWhenIdle, parseInt(refresh, 10));
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
