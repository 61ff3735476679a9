"""``python -m packager.offline.gateway SPEC.json``: one rehearsal gateway run; exit 0 when it succeeded."""

import time

START = time.monotonic()  # the startup limit counts from the gateway's start, before its imports

import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def _stopped(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")  # the run ends and still writes result.json


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m packager.offline.gateway SPEC.json", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stopped)
    from packager.offline.gateway.run import run_gateway
    from packager.offline.gateway.spec import GatewaySpec

    spec = GatewaySpec.from_json(Path(argv[0]).read_text(encoding="utf-8"))
    result = run_gateway(spec, START, log=lambda line: print(line, flush=True))
    return 0 if result["Succeeded"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
