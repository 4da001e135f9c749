"""A BM25 index over one end user's rows (passages or past questions), kept beside the
vectors in ``files.vector_cache`` and updated with them.

Why a lexical signal: the local embedder (all-MiniLM-L6-v2) gives names, codes and
numbers little weight, and those are what people ask about in their own documents
("What does clause 14.2 say?", "the XK-4471 pump"). BM25 ranks an exact rare token
first; ``files.hybrid_search`` fuses both rankings.

The index is incremental, because the cache is: rows are appended as they arrive and
dropped when deleted, never rebuilt. Each term keeps its postings (row slot, term
frequency) in growable ``array`` buffers, read as numpy arrays without a copy. A dropped
row is only marked dead; document frequencies and the average length are computed from
the live rows at query time (one vectorised pass over the query terms' postings), so a
drop costs nothing and the scores stay exact. Postings of dead rows are compacted away
once they are as many as the live ones.

Okapi BM25 with k1 = 1.2, b = 0.75 and the Lucene IDF ln(1 + (N - df + 0.5)/(df + 0.5)),
which is never negative.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import numpy as np

K1 = 1.2
B = 0.75
TIE_CAP = 4
# Words, numbers and codes: "14.2", "xk-4471", "v2/beta" stay one token (and their parts
# are tokens too), so a question naming a code matches it exactly and a part still counts.
_TOKEN = re.compile(r"[^\W_]+(?:[.\-/][^\W_]+)*")
_PARTS = re.compile(r"[^\W_]+")
# The commonest English function words: they match every passage and only add noise.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
    ]
)


def text_terms(text: str) -> list[str]:
    """The index terms of ``text``: lower-cased tokens without stopwords; a compound token
    ("xk-4471") also yields its parts ("xk", "4471")."""
    terms = []
    for token in _TOKEN.findall(text.lower()):
        if token not in STOPWORDS:
            terms.append(token)
        if not token.isalnum():
            terms.extend(part for part in _PARTS.findall(token) if part not in STOPWORDS)
    return terms


class LexicalIndex:
    """BM25 over rows identified by a hashable key (a primary key)."""

    def __init__(self) -> None:
        self._slot_of: dict[Hashable, int] = {}
        self._key_of: list[Hashable | None] = []
        self._length = array("f")
        self._live = array("b")
        self._postings: dict[str, tuple[array, array]] = {}
        self._dead = 0

    def __len__(self) -> int:
        return len(self._slot_of)

    @property
    def nbytes(self) -> int:
        postings = sum(
            slots.itemsize * len(slots) + tfs.itemsize * len(tfs)
            for slots, tfs in self._postings.values()
        )
        return postings + len(self._length) * 5

    def add(self, key: Hashable, text: str) -> None:
        """Index ``text`` under ``key`` (a key already held is left as it is)."""
        if key in self._slot_of:
            return
        slot = len(self._key_of)
        self._slot_of[key] = slot
        self._key_of.append(key)
        counts = Counter(text_terms(text or ""))
        self._length.append(float(sum(counts.values())))
        self._live.append(1)
        for term, tf in counts.items():
            postings = self._postings.get(term)
            if postings is None:
                postings = self._postings[term] = (array("i"), array("H"))
            postings[0].append(slot)
            postings[1].append(min(tf, 65535))

    def add_many(self, rows: Iterable[tuple[Hashable, str]]) -> None:
        for key, text in rows:
            self.add(key, text)

    def drop(self, keys: Iterable[Hashable]) -> None:
        for key in keys:
            slot = self._slot_of.pop(key, None)
            if slot is None:
                continue
            self._live[slot] = 0
            self._key_of[slot] = None
            self._dead += 1
        if self._dead and self._dead >= len(self._slot_of):
            self._compact()

    def _compact(self) -> None:
        """Drop dead rows' postings (slots keep their numbers; only postings shrink)."""
        live = np.frombuffer(self._live, dtype=np.int8).astype(bool)
        for term in list(self._postings):
            slots, tfs = self._postings[term]
            keep = live[np.frombuffer(slots, dtype=np.int32)]
            if keep.all():
                continue
            if not keep.any():
                del self._postings[term]
                continue
            self._postings[term] = (
                array("i", np.frombuffer(slots, dtype=np.int32)[keep].tobytes()),
                array("H", np.frombuffer(tfs, dtype=np.uint16)[keep].tobytes()),
            )
        self._dead = 0

    def top_k(
        self, text: str, k: int, *, allowed: Callable[[Hashable], bool] | None = None
    ) -> list[tuple[Hashable, float]]:
        """The ``k`` best rows for ``text`` with their BM25 score, best first: only rows
        sharing a term with it (score > 0), and only keys ``allowed`` accepts when given.
        Rows tied with the k-th are returned too (up to ``TIE_CAP * k`` rows): a cut
        through a tie would favour rows by the order they were indexed in."""
        terms = set(text_terms(text))
        if k <= 0 or not terms or not self._slot_of:
            return []
        live = np.frombuffer(self._live, dtype=np.int8).astype(bool)
        lengths = np.frombuffer(self._length, dtype=np.float32)
        count = int(live.sum())
        average = float(lengths[live].mean()) or 1.0
        scores = np.zeros(len(self._key_of), dtype=np.float32)
        for term in terms:
            postings = self._postings.get(term)
            if postings is None:
                continue
            slots = np.frombuffer(postings[0], dtype=np.int32)
            alive = live[slots]
            df = int(alive.sum())
            if df == 0:
                continue
            slots = slots[alive]
            tfs = np.frombuffer(postings[1], dtype=np.uint16)[alive].astype(np.float32)
            idf = np.log(1.0 + (count - df + 0.5) / (df + 0.5))
            norm = K1 * (1.0 - B + B * lengths[slots] / average)
            # Each slot appears once per term's postings, so a plain += is exact.
            scores[slots] += idf * tfs * (K1 + 1.0) / (tfs + norm)
        hits = np.flatnonzero(scores > 0)
        if allowed is None and hits.size > TIE_CAP * k:
            hits = hits[np.argpartition(-scores[hits], TIE_CAP * k - 1)[: TIE_CAP * k]]
        ordered = hits[np.argsort(-scores[hits], kind="stable")]
        ranked: list[tuple[Hashable, float]] = []
        for slot in ordered:
            key, score = self._key_of[int(slot)], float(scores[slot])
            if len(ranked) >= k and (score != ranked[-1][1] or len(ranked) >= TIE_CAP * k):
                break
            if allowed is None or allowed(key):
                ranked.append((key, score))
        return ranked

    def state(self) -> dict[str, Any]:
        """The live rows (``from_state`` reads them back): ``keys`` and ``terms`` as lists,
        lengths and postings as arrays, slots renumbered 0..n-1 in the order of ``keys``."""
        live = np.frombuffer(self._live, dtype=np.int8).astype(bool)
        renumber = np.cumsum(live) - 1
        terms, offsets, slots, tfs = [], [0], [], []
        for term, (term_slots, term_tfs) in self._postings.items():
            slot_array = np.frombuffer(term_slots, dtype=np.int32)
            keep = live[slot_array]
            if not keep.any():
                continue
            terms.append(term)
            slots.append(renumber[slot_array[keep]].astype(np.int32))
            tfs.append(np.frombuffer(term_tfs, dtype=np.uint16)[keep])
            offsets.append(offsets[-1] + int(keep.sum()))
        return {
            "keys": [key for key in self._key_of if key is not None],
            "lengths": np.frombuffer(self._length, dtype=np.float32)[live].copy(),
            "terms": terms,
            "offsets": np.asarray(offsets, dtype=np.int64),
            "slots": np.concatenate(slots) if slots else np.empty(0, dtype=np.int32),
            "tfs": np.concatenate(tfs) if tfs else np.empty(0, dtype=np.uint16),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LexicalIndex:
        index = cls()
        keys = list(state["keys"])
        index._key_of = keys
        index._slot_of = {key: slot for slot, key in enumerate(keys)}
        index._length = array("f", np.asarray(state["lengths"], dtype=np.float32).tobytes())
        index._live = array("b", b"\x01" * len(keys))
        offsets, slots, tfs = state["offsets"], state["slots"], state["tfs"]
        for position, term in enumerate(state["terms"]):
            start, end = int(offsets[position]), int(offsets[position + 1])
            index._postings[term] = (
                array("i", np.asarray(slots[start:end], dtype=np.int32).tobytes()),
                array("H", np.asarray(tfs[start:end], dtype=np.uint16).tobytes()),
            )
        return index
