"""Generated protobuf and gRPC stubs for package datawharf.v1 (`make proto`)."""
