"""Online scoring of a running experiment: what the operator reads per arm (scores beside
thumbs-up), which answers were scored (a deterministic sample, never evaluation traffic,
never twice) and what it may cost a day.

Live traffic goes through POST /api/v1/query/ (the in-process run, the fake vendors);
the judge is the fake Gemini server with a scripted verdict per answer it is shown. The
tick is called as the beat task calls it, with ``now`` a minute ahead (answers are passed
over only once settled) or a day ahead (the next day's budget).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from bson import ObjectId
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from analytics.models import ExperimentScore
from evaluations.models import OnlineScoring
from evaluations.online_scoring import online_scores_tick, online_scoring_set
from evaluations.selectors import online_scoring_report
from llmplatform.core.errors import ApplicationError
from queries.models import Query
from sessions.models import Experiment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]

PLAIN = "Open Settings and choose Reset."
WARM = "Happy to help! Open Settings, choose Reset, and you are set."
VARIANTS = [
    {"name": "control", "weight": 50, "overrides": {}},  # the default provider: OpenAI
    {"name": "warm", "weight": 50, "overrides": {"model_provider": "anthropic"}},
]
JUDGE = {"type": "judge", "provider": "google", "rubric": "Is the answer friendly and helpful?"}
SHORT = {"type": "length", "name": "short", "max_chars": 40}


def _verdict(prompt: str) -> str | None:
    """The scripted judge: 0.9 for the warm answer, 0.3 for the plain one."""
    if "Answer to grade:\n" not in prompt:
        return None
    answer = prompt.split("Answer to grade:\n", 1)[1]
    score = 0.9 if answer.startswith("Happy to help") else 0.3
    return json.dumps({"score": score, "reason": f"scored {score}"})


@pytest.fixture
def vendors(in_process):
    in_process["openai"].reply_text = PLAIN
    in_process["anthropic"].reply_text = WARM
    in_process["google"].reply_for = _verdict
    return in_process


def _later(**delta) -> timezone.datetime:
    return timezone.now() + timedelta(seconds=15) + timedelta(**delta)


def _experiment(api) -> str:
    created = api.post(
        "/api/v1/experiments", {"key": "tone", "name": "Tone", "variants": VARIANTS}, format="json"
    )
    assert created.status_code == 201, created.content
    assert api.post(f"/api/v1/experiments/{created.json()['id']}/start").status_code == 200
    return created.json()["id"]


def _traffic(api, per_arm: int) -> dict[str, list[str]]:
    """Ask through the API until each arm has ``per_arm`` answers; query ids per arm."""
    arms: dict[str, list[str]] = {"control": [], "warm": []}
    n = 0
    while min(len(ids) for ids in arms.values()) < per_arm:
        assert n < 60, arms
        body = {
            "user_id": f"user-{n}",
            "session_id": f"s{n}",
            "query": "How do I reset my password?",
            "use_memory": False,
        }
        answer = api.post("/api/v1/query/", body, format="json")
        assert answer.status_code == 200, answer.content
        arms[answer.json()["experiments"]["tone"]].append(answer.json()["query_id"])
        n += 1
    return arms


def _scores(api, experiment_id: str) -> dict[str, dict]:
    body = api.get(f"/api/v1/experiments/{experiment_id}/results").json()
    return {row["name"]: row["online_scores"] for row in body["variants"]}


def test_both_arms_scored_with_the_expected_means_beside_thumbs_up(api, vendors):
    experiment_id = _experiment(api)
    url = f"/api/v1/experiments/{experiment_id}/online-scoring"
    assert api.get(url).status_code == 404  # nothing configured yet
    put = api.put(
        url,
        {"scorers": [JUDGE, SHORT], "sample_rate": 1, "max_usd_per_day": 5},
        format="json",
    )
    assert put.status_code == 200, put.content
    config = put.json()
    assert (config["sample_rate"], config["max_usd_per_day"]) == (1.0, 5.0)
    assert config["scorers"][0]["model"]  # the judge is pinned when configured
    assert (config["spent_today_usd"], config["capped_today"]) == (0.0, False)

    arms = _traffic(api, per_arm=3)
    assert online_scores_tick(now=_later()) == len(arms["control"]) + len(arms["warm"])

    scores = _scores(api, experiment_id)
    control, warm = scores["control"], scores["warm"]
    assert control["judge"]["n"] == len(arms["control"]) and warm["judge"]["n"] == len(arms["warm"])
    assert (control["judge"]["mean"], warm["judge"]["mean"]) == (0.3, 0.9)
    # Every score agrees within an arm: the interval is the point.
    assert control["judge"]["ci_low"] == control["judge"]["ci_high"] == 0.3
    assert (control["short"]["mean"], warm["short"]["mean"]) == (1.0, 0.0)  # 31 vs 61 chars
    assert control["judge"]["cost_usd"] > 0 and control["short"]["cost_usd"] == 0
    # The judge was shown each live answer once, with the question.
    judged = [json.dumps(r.body) for r in vendors["google"].chat_requests]
    assert len(judged) == len(arms["control"]) + len(arms["warm"])
    assert all("How do I reset my password?" in body for body in judged)
    stored = ExperimentScore.objects.get(query_id=arms["warm"][0], scorer="judge")
    assert (stored.variant, stored.details["provider"]) == ("warm", "google")
    assert "friendly and helpful" in stored.details["prompt"]["system"]

    # The judge's spend is on record against the day's cap.
    spent = api.get(url).json()["spent_today_usd"]
    assert spent == pytest.approx(control["judge"]["cost_usd"] + warm["judge"]["cost_usd"])

    # The admin results page shows the same numbers beside the thumbs-up rate.
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client = Client()
    client.force_login(root)
    page = client.get(f"/admin/chat_sessions/experiment/{experiment_id}/results/").content.decode()
    row = re.search(r'<tr data-variant="warm" data-scorer="judge">(.*?)</tr>', page, re.S)
    assert row and '<td data-metric="score">0.900 [0.900, 0.900]</td>' in row.group(1)


def test_rerunning_the_tick_never_scores_twice(api, vendors):
    experiment_id = _experiment(api)
    api.put(
        f"/api/v1/experiments/{experiment_id}/online-scoring",
        {"scorers": [JUDGE], "sample_rate": 1, "max_usd_per_day": 5},
        format="json",
    )
    arms = _traffic(api, per_arm=1)
    answers = len(arms["control"]) + len(arms["warm"])
    assert online_scores_tick(now=_later()) == answers
    assert online_scores_tick(now=_later()) == 0
    # Even from the start again (a tick that died before moving its cursor).
    OnlineScoring.objects.update(scanned_through="", claimed_until=None)
    assert online_scores_tick(now=_later()) == 0
    assert ExperimentScore.objects.count() == answers
    assert len(vendors["google"].chat_requests) == answers
    # A tick another one holds is left alone.
    OnlineScoring.objects.update(scanned_through="", claimed_until=_later(hours=1))
    ExperimentScore.objects.all().delete()
    assert online_scores_tick(now=_later()) == 0


@pytest.fixture
def running(owner) -> Experiment:
    """Alice's running experiment, with a fixed id (the sample hashes it)."""
    return Experiment.objects.create(
        pk=ObjectId(f"{900:024x}"),
        owner=owner[0],
        key="tone",
        name="Tone",
        variants=VARIANTS,
        status=Experiment.Status.RUNNING,
        started_at=timezone.now(),
    )


