"""A gateway process for the SIGKILL test: accepts messages into the queue while publishing.

Prints ``accepted <id>`` (flushed) only after ``put_many`` returned, i.e. after the commit.
Usage: python -m tests.wan.killme CONFIG.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from firmware.gateway.wan import topics
from firmware.gateway.wan.client import WanClient
from firmware.gateway.wan.identity import WanIdentity
from firmware.gateway.wan.queue import OutboundQueue

BATCH = 50


def main() -> None:
    cfg = json.loads(Path(sys.argv[1]).read_text())
    ident = WanIdentity(cfg["gateway"], Path(cfg["cert"]), Path(cfg["ca"]),
                        bytes.fromhex(cfg["verify"]), "localhost", cfg["port"],
                        client_key_path=Path(cfg["key"]))
    q = OutboundQueue(Path(cfg["db"]))
    c = WanClient(ident, q, backoff_min=0.05, backoff_max=0.3)
    c.start()
    i = 0
    while True:
        batch = []
        for _ in range(BATCH):  # committed together (one sync), faster than they drain
            i += 1
            mid = "%s-%d" % (cfg["prefix"], i)
            body = json.dumps({"id": mid, "gateway": cfg["gateway"], "type": "alerts",
                               "body": {"n": i}}).encode()
            batch.append((mid, topics.up(cfg["gateway"], "alerts"), body, 0))
        q.put_many(batch)
        c.notify()
        print("\n".join("accepted " + m[0] for m in batch), flush=True)
        time.sleep(0.002)


if __name__ == "__main__":
    main()
