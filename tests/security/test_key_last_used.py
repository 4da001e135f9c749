"""Using an API key records when it was last used, as the admin's key list shows.

The time is written at most once a minute per key (a busy key would otherwise double its
writes), so a key last used long ago is refreshed by its next request.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import formats, timezone
from rest_framework.test import APIClient

from llmplatform.core.models import ApiKey
from llmplatform.core.services import api_key_create

pytestmark = pytest.mark.django_db


def use(raw_key: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert client.get("/api/v1/usage").status_code == 200


def admin_key_list() -> str:
    root = get_user_model().objects.create_superuser(username="root", password="x")
    client = Client()
    client.force_login(root)
    response = client.get("/admin/core/apikey/")
    assert response.status_code == 200
    return response.content.decode()


def shown(moment) -> str:
    """How the admin prints a time (to the minute: the list shows no seconds)."""
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def test_a_key_used_for_the_first_time_and_one_used_long_ago_both_show_now(owner):
    user, _ = owner
    fresh, fresh_raw = api_key_create(owner=user, name="fresh")
    old, old_raw = api_key_create(owner=user, name="old")
    long_ago = timezone.now() - timedelta(days=3)
    ApiKey.objects.filter(pk=old.pk).update(last_used_at=long_ago)
    before = timezone.now()

    use(fresh_raw)
    use(old_raw)

    for api_key in (fresh, old):
        api_key.refresh_from_db()
        assert api_key.last_used_at is not None
        assert before - timedelta(seconds=1) <= api_key.last_used_at <= timezone.now()
    page = admin_key_list()
    assert shown(old.last_used_at) in page
    assert shown(long_ago) not in page
