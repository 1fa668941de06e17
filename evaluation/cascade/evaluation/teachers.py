"""Teacher scores for the reranker's student: candidate lists as the reranker sees them at serving time (the
shipped first stage's top `depth` for a query), each document scored by every teacher, scored once and cached
with the data's provenance.

Teachers are the strongest encoders obtainable here (dense: bge-small, e5-small; sparse: BM25). Their scores live
on different scales, so the ensemble averages per-list z-scores, weighted; the weights are chosen on dev lists
(WikiQA dev, held-out SciFact train claims and the dev suite's dev splits), never on test queries.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from cascade.evaluation.beir import exact_top_k, load_split, text_vectors
from cascade.evaluation.lexical import bm25_scores
from cascade.evaluation.metrics import ranking_metrics
from cascade.evaluation.pseudo_queries import PseudoQuery, cloze_queries, python_documentation, title_queries
from cascade.services.encoders import BiEncoder, document_text

__all__ = ["DENSE_TEACHERS", "CandidateList", "QuerySource", "Table", "TeacherScores", "build_sources",
           "dev_figures", "dev_lists", "encoder_scores", "ensemble", "list_mrr", "provenance", "score_teachers",
           "suite_sources", "tune_ensemble"]

DENSE_TEACHERS = ("bge-small", "e5-small")
SPARSE_TEACHER = "bm25"
Weights = dict[str, float]


@dataclass(frozen=True)
class QuerySource:
    """Queries over one table (see `Table`), each with its positives as row numbers."""

    name: str
    split: str
    """"train" (the student learns from it) or "dev" (choices are made on it)."""
    table: str
    queries: list[str]
    positives: list[list[int]]
    excluded: list[int | None]
    """Per query, the corpus row a pseudo-query was drawn from (its rewritten answer stands in for it), or None."""
    labelled: bool = True


@dataclass
class CandidateList:
    source: str
    split: str
    table: str
    query: str
    documents: list[int]
    positives: list[int]
    labelled: bool
    first_stage: list[float]
    """The first stage's score of each document (cosine), for fusing with the student as the service does."""
    scores: dict[str, list[float]]
    """Each teacher's score of each document."""

    def picked(self, positions: Sequence[int]) -> CandidateList:
        """The list cut to the documents at `positions`, in that order, without teacher scores."""
        return CandidateList(self.source, self.split, self.table, self.query,
                             [self.documents[i] for i in positions], self.positives, self.labelled,
                             [self.first_stage[i] for i in positions], {})

    def head(self, depth: int) -> CandidateList:
        """The list cut to its first `depth` documents, without teacher scores (dev evaluation)."""
        return self.picked(range(min(depth, len(self.documents))))


@dataclass
class TeacherScores:
    tables: dict[str, list[str]]
    """Each table's texts (candidate lists hold row numbers)."""
    lists: list[CandidateList]
    provenance: dict[str, Any]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps({"provenance": self.provenance, "tables": self.tables,
                                       "lists": [asdict(item) for item in self.lists]}))

    @classmethod
    def load(cls, path: Path) -> TeacherScores:
        found = orjson.loads(path.read_bytes())
        return cls(found["tables"], [CandidateList(**item) for item in found["lists"]], found["provenance"])


@dataclass(frozen=True)
class Table:
    """Texts of one corpus: rows below `searchable` are its documents, the rest pseudo-queries' answers (scored
    as candidates, never retrieved)."""

    texts: list[str]
    searchable: int


def _with_answers(corpus: list[str], pseudo: Sequence[PseudoQuery], name: str) -> tuple[Table, QuerySource]:
    """The corpus with each pseudo-query's answer appended as a row of its own."""
    table = Table(corpus + [query.answer for query in pseudo], len(corpus))
    return table, QuerySource(f"{name}/pseudo", "train", name, [query.query for query in pseudo],
                              [[len(corpus) + i] for i in range(len(pseudo))], [query.source for query in pseudo],
                              labelled=False)


