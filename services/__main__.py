"""`python -m services ROLE [ROLE ...]`: serve the given roles in this process until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
from typing import cast, get_args

from services.log import configure_logging
from services.process import CascadeProcess, Role
from services.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services")
    parser.add_argument("roles", nargs="+", choices=get_args(Role))
    roles = {cast(Role, role) for role in parser.parse_args().roles}
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(CascadeProcess(settings, roles).run())


if __name__ == "__main__":
    main()