def _stored(experiment: Experiment, numbers: range, **extra) -> set[str]:
    """Exposed answers as a run stores them, with fixed ids; their ids."""
    Query.objects.bulk_create(
        Query(
            **{
                "pk": ObjectId(f"{n:024x}"),
                "owner": experiment.owner,
                "user_id": f"u{n}",
                "session_id": f"s{n}",
                "query": "How do I reset my password?",
                "response": PLAIN,
                "model_provider": "openai",
                "model_name": "gpt-4o-mini",
                "status": Query.Status.COMPLETED,
                "experiments": {experiment.key: "control" if n % 2 else "warm"},
                **extra,
            }
        )
        for n in numbers
    )
    return {f"{n:024x}" for n in numbers}


def _scored() -> set[str]:
    return {str(pk) for pk in ExperimentScore.objects.values_list("query_id", flat=True)}


def _drain(now) -> int:
    """Tick until nothing is left to score (each tick scores a bounded number)."""
    total = 0
    for _ in range(50):
        scored = online_scores_tick(now=now)
        if not scored:
            return total
        total += scored
    raise AssertionError("the ticks never ran out of answers")


def test_half_the_answers_are_sampled_and_the_same_ones_every_time(running):
    answers = _stored(running, range(1, 201))
    online_scoring_set(experiment=running, scorers=[SHORT], sample_rate=0.5, max_usd_per_day=0)
    _drain(_later())
    first = _scored()
    assert 70 <= len(first) <= 130 and first <= answers
    # The sample is a hash of the ids, not a draw: going over them again picks the same.
    ExperimentScore.objects.all().delete()
    OnlineScoring.objects.update(scanned_through="")
    _drain(_later())
    assert _scored() == first
    # A higher rate keeps every answer a lower one chose and adds the rest.
    online_scoring_set(experiment=running, scorers=[SHORT], sample_rate=1, max_usd_per_day=0)
    assert _drain(_later()) == 200 - len(first)
    assert _scored() == answers


def test_evaluation_traffic_is_never_scored(running):
    _stored(running, range(1, 11), metadata={"evaluation": "run-1"})
    _stored(running, range(11, 21), session_id="evaluation-run-1-item-0-0")
    users = _stored(running, range(21, 23))
    online_scoring_set(experiment=running, scorers=[SHORT], sample_rate=1, max_usd_per_day=0)
    _drain(_later())
    assert _scored() == users


