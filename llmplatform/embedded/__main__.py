"""``python -m llmplatform.embedded status|stop``: inspect or stop the embedded server."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from llmplatform.embedded.server import embedded_database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llmplatform.embedded",
        description="Inspect or stop the embedded SecantusDB server.",
    )
    parser.add_argument("action", choices=("status", "stop"))
    parser.add_argument("--data-dir", type=Path, help="default: settings.EMBEDDED_MONGO_DIR")
    args = parser.parse_args(argv)
    if args.data_dir is None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmplatform.settings")
    database = embedded_database(args.data_dir)
    if args.action == "status":
        state = database.status()
        if state.uri is None:
            print(f"not running ({database.data_dir})")
        else:
            users = ", ".join(map(str, state.users)) or "none"
            print(f"running at {state.uri} (pid {state.server_pid}); used by pids: {users}")
        return 0
    stopped = database.stop()
    print("stopped" if stopped else f"not running ({database.data_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