def _judged(queries: dict[str, str], qrels: dict[str, dict[str, int]], rows: dict[str, int]
            ) -> list[tuple[str, list[int]]]:
    found = [(text, [rows[doc] for doc, score in qrels[query].items() if score >= 1 and doc in rows])
             for query, text in queries.items()]
    return [(text, positives) for text, positives in found if positives]


def _labelled(name: str, split: str, table: str, judged: list[tuple[str, list[int]]]) -> QuerySource:
    return QuerySource(name, split, table, [text for text, _ in judged], [rows for _, rows in judged],
                       [None] * len(judged))


def build_sources(data_dir: Path, rng: random.Random, pseudo_per_kind: int, scifact_dev: int = 100
                  ) -> tuple[dict[str, Table], list[QuerySource]]:
    """The training and dev queries with their tables: WikiQA train and dev, SciFact train (`scifact_dev` claims
    held out as dev), and pseudo-queries from SciFact, Cranfield (its documents only: none of its queries or
    labels is read) and Python's documentation."""
    tables: dict[str, Table] = {}
    sources: list[QuerySource] = []
    for split in ("train", "dev"):
        wikiqa = load_split(data_dir / "wikiqa", split)
        tables[f"wikiqa-{split}"] = Table(wikiqa.texts, len(wikiqa.texts))
        rows = {doc["doc_id"]: i for i, doc in enumerate(wikiqa.corpus)}
        sources.append(_labelled(f"wikiqa/{split}", split, f"wikiqa-{split}",
                                 _judged(wikiqa.queries, wikiqa.qrels, rows)))
    scifact = load_split(data_dir / "scifact", "train")
    claims = _judged(scifact.queries, scifact.qrels, {doc["doc_id"]: i for i, doc in enumerate(scifact.corpus)})
    rng.shuffle(claims)
    sources += [_labelled("scifact/dev", "dev", "scifact", claims[:scifact_dev]),
                _labelled("scifact/train", "train", "scifact", claims[scifact_dev:])]
    corpora = {"scifact": scifact.corpus, "cranfield": load_split(data_dir / "cranfield", "test").corpus,
               "pydoc": python_documentation()}
    for name, corpus in corpora.items():
        pseudo = cloze_queries([doc["text"] for doc in corpus], pseudo_per_kind, rng)
        if name != "pydoc":  # pydoc's titles are topic names ("assert"), not queries
            pseudo = title_queries(corpus, pseudo_per_kind, rng) + pseudo
        tables[name], source = _with_answers([document_text(doc["title"], doc["text"]) for doc in corpus], pseudo,
                                             name)
        sources.append(source)
    return tables, sources


def suite_sources(folders: Sequence[Path]) -> tuple[dict[str, Table], list[QuerySource]]:
    """The dev suite's domains (scripts/build_dev_suite.py): each one's train queries to learn from and its dev
    queries to choose on, over its corpus. Their test queries are never read."""
    tables: dict[str, Table] = {}
    sources: list[QuerySource] = []
    for folder in folders:
        for split in ("train", "dev"):
            if not (folder / "qrels" / f"{split}.tsv").is_file():
                continue
            data = load_split(folder, split)
            if folder.name not in tables:
                tables[folder.name] = Table(data.texts, len(data.texts))
            rows = {doc["doc_id"]: i for i, doc in enumerate(data.corpus)}
            judged = _judged(data.queries, data.qrels, rows)
            if judged:
                sources.append(_labelled(f"{folder.name}/{split}", split, folder.name, judged))
    return tables, sources


def _row_scores(queries: npt.NDArray[np.float32], vectors: npt.NDArray[np.float32], lists: list[list[int]]
                ) -> list[list[float]]:
    """Each query's cosine with the rows of its list."""
    return [(vectors[rows] @ query).tolist() for query, rows in zip(queries, lists, strict=True)]


