"""What the documents benchmarks share: an embedded database, Django, and generated PDFs
with facts planted on known pages. Not a benchmark itself."""

from __future__ import annotations

import math
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

# Varied filler, so planted facts sit among text that reads like a report (and so that
# neighbouring pages do not embed alike).
SUBJECTS = [
    "The logistics team",
    "Our finance group",
    "The regional sales office",
    "Customer support",
    "The engineering department",
    "Human resources",
    "The procurement unit",
    "Facilities",
    "The legal department",
    "Marketing",
    "The security office",
    "Quality assurance",
]
VERBS = [
    "reviewed",
    "updated",
    "summarised",
    "audited",
    "planned",
    "discussed",
    "revised",
    "documented",
    "prioritised",
    "benchmarked",
]
OBJECTS = [
    "the quarterly budget",
    "supplier contracts",
    "the hiring pipeline",
    "warehouse capacity",
    "ticket response times",
    "the release calendar",
    "office leases",
    "travel policies",
    "training materials",
    "the risk register",
    "energy consumption",
    "vendor invoices",
]
TAILS = [
    "ahead of the board meeting.",
    "with input from every region.",
    "before the deadline.",
    "and shared the results internally.",
    "as part of the annual plan.",
    "following last year's recommendations.",
    "to reduce operating costs.",
    "in close cooperation with partners.",
]

PLACES = [
    "Lisbon",
    "Oslo",
    "Nairobi",
    "Osaka",
    "Lima",
    "Toronto",
    "Krakow",
    "Dublin",
    "Quito",
    "Hanoi",
    "Tbilisi",
    "Perth",
    "Accra",
    "Bergen",
    "Cusco",
    "Tallinn",
    "Rabat",
    "Cebu",
    "Leipzig",
    "Bilbao",
]
# (fact, question): {place} and {value} are filled in; each template asks in other words.
TEMPLATES = [
    (
        "The vault access code for the {place} office is {value}.",
        "What is the code to open the vault in {place}?",
    ),
    (
        "The {place} warehouse has exactly {value} loading docks.",
        "How many loading docks does the warehouse in {place} have?",
    ),
    (
        "Staff in {place} start their working day at {value} o'clock.",
        "At what time does the working day begin for employees in {place}?",
    ),
    (
        "The {place} branch keeps a fleet of {value} delivery bicycles.",
        "How many delivery bikes are there at the {place} branch?",
    ),
    (
        "The rooftop garden of the {place} building grows {value} kinds of herbs.",
        "How many herb varieties grow on the roof in {place}?",
    ),
    (
        "Our {place} team won the regional chess tournament {value} times.",
        "How often has the {place} team won the chess tournament?",
    ),
    (
        "The server room in {place} is cooled to {value} degrees Celsius.",
        "What temperature is the {place} server room kept at?",
    ),
    (
        "The {place} cafeteria serves {value} litres of coffee every week.",
        "How much coffee does the canteen in {place} pour per week?",
    ),
    (
        "The parking garage in {place} offers {value} charging stations for electric cars.",
        "How many EV chargers are in the {place} car park?",
    ),
    (
        "The {place} office library lends out {value} books each month.",
        "How many books are borrowed from the {place} office library monthly?",
    ),
]

CODE_WORDS = ["Bluefin", "Kestrel", "Juniper", "Obsidian", "Marigold", "Tamarack", "Halcyon"]
FIRST_NAMES = ["Mirela", "Tomasz", "Ingrid", "Kwame", "Ayaka", "Rafael", "Sunita", "Oskar"]
LAST_NAMES = ["Quast", "Brennan", "Okafor", "Lindqvist", "Haddad", "Moreau", "Tanaka", "Varga"]
# (fact, question, entity pattern): the question names the entity (a part code, a clause,
# a person, an invoice...) and every fact of a template differs only in it and the value.
# A pattern of "N" draws a person's name.
ENTITY_TEMPLATES = [
    (
        "Pump model {entity} is rated for a maximum pressure of {value} bar.",
        "What is the maximum pressure of pump {entity}?",
        "AA-9999",
    ),
    (
        "Clause {entity} sets the notice period for contractors at {value} days.",
        "What does clause {entity} say about the notice period?",
        "99.9",
    ),
    (
        "{entity} approved a travel budget of {value} euros for the quarter.",
        "How much travel budget did {entity} approve?",
        "N",
    ),
    (
        "Invoice {entity} was paid on day {value} of the fiscal year.",
        "When was invoice {entity} paid?",
        "INV-9999-999",
    ),
    (
        "Project {entity} employs {value} contractors this quarter.",
        "How many contractors work on project {entity}?",
        "w-99",
    ),
    (
        "Server {entity} has {value} gigabytes of memory installed.",
        "How much memory does server {entity} have?",
        "db-node-99",
    ),
    (
        "Support ticket {entity} took {value} minutes to resolve.",
        "How long did it take to resolve ticket {entity}?",
        "SUP-99999",
    ),
    (
        "Meeting room {entity} seats {value} people for training sessions.",
        "How many people fit in meeting room {entity}?",
        "A-999",
    ),
    (
        "Batch {entity} of the vaccine was stored at {value} hundredths of a degree.",
        "At what temperature was batch {entity} stored?",
        "AA99A9",
    ),
    (
        "Flight {entity} carried {value} passengers on its last rotation.",
        "How many passengers were on flight {entity}?",
        "AA 999",
    ),
]


