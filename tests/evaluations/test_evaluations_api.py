"""Datasets and evaluation runs over REST, through the fake vendors: what an operator reads
off a finished run (means per target and scorer, the judge's scores and prompt, cost).

Over 500 lines on purpose: one endpoint family (datasets, items, runs) on one shared set
of fixtures and fake vendors; split by verb, each file would rebuild them."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from evaluations import services
from evaluations.models import DatasetItem, EvaluationResult, EvaluationRun
from llmplatform.core.models import ApiKey
from llmplatform.core.services import api_key_set_limits
from queries.models import Query

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]

CAPITALS = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Spain?", "Madrid"),
]
JUDGE_REPLY = '{"score": 0.75, "reason": "Names the right city, with filler."}'
RUBRIC = "Score 1 when the answer names the right capital city."


def _dataset(api, name="capitals") -> str:
    created = api.post("/api/v1/datasets", {"name": name}, format="json")
    assert created.status_code == 201, created.content
    dataset_id = created.json()["id"]
    added = api.post(
        f"/api/v1/datasets/{dataset_id}/items",
        {"items": [{"input": q, "reference": a, "tags": ["geo"]} for q, a in CAPITALS]},
        format="json",
    )
    assert added.status_code == 201 and added.json() == {"added": 4}
    return dataset_id


def _finished(api, run_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = api.get(f"/api/v1/evaluations/{run_id}").json()
        if body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish: {body}")


def test_two_targets_scored_by_contains_and_a_judge(api, fakes):
    fakes["openai"].reply_text = "The capitals are Paris, Berlin, Rome and Madrid."
    fakes["anthropic"].reply_text = "I would rather not say."
    fakes["google"].reply_text = JUDGE_REPLY
    dataset_id = _dataset(api)
    started = api.post(
        "/api/v1/evaluations",
        {
            "dataset": dataset_id,
            "targets": [
                {"name": "gpt", "overrides": {"model_provider": "openai"}},
                {"model_provider": "anthropic"},
            ],
            "scorers": ["contains", {"type": "judge", "provider": "google", "rubric": RUBRIC}],
            "repeats": 1,
        },
        format="json",
    )
    assert started.status_code == 202, started.content
    assert started.json()["total"] == 8
    report = _finished(api, started.json()["id"])
    assert report["status"] == "completed", report
    assert report["progress"] == {"total": 8, "done": 8, "failed": 0}
    gpt, claude = report["targets"]
    assert (gpt["name"], claude["name"]) == ("gpt", "model_provider=anthropic")
    assert gpt["scorers"]["contains"]["mean"] == 1.0
    assert claude["scorers"]["contains"]["mean"] == 0.0
    assert gpt["scorers"]["contains"]["n"] == claude["scorers"]["contains"]["n"] == 4
    # The bootstrap interval holds the mean (and is a point when every score agrees).
    assert gpt["scorers"]["contains"]["low"] == gpt["scorers"]["contains"]["high"] == 1.0
    worst = claude["scorers"]["contains"]["worst"]
    assert worst[0]["answer"] == "I would rather not say."
    assert worst[0]["reason"] == "reference not found in the answer"
    for target in (gpt, claude):
        judged = target["scorers"]["judge"]
        assert judged["mean"] == 0.75 and judged["n"] == 4
        assert judged["worst"][0]["reason"] == "Names the right city, with filler."
        assert target["latency_ms"]["p50"] is not None

    # Every answer went through the run entry, with its target's provider, marked.
    queries = Query.objects.filter(metadata__evaluation=report["id"])
    assert sorted(q.model_provider for q in queries) == ["anthropic"] * 4 + ["openai"] * 4
    assert all(q.status == Query.Status.COMPLETED for q in queries)

    # The judge's prompt, model and temperature are stored with each score, and the judge
    # was sent exactly that prompt.
    result = EvaluationResult.objects.filter(run_id=report["id"], target=1).first()
    judge = result.scores["judge"]
    assert (judge["provider"], judge["temperature"]) == ("google", 0.0)
    assert judge["model"] and RUBRIC in judge["prompt"]["system"]
    assert "Answer to grade:\nI would rather not say." in judge["prompt"]["user"]
    sent = [json.dumps(r.body) for r in fakes["google"].chat_requests]
    assert len(sent) == 8 and all(RUBRIC in body for body in sent)

    # The judge's cost is counted against the key, on top of the answers' (each charge is
    # counted in whole micro-dollars).
    judge_costs = [
        r.scores["judge"]["cost_usd"] for r in EvaluationResult.objects.filter(run_id=report["id"])
    ]
    answer_costs = [q.usage["cost_usd"] for q in queries]
    assert all(cost > 0 for cost in judge_costs + answer_costs)
    used = api.get("/api/v1/usage").json()["limits"]["usd_per_month"]["used"]
    assert used == sum(round(cost * 1_000_000) for cost in judge_costs + answer_costs) / 1e6
    judge_usd, answers_usd = sum(judge_costs), sum(answer_costs)
    assert gpt["cost_usd"] + claude["cost_usd"] == pytest.approx(judge_usd + answers_usd)


def test_a_resumed_run_asks_only_what_it_has_not_stored(api, fakes):
    fakes["openai"].reply_text = "Paris"
    dataset_id = _dataset(api)
    started = api.post(
        "/api/v1/evaluations",
        {"dataset": dataset_id, "targets": [{"model_provider": "openai"}], "scorers": ["exact"]},
        format="json",
    )
    report = _finished(api, started.json()["id"])
    assert report["targets"][0]["scorers"]["exact"]["mean"] == 0.25  # only France
    run = EvaluationRun.objects.get(pk=report["id"])
    spain = DatasetItem.objects.get(dataset_id=dataset_id, input__contains="Spain")
    EvaluationResult.objects.filter(run=run, item=spain).delete()
    EvaluationRun.objects.filter(pk=run.pk).update(status="failed")
    asked_before = len(fakes["openai"].chat_requests)
    call_command("run_evaluation", str(run.pk))
    run.refresh_from_db()
    assert (run.status, run.done, run.failed) == ("completed", 4, 0)
    assert Query.objects.filter(metadata__evaluation=str(run.pk)).count() == 5
    writer_calls = len(fakes["openai"].chat_requests) - asked_before
    assert 1 <= writer_calls <= 2  # one question (and at most its intent classification)


def test_from_feedback_down_collects_only_this_owners_thumbs_down(api, owner, make_owner):
    other, _ = make_owner("bob")

    def query(who, text, rating, **extra):
        return Query.objects.create(
            owner=who,
            user_id="u1",
            session_id="s1",
            query=text,
            response=f"answer to {text}",
            model_provider="openai",
            model_name="gpt-4o-mini",
            status=Query.Status.COMPLETED,
            feedback_rating=rating,
            **extra,
        )

    down = [query(owner[0], "bad one", -1), query(owner[0], "bad two", -1)]
    query(owner[0], "good", 1)
    query(owner[0], "unrated", None)
    query(owner[0], "an evaluation's", -1, metadata={"evaluation": "x"})
    query(other, "bob's bad", -1)
    created = api.post("/api/v1/datasets", {"name": "complaints"}, format="json").json()
    url = f"/api/v1/datasets/{created['id']}/items"
    assert api.post(f"{url}?from_feedback=down").json() == {"added": 2}
    assert api.post(f"{url}?from_feedback=down").json() == {"added": 0}  # never twice
    items = api.get(url).json()["results"]
    assert sorted(i["input"] for i in items) == ["bad one", "bad two"]
    assert {i["source_query_id"] for i in items} == {str(q.pk) for q in down}
    assert all(i["reference"] == "" and i["tags"] == ["feedback:down"] for i in items)


def test_uploads_pages_and_another_owners_404(api, other_api):
    created = api.post("/api/v1/datasets", {"name": "upload"}, format="json").json()
    url = f"/api/v1/datasets/{created['id']}/items"
    jsonl = b'{"input": "q1", "reference": "a1"}\n\n{"input": "q2", "tags": ["t"]}\n'
    sent = api.post(url, {"file": SimpleUploadedFile("items.jsonl", jsonl)}, format="multipart")
    assert sent.json() == {"added": 2}
    csv = b"input,reference,tags\nq3,a3,x;y\nq4,,\n"
    sent = api.post(url, {"file": SimpleUploadedFile("items.csv", csv)}, format="multipart")
    assert sent.json() == {"added": 2}
    first = api.get(f"{url}?limit=3").json()
    second = api.get(first["next"]).json()
    inputs = [i["input"] for i in first["results"] + second["results"]]
    assert sorted(inputs) == ["q1", "q2", "q3", "q4"]
    by_input = {i["input"]: i for i in first["results"] + second["results"]}
    assert by_input["q3"]["tags"] == ["x", "y"] and by_input["q1"]["reference"] == "a1"

    bad = api.post(url, {"items": [{"input": "ok"}, {"reference": "no input"}]}, format="json")
    assert bad.status_code == 400 and "items" in bad.json()["error"]["details"]["fields"]
    assert api.post("/api/v1/datasets", {"name": "upload"}, format="json").status_code == 409

    assert other_api.get(f"/api/v1/datasets/{created['id']}").status_code == 404
    assert other_api.get(url).status_code == 404
    assert other_api.post(url, {"items": [{"input": "x"}]}, format="json").status_code == 404
    assert other_api.delete(f"/api/v1/datasets/{created['id']}").status_code == 404
    started = other_api.post(
        "/api/v1/evaluations",
        {"dataset": created["id"], "targets": [{}], "scorers": ["exact"]},
        format="json",
    )
    assert started.status_code == 404
    assert api.delete(f"/api/v1/datasets/{created['id']}").status_code == 204
    assert api.get(f"/api/v1/datasets/{created['id']}").status_code == 404


def test_another_owner_cannot_read_a_run(api, other_api, fakes):
    dataset_id = _dataset(api)
    started = api.post(
        "/api/v1/evaluations",
        {"dataset": dataset_id, "targets": [{"model_provider": "openai"}], "scorers": ["exact"]},
        format="json",
    ).json()
    assert other_api.get(f"/api/v1/evaluations/{started['id']}").status_code == 404
    assert other_api.get("/api/v1/evaluations").json()["results"] == []
    _finished(api, started["id"])
    [listed] = api.get("/api/v1/evaluations").json()["results"]
    assert (listed["id"], listed["dataset"], listed["status"]) == (
        started["id"],
        dataset_id,
        "completed",
    )


def test_bad_runs_are_refused_before_anything_is_asked(api, fakes):
    dataset_id = _dataset(api)
    for body in (
        {"dataset": dataset_id, "targets": [], "scorers": ["exact"]},
        {"dataset": dataset_id, "targets": [{"model_provider": "nope"}], "scorers": ["exact"]},
        {"dataset": dataset_id, "targets": [{"colour": "red"}], "scorers": ["exact"]},
        {"dataset": dataset_id, "targets": [{}], "scorers": ["bleu"]},
        {"dataset": dataset_id, "targets": [{}], "scorers": ["exact"], "repeats": 0},
    ):
        assert api.post("/api/v1/evaluations", body, format="json").status_code == 400, body
    assert (
        api.post(
            "/api/v1/evaluations",
            {"dataset": dataset_id, "targets": "no-such-experiment", "scorers": ["exact"]},
            format="json",
        ).status_code
        == 404
    )
    assert not EvaluationRun.objects.exists()
    assert not fakes["openai"].chat_requests


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"temperature": 5}, "temperature must be between 0.0 and 2.0"),
        ({"temperature": True}, 'override "temperature" has the wrong type'),
        ({"system_prompt": "x" * 20_001}, "system_prompt is longer than"),
    ],
)
def test_a_target_follows_the_same_override_rules_as_an_experiment_variant(
    api, fakes, overrides, message
):
    response = api.post(
        "/api/v1/evaluations",
        {"dataset": _dataset(api), "targets": [overrides], "scorers": ["exact"]},
        format="json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_targets"
    assert error["message"].startswith("targets[0]: ") and message in error["message"]
    assert not EvaluationRun.objects.exists()


def test_deleting_a_dataset_deletes_its_runs_and_results(api, fakes):
    dataset_id = _dataset(api)
    started = api.post(
        "/api/v1/evaluations",
        {"dataset": dataset_id, "targets": [{"model_provider": "openai"}], "scorers": ["exact"]},
        format="json",
    ).json()
    _finished(api, started["id"])
    assert api.delete(f"/api/v1/datasets/{dataset_id}").status_code == 204
    assert not EvaluationRun.objects.filter(pk=started["id"]).exists()
    assert not EvaluationResult.objects.filter(run_id=started["id"]).exists()
    assert api.get(f"/api/v1/evaluations/{started['id']}").status_code == 404


def test_the_command_runs_a_new_evaluation_with_a_progress_bar(api, fakes, capsys):
    fakes["openai"].reply_text = "Berlin"
    dataset_id = _dataset(api)
    call_command(
        "run_evaluation",
        "--dataset",
        dataset_id,
        "--target",
        '{"model_provider": "openai", "temperature": 0.2}',
        "--scorer",
        "contains",
        "--repeats",
        "2",
    )
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["status"] == "completed"
    assert report["progress"] == {"total": 8, "done": 8, "failed": 0}
    assert report["targets"][0]["scorers"]["contains"]["mean"] == 0.25
    assert "8/8" in err  # the progress bar
    temperatures = {
        q.request["temperature"] for q in Query.objects.filter(metadata__evaluation=report["id"])
    }
    assert temperatures == {0.2}


def test_the_evaluation_marker_separates_evaluation_questions_from_users(owner):
    """The lookup analytics uses to leave evaluation questions out."""

    def query(metadata):
        return Query.objects.create(
            owner=owner[0],
            user_id="u1",
            session_id="s1",
            query="q",
            model_provider="openai",
            model_name="m",
            metadata=metadata,
        )

    users = [query({}), query({"memory": [], "summary_used": False})]
    evaluation = query({"evaluation": "65f0c0ffee0000000000000a", "memory": []})
    assert set(Query.objects.filter(metadata__evaluation__isnull=True)) == set(users)
    assert list(Query.objects.exclude(metadata__evaluation__isnull=True)) == [evaluation]


def test_an_experiment_key_evaluates_each_of_its_variants(api, owner, fakes):
    from sessions.models import Experiment

    Experiment.objects.create(
        owner=owner[0],
        key="tone",
        name="Tone",
        status="running",
        variants=[
            {"name": "control", "weight": 50, "overrides": {}},
            {"name": "warm", "weight": 50, "overrides": {"system_prompt": "Be warm, Madrid."}},
        ],
    )
    fakes["openai"].reply_text = None  # the echo: the answer repeats what it was sent
    dataset_id = _dataset(api)
    started = api.post(
        "/api/v1/evaluations",
        {"dataset": dataset_id, "targets": "tone", "scorers": ["contains"]},
        format="json",
    )
    assert started.status_code == 202, started.content
    report = _finished(api, started.json()["id"])
    assert [t["name"] for t in report["targets"]] == ["tone:control", "tone:warm"]
    assert report["targets"][1]["overrides"] == {"system_prompt": "Be warm, Madrid."}
    sent = [json.dumps(r.body) for r in fakes["openai"].chat_requests]
    assert sum("Be warm, Madrid." in body for body in sent) >= 4


def test_pairwise_judging_against_a_baseline_in_random_order(api, fakes):
    fakes["openai"].reply_text = "The capitals are Paris, Berlin, Rome and Madrid."
    fakes["anthropic"].reply_text = "I would rather not say."
    fakes["google"].reply_text = '{"winner": "A", "reason": "A answers the question."}'
    dataset_id = _dataset(api)
    started = api.post(
        "/api/v1/evaluations",
        {
            "dataset": dataset_id,
            "targets": [{"model_provider": "openai"}, {"model_provider": "anthropic"}],
            "scorers": [{"type": "pairwise", "provider": "google"}],
        },
        format="json",
    )
    assert started.status_code == 202, started.content
    report = _finished(api, started.json()["id"])
    baseline, challenger = report["targets"]
    assert baseline["scorers"]["pairwise"]["n"] == 0  # the baseline is not judged against itself
    judged = challenger["scorers"]["pairwise"]
    assert judged["baseline"] == "model_provider=openai"
    assert judged["n"] == 4 and judged["ties"] == 0 and judged["wins"] + judged["losses"] == 4
    assert judged["mean"] == judged["wins"] / 4  # the win rate
    # The judge always says "A": the challenger wins exactly where it was shown first.
    for result in EvaluationResult.objects.filter(run_id=report["id"], target=1):
        verdict = result.scores["pairwise"]
        first = verdict["prompt"]["user"].split("Answer A:\n")[1].split("\n\nAnswer B:")[0]
        assert (first == result.answer) == (verdict["answer_shown_as"] == "A")
        assert verdict["outcome"] == ("win" if verdict["answer_shown_as"] == "A" else "loss")
    assert len(fakes["google"].chat_requests) == 4


def test_pairwise_needs_two_targets(api, fakes):
    dataset_id = _dataset(api)
    refused = api.post(
        "/api/v1/evaluations",
        {"dataset": dataset_id, "targets": [{}], "scorers": ["pairwise"]},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_scorers"


def test_a_run_hands_its_worker_back_between_slices_and_still_finishes(api, fakes, monkeypatch):
    monkeypatch.setattr("evaluations.tasks.EVALUATION_SLICE_S", 0.0)  # one answer a task
    slices: list[str] = []
    resubmit = services.evaluation_continue

    def counted(*, run):
        slices.append(str(run.pk))
        resubmit(run=run)

    monkeypatch.setattr("evaluations.tasks.evaluation_continue", counted)
    fakes["openai"].reply_text = "Rome"
    dataset_id = _dataset(api)
    started = api.post(
        "/api/v1/evaluations",
        {"dataset": dataset_id, "targets": [{"model_provider": "openai"}], "scorers": ["exact"]},
        format="json",
    ).json()
    report = _finished(api, started["id"])
    assert report["status"] == "completed"
    assert report["progress"] == {"total": 4, "done": 4, "failed": 0}
    assert report["targets"][0]["scorers"]["exact"]["mean"] == 0.25
    assert len(slices) == 4  # queued again after each of its four answers


def test_a_used_up_budget_stops_the_run_and_a_resume_finishes_it(api, owner, fakes):
    key = ApiKey.objects.get(owner=owner[0])
    fakes["openai"].reply_text = "Madrid"
    dataset_id = _dataset(api)
    api_key_set_limits(api_key=key, limits={"usd_per_month": Decimal("0.000001")})
    started = api.post(
        "/api/v1/evaluations",
        {"dataset": dataset_id, "targets": [{"model_provider": "openai"}], "scorers": ["exact"]},
        format="json",
    ).json()
    stopped = _finished(api, started["id"])
    assert stopped["status"] == "failed" and stopped["error"]["code"] == "budget_exceeded"
    asked = stopped["progress"]["done"]
    assert 1 <= asked < 4
    assert Query.objects.filter(metadata__evaluation=started["id"]).count() == asked

    api_key_set_limits(api_key=key, limits={"usd_per_month": Decimal("10")})
    call_command("run_evaluation", started["id"])
    finished = api.get(f"/api/v1/evaluations/{started['id']}").json()
    assert finished["status"] == "completed"
    assert finished["progress"] == {"total": 4, "done": 4, "failed": 0}
    # Nothing asked twice: one question per item in all.
    assert Query.objects.filter(metadata__evaluation=started["id"]).count() == 4


def test_a_running_experiment_never_changes_an_evaluation_question(api, owner, fakes):
    from sessions.models import Experiment

    Experiment.objects.create(
        owner=owner[0],
        key="warmth",
        name="Warmth",
        status="running",
        variants=[
            {"name": "control", "weight": 50, "overrides": {}},
            {"name": "warm", "weight": 50, "overrides": {"system_prompt": "Be very warm."}},
        ],
    )
    dataset_id = _dataset(api)
    started = api.post(
        "/api/v1/evaluations",
        {"dataset": dataset_id, "targets": [{"model_provider": "openai"}], "scorers": ["exact"]},
        format="json",
    ).json()
    report = _finished(api, started["id"])
    settings = report["targets"][0]["settings"]
    assert settings["model_provider"] == "openai" and settings["model_name"]
    assert settings["system_prompt"] is None  # the default prompt, pinned
    assert not any("Be very warm." in json.dumps(r.body) for r in fakes["openai"].chat_requests)
    queries = Query.objects.filter(metadata__evaluation=report["id"])
    assert queries.count() == 4
    assert all(q.experiments == {} and q.model_name == settings["model_name"] for q in queries)


def test_a_judge_refused_by_the_budget_keeps_the_answer_and_scores_it_on_resume(api, owner, fakes):
    key = ApiKey.objects.get(owner=owner[0])
    fakes["openai"].reply_text = "Paris"
    fakes["google"].reply_text = JUDGE_REPLY
    dataset_id = _dataset(api)
    # The first question is admitted (nothing used yet) and uses the budget up.
    api_key_set_limits(api_key=key, limits={"usd_per_month": Decimal("0.000001")})
    started = api.post(
        "/api/v1/evaluations",
        {
            "dataset": dataset_id,
            "targets": [{"model_provider": "openai"}],
            "scorers": ["contains", {"type": "judge", "provider": "google"}],
        },
        format="json",
    ).json()
    stopped = _finished(api, started["id"])
    assert stopped["status"] == "failed" and stopped["error"]["code"] == "budget_exceeded"
    assert stopped["progress"]["done"] == 1
    [kept] = EvaluationResult.objects.filter(run_id=started["id"])
    assert kept.answer == "Paris" and set(kept.scores) == {"contains"}
    assert not fakes["google"].chat_requests

    api_key_set_limits(api_key=key, limits={"usd_per_month": Decimal("10")})
    call_command("run_evaluation", started["id"])
    report = api.get(f"/api/v1/evaluations/{started['id']}").json()
    assert report["status"] == "completed"
    assert report["targets"][0]["scorers"]["judge"]["n"] == 4
    assert Query.objects.filter(metadata__evaluation=started["id"]).count() == 4
    assert len(fakes["google"].chat_requests) == 4
