"""Experiments over REST (/api/v1/experiments): CRUD, start/stop, results, owner scoping.

Over 500 lines on purpose: one endpoint family, one shared fixture set; split by verb it
would repeat the fixtures in each file."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from analytics import statistics
from analytics.experiments import experiment_results
from queries.models import Query
from sessions.models import Experiment, Session
from sessions.selectors import session_variants
from sessions.services import session_start

pytestmark = pytest.mark.django_db

VARIANTS = [
    {"name": "control", "weight": 50, "overrides": {}},
    {"name": "warm", "weight": 50, "overrides": {"temperature": 1.2}},
]
BODY = {"key": "tone", "name": "Tone", "description": "warmer answers", "variants": VARIANTS}


def _create(api, **changes):
    response = api.post("/api/v1/experiments", {**BODY, **changes}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    return error


def test_create_read_list_update_delete(api, owner):
    created = _create(api)
    assert created["status"] == "draft" and created["key"] == "tone"
    assert created["variants"] == VARIANTS
    assert Experiment.objects.get(pk=created["id"]).owner == owner[0]

    url = f"/api/v1/experiments/{created['id']}"
    assert api.get(url).json() == created
    listed = api.get("/api/v1/experiments").json()
    assert [item["id"] for item in listed["results"]] == [created["id"]]

    changed = api.patch(url, {"name": "Tone 2", "description": ""}, format="json").json()
    assert (changed["name"], changed["description"], changed["variants"]) == (
        "Tone 2",
        "",
        VARIANTS,
    )
    swapped = [{"name": "control", "weight": 1}, {"name": "cold", "weight": 3}]
    changed = api.patch(url, {"variants": swapped}, format="json").json()
    assert [v["name"] for v in changed["variants"]] == ["control", "cold"]

    assert api.delete(url).status_code == 204
    assert not Experiment.objects.filter(pk=created["id"]).exists()
    _error(api.get(url), 404)


def test_the_list_is_paginated_newest_first(api):
    ids = [_create(api, key=f"exp-{n}")["id"] for n in range(3)]
    first = api.get("/api/v1/experiments", {"limit": 2}).json()
    assert [item["id"] for item in first["results"]] == ids[::-1][:2]
    second = api.get(first["next"]).json()
    assert [item["id"] for item in second["results"]] == ids[:1]
    assert _error(api.get("/api/v1/experiments", {"limit": 0}), 400)["code"] == "validation_error"


def test_start_stop_and_a_running_experiment_keeps_its_variants(api):
    url = f"/api/v1/experiments/{_create(api)['id']}"
    started = api.post(f"{url}/start").json()
    assert started["status"] == "running" and started["started_at"]
    error = _error(
        api.patch(
            url,
            {"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]},
            format="json",
        ),
        409,
    )
    assert error["code"] == "experiment_running"
    # The name can still change, and sending the same variants is not a change.
    assert (
        api.patch(url, {"name": "renamed", "variants": VARIANTS}, format="json").status_code == 200
    )
    assert _error(api.delete(url), 409)["code"] == "experiment_has_run"
    stopped = api.post(f"{url}/stop").json()
    assert stopped["status"] == "stopped" and stopped["stopped_at"]
    assert api.post(f"{url}/stop").json()["status"] == "stopped"  # idempotent
    # It ran: its key is in sessions and queries, so it is kept (stopped), not deleted.
    assert _error(api.delete(url), 409)["code"] == "experiment_has_run"
    assert api.post(f"{url}/start").json()["status"] == "running"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"variants": [{"name": "only", "weight": 1}]}, "invalid_variants", None),
        (
            {"variants": [{"name": "a", "weight": 0}, {"name": "b", "weight": 1}]},
            "invalid_variants",
            None,
        ),
        (
            {
                "variants": [
                    {"name": "a", "weight": 1, "overrides": {"top_k": 3}},
                    {"name": "b", "weight": 1},
                ]
            },
            "invalid_variants",
            None,
        ),
        ({"variants": "control"}, "invalid_variants", None),
        ({"key": "not a slug"}, "validation_error", "key"),
        ({"key": "a__b"}, "validation_error", "key"),
        ({"name": ""}, "validation_error", "name"),
        ({"name": "   "}, "validation_error", "name"),
    ],
)
def test_validation_errors_use_the_envelope(api, body, code, field):
    error = _error(api.post("/api/v1/experiments", {**BODY, **body}, format="json"), 400)
    assert error["code"] == code
    if field:
        assert field in error["details"]["fields"]
    assert not Experiment.objects.exists()


def test_patch_refuses_key_and_status(api):
    url = f"/api/v1/experiments/{_create(api)['id']}"
    for body in ({"key": "other"}, {"status": "running"}):
        error = _error(api.patch(url, body, format="json"), 400)
        assert error["code"] == "validation_error" and set(error["details"]["fields"]) == set(body)
    bad = _error(api.patch(url, {"variants": []}, format="json"), 400)
    assert bad["code"] == "invalid_variants"
    assert Experiment.objects.get().key == "tone"


def test_keys_are_per_owner_and_never_reveal_another_owners(api, other_api, owner):
    """Two owners can both have "tone"; each sees its own; a key is taken only by the
    owner's own experiment or an operator-wide one (issue 19, defect 13)."""
    mine = _create(api)
    theirs = other_api.post("/api/v1/experiments", {**BODY, "name": "Theirs"}, format="json")
    assert theirs.status_code == 201, theirs.content
    theirs = theirs.json()
    assert mine["id"] != theirs["id"] and theirs["key"] == "tone"
    assert [e["name"] for e in api.get("/api/v1/experiments").json()["results"]] == ["Tone"]
    assert [e["name"] for e in other_api.get("/api/v1/experiments").json()["results"]] == ["Theirs"]
    assert Experiment.objects.filter(key="tone").count() == 2

    again = _error(api.post("/api/v1/experiments", BODY, format="json"), 409)
    assert again["code"] == "experiment_key_taken"
    Experiment.objects.create(key="global", name="Global", variants=VARIANTS)
    reserved = _error(
        api.post("/api/v1/experiments", {**BODY, "key": "global"}, format="json"), 409
    )
    assert reserved["code"] == "experiment_key_taken"
    assert Experiment.objects.filter(key="global").count() == 1


