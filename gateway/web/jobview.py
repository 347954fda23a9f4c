"""One job as the dashboard's job page shows it, built from the store alone.

The page is for the operator, who must not learn what the buyer and holders
keep from the gateway's other clients either: nothing here copies the spec
(its Paillier modulus and proof, a BFV/CKKS public context, the buyer's box
key), the signed job, a receipt, a ciphertext or a set. Only names, states,
times and counts leave this module.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf.message import DecodeError

from datawharf.states import FINAL_JOB_STATES
from datawharf.v1 import common_pb2
from gateway.store import SqliteStore

# What JobBook.open_job issues; anything else is refused before the store is asked.
JOB_ID = re.compile(r"job-[0-9a-f]{16}")
STAGE_EVENT = "stage_received"
_COUNTS = ("items", "chunks", "bytes")


def valid_job_id(job_id: str) -> bool:
    return JOB_ID.fullmatch(job_id) is not None


def _dataset(kind: str, spec: bytes) -> str:
    # Only the dataset's name is read from the spec; the message itself never leaves.
    message = common_pb2.AggregateSpec() if kind == "aggregate" else common_pb2.PsiSpec()
    try:
        message.ParseFromString(spec)
    except DecodeError:
        return ""
    return message.dataset


def _stage(row: Any) -> dict[str, Any]:
    fields = dict(part.split("=", 1) for part in row["detail"].split() if "=" in part)
    stage: dict[str, Any] = {"stage": fields.get("stage", ""), "sender": row["party"], "at": row["at"]}
    for name in _COUNTS:
        try:
            stage[name] = int(fields.get(name, "0"))
        except ValueError:
            stage[name] = 0
    return stage


def job_detail(store: SqliteStore, job_id: str, now: float) -> dict[str, Any] | None:
    """The job page's data, or None if the store has no such job."""
    job = store.job(job_id)
    if job is None:
        return None
    tasks = []
    for t in store.task_details(job_id):
        sent, answered = t["dispatched_at"] or 0.0, t["answered_at"] or 0.0
        tasks.append({
            "party": t["party"], "state": t["state"], "reason": t["reason"], "updated_at": t["updated_at"],
            "dispatched_at": sent, "answered_at": answered,
            "answer_s": round(answered - sent, 3) if sent and answered >= sent else None,
            "bytes": t["bytes"],
        })
    history, stages = [], []
    for e in store.job_events(job_id):
        history.append({"at": e["at"], "event": e["kind"], "party": e["party"], "detail": e["detail"]})
        if e["kind"] == STAGE_EVENT:
            stages.append(_stage(e))
    final = job.state in FINAL_JOB_STATES
    end = job.finished_at if final and job.finished_at else now
    return {
        "now": now,
        "job": {
            "job_id": job.job_id, "request_id": job.request_id, "type": job.kind, "backend": job.backend,
            "dataset": _dataset(job.kind, job.spec), "buyer": job.buyer, "state": job.state,
            "reason": job.reason, "min_parties": job.min_parties, "created_at": job.created_at,
            "deadline": job.deadline, "finished_at": job.finished_at, "final": final,
            "duration_s": round(max(0.0, end - job.created_at), 3),
        },
        "tasks": tasks,
        "history": history,
        "stages": stages,
    }


__all__ = ["JOB_ID", "job_detail", "valid_job_id"]
