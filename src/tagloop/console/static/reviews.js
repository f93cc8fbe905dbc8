// Keyboard shortcuts of the review queue (/reviews; docs/console.md lists them):
//   j / k  next / previous item        a  approve the current item
//   r      reject: focus its reason    o  override: focus its value
//   x      select it (bulk decisions)  e  open or close its evidence
//   ?      show or hide the help       Esc  back to the item from a field; close the help
// Nothing fires while typing in a field or a list (or with Ctrl, Alt, Meta held). Without
// scripts the page works with its buttons and forms alone; with htmx a decision replaces
// its row, and focus moves on to the next pending item.
(function () {
  "use strict";

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("table.queue tr.item"));
  }

  // Text fields and lists take letters themselves; checkboxes and buttons do not.
  function typing(el) {
    if (!el || !el.tagName) return false;
    var tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable) return true;
    if (tag !== "INPUT") return false;
    return ["checkbox", "radio", "button", "submit", "reset"].indexOf(el.type) < 0;
  }

  function currentRow() {
    var active = document.activeElement;
    var row = active && active.closest ? active.closest("tr.item") : null;
    return row || document.querySelector("table.queue tr.item.current");
  }

  function focusRow(row) {
    if (!row) return;
    rows().forEach(function (r) { r.classList.toggle("current", r === row); });
    row.focus();
    row.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var list = rows();
    if (!list.length) return;
    var index = list.indexOf(currentRow());
    var next = index < 0 ? 0 : Math.min(list.length - 1, Math.max(0, index + step));
    focusRow(list[next]);
  }

  function toggleHelp(show) {
    var help = document.getElementById("shortcuts");
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
  }

  // The row acted on: the current one; without one, a first key press only selects the
  // first item (so a stray "a" never approves an item nobody looked at).
  function target() {
    var row = currentRow();
    if (!row) focusRow(rows()[0]);
    return row;
  }

  var actions = {
    j: function () { move(1); },
    k: function () { move(-1); },
    a: function (row) {
      var button = row.querySelector("[data-action=approve]");
      if (button) button.click();
    },
    r: function (row) {
      var reason = row.querySelector("[data-role=reason]");
      if (reason) reason.focus();
    },
    o: function (row) {
      var value = row.querySelector("[data-role=value]");
      if (value) value.focus();
    },
    x: function (row) {
      var box = row.querySelector("input[type=checkbox]");
      if (box) box.click();
    },
    e: function (row) {
      var details = row.querySelector("details");
      if (details) details.open = !details.open;
    }
  };

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    var el = event.target;
    if (typing(el)) {
      if (event.key === "Escape" && el.closest && el.closest("tr.item")) {
        event.preventDefault();
        focusRow(el.closest("tr.item"));
      } else if (event.key === "Enter" && el.dataset && el.dataset.role === "reason" && el.value) {
        // A list does not submit its form on Enter: the reason chosen, Enter rejects.
        event.preventDefault();
        el.form.requestSubmit();
      }
      return;
    }
    if (event.key === "?") {
      event.preventDefault();
      toggleHelp();
      return;
    }
    if (event.key === "Escape") {
      toggleHelp(false);
      return;
    }
    var action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    if (event.key === "j" || event.key === "k") {
      action(null);
      return;
    }
    var row = target();
    if (row) action(row);
  });

  // Keep the current row highlighted when it is reached with Tab or a click.
  document.addEventListener("focusin", function (event) {
    var row = event.target.closest ? event.target.closest("table.queue tr.item") : null;
    if (row) rows().forEach(function (r) { r.classList.toggle("current", r === row); });
  });

  // "Select all" of the page: a script-only control, hidden without scripts.
  document.addEventListener("DOMContentLoaded", function () {
    var all = document.getElementById("pick-all");
    if (!all) return;
    all.hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll("table.queue tr.item input[type=checkbox]").forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });

  // htmx: remember the row a decision came from, let its errors show (htmx swaps no 4xx
  // answer by default: the server retargets them to the status line), then move on.
  var decidedRow = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var row = event.target.closest ? event.target.closest("tr.item") : null;
    decidedRow = row ? row.id : null;
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status >= 400 && xhr.getResponseHeader("HX-Retarget") === "#queue-status") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!decidedRow) return;
    var row = document.getElementById(decidedRow);
    decidedRow = null;
    if (!row) return;
    var status = document.getElementById("queue-status");
    if (row.dataset.pending) {  // not decided (an error): stay on it
      focusRow(row);
      return;
    }
    if (status && row.dataset.message) status.innerHTML = "<p class=\"good\"></p>";
    if (status && row.dataset.message) status.firstChild.textContent = row.dataset.message;
    var list = rows();
    var after = list.slice(list.indexOf(row) + 1).concat(list.slice(0, list.indexOf(row)));
    var next = after.filter(function (r) { return r.dataset.pending; })[0];
    focusRow(next || row);
  });
})();
