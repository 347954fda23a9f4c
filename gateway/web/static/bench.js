// Benchmark charts, shared by the dashboard and `wharf bench report`.
// renderBenchmarks(root, records): one panel per benchmark with
//  - the latest run: each case against the floor and the naive baseline, per metric;
//  - history: the headline metric of every case across runs, by date and commit.
(function () {
  "use strict";
  var HEADLINE = ["values_per_s", "seconds", "bytes_per_value"];
  var PALETTE = ["#1f6feb", "#8250df", "#bf8700", "#1a7f37", "#e16f24", "#0a7ea4", "#d63384", "#57606a"];

  function colour(caseName, i) {
    if (/^plaintext|^hash-join|floor/.test(caseName)) return "#8c959f";   // the floor
    if (/naive/.test(caseName)) return "#cf222e";                          // the naive baseline
    return PALETTE[i % PALETTE.length];
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // On a log axis, label powers of ten only.
  function logTicks(value) {
    var l = Math.log10(value);
    return Math.abs(l - Math.round(l)) < 1e-9 ? Number(value).toExponential(0).replace("e+", "e") : "";
  }

  function axis(metric) {
    var log = metric === "values_per_s";
    return { type: log ? "logarithmic" : "linear", title: { display: true, text: metric },
             ticks: log ? { callback: logTicks } : {} };
  }

  function label(r) { return r.case + (r.n !== undefined ? " (n=" + r.n + ")" : ""); }

  function runLabel(rec) {
    var when = String(rec.timestamp || "").replace("T", " ").replace("Z", "");
    var commit = (rec.versions && rec.versions.git_commit) || "?";
    return when.slice(0, 16) + " " + commit + (rec.quick ? " (quick)" : "");
  }

  function barChart(canvas, latest, metric) {
    var rows = latest.results.filter(function (r) { return r.metric === metric; });
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels: rows.map(label),
        datasets: [{ label: metric, data: rows.map(function (r) { return r.value; }),
                     backgroundColor: rows.map(function (r, i) { return colour(r.case, i); }) }]
      },
      options: {
        animation: false, indexAxis: "y", plugins: { legend: { display: false },
          title: { display: true, text: metric + " — latest run (" + runLabel(latest) + ")" } },
        scales: { x: axis(metric) }
      }
    });
  }

  function historyChart(canvas, runs, metric) {
    var cases = [];
    runs.forEach(function (rec) {
      rec.results.forEach(function (r) { if (r.metric === metric && cases.indexOf(label(r)) < 0) cases.push(label(r)); });
    });
    var datasets = cases.map(function (c, i) {
      return {
        label: c, borderColor: colour(c, i), backgroundColor: colour(c, i), spanGaps: true, tension: 0,
        data: runs.map(function (rec) {
          var hit = rec.results.filter(function (r) { return r.metric === metric && label(r) === c; })[0];
          return hit ? hit.value : null;
        })
      };
    });
    return new Chart(canvas, {
      type: "line",
      data: { labels: runs.map(runLabel), datasets: datasets },
      options: {
        animation: false,
        plugins: { title: { display: true, text: metric + " — history by run" }, legend: { position: "bottom" } },
        scales: { y: axis(metric) }
      }
    });
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
      var all = records.filter(function (r) { return r.benchmark === name; });
      var full = all.filter(function (r) { return !r.quick; });
      var runs = full.length ? full : all;
      var latest = runs[runs.length - 1];
      var panel = el("div", { class: "bench", "data-benchmark": name });
      panel.appendChild(el("h3", {}, "Benchmark “" + name + "”"));
      var m = latest.machine || {};
      panel.appendChild(el("div", { class: "meta" }, runs.length + " run(s); latest on " + (m.cpu_model || "?") + ", " +
        (m.cores || "?") + " cores; params " + JSON.stringify(latest.params || {})));
      var grid = el("div", { class: "grid" });
      panel.appendChild(grid);
      var metrics = HEADLINE.filter(function (mt) { return latest.results.some(function (r) { return r.metric === mt; }); });
      metrics.forEach(function (mt) {
        var box = el("div", {}); var c = el("canvas", { "data-chart": name + ":" + mt + ":latest" });
        box.appendChild(c); grid.appendChild(box);
        charts.push(barChart(c, latest, mt));
      });
      if (metrics.length) {
        var box = el("div", {}); var c = el("canvas", { "data-chart": name + ":" + metrics[0] + ":history" });
        box.appendChild(c); grid.appendChild(box);
        charts.push(historyChart(c, runs, metrics[0]));
      }
      var ul = el("ul", { class: "checks" });
      (latest.checks || []).forEach(function (ck) {
        var cls = ck.ok === true ? "PASS" : ck.ok === false ? "MISS" : "na";
        var v = ck.value === null || ck.value === undefined ? "–" : Number(ck.value).toPrecision(4);
        ul.appendChild(el("li", { class: cls }, (cls === "na" ? "n/a" : cls) + "  " + ck.name + ": " + v + " (target " + ck.target + ")"));
      });
      panel.appendChild(ul);
      root.appendChild(panel);
    });
    return charts;
  }

  window.renderBenchmarks = renderBenchmarks;
})();
