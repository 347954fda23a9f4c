"""Pure protocol code: roles as plain classes and functions, no I/O, no gRPC.

Each module holds one protocol and states its threat model in its docstring.
"""
