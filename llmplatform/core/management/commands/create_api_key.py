"""python manage.py create_api_key --name NAME [--user USERNAME]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from llmplatform.core.services import api_key_create_for_username


class Command(BaseCommand):
    help = (
        "Create an API key for a user (created if missing). The raw key is printed once, "
        "alone on the last line; only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="what the key is for, e.g. 'mobile app'")
        parser.add_argument("--user", default="api", help="owner username (default: api)")

    def handle(self, *args: object, **options: str) -> None:
        api_key, raw_key, created = api_key_create_for_username(
            username=options["user"], name=options["name"]
        )
        if created:
            self.stderr.write(f"Created user {options['user']!r}.")
        self.stderr.write(
            f"Created API key {api_key.name!r} ({api_key.prefix}…) for {options['user']!r}. "
            "Store it now: it cannot be shown again. Revoke it in admin under API keys."
        )
        self.stdout.write(raw_key)
