// Managing sources and SOPs in the browser: the rule preview, Check now, the watch builder.
// No framework, no build step. Every text from a page or the API is inserted with textContent, never
// as HTML. Without this script every form still saves (it only adds what needs the API).
"use strict";

(function () {
  function csrf() {
    var input = document.querySelector('input[name="csrf_token"]');
    return input ? input.value : "";
  }

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function link(href, text) {
    var a = el("a", text);
    a.setAttribute("href", href);
    return a;
  }

  function problemsOf(body, fallback) {
    if (body && Array.isArray(body.problems)) return body.problems;
    if (body && typeof body.detail === "string") return [body.detail];
    return [fallback];
  }

  function send(url, options) {
    options.headers = Object.assign({"X-CSRF-Token": csrf()}, options.headers || {});
    options.credentials = "same-origin";
    return fetch(url, options).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        return {ok: r.ok, status: r.status, body: body};
      });
    });
  }

  function lines(text) {
    return (text || "").split("\n").map(function (s) { return s.trim(); }).filter(Boolean);
  }

  // --- the source form's Preview ------------------------------------------------------------

  function setupPreview() {
    var form = document.getElementById("source-form");
    var button = document.getElementById("preview-button");
    if (!form || !button) return;
    var panel = document.getElementById("preview");
    var status = document.getElementById("preview-status");
    var result = document.getElementById("preview-result");
    button.hidden = false;
    button.addEventListener("click", function () {
      panel.hidden = false;
      result.hidden = true;
      status.textContent = "Fetching the page twice, a second apart…";
      button.disabled = true;
      send("/sources/preview", {method: "POST", body: new FormData(form)}).then(function (r) {
        button.disabled = false;
        if (!r.ok) {
          status.textContent = "No preview: " + problemsOf(r.body, "HTTP " + r.status).join("; ");
          return;
        }
        showPreview(r.body, status, result);
      }, function (err) {
        button.disabled = false;
        status.textContent = "No preview: " + err;
      });
    });
  }

  function showPreview(data, status, result) {
    if (!data.previewable) {
      status.textContent = data.message;
      return;
    }
    var notes = (data.notes || []).length ? " (" + data.notes.join("; ") + ")" : "";
    status.textContent = data.blocks_total + " blocks in " + data.sections.length + " sections over " +
      data.fetches + " fetches" + notes + ".";
    var sections = document.getElementById("preview-sections");
    clear(sections);
    data.sections.forEach(function (s) {
      var tr = el("tr");
      tr.appendChild(el("td", s.section || "(top)"));
      tr.appendChild(el("td", s.blocks));
      sections.appendChild(tr);
    });
    var volatile = document.getElementById("preview-volatile");
    clear(volatile);
    if (!data.volatile.length) volatile.appendChild(el("li", "None: the fetches gave the same text.", "muted"));
    data.volatile.forEach(function (v) {
      var li = el("li");
      li.appendChild(el("strong", (v.section || "(top)") + " [" + v.kind + "]"));
      (v.texts || []).slice(0, 3).forEach(function (t) { li.appendChild(el("div", t.slice(0, 200), "muted")); });
      volatile.appendChild(li);
    });
    var suggested = document.getElementById("preview-suggested");
    clear(suggested);
    var rules = [];
    if (data.suggested.remove.length) rules.push(["remove", data.suggested.remove]);
    if (data.suggested.ignore.length) rules.push(["ignore", data.suggested.ignore]);
    if (!rules.length) suggested.appendChild(el("p", "No rule needed.", "muted"));
    rules.forEach(function (pair) {
      var p = el("p");
      p.appendChild(el("code", pair[0] + ": " + pair[1].join(", ")));
      var add = el("button", "Add to " + pair[0], "btn");
      add.type = "button";
      add.addEventListener("click", function () {
        var area = document.querySelector('#source-form textarea[name="' + pair[0] + '"]');
        var have = lines(area.value);
        pair[1].forEach(function (rule) { if (have.indexOf(rule) < 0) have.push(rule); });
        area.value = have.join("\n");
      });
      p.appendChild(document.createTextNode(" "));
      p.appendChild(add);
      suggested.appendChild(p);
    });
    var blocks = document.getElementById("preview-blocks");
    clear(blocks);
    data.blocks.slice(0, 200).forEach(function (b) {
      var li = el("li");
      li.appendChild(el("span", b.kind + " · " + (b.section || "(top)") + " ", "muted"));
      li.appendChild(document.createTextNode(String(b.text).slice(0, 300)));
      blocks.appendChild(li);
    });
    result.hidden = false;
  }

  // --- Check now ------------------------------------------------------------------------------

  function describe(req) {
    var text = "Check #" + req.id + " (asked by " + req.requested_by + "): " + req.state;
    if (req.outcome) text += ", outcome " + req.outcome.replace("_", " ");
    if (req.error) text += " — " + req.error;
    return text;
  }

  function poll(url, status, button) {
    send(url, {method: "GET"}).then(function (r) {
      if (!r.ok) {
        status.textContent = "Cannot follow the check: " + problemsOf(r.body, "HTTP " + r.status).join("; ");
        return;
      }
      status.textContent = describe(r.body);
      status.dataset.state = r.body.state;
      if (r.body.state === "queued" || r.body.state === "running") {
        window.setTimeout(function () { poll(url, status, button); }, 1000);
      } else {
        if (button) button.disabled = false;
        // The new version and the history are on the page once it is reloaded.
        window.setTimeout(function () { window.location.reload(); }, 600);
      }
    });
  }

  function setupCheckNow() {
    var form = document.getElementById("check-form");
    var status = document.getElementById("check-status");
    if (!status) return;
    var button = document.getElementById("check-button");
    var state = status.dataset.state;
    if (status.dataset.statusUrl && (state === "queued" || state === "running")) {
      if (button) button.disabled = true;
      poll(status.dataset.statusUrl, status, button);
    }
    if (!form) return;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      status.textContent = "Asking for a check…";
      send(form.dataset.api, {method: "POST"}).then(function (r) {
        if (!r.ok) {
          button.disabled = false;
          status.textContent = "Not checked: " + problemsOf(r.body, "HTTP " + r.status).join("; ");
          return;
        }
        status.textContent = describe(r.body);
        poll(r.body.status_url, status, button);
      });
    });
  }

  // --- the watch builder ----------------------------------------------------------------------

  // A heading path as a glob that matches it literally ('*', '?' and '[' in a heading are not wildcards).
  function literalGlob(path) {
    return path.replace(/[[*?]/g, function (c) { return "[" + c + "]"; });
  }

  function watchField(box, name) {
    return box.querySelector('[name$="-' + name + '"]');
  }

  function loadTree(box) {
    var source = watchField(box, "source").value;
    var tree = box.querySelector(".watch-tree");
    clear(tree);
    if (!source) return;
    tree.appendChild(el("p", "Loading the sections of " + source + "…", "muted small"));
    send("/api/sources/" + encodeURIComponent(source) + "/sections", {method: "GET"}).then(function (r) {
      clear(tree);
      if (!r.ok) {
        tree.appendChild(el("p", problemsOf(r.body, "HTTP " + r.status).join("; "), "muted small"));
        return;
      }
      if (!r.body.sections.length) {
        tree.appendChild(el("p", "No version yet: check the source first, or type globs.", "muted small"));
        return;
      }
      tree.appendChild(el("p", "Pick sections of the latest version (they fill the globs):", "small"));
      var area = watchField(box, "sections");
      var list = el("ul", null, "plain section-tree");
      r.body.sections.forEach(function (s) {
        if (!s.section) return;
        var glob = literalGlob(s.section);
        var label = el("label", null, "check small");
        var check = document.createElement("input");
        check.type = "checkbox";
        check.value = glob;
        check.checked = lines(area.value).indexOf(glob) >= 0;
        check.addEventListener("change", function () {
          var have = lines(area.value).filter(function (g) { return g !== glob; });
          if (check.checked) have.push(glob);
          area.value = have.join("\n");
          schedule(box);
        });
        label.appendChild(check);
        label.appendChild(document.createTextNode(" " + s.section + " "));
        label.appendChild(el("span", "(" + s.blocks + " blocks)", "muted"));
        var li = el("li");
        li.appendChild(label);
        list.appendChild(li);
      });
      tree.appendChild(list);
    });
  }

  function schedule(box) {
    window.clearTimeout(box._timer);
    box._timer = window.setTimeout(function () { tryWatch(box); }, 400);
  }

  function tryWatch(box) {
    var panel = box.querySelector(".watch-matches");
    var source = watchField(box, "source").value;
    clear(panel);
    if (!source) return;
    var draft = {source: source, sections: lines(watchField(box, "sections").value),
                 keywords: lines(watchField(box, "keywords").value),
                 agencies: lines(watchField(box, "agencies").value), types: lines(watchField(box, "types").value),
                 include_cosmetic: watchField(box, "include_cosmetic").checked, limit: 20};
    panel.appendChild(el("p", "Trying the watch on the last 20 changes…", "muted small"));
    send("/api/watches/preview", {method: "POST", headers: {"Content-Type": "application/json"},
                                   body: JSON.stringify(draft)}).then(function (r) {
      clear(panel);
      if (!r.ok) {
        panel.appendChild(el("p", "Not a valid watch: " + problemsOf(r.body, "HTTP " + r.status).join("; "),
                             "flash flash-error small"));
        return;
      }
      panel.appendChild(el("p", "It would have matched " + r.body.matched + " of the last " + r.body.tried +
                               " changes of " + source + ":", "small watch-summary"));
      var list = el("ul", null, "plain small");
      r.body.changes.forEach(function (c) {
        var li = el("li", null, c.matched ? "matched" : "unmatched");
        li.appendChild(el("span", c.matched ? "✔ matched " : "✖ not matched ", c.matched ? "" : "muted"));
        li.appendChild(link(c.url, "change #" + c.change_id));
        li.appendChild(el("span", " " + String(c.detected_at).slice(0, 16).replace("T", " "), "muted"));
        if (c.sections.length) li.appendChild(el("div", "in " + c.sections.slice(0, 3).join("; ")));
        if (c.keywords.length) li.appendChild(el("div", "keywords " + c.keywords.join(", ")));
        if (c.skipped) li.appendChild(el("div", c.skipped, "muted"));
        list.appendChild(li);
      });
      if (!r.body.changes.length) list.appendChild(el("li", "The source has no change yet.", "muted"));
      panel.appendChild(list);
    });
  }

  function setupWatch(box) {
    watchField(box, "source").addEventListener("change", function () { loadTree(box); schedule(box); });
    ["sections", "keywords", "agencies", "types", "include_cosmetic"].forEach(function (name) {
      watchField(box, name).addEventListener("input", function () { schedule(box); });
      watchField(box, name).addEventListener("change", function () { schedule(box); });
    });
    if (watchField(box, "source").value) { loadTree(box); tryWatch(box); }
  }

  function setupWatchBuilder() {
    var boxes = document.querySelectorAll(".watch");
    if (!boxes.length) return;
    Array.prototype.forEach.call(boxes, setupWatch);
    var add = document.getElementById("add-watch");
    if (!add) return;
    add.hidden = false;
    add.addEventListener("click", function () {
      var all = document.querySelectorAll(".watch");
      var last = all[all.length - 1];
      var n = all.length + 1;
      var copy = last.cloneNode(true);
      Array.prototype.forEach.call(copy.querySelectorAll("[name]"), function (f) {
        f.name = f.name.replace(/^watch-\d+-/, "watch-" + n + "-");
        if (f.id) f.id = f.id.replace(/^watch-\d+-/, "watch-" + n + "-");
        if (f.type === "checkbox") f.checked = false; else if (f.tagName !== "SELECT") f.value = "";
        else f.selectedIndex = 0;
      });
      Array.prototype.forEach.call(copy.querySelectorAll("label[for]"), function (l) {
        l.htmlFor = l.htmlFor.replace(/^watch-\d+-/, "watch-" + n + "-");
      });
      clear(copy.querySelector(".watch-tree"));
      clear(copy.querySelector(".watch-matches"));
      var legend = copy.querySelector("legend");
      if (legend) legend.textContent = "Watch " + n;
      last.parentNode.insertBefore(copy, last.nextSibling);
      setupWatch(copy);
    });
  }

  setupPreview();
  setupCheckNow();
  setupWatchBuilder();
})();
