#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmplatform.settings")
    from django.core.management import execute_from_command_line

    from llmplatform.embedded.attach import attach_for_command

    # Every command but a few known not to need it (check, help...) joins the embedded
    # database, starting it if none runs.
    attach_for_command(sys.argv)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
