"""Operators see datasets, items, runs (with their report) and results in admin."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from evaluations.models import Dataset, DatasetItem, EvaluationResult, EvaluationRun
from queries.models import Query

pytestmark = pytest.mark.django_db


def test_admin_pages_of_evaluations(owner):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client = Client()
    client.force_login(root)
    dataset = Dataset.objects.create(owner=owner[0], name="capitals")
    item = DatasetItem.objects.create(
        dataset=dataset, input="Capital of France?", reference="Paris"
    )
    run = EvaluationRun.objects.create(
        owner=owner[0],
        dataset=dataset,
        targets=[
            {
                "name": "gpt",
                "overrides": {"model_provider": "openai"},
                "settings": {
                    "model_provider": "openai",
                    "model_name": "gpt-4o-mini",
                    "temperature": 0.7,
                    "system_prompt": None,
                },
            }
        ],
        scorers=[{"type": "contains"}],
        status="completed",
        total=1,
        done=1,
    )
    result = EvaluationResult.objects.create(
        run=run,
        item=item,
        target=0,
        repeat=0,
        answer="Paris",
        scores={"contains": {"score": 1.0, "reason": "reference found in the answer"}},
    )
    pages = [
        "/admin/evaluations/dataset/",
        f"/admin/evaluations/dataset/{dataset.pk}/change/",
        "/admin/evaluations/datasetitem/",
        "/admin/evaluations/evaluationrun/",
        f"/admin/evaluations/evaluationrun/{run.pk}/change/",
        "/admin/evaluations/evaluationresult/",
        f"/admin/evaluations/evaluationresult/{result.pk}/change/",
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
    report = client.get(f"/admin/evaluations/evaluationrun/{run.pk}/change/").content.decode()
    assert "&quot;mean&quot;: 1.0" in report
    assert "<svg" in report and "mean 1.0 (95% interval 1.0 to 1.0)" in report
    added = client.post(
        "/admin/evaluations/dataset/add/",
        {
            "owner": owner[0].pk,
            "name": "typed in admin",
            "description": "",
            "created_at_0": "2026-12-03",
            "created_at_1": "10:00:00",
            "items-TOTAL_FORMS": "1",
            "items-INITIAL_FORMS": "0",
            "items-0-input": "What is 2 + 2?",
            "items-0-reference": "4",
            "items-0-tags": "[]",
        },
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    assert DatasetItem.objects.get(dataset__name="typed in admin").reference == "4"


def test_the_query_list_adds_selected_questions_to_a_dataset(owner, make_owner):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client = Client()
    client.force_login(root)

    def query(who, text, **extra):
        return Query.objects.create(
            owner=who,
            user_id="u1",
            session_id="s1",
            query=text,
            response=f"answer to {text}",
            model_provider="openai",
            model_name="m",
            **extra,
        )

    chosen = [query(owner[0], "first"), query(owner[0], "second")]
    marked = query(owner[0], "an evaluation's", metadata={"evaluation": "x"})
    selected = [str(q.pk) for q in [*chosen, marked]]
    page = client.post(
        "/admin/queries/query/", {"action": "add_to_dataset", "_selected_action": selected}
    )
    assert page.status_code == 200 and b"Add 3 questions" in page.content
    done = client.post(
        "/admin/queries/query/",
        {
            "action": "add_to_dataset",
            "_selected_action": selected,
            "apply": "1",
            "dataset": "",
            "new_name": "from admin",
            "answers_as_references": "on",
        },
        follow=True,
    )
    assert b"Added 2 item(s)" in done.content
    dataset = Dataset.objects.get(owner=owner[0], name="from admin")
    items = DatasetItem.objects.filter(dataset=dataset)
    assert sorted((i.input, i.reference, i.tags) for i in items) == [
        ("first", "answer to first", ["admin"]),
        ("second", "answer to second", ["admin"]),
    ]

    other, _ = make_owner("bob")
    mixed = [str(chosen[0].pk), str(query(other, "bob's").pk)]
    refused = client.post(
        "/admin/queries/query/",
        {"action": "add_to_dataset", "_selected_action": mixed},
        follow=True,
    )
    assert b"questions of one owner" in refused.content