def test_the_database_holds_one_key_per_owner_and_one_operator_wide():
    from django.db import IntegrityError

    first, second = (get_user_model().objects.create(username=name) for name in ("first", "second"))
    for user in (first, second, None):
        Experiment.objects.create(owner=user, key="tone", name="Tone", variants=VARIANTS)
    for user in (first, None):
        with pytest.raises(IntegrityError):
            Experiment.objects.create(owner=user, key="tone", name="Again", variants=VARIANTS)


def test_results_count_only_the_experiments_owners_sessions_and_queries(
    api, other_api, owner, make_owner
):
    mine = _create(api)["id"]
    theirs = other_api.post("/api/v1/experiments", BODY, format="json").json()["id"]
    mallory = get_user_model().objects.get(username="mallory")
    for user, sessions in ((owner[0], 1), (mallory, 3)):
        for n in range(sessions):
            Session.objects.create(
                owner=user, session_id=f"s{n}", user_id="u", experiments={"tone": "warm"}
            )
    _query(owner[0], "warm", 1, latency=100, cost=0.01)
    for _ in range(2):
        _query(mallory, "warm", -1, latency=100, cost=0.01)

    def warm(client, experiment_id):
        rows = client.get(f"/api/v1/experiments/{experiment_id}/results").json()["variants"]
        return next(
            (r["sessions"], r["queries"], r["thumbs_up"]) for r in rows if r["name"] == "warm"
        )

    assert warm(api, mine) == (1, 1, 1)
    assert warm(other_api, theirs) == (3, 2, 0)
    # An operator-wide experiment under a key some owners also use (made before the
    # check existed) counts the other owners' rows only.
    stranger, _ = make_owner("stranger")
    Session.objects.create(
        owner=stranger, session_id="s", user_id="u", experiments={"tone": "warm"}
    )
    operator = Experiment.objects.create(key="tone", name="Global", variants=VARIANTS)
    rows = {r.name: r for r in experiment_results(experiment=operator)}
    assert rows["warm"].sessions == 1


