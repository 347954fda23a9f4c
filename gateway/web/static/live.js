// The dashboard's live view and tab switching. Polls the JSON API; no framework.
(function () {
  "use strict";
  var charts = {};
  var benchCharts = [];

  function api(path) {
    // The session cookie rides along; an expired one sends the browser back to sign in.
    return fetch(path, { credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) { location.assign("login"); throw new Error("signed out"); }
      if (!r.ok) throw new Error(path + ": HTTP " + r.status);
      return r.json();
    });
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function ago(t, now) {
    var s = Math.max(0, Math.round(now - t));
    return s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago";
  }

  function hhmm(t) { var d = new Date(t * 1000); return d.toTimeString().slice(0, 5); }

  function lineChart(id, label, colour) {
    return new Chart(document.getElementById(id), {
      type: "line",
      data: { labels: [], datasets: [{ label: label, data: [], borderColor: colour, backgroundColor: colour, spanGaps: true, pointRadius: 2 }] },
      options: { animation: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } }
    });
  }

  function renderLive(d) {
    document.getElementById("parties-online").textContent = d.parties_online + " / " + d.parties.length;
    document.getElementById("jobs-count").textContent = d.jobs.length;
    document.getElementById("jobs-running").textContent = d.jobs.filter(function (j) {
      return ["PENDING", "DISPATCHED", "COLLECTING", "AGGREGATING", "AWAITING_BUYER"].indexOf(j.state) >= 0; }).length;
    document.getElementById("jobs-failed").textContent = d.jobs.filter(function (j) { return j.state === "FAILED"; }).length;

    var pb = document.querySelector("#parties tbody"); pb.textContent = "";
    d.parties.forEach(function (p) {
      var tr = document.createElement("tr"); tr.setAttribute("data-party", p.name);
      cell(tr, p.name); cell(tr, p.online ? "online" : "offline", p.online ? "online" : "offline");
      cell(tr, p.datasets.join(", ")); cell(tr, ago(p.last_seen, d.now)); cell(tr, String(p.contributions));
      pb.appendChild(tr);
    });
    var jb = document.querySelector("#jobs tbody"); jb.textContent = "";
    d.jobs.forEach(function (j) {
      var tr = document.createElement("tr"); tr.setAttribute("data-job", j.job_id);
      // Relative, so the link still works when the dashboard is served under a prefix.
      var link = document.createElement("a");
      link.href = "jobs/" + encodeURIComponent(j.job_id); link.textContent = j.job_id;
      cell(tr, "").appendChild(link); cell(tr, j.buyer); cell(tr, j.type); cell(tr, j.backend);
      cell(tr, j.state, "state state-" + j.state); cell(tr, j.answered + " / " + j.expected);
      cell(tr, j.duration_s.toFixed(2) + " s"); cell(tr, j.reason, "reason");
      jb.appendChild(tr);
    });
    if (!charts.throughput) {
      charts.throughput = lineChart("chart-throughput", "jobs/min", "#1f6feb");
      charts.latency = lineChart("chart-latency", "median latency (s)", "#8250df");
    }
    var labels = d.series.map(function (s) { return hhmm(s.t); });
    charts.throughput.data.labels = labels;
    charts.throughput.data.datasets[0].data = d.series.map(function (s) { return s.jobs_per_min; });
    charts.latency.data.labels = labels;
    charts.latency.data.datasets[0].data = d.series.map(function (s) { return s.median_latency_s; });
    charts.throughput.update(); charts.latency.update();
  }

  function renderMarket(m, now) {
    document.getElementById("pending-count").textContent = m.review === "off" ? "review off" : String(m.pending.length);
    var pb = document.querySelector("#pending tbody"); pb.textContent = "";
    m.pending.forEach(function (x) {
      var tr = document.createElement("tr"); tr.setAttribute("data-listing", x.listing_id);
      cell(tr, x.listing_id); cell(tr, x.holder); cell(tr, x.dataset + " v" + x.version); cell(tr, x.title);
      cell(tr, x.classification); cell(tr, x.price_per_job + " " + x.currency + " (" + x.pricing + ")", "num");
      cell(tr, x.state, "state state-" + x.state); cell(tr, ago(x.submitted_at, now));
      pb.appendChild(tr);
    });
    document.getElementById("pending-none").hidden = m.pending.length > 0;
    var rb = document.querySelector("#revenue tbody"); rb.textContent = "";
    m.revenue.forEach(function (x) {
      var tr = document.createElement("tr"); tr.setAttribute("data-revenue", x.day + "/" + (x.holder || "fee"));
      // Amounts arrive as exact decimal text and are shown as they are, never through a float.
      cell(tr, x.day); cell(tr, x.holder || "operator's fee"); cell(tr, String(x.jobs));
      cell(tr, x.amount + " " + x.currency, "num");
      rb.appendChild(tr);
    });
    document.getElementById("revenue-none").hidden = m.revenue.length > 0;
    document.querySelectorAll("#grants [data-grant]").forEach(function (el) {
      el.textContent = String((m.grants || {})[el.getAttribute("data-grant")] || 0);
    });
  }

  function refresh() {
    api("api/market").then(function (m) { renderMarket(m, Date.now() / 1000); }).catch(function () {});
    api("api/overview").then(function (d) {
      renderLive(d);
      document.getElementById("status").textContent = "updated " + new Date().toLocaleTimeString();
    }).catch(function (e) {
      document.getElementById("status").textContent = "cannot reach the gateway: " + e.message;
    });
  }

  function loadBenchmarks() {
    api("api/benchmarks").then(function (d) {
      benchCharts.forEach(function (c) { c.destroy(); });
      benchCharts = window.renderBenchmarks(document.getElementById("bench-root"), d.records);
    }).catch(function (e) {
      document.getElementById("bench-root").textContent = "cannot load benchmark records: " + e.message;
    });
  }

  function show() {
    var view = location.hash === "#benchmarks" ? "benchmarks" : "live";
    document.getElementById("live").hidden = view !== "live";
    document.getElementById("benchmarks").hidden = view !== "benchmarks";
    document.getElementById("tab-live").classList.toggle("active", view === "live");
    document.getElementById("tab-benchmarks").classList.toggle("active", view === "benchmarks");
    if (view === "benchmarks") loadBenchmarks();
  }

  window.addEventListener("hashchange", show);
  show();
  refresh();
  setInterval(refresh, 2000);
})();
