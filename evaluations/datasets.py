"""Writes of evaluation datasets and their items: created over REST, uploaded as JSONL or
CSV, or collected from the owner's past queries (those picked in admin, or the answers
users rated down or up)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.db import IntegrityError

from evaluations.models import Dataset, DatasetItem
from llmplatform.core.errors import ApplicationError
from queries.models import Query

MAX_ITEMS_PER_REQUEST = 1000
MAX_INPUT_CHARS = 20_000
# Query.feedback_rating of a thumbs-down and a thumbs-up.
FEEDBACK_RATINGS = {"down": -1, "up": 1}


# ----- datasets -----


def dataset_create(*, owner, name: str, description: str = "") -> Dataset:
    """A new, empty dataset. Raises ApplicationError (409 when the name is taken)."""
    if Dataset.objects.filter(owner=owner, name=name).exists():
        raise ApplicationError(
            f"You already have a dataset named {name!r}.", code="dataset_exists", status=409
        )
    try:
        return Dataset.objects.create(owner=owner, name=name, description=description)
    except IntegrityError:  # created by a parallel request
        raise ApplicationError(
            f"You already have a dataset named {name!r}.", code="dataset_exists", status=409
        ) from None


def dataset_delete(*, dataset: Dataset) -> None:
    """Delete a dataset with its items and runs. Raises nothing."""
    dataset.delete()


def _item(index: int, raw: Any) -> DatasetItem:
    if not isinstance(raw, dict):
        raise ApplicationError(
            f"items[{index}] must be an object with input, reference and tags.",
            code="invalid_items",
        )
    text, reference, tags = raw.get("input"), raw.get("reference") or "", raw.get("tags") or []
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_INPUT_CHARS:
        raise ApplicationError(
            f"items[{index}].input must be a non-empty string of at most {MAX_INPUT_CHARS} "
            "characters.",
            code="invalid_items",
        )
    if not isinstance(reference, str) or not (
        isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)
    ):
        raise ApplicationError(
            f"items[{index}]: reference must be a string and tags a list of strings.",
            code="invalid_items",
        )
    return DatasetItem(input=text, reference=reference, tags=tags)


def dataset_items_add(*, dataset: Dataset, items: list[Any]) -> list[DatasetItem]:
    """Add ``items`` (``{input, reference?, tags?}``), all or none. Raises ApplicationError
    (400 naming the first bad item, 413 over MAX_ITEMS_PER_REQUEST)."""
    if not isinstance(items, list) or not items:
        raise ApplicationError("items must be a non-empty list.", code="invalid_items")
    if len(items) > MAX_ITEMS_PER_REQUEST:
        raise ApplicationError(
            f"At most {MAX_ITEMS_PER_REQUEST} items per request; send the rest in more.",
            code="too_many_items",
            status=413,
        )
    built = [_item(index, raw) for index, raw in enumerate(items)]
    for item in built:
        item.dataset = dataset
    return DatasetItem.objects.bulk_create(built)


def dataset_items_parse(*, filename: str, content: bytes) -> list[dict[str, Any]]:
    """Items from an uploaded JSONL file (one ``{input, reference, tags}`` a line) or CSV
    (columns input, reference, tags; tags separated by ``;``). Raises ApplicationError
    (400)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApplicationError("The file is not UTF-8 text.", code="invalid_upload") from None
    if filename.lower().endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
        if rows and "input" not in rows[0]:
            raise ApplicationError(
                "The CSV needs a header row with an `input` column (and optionally "
                "`reference` and `tags`).",
                code="invalid_upload",
            )
        return [
            {
                "input": row.get("input") or "",
                "reference": row.get("reference") or "",
                "tags": [tag.strip() for tag in (row.get("tags") or "").split(";") if tag.strip()],
            }
            for row in rows
        ]
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except ValueError:
            raise ApplicationError(
                f"Line {number} is not JSON (send JSONL, or a .csv file).", code="invalid_upload"
            ) from None
    return items


def dataset_items_from_queries(
    *, dataset: Dataset, queries: Any, tag: str, answers_as_references: bool = False
) -> list[DatasetItem]:
    """Add ``queries`` of the dataset's owner that it does not hold yet (others' and
    evaluation questions are skipped), tagged ``tag``; their answers become references
    when ``answers_as_references``. Raises nothing."""
    held = set(
        DatasetItem.objects.filter(dataset=dataset)
        .exclude(source_query_id="")
        .values_list("source_query_id", flat=True)
    )
    items = [
        DatasetItem(
            dataset=dataset,
            input=query.query,
            reference=query.response if answers_as_references else "",
            tags=[tag],
            source_query_id=str(query.pk),
        )
        for query in queries
        if query.owner_id == dataset.owner_id
        and str(query.pk) not in held
        and not (query.metadata or {}).get("evaluation")
    ]
    return DatasetItem.objects.bulk_create(items) if items else []


def dataset_items_from_feedback(
    *, dataset: Dataset, rating: str, limit: int = MAX_ITEMS_PER_REQUEST
) -> list[DatasetItem]:
    """Add the dataset owner's questions rated ``rating`` ("down" or "up") that it does not
    hold yet, newest first, at most ``limit``; an answer rated up becomes the reference, one
    rated down never does. Raises ApplicationError (400 for another rating)."""
    if rating not in FEEDBACK_RATINGS:
        raise ApplicationError(
            "from_feedback must be `down` (or `up`).", code="invalid_from_feedback"
        )
    held = set(
        DatasetItem.objects.filter(dataset=dataset)
        .exclude(source_query_id="")
        .values_list("source_query_id", flat=True)
    )
    rated = (
        Query.objects.filter(owner_id=dataset.owner_id, feedback_rating=FEEDBACK_RATINGS[rating])
        .order_by("-timestamp", "-pk")
        .only("pk", "owner_id", "query", "response", "metadata")
    )
    chosen = []
    for query in rated:
        if len(chosen) >= limit:
            break
        if str(query.pk) not in held and not (query.metadata or {}).get("evaluation"):
            chosen.append(query)
    return dataset_items_from_queries(
        dataset=dataset,
        queries=chosen,
        tag=f"feedback:{rating}",
        answers_as_references=rating == "up",
    )
