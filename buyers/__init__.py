"""The buyer's side: the Python client that submits jobs and decrypts results locally."""

from buyers.client import (
    AggregateAnswer,
    CatalogItem,
    Client,
    GroupAnswer,
    JobFailed,
    PsiAnswer,
    SubmittedJob,
)

__all__ = ["AggregateAnswer", "CatalogItem", "Client", "GroupAnswer", "JobFailed", "PsiAnswer", "SubmittedJob"]
