"""The holder's local policy, as a pure decision on a task."""

from __future__ import annotations

from dataclasses import dataclass

from parties.config import DatasetConfig
from datawharf.model import AggregateJob


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    code: str = ""  # the rule that refused, for the gateway's metrics


ALLOW = Decision(True)


def check_task(dataset: DatasetConfig, buyer: str, job: AggregateJob, min_parties: int) -> Decision:
    """Everything that can be judged before touching the data."""
    policy = dataset.policy
    if not policy.allows_buyer(buyer):
        return Decision(False, f"buyer {buyer!r} is not granted access to dataset {dataset.name!r}", "buyer_not_granted")
    if job.statistic not in policy.allowed_statistics:
        allowed = ", ".join(s.value for s in policy.allowed_statistics)
        return Decision(
            False, f"statistic {job.statistic.value!r} is not allowed on {dataset.name!r} (allowed: {allowed})",
            "statistic_not_allowed",
        )
    if job.layout.length > policy.max_figures:
        return Decision(False, f"the job asks for {job.layout.length} figures; this holder computes at most "
                               f"{policy.max_figures} per job (fewer groups or a shorter vector)", "max_figures")
    if policy.dp.enabled and policy.dp.noise == "split" and min_parties < policy.dp.split_among:
        return Decision(False, f"this holder splits its noise among {policy.dp.split_among} holders; the job must "
                               f"require at least that many (it asks for {min_parties})", "min_parties")
    if min_parties < policy.min_parties:
        return Decision(
            False,
            f"this holder requires jobs to need at least {policy.min_parties} holders; the job asks for {min_parties}",
            "min_parties",
        )
    return ALLOW


def check_rows(dataset: DatasetConfig, rows: float) -> Decision:
    """After filtering: is the figure backed by enough rows to release? (Under differential privacy
    ``rows`` is a noisy count.)"""
    minimum = dataset.policy.min_rows
    if rows < minimum:
        # Name the rule only: neither the count nor the threshold it was compared with.
        return Decision(False, "the filter matches fewer rows than the holder's minimum (min_rows)", "min_rows")
    return ALLOW