def _candidates(source: QuerySource, table: Table, queries: npt.NDArray[np.float32],
                vectors: npt.NDArray[np.float32], depth: int) -> list[list[int]]:
    """The first stage's top `depth` searchable rows per query (a pseudo-query's own document left out), with
    the positives added to training lists where it missed them (a training list always holds its answer)."""
    top = exact_top_k(queries, vectors[: table.searchable], depth + 1)
    lists = []
    for row, positives, excluded in zip(top, source.positives, source.excluded, strict=True):
        found = [int(i) for i in row if i != excluded][:depth]
        lists.append(found + [p for p in positives if p not in found] if source.split == "train" else found)
    return lists


def score_teachers(tables: dict[str, Table], sources: list[QuerySource], first_stage: BiEncoder,
                   teachers: Sequence[BiEncoder], depth: int) -> list[CandidateList]:
    """Every source's candidate lists, each document scored by the first stage, every dense teacher and BM25.
    Each table is encoded (or read from cache) once per model and indexed for BM25 once, whatever the number of
    sources over it."""
    by_table: dict[str, list[QuerySource]] = {}
    for source in sources:
        by_table.setdefault(source.table, []).append(source)
    lists: dict[str, list[list[int]]] = {}
    first: dict[str, list[list[float]]] = {}
    scored: dict[str, dict[str, list[list[float]]]] = {source.name: {} for source in sources}
    for name, members in by_table.items():
        vectors = text_vectors(tables[name].texts, first_stage, name)
        for source in members:
            queries = first_stage.encode_queries(source.queries)
            lists[source.name] = _candidates(source, tables[name], queries, vectors, depth)
            first[source.name] = _row_scores(queries, vectors, lists[source.name])
    for teacher in teachers:
        for name, members in by_table.items():
            vectors = text_vectors(tables[name].texts, teacher, name)
            for source in members:
                scored[source.name][teacher.name] = _row_scores(teacher.encode_queries(source.queries), vectors,
                                                                lists[source.name])
    for name, members in by_table.items():
        bm25 = bm25_scores(tables[name].texts, [query for source in members for query in source.queries])
        offset = 0
        for source in members:
            scored[source.name][SPARSE_TEACHER] = [bm25[offset + i, rows].tolist()
                                                   for i, rows in enumerate(lists[source.name])]
            offset += len(source.queries)
    return [CandidateList(source.name, source.split, source.table, query, rows, positives, source.labelled,
                          first[source.name][i], {name: values[i] for name, values in scored[source.name].items()})
            for source in sources
            for i, (query, rows, positives) in enumerate(zip(source.queries, lists[source.name], source.positives,
                                                             strict=True))]


def ensemble(item: CandidateList, weights: Weights) -> npt.NDArray[np.float64]:
    """Weighted mean of the teachers' per-list z-scores."""
    total = np.zeros(len(item.documents))
    for name, weight in weights.items():
        scores = np.asarray(item.scores[name], dtype=np.float64)
        total += weight * (scores - scores.mean()) / (scores.std() + 1e-6)
    return total / max(sum(weights.values()), 1e-9)


def dev_lists(lists: Sequence[CandidateList]) -> dict[str, list[CandidateList]]:
    """The dev lists, by source (choices weigh each source equally)."""
    dev: dict[str, list[CandidateList]] = {}
    for item in lists:
        if item.split == "dev":
            dev.setdefault(item.source, []).append(item)
    return dev


def dev_figures(lists: Sequence[CandidateList], depth: int,
                score: Callable[[list[CandidateList]], list[npt.NDArray[np.float64]]]) -> dict[str, float]:
    """Per dev source, MRR@10 of each list's first `depth` documents ordered by `score` (a score per document
    of each list given)."""
    figures = {}
    for source, items in dev_lists(lists).items():
        heads = [item.head(depth) for item in items]
        figures[source] = list_mrr(heads, score(heads))
    return figures


