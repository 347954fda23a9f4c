"""Job logic: shared bookkeeping (book), one module per kind (aggregate, psi), the router (orchestrator)."""

from gateway.jobs.observer import JobObserver
from gateway.jobs.orchestrator import Orchestrator

__all__ = ["JobObserver", "Orchestrator"]
