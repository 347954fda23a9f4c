"""The gateway: gRPC services, orchestration, storage, and the buyer client."""
