"""The states of jobs and of each holder's task, named once.

They are ``StrEnum``s so they are stored and logged as their names and
compare equal to them; code compares members, never string literals. The
wire enums (``JOB_STATE_*``, ``TASK_STATE_*``) carry the same names.

    job:  PENDING → DISPATCHED → COLLECTING → AGGREGATING → DONE
          (PSI also AWAITING_BUYER between rounds)   ↘ FAILED | CANCELLED
    task: PENDING → DISPATCHED → CONTRIBUTED | REFUSED | FAILED | EXPIRED | CANCELLED
                         ↘ LOST (holder went away; resent if it returns)
"""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    PENDING = "PENDING"
    DISPATCHED = "DISPATCHED"
    COLLECTING = "COLLECTING"
    AGGREGATING = "AGGREGATING"
    AWAITING_BUYER = "AWAITING_BUYER"  # PSI: the buyer's next upload is due
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def final(self) -> bool:
        return self in FINAL_JOB_STATES


class TaskState(enum.StrEnum):
    PENDING = "PENDING"          # waiting for the holder to be online
    DISPATCHED = "DISPATCHED"    # sent, no answer yet
    CONTRIBUTED = "CONTRIBUTED"  # a valid contribution arrived
    REFUSED = "REFUSED"          # the holder's policy said no
    FAILED = "FAILED"            # the holder erred or sent something invalid
    LOST = "LOST"                # the holder went away; resent if it returns
    EXPIRED = "EXPIRED"          # no answer by the job's deadline
    CANCELLED = "CANCELLED"


FINAL_JOB_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})
ACTIVE_JOB_STATES = (JobState.PENDING, JobState.DISPATCHED, JobState.COLLECTING, JobState.AGGREGATING,
                     JobState.AWAITING_BUYER)
# Tasks that still wait for an answer (LOST ones are resent when their holder returns).
OPEN_TASK_STATES = (TaskState.PENDING, TaskState.DISPATCHED, TaskState.LOST)
# Tasks the holder has answered one way or another: progress counts these.
ANSWERED_TASK_STATES = frozenset({TaskState.CONTRIBUTED, TaskState.REFUSED, TaskState.FAILED, TaskState.EXPIRED})

__all__ = ["ACTIVE_JOB_STATES", "ANSWERED_TASK_STATES", "FINAL_JOB_STATES", "JobState", "OPEN_TASK_STATES",
           "TaskState"]