def test_another_owners_experiment_is_a_404(api, other_api):
    experiment_id = _create(api)["id"]
    url = f"/api/v1/experiments/{experiment_id}"
    calls = [
        other_api.get(url),
        other_api.patch(url, {"name": "mine"}, format="json"),
        other_api.delete(url),
        other_api.post(f"{url}/start"),
        other_api.post(f"{url}/stop"),
        other_api.get(f"{url}/results"),
        other_api.get("/api/v1/experiments/not-an-object-id"),
    ]
    for response in calls:
        assert _error(response, 404)["code"] == "not_found"
    assert other_api.get("/api/v1/experiments").json()["results"] == []
    experiment = Experiment.objects.get(pk=experiment_id)
    assert (experiment.name, experiment.status) == ("Tone", "draft")


def test_operator_experiments_are_not_listed_to_owners(api):
    operator = Experiment.objects.create(key="global", name="Global", variants=VARIANTS)
    assert api.get("/api/v1/experiments").json()["results"] == []
    _error(api.get(f"/api/v1/experiments/{operator.pk}"), 404)


def test_an_owners_experiment_assigns_only_that_owners_sessions(api, owner, make_owner):
    stranger, _ = make_owner("stranger")
    api.post(f"/api/v1/experiments/{_create(api)['id']}/start")
    operator = Experiment.objects.create(key="global", name="Global", variants=VARIANTS)
    operator.status = Experiment.Status.RUNNING
    operator.save()

    mine = session_start(owner=owner[0], session_id="s1", user_id="u1", environment={}).session
    theirs = session_start(owner=stranger, session_id="s1", user_id="u1", environment={}).session
    assert set(mine.experiments) == {"tone", "global"}
    assert set(theirs.experiments) == {"global"}
    # Even a session that names the key (written by hand) gets no overrides from it.
    theirs.experiments = {"tone": "warm", "global": "control"}
    assert [v.experiment_key for v in session_variants(session=theirs)] == ["global"]
    mine.experiments = {"tone": "warm"}
    assert session_variants(session=mine)[0].overrides == {"temperature": 1.2}


def _query(
    owner,
    variant: str,
    rating: int | None,
    *,
    latency: int,
    cost: float,
    status: str = "completed",
    excluded: str | None = None,
) -> None:
    Query.objects.create(
        owner=owner,
        user_id="u",
        session_id="s",
        query="q",
        model_provider="openai",
        model_name="gpt-4o-mini",
        status=status,
        # An excluded query is recorded with its arm and why, and not in ``experiments``.
        experiments={} if excluded else {"tone": variant},
        experiments_excluded={"tone": {"variant": variant, "reason": excluded}} if excluded else {},
        feedback_rating=rating,
        latency={"total_ms": latency},
        usage={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15, "cost_usd": cost},
    )


