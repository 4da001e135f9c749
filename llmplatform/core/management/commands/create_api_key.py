"""python manage.py create_api_key --name NAME [--user USERNAME] [--rpm N]
[--tokens-per-day N] [--usd-per-month X] [--user-rpm N] [--user-tokens-per-day N]
[--storage-mb N]"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError, CommandParser

from llmplatform.core.services import KEY_LIMIT_FIELDS, api_key_create_for_username


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise CommandError(f"{value!r} is not a whole number of at least 1.")
    return int(value)


def _dollars(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"{value!r} is not an amount in USD (example: 25 or 12.50).") from None
    if amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise CommandError(f"{value!r}: give a positive amount with at most two decimals.")
    return amount


class Command(BaseCommand):
    help = (
        "Create an API key for a user (created if missing), optionally with limits and "
        "budgets (unset ones follow DEFAULT_KEY_* / DEFAULT_USER_* / DEFAULT_STORAGE_MB). "
        "The raw key is printed once, alone on the last line; only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="what the key is for, e.g. 'mobile app'")
        parser.add_argument("--user", default="api", help="owner username (default: api)")
        parser.add_argument(
            "--rpm", dest="requests_per_minute", type=_positive_int, help="questions per minute"
        )
        parser.add_argument(
            "--tokens-per-day",
            dest="tokens_per_day",
            type=_positive_int,
            help="input + output tokens per UTC day",
        )
        parser.add_argument(
            "--usd-per-month",
            dest="usd_per_month",
            type=_dollars,
            help="provider cost per UTC month, in USD",
        )
        parser.add_argument(
            "--user-rpm",
            dest="user_requests_per_minute",
            type=_positive_int,
            help="questions per minute for each end user (user_id) of this key",
        )
        parser.add_argument(
            "--user-tokens-per-day",
            dest="user_tokens_per_day",
            type=_positive_int,
            help="tokens per UTC day for each end user (user_id) of this key",
        )
        parser.add_argument(
            "--storage-mb",
            dest="storage_mb",
            type=_positive_int,
            help="MB of uploads and document passages the key's owner may keep "
            "(default DEFAULT_STORAGE_MB)",
        )

    def handle(self, *args: object, **options: object) -> None:
        limits = {field: options[field] for field in KEY_LIMIT_FIELDS if options[field] is not None}
        api_key, raw_key, created = api_key_create_for_username(
            username=str(options["user"]), name=str(options["name"]), limits=limits
        )
        if created:
            self.stderr.write(f"Created user {options['user']!r}.")
        shown = ", ".join(f"{field}={value}" for field, value in limits.items()) or "defaults"
        self.stderr.write(
            f"Created API key {api_key.name!r} ({api_key.prefix}…) for {options['user']!r} "
            f"with limits: {shown}. Store it now: it cannot be shown again. Revoke it or "
            "change its limits in admin under API keys."
        )
        self.stdout.write(raw_key)
