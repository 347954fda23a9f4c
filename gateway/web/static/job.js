// One job's page: polls api/jobs/<id> until the job is final. No framework.
(function () {
  "use strict";
  var POLL_MS = 1500;
  // The id is the last path segment; the dashboard may be served under a prefix.
  var jobId = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop() || "");
  var timer = null;

  function $(id) { return document.getElementById(id); }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function when(t) {
    if (!t) return "–";
    var d = new Date(t * 1000);
    return d.toLocaleDateString(undefined, { month: "short", day: "numeric" }) + " " + d.toTimeString().slice(0, 8);
  }

  function seconds(s) {
    if (s === null || s === undefined) return "–";
    return s < 10 ? s.toFixed(2) + " s" : s < 120 ? s.toFixed(1) + " s" : (s / 60).toFixed(1) + " min";
  }

  function bytes(n) {
    if (!n) return "–";
    var units = ["B", "KiB", "MiB", "GiB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function fill(tbody, rows, build) {
    tbody.textContent = "";
    rows.forEach(function (r) { var tr = document.createElement("tr"); build(tr, r); tbody.appendChild(tr); });
  }

  function render(d) {
    var j = d.job;
    document.title = j.job_id + " · DataWharf gateway";
    $("job-id").textContent = j.job_id;
    var badge = $("job-state");
    badge.textContent = j.state;
    badge.className = "job-badge state-" + j.state;
    $("job-live").hidden = j.final;
    $("job-reason").hidden = !j.reason;
    $("job-reason").textContent = j.reason;
    var shown = {
      type: j.type, backend: j.backend || "–", dataset: j.dataset || "–", buyer: j.buyer,
      request_id: j.request_id, min_parties: String(j.min_parties), created_at: when(j.created_at),
      deadline: when(j.deadline), finished_at: when(j.finished_at), duration_s: seconds(j.duration_s)
    };
    Array.prototype.forEach.call(document.querySelectorAll("#job-facts dd"), function (dd) {
      dd.textContent = shown[dd.getAttribute("data-field")];
    });

    fill(document.querySelector("#job-tasks tbody"), d.tasks, function (tr, t) {
      tr.setAttribute("data-party", t.party);
      cell(tr, t.party);
      cell(tr, t.state, "state state-" + t.state);
      cell(tr, when(t.dispatched_at), "time");
      cell(tr, when(t.answered_at), "time");
      cell(tr, seconds(t.answer_s), "num answer");
      cell(tr, bytes(t.bytes), "num bytes");
      cell(tr, t.reason, "reason");
    });

    $("job-stages-section").hidden = d.stages.length === 0;
    fill(document.querySelector("#job-stages tbody"), d.stages, function (tr, s) {
      tr.setAttribute("data-stage", s.stage);
      cell(tr, s.stage); cell(tr, s.sender);
      cell(tr, s.items.toLocaleString(), "num"); cell(tr, s.chunks.toLocaleString(), "num");
      cell(tr, bytes(s.bytes), "num"); cell(tr, when(s.at), "time");
    });

    fill(document.querySelector("#job-history tbody"), d.history, function (tr, e) {
      tr.setAttribute("data-event", e.event);
      cell(tr, when(e.at), "time");
      cell(tr, "+" + Math.max(0, e.at - j.created_at).toFixed(2), "num");
      cell(tr, e.event.replace(/_/g, " "), "event event-" + e.event);
      cell(tr, e.party || "");
      cell(tr, e.detail, "reason");
    });
  }

  function stop(message) {
    if (timer !== null) { clearInterval(timer); timer = null; }
    $("status").textContent = message;
  }

  function refresh() {
    fetch("../api/jobs/" + encodeURIComponent(jobId), { credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) { location.assign("../login"); throw new Error("signed out"); }
      return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
    }).then(function (res) {
      if (!res.ok) {
        $("job-error").hidden = false;
        $("job-error").textContent = (res.body && res.body.error) || ("HTTP " + res.status);
        $("job-id").textContent = jobId;
        if (res.status === 404 || res.status === 400) stop("no such job");
        return;
      }
      $("job-error").hidden = true;
      render(res.body);
      if (res.body.job.final) stop("final; updated " + new Date().toLocaleTimeString());
      else $("status").textContent = "live; updated " + new Date().toLocaleTimeString();
    }).catch(function (e) {
      $("status").textContent = "cannot reach the gateway: " + e.message;
    });
  }

  refresh();
  timer = setInterval(refresh, POLL_MS);
})();
