// The rule editor on a tag's page: live checking and highlighting of the rule text, and a
// visual condition builder kept in step with it. The server does the language: every edit
// goes to POST /v1/tags/{name}/draft, which answers with the rule as text, as the builder's
// form, its highlighting spans and its errors. Without scripts the page is a plain form.
(function () {
  "use strict";
  var island = document.getElementById("editor-data");
  var form = document.getElementById("editor-form");
  drawTrend();
  if (!island || !form) return;
  var data = JSON.parse(island.textContent);
  var L = data.labels, vocab = data.vocabulary;
  var area = document.getElementById("rule");
  var paint = document.getElementById("highlight");
  var status = document.getElementById("rule-status");
  var builder = document.getElementById("builder");
  var textMode = document.getElementById("text-mode");
  var modes = form.querySelector(".modes");
  var csrf = (form.querySelector("[name=csrf_token]") || {}).value || "";
  var model = data.builder;  // the builder's form of the text, null if it does not parse
  var visual = false, asked = 0, timer = null, dirty = false;
  area.parentNode.classList.add("live");  // the highlighted copy shows through the text

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), attrs[k]);
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  // -- the text ------------------------------------------------------------------------
  function highlight(text, tokens) {
    paint.textContent = "";
    var at = 0;
    tokens.forEach(function (t) {
      if (t.start > at) paint.appendChild(document.createTextNode(text.slice(at, t.start)));
      paint.appendChild(el("span", { "class": "tk-" + t.kind, text: text.slice(t.start, t.end) }));
      at = t.end;
    });
    paint.appendChild(document.createTextNode(text.slice(at) + " "));
  }

  function report(answer) {
    status.textContent = "";
    if (answer.valid) { status.appendChild(el("p", { "class": "good", text: L["editor.valid"] || "OK" })); return; }
    answer.errors.forEach(function (e) {
      var where = e.line ? (L["editor.error_at"] || "{line}:{column}: {message}")
        .replace("{line}", e.line).replace("{column}", e.column).replace("{message}", e.message)
        : e.message;
      status.appendChild(el("p", { "class": "error", text: where }));
    });
  }

  function ask(body) {
    var mine = ++asked;
    return fetch(data.draft_url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(function (r) { return r.json().then(function (j) { return r.ok ? j : Promise.reject(j); }); })
      .then(function (answer) { return mine === asked ? answer : null; })  // a newer one wins
      .catch(function (e) {
        status.textContent = "";
        status.appendChild(el("p", { "class": "error", text: (e && e.message) || String(e) }));
        return null;
      });
  }

  function fromText() {
    clearTimeout(timer);
    return ask({ rule: area.value }).then(function (answer) {
      if (!answer) return;
      dirty = false;
      highlight(answer.rule, answer.tokens);
      report(answer);
      model = answer.builder;
    });
  }

  function fromBuilder() {
    ask({ builder: root() }).then(function (answer) {
      if (!answer) return;
      if (answer.rule !== null) {
        area.value = answer.rule;
        highlight(answer.rule, answer.tokens);
      }
      report(answer);
    });
  }

  function later(fn) { clearTimeout(timer); timer = setTimeout(fn, 250); }

  area.addEventListener("input", function () { dirty = true; highlight(area.value, []); later(fromText); });
  area.addEventListener("scroll", function () { paint.scrollTop = area.scrollTop; paint.scrollLeft = area.scrollLeft; });
  form.addEventListener("keydown", function (e) {
    if (!(e.ctrlKey || e.metaKey)) return;
    var action = e.key === "Enter" ? "check" : (e.key === "s" ? "save" : null);
    var button = action && form.querySelector("button[value=" + action + "]");
    if (button) { e.preventDefault(); button.click(); }
  });

  // -- the builder ---------------------------------------------------------------------
  function root() {
    if (model && model.type !== "group") model = { type: "group", op: "and", items: [model] };
    return model;
  }

  function kindOf(left) { return vocab.terms[left.trim()] || null; }

  function operandText(o) {
    if (!o) return "";
    return "expr" in o ? o.expr : (o.value === null ? "null" : String(o.value));
  }

  // A typed value as an operand: a literal of the left side's type where it is known; an
  // expression when it calls a function, or names an attribute beside a numeric one.
  function toOperand(text, kind, before) {
    text = text.trim();
    if (before && "expr" in before && before.expr === text) return before;
    if (kind === "string") return { value: text };
    if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(text)) return { value: Number(text) };
    if (text === "true" || text === "false") return { value: text === "true" };
    if (text === "null") return { value: null };
    if (/[()]/.test(text)) return { expr: text };
    if ((kind === "number" || kind === "integer") && /^[^\W\d][\w.]*$/.test(text)) return { expr: text };
    return { value: text };
  }

  function button(label, onclick, cls) {
    return el("button", { type: "button", "class": cls || "", text: label, onclick: onclick });
  }

  function changed(rebuild) { if (rebuild) draw(); fromBuilder(); }

  function renderItem(item, replace, remove) {
    if (item.type === "group") return renderGroup(item, replace, remove);
    var row;
    if (item.type === "not") {
      row = el("div", { "class": "item not" }, [
        el("span", { "class": "kw", text: L["builder.not"] }),
        renderItem(item.item, function (n) { item.item = n; }, null)
      ]);
    } else if (item.type === "condition") {
      row = renderCondition(item);
    } else if (item.type === "tag") {
      var pick = el("select", { "aria-label": L["builder.has_tag"] });
      var names = vocab.tags.indexOf(item.tag) >= 0 || !item.tag ? vocab.tags : [item.tag].concat(vocab.tags);
      names.forEach(function (n) { pick.appendChild(el("option", { value: n, text: n })); });
      pick.value = item.tag;
      pick.addEventListener("change", function () { item.tag = pick.value; changed(false); });
      row = el("div", { "class": "item" }, [el("span", { "class": "kw", text: L["builder.has_tag"] }), pick]);
    } else {
      var input = el("input", { type: "text", "class": "expr", value: item.text || "", "aria-label": L["builder.expression"] });
      input.addEventListener("input", function () { item.text = input.value; later(function () { changed(false); }); });
      row = el("div", { "class": "item" }, [input]);
    }
    var negate = el("input", { type: "checkbox", "aria-label": L["builder.not"] });
    negate.checked = item.type === "not";
    negate.addEventListener("change", function () {
      replace(item.type === "not" ? item.item : { type: "not", item: item });
      changed(true);
    });
    var tools = el("span", { "class": "tools" }, [el("label", {}, [negate, document.createTextNode(" " + L["builder.not"])])]);
    if (remove) tools.appendChild(button(L["builder.remove"], function () { remove(); changed(true); }, "remove"));
    row.appendChild(tools);
    return row;
  }

  function renderCondition(item) {
    var left = el("input", { type: "text", list: "terms", value: item.left, "class": "left", "aria-label": L["builder.left"],
      size: String(Math.max(18, Math.min(60, item.left.length + 2))) });
    var op = el("select", { "aria-label": L["builder.operator"] });
    vocab.operators.forEach(function (o) { op.appendChild(el("option", { value: o, text: L["op." + o] || o })); });
    op.value = item.op;
    var values = el("span", { "class": "values" });
    function drawValues() {
      values.textContent = "";
      var arity = { "in": -1, "not in": -1, "between": 2, "not between": 2, "is null": 0, "is not null": 0 }[item.op];
      if (arity === undefined) arity = 1;
      if (arity === -1) {
        var joined = el("input", { type: "text", "class": "value", value: item.right.map(operandText).join(", "),
          "aria-label": L["builder.value"] + " (" + L["builder.values_hint"] + ")", placeholder: L["builder.values_hint"] });
        joined.addEventListener("input", function () {
          var kind = kindOf(item.left);
          item.right = joined.value.split(",").map(function (p) { return p.trim(); })
            .filter(function (p) { return p !== ""; }).map(function (p) { return toOperand(p, kind, null); });
          later(function () { changed(false); });
        });
        values.appendChild(joined);
        return;
      }
      while (item.right.length < arity) item.right.push({ value: "" });
      item.right = item.right.slice(0, arity);
      item.right.forEach(function (operand, i) {
        var input = el("input", { type: "text", "class": "value", value: operandText(operand), "aria-label": L["builder.value"] + (arity > 1 ? " " + (i + 1) : "") });
        input.addEventListener("input", function () {
          item.right[i] = toOperand(input.value, kindOf(item.left), operand);
          later(function () { changed(false); });
        });
        values.appendChild(input);
      });
    }
    drawValues();
    left.addEventListener("input", function () { item.left = left.value; later(function () { changed(false); }); });
    op.addEventListener("change", function () { item.op = op.value; drawValues(); changed(false); });
    return el("div", { "class": "item condition" }, [left, op, values]);
  }

  function renderGroup(group, replace, remove) {
    var op = el("select", { "aria-label": L["builder.group"] });
    op.appendChild(el("option", { value: "and", text: L["builder.all"] }));
    op.appendChild(el("option", { value: "or", text: L["builder.any"] }));
    op.value = group.op;
    op.addEventListener("change", function () { group.op = op.value; changed(false); });
    var list = el("ol", { "class": "items" });
    group.items.forEach(function (sub, i) {
      list.appendChild(el("li", {}, [renderItem(sub,
        function (n) { group.items[i] = n; },
        function () { group.items.splice(i, 1); })]));
    });
    function add(item) { group.items.push(item); changed(true); }
    var first = Object.keys(vocab.terms)[0] || "";
    var head = el("div", { "class": "group-head" }, [op,
      button(L["builder.add_condition"], function () { add({ type: "condition", left: first, op: "==", right: [{ value: "" }] }); }),
      button(L["builder.add_tag"], function () { add({ type: "tag", tag: vocab.tags[0] || "" }); }),
      button(L["builder.add_group"], function () { add({ type: "group", op: group.op === "and" ? "or" : "and", items: [] }); }),
      button(L["builder.add_expr"], function () { add({ type: "expr", text: "" }); })]);
    if (remove) head.appendChild(button(L["builder.remove"], function () { remove(); changed(true); }, "remove"));
    return el("fieldset", { "class": "group" }, [head, list]);
  }

  function draw() {
    builder.textContent = "";
    var terms = el("datalist", { id: "terms" });
    Object.keys(vocab.terms).forEach(function (t) { terms.appendChild(el("option", { value: t })); });
    builder.appendChild(terms);
    if (!model) {
      builder.appendChild(el("p", { "class": "error", text: L["builder.unparsable"] }));
      return;
    }
    if (area.value.indexOf("#") >= 0) builder.appendChild(el("p", { "class": "muted", text: L["builder.comments"] }));
    builder.appendChild(renderGroup(root(), function (n) { model = n; }, null));
  }

  function show(mode) {
    visual = mode === "visual";
    builder.hidden = !visual;
    textMode.hidden = visual;
    modes.querySelectorAll("button").forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.mode === mode)); });
    if (visual && dirty) fromText().then(draw);  // the text changed since it was checked
    else if (visual) draw();
    try { sessionStorage.setItem("tagloop.editor.mode", mode); } catch (e) { /* private mode */ }
  }

  modes.hidden = false;
  modes.addEventListener("click", function (e) {
    var mode = e.target.dataset && e.target.dataset.mode;
    if (mode) show(mode);
  });
  var remembered = null;
  try { remembered = sessionStorage.getItem("tagloop.editor.mode"); } catch (e) { /* none */ }
  show(remembered === "text" ? "text" : "visual");

  // -- the coverage trend chart --------------------------------------------------------
  function drawTrend() {
    var holder = document.querySelector("[data-trend]");
    var numbers = document.getElementById("trend-data");
    if (!holder || !numbers || !window.echarts) return;
    var trend = JSON.parse(numbers.textContent);
    var chart = echarts.init(holder);
    chart.setOption({
      animation: false, tooltip: { trigger: "axis" },
      grid: { left: 48, right: 16, top: 16, bottom: 32 },
      xAxis: { type: "category", data: trend.days },
      yAxis: { type: "value", axisLabel: { formatter: "{value}%" } },
      series: [{ type: "line", data: trend.coverage, color: "#0b57d0", areaStyle: { opacity: 0.15 } }]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
})();