@dataclass(frozen=True)
class PlantedFact:
    document: int
    page: int
    fact: str
    question: str
    template: int


def filler(rng: random.Random, sentences: int) -> str:
    return " ".join(
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}"
        for _ in range(sentences)
    )


def _entities(rng: random.Random, pattern: str, count: int) -> list[str]:
    """``count`` distinct entities from ``pattern`` (A: a capital, 9: a digit, w: a word
    of ``CODE_WORDS``; "N" alone: a person's name), all of one form: only the entity
    tells their facts apart."""
    made: list[str] = []
    while len(made) < count:
        if pattern == "N":
            entity = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            if entity not in made:
                made.append(entity)
            continue
        entity = "".join(
            rng.choice("ABCDEFGHKLMNPRSTVXZ")
            if c == "A"
            else str(rng.randint(0, 9))
            if c == "9"
            else rng.choice(CODE_WORDS)
            if c == "w"
            else c
            for c in pattern
        )
        if entity not in made:
            made.append(entity)
    return made


def planted_facts(
    count: int, *, pages_per_document: int, seed: int = 7, question_set: str = "paraphrase"
) -> list[PlantedFact]:
    """``count`` facts, one per page, over as many documents as needed.

    ``paraphrase``: TEMPLATES x PLACES, each question worded differently from its fact;
    ``entities``: ENTITY_TEMPLATES, each question naming a code, name or number that
    only its fact holds, among 19 facts of the same form."""
    rng = random.Random(seed)
    if question_set == "paraphrase":
        combos = [(n, f, q, {"place": p}) for n, (f, q) in enumerate(TEMPLATES) for p in PLACES]
    else:
        combos = [
            (n, fact, question, {"entity": entity})
            for n, (fact, question, pattern) in enumerate(ENTITY_TEMPLATES)
            for entity in _entities(rng, pattern, len(PLACES))
        ]
    rng.shuffle(combos)
    facts = []
    for index, (template, fact, question, names) in enumerate(combos[:count]):
        value = rng.randint(11, 9899)
        facts.append(
            PlantedFact(
                document=index // pages_per_document,
                page=index % pages_per_document + 1,
                fact=fact.format(value=value, **names),
                question=question.format(**names),
                template=template,
            )
        )
    return facts


def make_pdf(pages: list[str]) -> bytes:
    from fpdf import FPDF

    document = FPDF()
    document.set_font("helvetica", size=10)
    for text in pages:
        document.add_page()
        document.multi_cell(0, 5, text)
    return bytes(document.output())


def document_pages(facts: list[PlantedFact], document: int, pages: int, seed: int) -> list[str]:
    """The pages of one document: filler around the fact planted on each page."""
    rng = random.Random(seed * 1000 + document)
    on_page = {f.page: f.fact for f in facts if f.document == document}
    texts = []
    for page in range(1, pages + 1):
        before, after = filler(rng, rng.randint(4, 9)), filler(rng, rng.randint(4, 9))
        fact = on_page.get(page, "")
        texts.append(f"{before} {fact} {after}".strip())
    return texts


def start_django(prefix: str):
    """An embedded SecantusDB in a throw-away directory, Django on it, migrated."""
    from llmplatform.embedded.server import spawn_server

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    server = spawn_server(
        storage_path=str(workdir / "data"),
        ready_file=workdir / "server.json",
        log_file=workdir / "secantus.log",
        exit_with_parent=True,
    )
    os.environ["MONGODB_URI"] = server.uri
    os.environ["LLMPLATFORM_SKIP_DOTENV"] = "1"
    os.environ["EMBEDDING_PROVIDER"] = "local"
    os.environ["UPLOAD_DIR"] = str(workdir / "uploads")
    os.environ["VECTOR_SNAPSHOT_DIR"] = str(workdir / "vectors")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmplatform.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return server


def store_pdf(owner, user_id: str, name: str, data: bytes):
    """A stored, pending document (as an upload leaves it)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from files.services import file_upload

    return file_upload(
        owner=owner,
        user_id=user_id,
        upload=SimpleUploadedFile(name, data, content_type="application/pdf"),
    )


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def stamp() -> str:
    return time.strftime("%Y-%m-%d")
