// Benchmark view, shared by the dashboard and `wharf bench report`.
// renderBenchmarks(root, records) draws, per benchmark, answers first:
//  1. the headline checks of the latest full run (or, with none, the latest quick run) as a table:
//     the two measurements behind each ratio, the target, the verdict and the change since the
//     previous run (records come annotated by gateway/web/benchdata.py: check.view);
//  2. that run's measurements per metric: by size n, one line per implementation, where the cases
//     sweep n; otherwise one bar per case, grouped by where it ran;
//  3. each headline ratio across runs of the same kind, with its target.
// It returns the charts it made, so the caller can destroy them before drawing again.
(function () {
  "use strict";
  var FIRST = ["values_per_s", "seconds", "bytes_per_value", "bytes_per_element"];
  var PALETTE = ["#0a7ea4", "#bf8700", "#d63384", "#1a7f37", "#57606a", "#6e40c9"];
  var ROLE_COLOUR = { gateway: "#1f6feb", inprocess: "#8250df", insecure: "#e16f24", floor: "#6e7781",
                      peer: "#cf222e" };
  // The floors share one grey; their markers tell them apart, in the plot and in the legend.
  var FLOOR_MARK = { "hash-join": "rectRot", "plaintext": "triangle" };
  var PASS = "#1a7f37", FAIL = "#cf222e", NA = "#8c959f";
  var LOG_SPAN = 100;  // more than two decades between the smallest and largest value: log scale
  var SHORT = 16;      // axis labels longer than this are cut; the tooltip has the full name

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function isNum(v) { return typeof v === "number" && isFinite(v); }

  function num(v) {
    if (!isNum(v)) return "–";
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2).replace(/\.?0+e/, "e").replace("e+", "e");
    return String(Number(v.toPrecision(3)));
  }

  function withUnit(v, unit) { return isNum(v) ? num(v) + (unit ? " " + unit : "") : "–"; }

  var compact = typeof Intl !== "undefined" && Intl.NumberFormat
    ? new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 }) : null;
  function shortN(n) { return compact ? compact.format(n) : String(n); }
  function fullN(n) { return Number(n).toLocaleString("en"); }

  // Names break after "_" and "@" rather than mid-word; <wbr> keeps them whole when copied.
  function breakable(parent, text) {
    String(text).split(/(?<=[_@])/).forEach(function (part, i) {
      if (i) parent.appendChild(document.createElement("wbr"));
      parent.appendChild(document.createTextNode(part));
    });
    return parent;
  }

  function target(t) {
    return String(t || "").replace(/^<=/, "≤").replace(/^>=/, "≥").replace(/^(\S+)\s+(\S+)/, "$1\u00a0$2");
  }

  function cut(s, most) { most = most || SHORT; return s.length > most ? s.slice(0, most - 1) + "…" : s; }

  function when(rec) { return String(rec.timestamp || "").replace("T", " ").replace("Z", "").slice(0, 16); }
  function commit(rec) { return (rec.versions && rec.versions.git_commit) || "?"; }
  function runLabel(rec) { return when(rec) + " UTC, commit " + commit(rec) + (rec.quick ? " (quick)" : ""); }

  // Where a case ran, or what it stands for, decides its colour in every chart.
  function role(caseName) {
    if (/@gateway-insecure$/.test(caseName)) return "insecure";
    if (/@gateway$/.test(caseName)) return "gateway";
    if (/^(plaintext|hash-join|dh-floor)/.test(caseName) || /floor/.test(caseName)) return "floor";
    if (/^openmined/.test(caseName)) return "peer";
    if (/@inprocess$/.test(caseName)) return "inprocess";
    return null;
  }

  function colourOf(caseName, i) { return ROLE_COLOUR[role(caseName)] || PALETTE[i % PALETTE.length]; }

  // Within one chart no two series share a colour: the first case of a role takes the role's colour.
  function colours() {
    var used = [], next = 0;
    return function (caseName) {
      if (role(caseName) === "floor") return ROLE_COLOUR.floor;  // floors share grey, told apart by dashes
      var c = ROLE_COLOUR[role(caseName)];
      while (!c || used.indexOf(c) >= 0) { c = PALETTE[next % PALETTE.length]; next += 1; if (next > 64) break; }
      used.push(c);
      return c;
    };
  }

  function logTick(value) {
    var l = Math.log10(value);
    if (Math.abs(l - Math.round(l)) > 1e-9) return "";
    return value >= 1e4 || value < 1e-2 ? "1e" + Math.round(l) : num(value);
  }

  function valueAxis(values, unit) {
    var v = values.filter(function (x) { return isNum(x) && x > 0; });
    var log = v.length > 1 && Math.max.apply(null, v) / Math.min.apply(null, v) > LOG_SPAN;
    return { type: log ? "logarithmic" : "linear", beginAtZero: !log,
             title: { display: !!unit, text: unit || "" },
             ticks: { callback: log ? logTick : function (x) { return num(x); }, font: { size: 11 } } };
  }

  function legend(show) {
    return { display: show, position: "bottom",
             labels: { boxWidth: 8, boxHeight: 8, padding: 8, usePointStyle: true, font: { size: 11 } } };
  }

  function chartCard(grid, title, subtitle, key) {
    var card = el("div", { class: "chart-card" });
    card.appendChild(el("div", { class: "chart-title" }, title));
    if (subtitle) card.appendChild(el("div", { class: "chart-sub" }, subtitle));
    var wrap = el("div", { class: "chart-wrap" });
    var canvas = el("canvas", { "data-chart": key });
    wrap.appendChild(canvas);
    card.appendChild(wrap);
    grid.appendChild(card);
    return canvas;
  }

  // ------------------------------------------------------------------ the answers

  function verdict(ok) { return ok === true ? "pass" : ok === false ? "fail" : "n/a"; }

  function side(cell, m, fallbackUnit) {
    if (!m) { cell.textContent = "–"; return; }
    var v = el("span", { class: "num" }, isNum(m.value) ? withUnit(m.value, m.unit || fallbackUnit) : "not measured");
    cell.appendChild(v);
    breakable(cell.appendChild(el("span", { class: "case" })), m.case + (m.derived ? " (derived)" : ""));
    if (m.n !== undefined && m.n !== null) cell.title = m.case + ", n=" + fullN(m.n);
  }

  function figure(ck, view, value) {
    if (!isNum(value)) return "–";
    // Ratios keep three figures, so 1.00× reads as measured, not rounded away.
    return view.kind === "value" ? withUnit(value, view.unit) : value.toPrecision(3) + "×";
  }

  function summaryTable(name, latest) {
    var table = el("table", { class: "bench-summary", "data-benchmark": name });
    var head = el("tr", {});
    ["comparison", "ours", "floor / peer", "ratio", "target", "verdict", "previous", "change"]
      .forEach(function (h) { head.appendChild(el("th", {}, h)); });
    table.appendChild(el("thead", {})).appendChild(head);
    var body = table.appendChild(el("tbody", {}));
    (latest.checks || []).forEach(function (ck) {
      var view = ck.view || {};
      var v = verdict(ck.ok);
      var tr = el("tr", { class: "check-row verdict-" + v.replace("/", ""), "data-check": ck.name });
      var what = el("td", { class: "what" });
      what.appendChild(el("span", {}, view.words || ck.name));
      breakable(what.appendChild(el("code", {})), ck.name);
      tr.appendChild(what);
      var ours = el("td", {});
      side(ours, view.ours || (view.kind === "value" && isNum(ck.value) ? { case: "", value: ck.value, unit: view.unit } : null),
           view.unit);
      tr.appendChild(ours);
      var base = el("td", {});
      side(base, view.base, null);
      tr.appendChild(base);
      tr.appendChild(el("td", { class: "num ratio" }, figure(ck, view, ck.value)));
      tr.appendChild(el("td", { class: "num", title: ck.target }, target(ck.target)));
      var vc = el("td", {});
      vc.appendChild(el("span", { class: "verdict " + v.replace("/", "") }, v));
      tr.appendChild(vc);
      var prev = view.previous;
      var pc = el("td", { class: "num prev" }, prev ? figure(ck, view, prev.value) : "–");
      if (prev) pc.title = String(prev.timestamp || "").replace("T", " ") + ", commit " + (prev.commit || "?");
      tr.appendChild(pc);
      var ch = isNum(view.change) ? (view.change > 0 ? "+" : view.change < 0 ? "−" : "±") +
        num(Math.abs(view.change) * 100) + " %" : "–";
      tr.appendChild(el("td", { class: "num change" + (view.trend ? " trend-" + view.trend : "") }, ch));
      body.appendChild(tr);
    });
    return table;
  }

  // ------------------------------------------------------------------ the latest run

  function extraLabel(r) { return r.holder_n !== undefined ? " (holder n=" + shortN(r.holder_n) + ")" : ""; }

  function sweepChart(canvas, rows, unit) {
    var cases = [];
    rows.forEach(function (r) { var k = r.case + extraLabel(r); if (cases.indexOf(k) < 0) cases.push(k); });
    var sizes = [];
    rows.forEach(function (r) { if (sizes.indexOf(r.n) < 0) sizes.push(r.n); });
    sizes.sort(function (a, b) { return a - b; });
    var pick = colours();
    var datasets = cases.map(function (c) {
      var pts = rows.filter(function (r) { return r.case + extraLabel(r) === c; })
        .map(function (r) { return { x: r.n, y: r.value }; })
        .sort(function (a, b) { return a.x - b.x; });
      var col = pick(c);
      return { label: c, data: pts, borderColor: col, backgroundColor: col, pointRadius: 3, tension: 0,
               borderWidth: 2, pointStyle: FLOOR_MARK[c] || "circle",
               borderDash: /^(hash-join|plaintext)/.test(c) ? [4, 3] : undefined };
    });
    var logX = sizes[sizes.length - 1] / sizes[0] > 10;
    return new Chart(canvas, {
      type: "line",
      data: { datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, parsing: true,
        interaction: { mode: "nearest", intersect: false },
        plugins: {
          legend: legend(true),
          tooltip: { callbacks: {
            title: function (items) { return items.length ? "n = " + fullN(items[0].parsed.x) : ""; },
            label: function (it) { return it.dataset.label + ": " + withUnit(it.parsed.y, unit); } } }
        },
        scales: {
          x: { type: logX ? "logarithmic" : "linear", title: { display: true, text: "size n" },
               afterBuildTicks: function (axis) { axis.ticks = sizes.map(function (n) { return { value: n }; }); },
               ticks: { callback: function (v) { return shortN(v); }, autoSkip: true, maxRotation: 0,
                        font: { size: 11 } } },
          y: valueAxis(rows.map(function (r) { return r.value; }), unit)
        }
      }
    });
  }

  function barChart(canvas, rows, unit) {
    // One group per computation, one bar per place it ran ("@gateway", "@inprocess", ...).
    var groups = [], where = [];
    rows = rows.map(function (r) {
      var at = r.case.indexOf("@");
      var g = at < 0 ? r.case : r.case.slice(0, at), w = at < 0 ? "" : r.case.slice(at + 1);
      if (groups.indexOf(g) < 0) groups.push(g);
      if (where.indexOf(w) < 0) where.push(w);
      return { case: r.case, n: r.n, value: r.value, _group: g, _where: w };
    });
    var single = where.length === 1;
    var datasets = where.map(function (w, i) {
      var data = groups.map(function (g) {
        var hit = rows.filter(function (r) { return r._group === g && r._where === w; })[0];
        return hit ? hit.value : null;
      });
      var fill = single
        ? groups.map(function (g, j) { return colourOf(w ? g + "@" + w : g, j); })
        : colourOf("x@" + w, i);
      return { label: w ? (w === "inprocess" ? "in one process" : w === "gateway-insecure" ? "gateway --insecure" : w) : "value",
               data: data, backgroundColor: fill, skipNull: true, maxBarThickness: 36 };
    });
    var byLabel = {};
    rows.forEach(function (r) { byLabel[r._group + "|" + r._where] = r; });
    return new Chart(canvas, {
      type: "bar",
      data: { labels: groups, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: {
          legend: legend(!single),
          tooltip: { callbacks: {
            title: function (items) { return items.length ? items[0].label : ""; },
            label: function (it) {
              var w = where[it.datasetIndex];
              var r = byLabel[groups[it.dataIndex] + "|" + w];
              return (w ? r.case : r._group) + (isNum(r.n) ? " (n=" + fullN(r.n) + ")" : "") + ": " +
                withUnit(it.parsed.y, unit);
            } } }
        },
        scales: {
          x: { ticks: { autoSkip: groups.length > 12, maxRotation: 45, minRotation: 0, font: { size: 11 },
                        callback: function (v) {
                          // A group's share of the width at about 6 px a character, and never less than
                          // a case name such as "paillier-packed": past that the label turns to 45°.
                          var room = Math.max(15, Math.floor((this.chart.width - 60) / groups.length / 6));
                          return cut(String(this.getLabelForValue(v)), room);
                        } } },
          y: valueAxis(rows.map(function (r) { return r.value; }), unit)
        }
      }
    });
  }

  // Results that carry a parameter besides n (the unbalanced PSI's holder_n) answer another question
  // than the size sweep; on the same axis they would squeeze it, so they get a chart of their own.
  var PLAIN_KEYS = ["case", "metric", "value", "unit", "repetitions", "n", "alone", "note"];
  function scenarios(rows) {
    var out = [];
    rows.forEach(function (r) {
      var extra = Object.keys(r).filter(function (k) { return PLAIN_KEYS.indexOf(k) < 0; }).sort().join(", ");
      var sc = out.filter(function (s) { return s.extra === extra; })[0];
      if (!sc) { sc = { extra: extra, rows: [] }; out.push(sc); }
      sc.rows.push(r);
    });
    return out;
  }

  function metricsOf(latest) {
    var seen = [];
    latest.results.forEach(function (r) { if (seen.indexOf(r.metric) < 0) seen.push(r.metric); });
    return FIRST.filter(function (m) { return seen.indexOf(m) >= 0; })
      .concat(seen.filter(function (m) { return FIRST.indexOf(m) < 0; }));
  }

  function latestChart(canvas, rows) {
    var unit = rows[0].unit;
    var sizes = {};
    var sweeps = rows.every(function (r) { return isNum(r.n) && r.n > 0; }) && rows.some(function (r) {
      var k = r.case + extraLabel(r);
      sizes[k] = sizes[k] || [];
      if (sizes[k].indexOf(r.n) < 0) sizes[k].push(r.n);
      return sizes[k].length > 1;
    });
    return sweeps ? sweepChart(canvas, rows, unit) : barChart(canvas, rows, unit);
  }

  // ------------------------------------------------------------------ history of the answers

  // The target as a dashed line, and the side that misses it lightly shaded.
  var targetLine = {
    id: "targetLine",
    afterDatasetsDraw: function (chart, args, opts) {
      if (!opts || !isNum(opts.value)) return;
      var a = chart.chartArea, y = chart.scales.y.getPixelForValue(opts.value);
      if (!(y >= a.top && y <= a.bottom)) return;
      var ctx = chart.ctx;
      ctx.save();
      ctx.fillStyle = "rgba(207, 34, 46, 0.06)";
      var op = String(opts.op || "").charAt(0);
      if (op === "<") ctx.fillRect(a.left, a.top, a.right - a.left, y - a.top);
      else if (op === ">") ctx.fillRect(a.left, y, a.right - a.left, a.bottom - y);
      ctx.strokeStyle = FAIL; ctx.lineWidth = 1.5; ctx.setLineDash([5, 4]);
      ctx.beginPath(); ctx.moveTo(a.left, y); ctx.lineTo(a.right, y); ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = FAIL; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "right";
      var above = y - 14 > a.top;
      ctx.textBaseline = above ? "bottom" : "top";
      ctx.fillText("target " + target(opts.text), a.right - 4, above ? y - 2 : y + 2);
      ctx.restore();
    }
  };

  function historyChart(canvas, runs, ck) {
    var view = ck.view || {};
    var target = view.target;
    var points = runs.map(function (rec) {
      var hit = (rec.checks || []).filter(function (c) { return c.name === ck.name; })[0];
      return hit && isNum(hit.value) ? hit : null;
    });
    var values = points.map(function (p) { return p ? p.value : null; });
    var known = values.filter(isNum).concat(target ? [target.value] : []);
    var lo = Math.min.apply(null, known), hi = Math.max.apply(null, known), pad = (hi - lo) * 0.15 || Math.abs(hi) * 0.1 || 1;
    return new Chart(canvas, {
      type: "line",
      data: {
        labels: runs.map(function (rec) { return when(rec).slice(5); }),
        datasets: [{ label: ck.name, data: values, spanGaps: true, tension: 0, borderColor: "#1f6feb", borderWidth: 2,
                     pointRadius: 4,
                     pointBackgroundColor: points.map(function (p) { return !p ? NA : p.ok === true ? PASS : p.ok === false ? FAIL : NA; }),
                     pointBorderColor: "#fff" }]
      },
      plugins: [targetLine],
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: {
          legend: legend(false),
          targetLine: target ? { value: target.value, op: target.op, text: ck.target } : {},
          tooltip: { callbacks: {
            title: function (items) { return items.length ? runLabel(runs[items[0].dataIndex]) : ""; },
            label: function (it) { return figure(ck, view, it.parsed.y) + " (target " + ck.target + ")"; } } }
        },
        scales: {
          x: { ticks: { autoSkip: true, maxRotation: 0, font: { size: 10 } } },
          y: { suggestedMin: lo - pad, suggestedMax: hi + pad,
               ticks: { callback: function (x) { return num(x); }, font: { size: 10 }, maxTicksLimit: 5 } }
        }
      }
    });
  }

  // ------------------------------------------------------------------ one panel per benchmark

  function renderOne(root, name, all, charts) {
    var full = all.filter(function (r) { return !r.quick; });
    var runs = full.length ? full : all.filter(function (r) { return r.quick; });
    var latest = runs[runs.length - 1];
    var quickOnly = !full.length;
    var panel = el("section", { class: "bench", "data-benchmark": name });
    var head = el("div", { class: "bench-head" });
    head.appendChild(el("h3", {}, "Benchmark “" + name + "”"));
    var badge = el("span", { class: "run-badge" + (quickOnly ? " quick" : "") },
                   (quickOnly ? "latest quick run (no full run yet): " : "latest full run: ") + runLabel(latest));
    head.appendChild(badge);
    panel.appendChild(head);

    var checks = latest.checks || [];
    var tally = { pass: 0, fail: 0, "n/a": 0 };
    checks.forEach(function (ck) { tally[verdict(ck.ok)] += 1; });
    var line = el("p", { class: "bench-tally" });
    var measured = checks.length - tally["n/a"];
    line.appendChild(el("strong", { class: tally.fail ? "fail" : measured ? "pass" : "" },
                        !checks.length ? "this run records no headline checks"
                          : tally.fail ? tally.fail + " of " + checks.length + " checks miss their target"
                          : measured ? "all " + measured + " measured checks meet their target" : "no check was measured"));
    if (tally["n/a"]) line.appendChild(document.createTextNode(" · " + tally["n/a"] + " not measured (n/a)"));
    panel.appendChild(line);
    var scroller = el("div", { class: "table-scroll" });
    scroller.appendChild(summaryTable(name, latest));
    panel.appendChild(scroller);

    var kind = quickOnly ? "quick" : "full";
    var others = all.length - runs.length;
    panel.appendChild(el("h4", {}, "Headline checks across " + kind + " runs (" + runs.length + ")" +
                         (others ? "; " + others + " " + (quickOnly ? "full" : "quick") + " run(s) not shown" : "")));
    var hist = el("div", { class: "bench-grid history" });
    panel.appendChild(hist);
    checks.forEach(function (ck) {
      var c = chartCard(hist, (ck.view && ck.view.words) || ck.name, "target " + target(ck.target),
                        name + ":check:" + ck.name + ":history");
      charts.push(historyChart(c, runs, ck));
    });

    panel.appendChild(el("h4", {}, "Measurements of that run"));
    var grid = el("div", { class: "bench-grid latest" });
    panel.appendChild(grid);
    metricsOf(latest).forEach(function (mt) {
      var rows = latest.results.filter(function (r) { return r.metric === mt && isNum(r.value); });
      scenarios(rows).forEach(function (sc) {
        var title = mt.replace(/_/g, " ") + (sc.extra ? ", by " + sc.extra.replace(/_/g, " ") : "");
        var c = chartCard(grid, title, sc.rows[0].unit ? "in " + sc.rows[0].unit : null,
                          name + ":" + mt + (sc.extra ? "+" + sc.extra : "") + ":latest");
        charts.push(latestChart(c, sc.rows));
      });
    });
    var m = latest.machine || {};
    panel.appendChild(el("div", { class: "meta" }, all.length + " record(s); latest on " + (m.cpu_model || "?") + ", " +
      (m.cores || "?") + " cores; params " + JSON.stringify(latest.params || {})));
    root.appendChild(panel);
  }

  function renderBenchmarks(root, records) {
    root.textContent = "";
    if (!records || !records.length) {
      root.appendChild(el("p", { class: "note", id: "bench-empty" }, "No benchmark records yet: run `make bench` or `python -m benchmarks NAME`."));
      return [];
    }
    var charts = [];
    var names = [];
    records.forEach(function (r) { if (names.indexOf(r.benchmark) < 0) names.push(r.benchmark); });
    names.forEach(function (name) {
      renderOne(root, name, records.filter(function (r) { return r.benchmark === name; }), charts);
    });
    return charts;
  }

  window.renderBenchmarks = renderBenchmarks;
})();
