"""`python -m infra kafka`: run a local broker in the foreground (see infra/foreground.py)."""

from __future__ import annotations

import argparse

from infra.foreground import run_kafka
from services.log import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m infra")
    parser.add_argument("command", choices=["kafka"])
    parser.parse_args()
    configure_logging()
    run_kafka()


if __name__ == "__main__":
    main()
