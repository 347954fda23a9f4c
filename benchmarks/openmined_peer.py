"""OpenMined PSI on the benchmark's sets, run in its own virtual environment.

`openmined-psi` pins an older protobuf than DataWharf's stubs need, so the
benchmark runs this script with `.venv-openmined/bin/python` (made by
`make bench`). Prints one JSON object: seconds, intersection size, bytes.
"""

import json
import sys
import time


def main() -> None:
    import private_set_intersection.python as psi

    n = int(sys.argv[1])
    client_items = [f"id-{i:08d}" for i in range(n // 2)] + [f"b-{i:08d}" for i in range(n - n // 2)]
    server_items = [f"id-{i:08d}" for i in range(n)]
    t = time.perf_counter()
    client = psi.client.CreateWithNewKey(True)
    server = psi.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(1e-9, len(client_items), server_items, psi.DataStructure.RAW)
    request = client.CreateRequest(client_items)
    response = server.ProcessRequest(request)
    intersection = client.GetIntersection(setup, response)
    seconds = time.perf_counter() - t
    wire = len(setup.SerializeToString()) + len(request.SerializeToString()) + len(response.SerializeToString())
    print(json.dumps({"seconds": seconds, "size": len(intersection), "bytes": wire}))


if __name__ == "__main__":
    main()