def encoder_scores(items: Sequence[CandidateList], tables: dict[str, list[str]],
                   encode_documents: Callable[[list[str]], Any],
                   encode_queries: Callable[[list[str]], Any],
                   similarity: Callable[[Any, Any], float]) -> list[npt.NDArray[np.float64]]:
    """Each list's documents scored by a first-stage encoder: every distinct document encoded once."""
    rows = sorted({(item.table, row) for item in items for row in item.documents})
    vectors = dict(zip(rows, encode_documents([tables[table][row] for table, row in rows]), strict=True))
    queries = encode_queries([item.query for item in items])
    return [np.asarray([similarity(query, vectors[item.table, row]) for row in item.documents], dtype=np.float64)
            for item, query in zip(items, queries, strict=True)]


def list_mrr(lists: Sequence[CandidateList], scores: Sequence[npt.NDArray[np.float64]]) -> float:
    """MRR@10 of the lists ordered by the given scores, their labelled positives the answers."""
    qrels = {str(i): {str(doc): 1 for doc in item.positives} for i, item in enumerate(lists)}
    ranking = {str(i): [(str(item.documents[k]), float(row[k])) for k in np.argsort(-row)]
               for i, (item, row) in enumerate(zip(lists, scores, strict=True))}
    return ranking_metrics(qrels, ranking)["mrr@10"]


def tune_ensemble(lists: Sequence[CandidateList], grid: Sequence[float] = (0.0, 0.5, 1.0)
                  ) -> tuple[Weights, dict[str, dict[str, float]]]:
    """The teacher weights with the best mean dev MRR@10 over the dev sources (each source counts equally), and
    the dev figures of the first stage, each teacher alone and the chosen ensemble."""
    dev = dev_lists(lists)
    names = list(lists[0].scores)

    def figures(weights: Weights) -> dict[str, float]:
        return {source: list_mrr(items, [ensemble(item, weights) for item in items]) for source, items in dev.items()}

    def mean(found: dict[str, float]) -> float:
        return float(np.mean(list(found.values())))

    candidates = [dict(zip(names, combo, strict=True)) for combo in itertools.product(grid, repeat=len(names))
                  if sum(combo) > 0]
    by_weights = [(weights, figures(weights)) for weights in candidates]
    best, best_figures = max(by_weights, key=lambda found: mean(found[1]))
    report = {"first_stage": {source: list_mrr(items, [np.asarray(item.first_stage) for item in items])
                              for source, items in dev.items()},
              **{name: figures({name: 1.0}) for name in names}, "ensemble": best_figures}
    return best, report


def provenance(tables: dict[str, Table], sources: Sequence[QuerySource], first_stage: BiEncoder,
               teachers: Sequence[BiEncoder], depth: int, seed: int, suite: Sequence[str] = ()) -> dict[str, Any]:
    """`suite`: the dev suite's domains among the tables."""
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seed": seed, "depth": depth,
        "first_stage": first_stage.model_id,
        "teachers": {**{teacher.name: teacher.model_id for teacher in teachers},
                     SPARSE_TEACHER: "BM25 (Qdrant tokenizer, IDF over each table)"},
        "sources": {source.name: {"split": source.split, "queries": len(source.queries),
                                  "labelled": source.labelled} for source in sources},
        "tables": {name: {"documents": table.searchable, "answers": len(table.texts) - table.searchable}
                   for name, table in tables.items()},
        "data": {**({"dev suite": f"{', '.join(suite)}: scripts/build_dev_suite.py (the pinned repository and commit "
                                  "of each in its SOURCE.json): train and dev splits, never test"} if suite else {}),
                 "wikiqa": "Microsoft Research Data License (research only): train and dev splits",
                 "scifact": "CC BY-NC 2.0: train claims and documents",
                 "cranfield": "research use: documents only (titles and sentences as pseudo-queries)",
                 "pydoc": "Python documentation (pydoc_data topics shipped with CPython), PSF licence"},
    }
