"""A BM25 index over one end user's rows (passages or past questions), kept beside the
vectors in ``files.vector_cache`` and updated with them.

Why a lexical signal: the local embedder (all-MiniLM-L6-v2) gives names, codes and
numbers little weight, and those are what people ask about in their own documents
("What does clause 14.2 say?", "the XK-4471 pump"). BM25 ranks an exact rare token
first; ``files.hybrid_search`` fuses both rankings.

The index is incremental, because the cache is: rows are appended as they arrive and
dropped when deleted. It is flat arrays, so a snapshot (``state``) and a restore
(``from_state``) are array copies, not a loop over terms:
- merged postings in CSR form: the postings of term id ``t`` are
  ``slots[offsets[t]:offsets[t + 1]]`` with their term frequencies in ``tfs``;
- postings appended since the last merge, as flat (term id, slot, tf) triples, scanned
  with one vectorised comparison per question and merged (one argsort) once they grow
  past a quarter of the merged ones.
A dropped row is only marked dead; document frequencies and the average length are
computed from the live rows at query time, so a drop costs nothing and the scores stay
exact. A merge leaves dead rows' postings out.

Okapi BM25 with k1 = 1.2, b = 0.75 and the Lucene IDF ln(1 + (N - df + 0.5)/(df + 0.5)),
which is never negative.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Hashable, Iterable
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
        self._vocabulary: dict[str, int] = {}
        self._slot_of: dict[Hashable, int] = {}
        self._key_of: list[Hashable | None] = []
        self._length = array("f")
        self._live = array("b")
        self._dead = 0
        self._offsets = np.zeros(1, dtype=np.int64)
        self._slots = np.empty(0, dtype=np.int32)
        self._tfs = np.empty(0, dtype=np.uint16)
        self._new_terms = array("i")
        self._new_slots = array("i")
        self._new_tfs = array("H")

    def __len__(self) -> int:
        return len(self._slot_of)

    @property
    def nbytes(self) -> int:
        merged = self._offsets.nbytes + self._slots.nbytes + self._tfs.nbytes
        return merged + len(self._new_terms) * 10 + len(self._length) * 5

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
            term_id = self._vocabulary.setdefault(term, len(self._vocabulary))
            self._new_terms.append(term_id)
            self._new_slots.append(slot)
            self._new_tfs.append(min(tf, 65535))
        if len(self._new_terms) > max(65536, len(self._slots) // 4):
            self._merge()

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
            self._merge()

    def _live_mask(self) -> np.ndarray:
        return np.frombuffer(self._live, dtype=np.int8).astype(bool)

    def _merge(self) -> None:
        """Fold the appended postings into the CSR arrays, leaving dead rows out."""
        term_count = len(self._vocabulary)
        merged_terms = np.repeat(
            np.arange(len(self._offsets) - 1, dtype=np.int32), np.diff(self._offsets)
        )
        terms = np.concatenate([merged_terms, np.frombuffer(self._new_terms, dtype=np.int32)])
        slots = np.concatenate([self._slots, np.frombuffer(self._new_slots, dtype=np.int32)])
        tfs = np.concatenate([self._tfs, np.frombuffer(self._new_tfs, dtype=np.uint16)])
        keep = self._live_mask()[slots]
        terms, slots, tfs = terms[keep], slots[keep], tfs[keep]
        order = np.argsort(terms, kind="stable")
        self._slots, self._tfs = slots[order], tfs[order]
        self._offsets = np.concatenate(
            [[0], np.cumsum(np.bincount(terms, minlength=term_count))]
        ).astype(np.int64)
        self._new_terms, self._new_slots, self._new_tfs = array("i"), array("i"), array("H")
        self._dead = 0

    def _postings(self, term_ids: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Each term's (slots, tfs), merged and appended, dead rows included."""
        found = {}
        merged_terms = len(self._offsets) - 1
        new_terms = np.frombuffer(self._new_terms, dtype=np.int32)
        for term_id in term_ids:
            if term_id < merged_terms:
                start, end = self._offsets[term_id], self._offsets[term_id + 1]
                slots, tfs = self._slots[start:end], self._tfs[start:end]
            else:
                slots, tfs = self._slots[:0], self._tfs[:0]
            if new_terms.size:
                appended = np.flatnonzero(new_terms == term_id)
                if appended.size:
                    slots = np.concatenate(
                        [slots, np.frombuffer(self._new_slots, dtype=np.int32)[appended]]
                    )
                    tfs = np.concatenate(
                        [tfs, np.frombuffer(self._new_tfs, dtype=np.uint16)[appended]]
                    )
            found[term_id] = (slots, tfs)
        return found

    def top_k(
        self,
        text: str,
        k: int,
        *,
        only: Iterable[Hashable] | None = None,
        exclude: Hashable | None = None,
    ) -> list[tuple[Hashable, float]]:
        """The ``k`` best rows for ``text`` with their BM25 score, best first: only rows
        sharing a term with it (score > 0); only the keys in ``only`` when given, never
        ``exclude``. Rows tied with the k-th are returned too (up to ``TIE_CAP * k``
        rows): a cut through a tie would favour rows by the order they were indexed in."""
        term_ids = [self._vocabulary[t] for t in set(text_terms(text)) if t in self._vocabulary]
        if k <= 0 or not term_ids or not self._slot_of:
            return []
        live = self._live_mask()
        lengths = np.frombuffer(self._length, dtype=np.float32)
        count = int(live.sum())
        average = float(lengths[live].mean()) or 1.0
        scores = np.zeros(len(self._key_of), dtype=np.float32)
        for slots, tfs in self._postings(term_ids).values():
            alive = live[slots]
            df = int(alive.sum())
            if df == 0:
                continue
            slots = slots[alive]
            tfs = tfs[alive].astype(np.float32)
            idf = np.log(1.0 + (count - df + 0.5) / (df + 0.5))
            norm = K1 * (1.0 - B + B * lengths[slots] / average)
            # Each slot appears once per term's postings, so a plain += is exact.
            scores[slots] += idf * tfs * (K1 + 1.0) / (tfs + norm)
        if only is not None:
            # Statistics stay the whole index's; only the ranking is limited.
            wanted = np.zeros(len(self._key_of), dtype=bool)
            wanted[[self._slot_of[key] for key in only if key in self._slot_of]] = True
            scores[~wanted] = 0.0
        if exclude is not None and exclude in self._slot_of:
            scores[self._slot_of[exclude]] = 0.0
        hits = np.flatnonzero(scores > 0)
        if hits.size > TIE_CAP * k:
            hits = hits[np.argpartition(-scores[hits], TIE_CAP * k - 1)[: TIE_CAP * k]]
        ordered = hits[np.argsort(-scores[hits], kind="stable")]
        ranked: list[tuple[Hashable, float]] = []
        for slot in ordered:
            key, score = self._key_of[int(slot)], float(scores[slot])
            if len(ranked) >= k and score != ranked[-1][1]:
                break
            ranked.append((key, score))
        return ranked

    def state(self) -> dict[str, Any]:
        """The live rows (``from_state`` reads them back): ``keys`` and ``terms`` as lists,
        the rest as arrays, slots renumbered 0..n-1 in the order of ``keys``."""
        self._merge()
        live = self._live_mask()
        renumber = (np.cumsum(live) - 1).astype(np.int32)
        return {
            "keys": [key for key in self._key_of if key is not None],
            "lengths": np.frombuffer(self._length, dtype=np.float32)[live].copy(),
            "terms": list(self._vocabulary),
            "offsets": self._offsets.copy(),
            "slots": renumber[self._slots],
            "tfs": self._tfs.copy(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LexicalIndex:
        index = cls()
        keys = list(state["keys"])
        index._key_of = keys
        index._slot_of = {key: slot for slot, key in enumerate(keys)}
        index._length = array("f", np.asarray(state["lengths"], dtype=np.float32).tobytes())
        index._live = array("b", b"\x01" * len(keys))
        index._vocabulary = {term: term_id for term_id, term in enumerate(state["terms"])}
        index._offsets = np.asarray(state["offsets"], dtype=np.int64)
        index._slots = np.asarray(state["slots"], dtype=np.int32)
        index._tfs = np.asarray(state["tfs"], dtype=np.uint16)
        return index
