"""The operator's HTTP side: dashboard page, JSON API, Prometheus metrics.

Everything served here is what the gateway already knows: party names,
listings, job states, timings, sizes. No spec (it carries key material), no
ciphertext, no row of data.
"""