def test_the_daily_cap_stops_the_judge_and_the_next_day_it_resumes(running, vendors):
    _stored(running, range(1, 9))
    online_scoring_set(experiment=running, scorers=[JUDGE], sample_rate=1, max_usd_per_day=1e-9)
    today = _later()
    assert online_scores_tick(now=today) == 1  # the first judging reaches the cap
    cost = ExperimentScore.objects.get().cost_usd
    assert cost > 0
    assert online_scores_tick(now=today) == 0
    config = OnlineScoring.objects.get()
    assert online_scoring_report(config=config, now=today)["capped_today"]
    # A cap of two and a half judgings: two more today (the third would start at 3 x cost).
    online_scoring_set(
        experiment=running, scorers=[JUDGE], sample_rate=1, max_usd_per_day=2.5 * cost
    )
    assert online_scores_tick(now=today) == 2
    assert online_scores_tick(now=today) == 0
    assert len(vendors["google"].chat_requests) == 3  # no judge was asked past the cap
    # The next UTC day has a budget of its own: scoring goes on where it stopped.
    tomorrow = today + timedelta(days=1)
    assert online_scores_tick(now=tomorrow) == 3
    assert online_scores_tick(now=tomorrow) == 0
    assert online_scores_tick(now=tomorrow + timedelta(days=1)) == 2
    assert ExperimentScore.objects.count() == 8 == len(vendors["google"].chat_requests)
    assert online_scoring_report(config=config, now=tomorrow)["spent_today_usd"] == (
        pytest.approx(3 * cost)
    )


def test_another_owner_gets_a_404_and_bad_input_is_a_400(api, other_api, running):
    url = f"/api/v1/experiments/{running.pk}/online-scoring"
    good = {"scorers": [SHORT], "sample_rate": 0.2, "max_usd_per_day": 1}
    assert api.put(url, good, format="json").status_code == 200
    for response in (
        other_api.get(url),
        other_api.put(url, {**good, "sample_rate": 1}, format="json"),
        other_api.delete(url),
        api.get("/api/v1/experiments/not-an-id/online-scoring"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    for body, code in [
        ({**good, "sample_rate": 1.5}, "validation_error"),
        ({**good, "max_usd_per_day": -1}, "validation_error"),
        ({"scorers": [SHORT], "sample_rate": 0.2}, "validation_error"),
        ({**good, "scorers": []}, "invalid_scorers"),
        ({**good, "scorers": ["exact"]}, "invalid_scorers"),  # needs a reference
        ({**good, "scorers": [{"type": "contains"}]}, "invalid_scorers"),  # no text
        ({**good, "scorers": [{"type": "length"}]}, "invalid_scorers"),  # no bounds
        ({**good, "scorers": [{"type": "regex", "pattern": "("}]}, "invalid_scorers"),
    ]:
        refused = api.put(url, body, format="json")
        assert refused.status_code == 400, (body, refused.content)
        assert refused.json()["error"]["code"] == code
    kept = api.get(url).json()
    assert (kept["sample_rate"], kept["scorers"]) == (0.2, [SHORT])
    with pytest.raises(ApplicationError) as refused:
        online_scoring_set(experiment=running, scorers=[SHORT], sample_rate=2, max_usd_per_day=1)
    assert (refused.value.status, refused.value.code) == (400, "invalid_online_scoring")
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


def test_the_tick_is_a_scheduled_task_that_beat_and_the_in_process_scheduler_run(settings, running):
    from evaluations.tasks import score_live_answers

    scheduled = {
        entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
    }
    assert scheduled[score_live_answers.name] == 60.0
    assert score_live_answers.name == "evaluations.score_live_answers"
    _stored(running, range(1, 3))
    online_scoring_set(experiment=running, scorers=[SHORT], sample_rate=1, max_usd_per_day=0)
    assert score_live_answers.apply().get() == 2
    assert score_live_answers.apply().get() == 0


def test_operators_configure_it_in_admin(running):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client = Client()
    client.force_login(root)
    add = "/admin/evaluations/onlinescoring/add/"
    form = {"experiment": str(running.pk), "sample_rate": "0.25", "max_usd_per_day": "2"}
    refused = client.post(add, {**form, "scorers": '["exact"]'})
    assert refused.status_code == 200 and "needs a reference answer" in refused.content.decode()
    assert not OnlineScoring.objects.exists()
    saved = client.post(add, {**form, "scorers": json.dumps([SHORT])})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    config = OnlineScoring.objects.get(experiment=running)
    assert (config.scorers, config.sample_rate, config.max_usd_per_day) == ([SHORT], 0.25, 2.0)
    listing = client.get("/admin/evaluations/onlinescoring/").content.decode()
    assert f"/admin/chat_sessions/experiment/{running.pk}/results/" in listing
    change = client.get(f"/admin/evaluations/onlinescoring/{config.pk}/change/")
    assert change.status_code == 200 and "max_chars" in change.content.decode()