def test_results_are_the_admin_pages_numbers(api, owner):
    user = owner[0]
    experiment_id = _create(api)["id"]
    api.post(f"/api/v1/experiments/{experiment_id}/start")
    for n, variant in enumerate(["control", "control", "warm"]):
        Session.objects.create(
            owner=user, session_id=f"s{n}", user_id="u", experiments={"tone": variant}
        )
    # Control: 40 rated, half up, latency 100/300, no failures.
    for n in range(40):
        _query(user, "control", 1 if n % 2 else -1, latency=100 + 200 * (n % 2), cost=0.01)
    # Warm: 30 up and 10 unrated, latency 200/400/600, 4 failed.
    for n in range(40):
        _query(
            user,
            "warm",
            1 if n < 30 else None,
            latency=200 * (1 + n % 3),
            cost=0.02,
            status="failed" if n < 4 else "completed",
        )
    _query(user, "control", 1, latency=1, cost=9, excluded="request_set:temperature")
    for reason in ("request_set:temperature", "request_set:temperature", "conflict:temperature"):
        _query(user, "warm", 1, latency=1, cost=9, excluded=reason)

    body = api.get(f"/api/v1/experiments/{experiment_id}/results").json()
    assert body["experiment"]["id"] == experiment_id
    assert body["control"] == "control"
    assert body["minimums"] == {"rated_per_arm": 30, "queries_per_arm": 30, "srm_p_value": 0.001}
    # 2 sessions against 1 at 50/50 is well within chance.
    assert body["srm"] is False and body["sample_ratio"]["degrees_of_freedom"] == 1
    assert body["sample_ratio"]["chi_square"] == pytest.approx(1 / 3)
    rows = {row["name"]: row for row in body["variants"]}
    control, warm = rows["control"], rows["warm"]
    assert (control["sessions"], control["queries"], control["rated"]) == (2, 40, 40)
    assert control["is_control"] and control["thumbs_up_rate"] == 0.5
    assert control["difference"] is None and control["average_latency_ms"] == 200.0
    assert control["thumbs_up_comparison"]["status"] == "baseline"
    assert (control["excluded_queries"], control["excluded_reasons"]) == (
        1,
        {"request_set:temperature": 1},
    )
    assert (warm["sessions"], warm["queries"], warm["rated"], warm["thumbs_up"]) == (1, 40, 30, 30)
    assert warm["excluded_queries"] == 3
    assert warm["excluded_reasons"] == {"request_set:temperature": 2, "conflict:temperature": 1}
    assert (warm["errors"], warm["error_rate"], control["error_rate"]) == (4, 0.1, 0.0)
    assert warm["thumbs_up_rate"] == 1.0 and warm["difference"] == 0.5
    newcombe = statistics.proportion_difference(
        successes=30, n=30, control_successes=20, control_n=40
    )
    assert (warm["ci_low"], warm["ci_high"]) == (
        pytest.approx(newcombe.low, abs=1e-6),
        pytest.approx(newcombe.high, abs=1e-6),
    )
    assert 0 < warm["ci_low"] < 0.5 < warm["ci_high"] <= 1 and warm["significant"]
    assert warm["tokens_per_query"] == 15 and warm["cost_per_query_usd"] == pytest.approx(0.02)
    assert warm["total_tokens"] == 600 and warm["cost_usd"] == pytest.approx(0.8)
    # Every warm query costs 0.01 more, without spread: the interval is the point.
    cost = warm["cost_comparison"]
    assert cost["status"] == "estimated" and cost["significant"]
    assert cost["difference"] == pytest.approx(0.01) and cost["ci_low"] == pytest.approx(0.01)
    latency = warm["latency_comparison"]
    assert latency["difference"] == pytest.approx(395 - 200)
    assert latency["ci_low"] < 195 < latency["ci_high"] and latency["significant"]
    # Field for field what the admin page renders, from the same selector.
    expected = experiment_results(experiment=Experiment.objects.get(pk=experiment_id))
    for result in expected:
        row = rows[result.name]
        for field in (
            "queries",
            "excluded_queries",
            "excluded_reasons",
            "rated",
            "thumbs_up",
            "errors",
            "difference",
            "ci_low",
            "ci_high",
            "latency_p50_ms",
            "latency_p95_ms",
        ):
            assert row[field] == getattr(result, field), field
        assert row["significant"] == result.significant


def test_results_say_not_enough_data_below_the_minimum(api, owner):
    experiment_id = _create(api)["id"]
    for variant in ("control", "warm"):
        for n in range(29):
            _query(owner[0], variant, 1 if n % 2 or variant == "warm" else -1, latency=n, cost=0.01)
    rows = {
        row["name"]: row
        for row in api.get(f"/api/v1/experiments/{experiment_id}/results").json()["variants"]
    }
    for metric in ("thumbs_up_comparison", "cost_comparison", "latency_comparison"):
        assert rows["warm"][metric] == {
            "status": "not_enough_data",
            "difference": None,
            "ci_low": None,
            "ci_high": None,
            "significant": False,
        }
    _query(owner[0], "control", -1, latency=1, cost=0.01)
    _query(owner[0], "warm", 1, latency=1, cost=0.01)
    body = api.get(f"/api/v1/experiments/{experiment_id}/results").json()
    warm = {row["name"]: row for row in body["variants"]}["warm"]
    assert warm["thumbs_up_comparison"]["status"] == "estimated"
    assert warm["latency_comparison"]["status"] == "estimated"
    assert body["sample_ratio"] is None and body["srm"] is False  # no sessions at all


def test_results_flag_a_sample_ratio_mismatch(api, owner):
    experiment_id = _create(api)["id"]
    split = {"control": 60, "warm": 40}  # at 50/50, p = 0.0455: not flagged
    for variant, count in split.items():
        Session.objects.bulk_create(
            Session(
                owner=owner[0],
                session_id=f"{variant}{n}",
                user_id="u",
                experiments={"tone": variant},
            )
            for n in range(count)
        )
    body = api.get(f"/api/v1/experiments/{experiment_id}/results").json()
    assert body["srm"] is False
    assert body["sample_ratio"]["p_value"] == pytest.approx(0.0455, abs=1e-4)
    Session.objects.bulk_create(
        Session(owner=owner[0], session_id=f"more{n}", user_id="u", experiments={"tone": "control"})
        for n in range(40)
    )
    body = api.get(f"/api/v1/experiments/{experiment_id}/results").json()
    assert body["srm"] is True  # 100 against 40: p < 0.001
    assert body["sample_ratio"]["p_value"] < 0.001


