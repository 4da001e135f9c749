"""Point Django at the embedded server: which processes attach, and when.

Nothing starts on import (settings import this module): see the package docstring for
who calls ``attach_embedded_database`` and how the server is shared and stopped.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from llmplatform.embedded.leases import ATTACHED_URI_ENV
from llmplatform.embedded.server import embedded_database

# Settings' database host until attach_embedded_database() replaces it: a process that
# never attached fails its first query naming this host instead of using a server that
# nobody guarantees to keep running.
NOT_ATTACHED_URI = "mongodb://embedded-database-not-attached.invalid/"
# The manage.py commands known to run without a database; every other one attaches, so a
# command added later cannot fail on the embedded default for want of a listing. Kept
# short on purpose: a command wrongly listed here fails on its first query, while one
# wrongly attaching only starts a server it did not need. (`makemigrations` and
# `squashmigrations` read the applied migrations, so they attach; `check` attaches when
# given --database.)
COMMANDS_WITHOUT_DATABASE = frozenset(
    {
        "help",
        "version",
        "check",
        "collectstatic",
        "findstatic",
        "compilemessages",
        "makemessages",
        "diffsettings",
        "optimizemigration",
        "sendtestemail",
        "startapp",
        "startproject",
    }
)


def inherited_uri() -> str | None:
    """The URI an attached parent process handed down, if any (read by settings)."""
    return os.environ.get(ATTACHED_URI_ENV) or None


def attach_embedded_database() -> None:
    """Point Django at the embedded server, attaching to it; nothing with MONGODB_URI set.

    Call before the first query. Raises EmbeddedMongoError when it cannot start.
    """
    from django.conf import settings

    if not settings.MONGODB_EMBEDDED:
        return
    uri = embedded_database().attach()
    settings.MONGODB_URI = uri
    settings.DATABASES["default"]["HOST"] = uri
    os.environ[ATTACHED_URI_ENV] = uri


def attach_for_command(argv: list[str]) -> None:
    """manage.py: attach unless the command line ``argv`` is known not to need a database."""
    from django.core.management.base import CommandParser, handle_default_options

    # Honour --settings/--pythonpath before reading settings, as Django will.
    parser = CommandParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    options, _ = parser.parse_known_args(argv[2:])
    handle_default_options(options)
    from django.conf import settings

    try:
        embedded = settings.MONGODB_EMBEDDED
    except ImproperlyConfigured:
        return  # Django reports bad settings its own way
    if not embedded:
        return
    from django.db import connections

    # django-mongodb-backend's model checks (run by `check` and most commands) ask the
    # server whether it supports search indexes. SecantusDB never does: say so, and no
    # server is needed to answer.
    connections["default"].features.supports_search = False
    if command_uses_database(argv):
        attach_embedded_database()


def command_uses_database(argv: list[str]) -> bool:
    """Whether the manage.py command line ``argv`` needs the database (see above)."""
    subcommand = argv[1] if len(argv) > 1 else "help"
    arguments = argv[2:]
    if subcommand in ("-h", "--help", "--version") or {"-h", "--help"} & set(arguments):
        return False
    if subcommand == "check":
        return any(arg == "--database" or arg.startswith("--database=") for arg in arguments)
    return subcommand not in COMMANDS_WITHOUT_DATABASE
