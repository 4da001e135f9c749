"""python manage.py run_evaluation RUN_ID | --dataset ID --target JSON ... --scorer S ..."""

from __future__ import annotations

import json

from bson import ObjectId
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from evaluations.models import Dataset, EvaluationRun
from evaluations.selectors import evaluation_report
from evaluations.services import evaluation_create, evaluation_execute, evaluation_resume
from llmplatform.core.errors import ApplicationError


def _json_or_name(value: str):
    try:
        return json.loads(value)
    except ValueError:
        return value  # a scorer's name, or an experiment key


class Command(BaseCommand):
    help = (
        "Run an evaluation here and now, with a progress bar: resume a stored run by id (it "
        "skips the answers already stored), or start one on --dataset with --target and "
        "--scorer. Counted against the dataset owner's account limits for a new run, the "
        "run's API key for a stored one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", nargs="?", help="a stored run to resume")
        parser.add_argument("--dataset", help="a dataset id (starts a new run)")
        parser.add_argument(
            "--target",
            action="append",
            default=[],
            type=_json_or_name,
            help='overrides as JSON ({"model_provider": "openai"}) or an experiment key '
            "(repeatable)",
        )
        parser.add_argument(
            "--scorer",
            action="append",
            default=[],
            type=_json_or_name,
            help='a scorer name (contains) or JSON ({"type": "judge", "rubric": ...}) (repeatable)',
        )
        parser.add_argument("--repeats", type=int, default=1)

    def handle(self, *args: object, **options) -> None:
        try:
            run = self._run(options)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        with tqdm(
            total=run.total, initial=run.done + run.failed, unit="answer", file=self.stderr
        ) as bar:

            def progress(current: EvaluationRun) -> None:
                bar.n = current.done + current.failed
                bar.set_postfix(failed=current.failed)
                bar.refresh()

            finished = evaluation_execute(run_id=str(run.pk), progress=progress)
        if finished is None:
            raise CommandError(f"Run {run.pk} is already being run by a worker.")
        self.stdout.write(json.dumps(evaluation_report(run=finished), default=str, indent=2))

    def _run(self, options) -> EvaluationRun:
        if options["run_id"]:
            if not ObjectId.is_valid(options["run_id"]):
                raise CommandError(f"Not a run id: {options['run_id']}")
            run = EvaluationRun.objects.filter(pk=ObjectId(options["run_id"])).first()
            if run is None:
                raise CommandError(f"No evaluation run {options['run_id']}.")
            if run.status in (EvaluationRun.Status.FAILED, EvaluationRun.Status.COMPLETED):
                run = evaluation_resume(run=run)
            return run
        if not (options["dataset"] and options["target"] and options["scorer"]):
            raise CommandError("Give a run id, or --dataset with --target and --scorer.")
        if not ObjectId.is_valid(options["dataset"]):
            raise CommandError(f"Not a dataset id: {options['dataset']}")
        dataset = Dataset.objects.filter(pk=ObjectId(options["dataset"])).first()
        if dataset is None:
            raise CommandError(f"No dataset {options['dataset']}.")
        return evaluation_create(
            owner=dataset.owner,
            api_key=None,
            dataset=dataset,
            targets=options["target"],
            scorers=options["scorer"],
            repeats=options["repeats"],
            in_background=False,
        )