def test_admin_still_manages_every_owners_experiments(api):
    _create(api)
    Experiment.objects.create(key="global", name="Global", variants=VARIANTS)
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client = Client()
    client.force_login(root)
    page = client.get("/admin/chat_sessions/experiment/")
    assert page.status_code == 200
    assert b"tone" in page.content and b"global" in page.content
    response = client.post(
        "/admin/chat_sessions/experiment/add/",
        {
            "key": "ops",
            "name": "Ops",
            "description": "",
            "owner": "",
            "variants": json.dumps(VARIANTS),
        },
    )
    assert response.status_code == 302, response.content
    assert Experiment.objects.get(key="ops").owner is None
    # An operator-wide key shares its key space with every owner's.
    clash = client.post(
        "/admin/chat_sessions/experiment/add/",
        {
            "key": "tone",
            "name": "Ops",
            "description": "",
            "owner": "",
            "variants": json.dumps(VARIANTS),
        },
    )
    assert clash.status_code == 200 and b"is used by" in clash.content
    assert Experiment.objects.filter(key="tone").count() == 1


def test_the_admin_variant_filter_names_the_owner(api, owner, other_api):
    _create(api)
    other_api.post("/api/v1/experiments", BODY, format="json")
    mallory = get_user_model().objects.get(username="mallory")
    Session.objects.create(
        owner=owner[0], session_id="alices", user_id="u", experiments={"tone": "warm"}
    )
    Session.objects.create(
        owner=mallory, session_id="mallorys", user_id="u", experiments={"tone": "warm"}
    )
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client = Client()
    client.force_login(root)
    page = client.get("/admin/chat_sessions/session/", {"variant": f"tone=warm@{owner[0].pk}"})
    assert page.status_code == 200
    assert b"alices" in page.content and b"mallorys" not in page.content
    assert f"tone%3Dwarm%40{mallory.pk}".encode() in page.content  # both owners listed


@pytest.fixture
def schema() -> dict:
    return json.loads(Client().get("/openapi.json").content)


def test_openapi_covers_the_experiment_endpoints(schema):
    paths = schema["paths"]
    operations = {
        ("/api/v1/experiments", "get"),
        ("/api/v1/experiments", "post"),
        ("/api/v1/experiments/{experiment_id}", "get"),
        ("/api/v1/experiments/{experiment_id}", "patch"),
        ("/api/v1/experiments/{experiment_id}", "delete"),
        ("/api/v1/experiments/{experiment_id}/start", "post"),
        ("/api/v1/experiments/{experiment_id}/stop", "post"),
        ("/api/v1/experiments/{experiment_id}/results", "get"),
    }
    for path, method in operations:
        assert method in paths.get(path, {}), (method, path)
        responses = paths[path][method]["responses"]
        assert {"400", "401", "404"} <= set(responses), (method, path)
    assert "409" in paths["/api/v1/experiments"]["post"]["responses"]
    assert "409" in paths["/api/v1/experiments/{experiment_id}"]["patch"]["responses"]
    assert "409" in paths["/api/v1/experiments/{experiment_id}"]["delete"]["responses"]
    create = paths["/api/v1/experiments"]["post"]["requestBody"]["content"]["application/json"]
    body = schema["components"]["schemas"][create["schema"]["$ref"].rsplit("/", 1)[-1]]
    assert {"key", "name", "variants"} <= set(body["required"])
    variants = body["properties"]["variants"]
    assert (variants["type"], variants["minItems"], variants["maxItems"]) == ("array", 2, 10)
    item = variants["items"]
    assert item["required"] == ["name", "weight"] and item["additionalProperties"] is False
    assert set(item["properties"]["overrides"]["properties"]) == {
        "model_provider",
        "model_name",
        "system_prompt",
        "temperature",
    }
    results = paths["/api/v1/experiments/{experiment_id}/results"]["get"]["responses"]["200"]
    ref = results["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][ref]["properties"]) == {
        "experiment",
        "control",
        "variants",
        "srm",
        "sample_ratio",
        "minimums",
    }
