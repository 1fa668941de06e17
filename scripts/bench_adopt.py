"""What teams adopting a reranker ask of it, measured: the score cache's hit rate, the overloaded answer, lanes.

    python -m scripts.bench_adopt [--part cache|overload|lanes ...] [--searches 300] [--repeat-share 0.3]

- cache: `cascade serve ingest query rerank` (the bundled models) in a child process, 1,000 SciFact abstracts;
  a replay of `--searches` searches in mode rerank whose queries are SciFact titles, a `--repeat-share` of them
  asked again (a query drawn from those already asked, seeded); the hit rate of the reranker's score cache (pairs
  found over pairs looked up, from its /metrics) against the replay's share of repeats.
- overload: the same service with CASCADE_BATCH_RERANK_MAX_BACKLOG=50; a flood of 400 rerank searches saturates
  the reranker, then 10 rerank searches are timed one after another once the backlog is past the threshold: how
  long the `overloaded` answer took, against the 30 s timeout (the SDK's default) a request waited out before.
- lanes: the same service; a flood that keeps `--flood` rerank searches (SciFact titles) waiting, and `--probes`
  interactive rerank searches timed one after another meanwhile: the flood in the interactive lane (as every
  request was before lanes), then in the bulk lane; the interactive p50 of each.
- long_docs: long documents made by joining 8 passages of the dev suite's web domain (BoolQ's Wikipedia
  passages, shuffled, seeded) and its dev queries (a long document is relevant where one of its passages is),
  through `cascade-eval` into a collection of whole documents (cut at the models' 256 tokens) and one of
  passages: nDCG@10 of modes bi and rerank (as shipped: fused) on each, paired t-test over the queries.
- readme: the README's lines and words.
Writes its keys into bench/adopt.json (other parts and issues add theirs to the same file).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import re
import shutil
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import orjson
from tqdm import tqdm
from transformers import AutoTokenizer

from cascade.contracts.messages import Lane
from cascade.evaluation.beir import read_qrels
from cascade.evaluation.harness import EvalOptions
from cascade.evaluation.run import run_evaluation
from cascade.evaluation.suite import p_values
from cascade.infra.local_kafka import kafka_bootstrap
from cascade.sdk import SearchClient, SearchFailed, read_jsonl_documents
from cascade.services.log import configure_logging
from cascade.services.settings import Settings, StoreSettings
from scripts.bench_offsets import serving
from scripts.benchlib import BENCH_DIR, DATA_DIR, ROOT, machine, write_result
from scripts.build_dev_suite import require_built

CORPUS = DATA_DIR / "scifact" / "corpus.jsonl"
TIMEOUT_S = 30.0
"""The SDK's default search timeout: what a request behind a saturated reranker waited out."""


def _titles() -> list[str]:
    """SciFact's document titles: the queries (no judged query is read)."""
    return [row["title"] for row in map(orjson.loads, CORPUS.read_bytes().splitlines()) if row["title"]]


def replay(titles: list[str], searches: int, repeat_share: float, seed: int) -> list[str]:
    """`searches` queries: new titles, or (with probability `repeat_share`) one already asked."""
    rng = random.Random(seed)
    fresh = iter(titles)
    asked: list[str] = []
    for _ in range(searches):
        asked.append(rng.choice(asked) if asked and rng.random() < repeat_share else next(fresh))
    return asked


def _cache_lookups(metrics_url: str) -> dict[str, float]:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    return {result: float(value) for result, value in
            re.findall(r'^cascade_rerank_score_cache_total\{result="(\w+)"\} (\S+)$', text, re.MULTILINE)}


async def _index(bootstrap: str, documents: int) -> None:
    """The first `documents` SciFact abstracts into collection `adopt`, acknowledged."""
    corpus = list(itertools.islice(read_jsonl_documents(CORPUS), documents))
    async with SearchClient(bootstrap) as client:
        with tqdm(total=len(corpus), desc="ingest", unit="doc") as bar:
            await client.index(corpus, collection="adopt", progress=bar.update)


async def _replay(bootstrap: str, queries: list[str]) -> None:
    async with SearchClient(bootstrap) as client:
        for query in tqdm(queries, desc="replay (mode rerank)", unit="search"):
            await client.search(query, collection="adopt", mode="rerank", k=10, timeout_s=300)


def cache_part(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    titles = _titles()
    random.Random(args.seed).shuffle(titles)
    queries = replay(titles, args.searches, args.repeat_share, args.seed)
    repeats = sum(query in queries[:i] for i, query in enumerate(queries)) / len(queries)
    with tempfile.TemporaryDirectory(prefix="cascade-adopt-") as folder, serving(bootstrap, Path(folder)) as service:
        asyncio.run(_index(bootstrap, args.documents))
        asyncio.run(_replay(bootstrap, queries))
        lookups = _cache_lookups(service.metrics_url())
    hit_rate = lookups.get("hit", 0.0) / max(sum(lookups.values()), 1.0)
    print(f"score cache: hit rate {hit_rate:.3f} on a replay whose share of repeated queries is {repeats:.3f}")
    return {"cache_hit_rate": round(hit_rate, 4), "replay_repeat_share": round(repeats, 4),
            "cache_replay": {"searches": len(queries), "documents": args.documents, "seed": args.seed,
                             "pairs_looked_up": sum(lookups.values())}}


async def _overloaded_answers(bootstrap: str, titles: list[str], probes: int = 10) -> list[float]:
    async with SearchClient(bootstrap) as client:
        flood = [asyncio.create_task(client.search(title, collection="adopt", mode="rerank", timeout_s=600))
                 for title in titles[:400]]
        answers_ms: list[float] = []
        with tqdm(total=probes, desc="rerank searches behind a full backlog", unit="search") as bar:
            while len(answers_ms) < probes:
                asked = time.monotonic()
                try:
                    await client.search(titles[-1], collection="adopt", mode="rerank", timeout_s=TIMEOUT_S)
                except SearchFailed as exc:
                    if exc.code != "overloaded":
                        raise
                    answers_ms.append((time.monotonic() - asked) * 1000)
                    bar.update()
                else:
                    await asyncio.sleep(0.5)  # answered: the backlog is not past the threshold yet
        for task in flood:
            task.cancel()
        await asyncio.gather(*flood, return_exceptions=True)
    return answers_ms


def overload_part(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    titles = _titles()
    with tempfile.TemporaryDirectory(prefix="cascade-adopt-") as folder, serving(
            bootstrap, Path(folder), {"CASCADE_BATCH_RERANK_MAX_BACKLOG": "50"}):
        asyncio.run(_index(bootstrap, 200))
        answers_ms = asyncio.run(_overloaded_answers(bootstrap, titles))
    print(f"overloaded answers: median {statistics.median(answers_ms):.0f} ms, max {max(answers_ms):.0f} ms "
          f"(the timeout they replace: {TIMEOUT_S * 1000:.0f} ms)")
    return {"overloaded_answer_ms": round(statistics.median(answers_ms), 1),
            "overloaded_answer_max_ms": round(max(answers_ms), 1), "timeout_ms": TIMEOUT_S * 1000}


async def _interactive_under_flood(bootstrap: str, titles: list[str], flood_lane: Lane, in_flight: int,
                                   probes: int) -> list[float]:
    """Milliseconds of `probes` interactive rerank searches asked one after another while a flood keeps
    `in_flight` rerank searches of `flood_lane` waiting (a new one asked as each is answered)."""
    async with SearchClient(bootstrap) as client:
        done = asyncio.Event()

        async def flood(titles: Iterator[str]) -> None:
            while not done.is_set():
                await client.search(next(titles), collection="adopt", mode="rerank", lane=flood_lane,
                                    timeout_s=1800)

        asked = itertools.cycle(titles[:-probes])
        flooding = [asyncio.create_task(flood(asked)) for _ in range(in_flight)]
        await asyncio.sleep(10)  # the flood is through the query service and the rerankers are behind
        took_ms: list[float] = []
        for title in tqdm(titles[-probes:], desc=f"interactive searches, flood in lane {flood_lane}", unit="search"):
            began = time.monotonic()
            await client.search(title, collection="adopt", mode="rerank", timeout_s=1800)
            took_ms.append((time.monotonic() - began) * 1000)
        done.set()
        await asyncio.gather(*flooding)
    return took_ms


def lanes_part(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    titles = _titles()
    no_caches = {"CASCADE_BATCH_SCORE_CACHE_SIZE": "0", "CASCADE_BATCH_QUERY_CACHE_SIZE": "0"}  # both runs ask alike
    with tempfile.TemporaryDirectory(prefix="cascade-adopt-") as folder, serving(bootstrap, Path(folder), no_caches):
        asyncio.run(_index(bootstrap, args.documents))
        p50 = {lane: statistics.median(asyncio.run(_interactive_under_flood(bootstrap, titles, lane, args.flood,
                                                                            args.probes)))
               for lane in get_args(Lane)}
    print(f"interactive p50 under a flood of {args.flood} rerank searches in flight: {p50['interactive']:.0f} ms "
          f"with the flood in the same lane, {p50['bulk']:.0f} ms with it in the bulk lane")
    return {"interactive_p50_flood_ms": round(p50["interactive"], 1),
            "interactive_p50_flood_lanes_ms": round(p50["bulk"], 1),
            "flood": {"in_flight": args.flood, "probes": args.probes, "documents": args.documents}}


LONG_SOURCE = "web"
"""The dev-suite domain whose passages are joined into long documents (dev queries only)."""


def build_long_documents(source: Path, target: Path, per_document: int, seed: int) -> None:
    """`target`: a BEIR folder (dev split) whose documents are `per_document` of `source`'s, joined."""
    corpus = list(read_jsonl_documents(source / "corpus.jsonl"))
    random.Random(seed).shuffle(corpus)
    joined_into: dict[str, str] = {}
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    with (target / "corpus.jsonl").open("wb") as out:
        for start in range(0, len(corpus), per_document):
            doc_id, group = f"long{start // per_document}", corpus[start : start + per_document]
            joined_into |= {doc["doc_id"]: doc_id for doc in group}
            text = " ".join(f"{doc['title']}. {doc['text']}" if doc["title"] else doc["text"] for doc in group)
            out.write(orjson.dumps({"_id": doc_id, "title": "", "text": text}) + b"\n")
    shutil.copyfile(source / "queries.dev.jsonl", target / "queries.dev.jsonl")
    relevant = {(query, joined_into[doc]): score for query, docs in read_qrels(source, "dev").items()
                for doc, score in docs.items() if score >= 1}
    (target / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{query}\t{doc}\t{score}\n" for (query, doc), score in sorted(relevant.items())))


def _median_tokens(folder: Path) -> int:
    """The long documents' median length in the cross-encoder's tokens (its maximum is 256)."""
    tokenizer = AutoTokenizer.from_pretrained(Settings().models.cross_encoder)
    texts = [doc["text"] for doc in read_jsonl_documents(folder / "corpus.jsonl")]
    return int(statistics.median(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]))


def long_docs_part(args: argparse.Namespace) -> dict[str, Any]:
    [source] = require_built([LONG_SOURCE])
    figures: dict[str, dict[str, float]] = {}
    runs: dict[str, dict[str, list[tuple[str, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="cascade-long-docs-") as folder:
        data = Path(folder) / f"long-{LONG_SOURCE}"
        build_long_documents(source, data, args.long_join, args.seed)
        median_tokens, qrels = _median_tokens(data), read_qrels(data, "dev")
        documents = len((data / "corpus.jsonl").read_bytes().splitlines())
        for layout, passages in (("truncated", False), ("chunked", True)):
            options = EvalOptions(modes=("bi", "rerank"), split="dev", exact_recall=False, candidates=20,
                                  keep_runs=True, passages=passages)
            settings = Settings(store=StoreSettings(path=Path(folder) / f"store-{layout}"))
            [report] = asyncio.run(run_evaluation(settings, [data], options, BENCH_DIR / "long_docs" / layout))
            shipped = next(name for name in report["runs"] if name.startswith("rerank+fusion"))
            for mode, name in (("bi", "bi"), ("rerank", shipped)):
                figures.setdefault(layout, {})[mode] = round(report["metrics"][name]["ndcg@10"], 4)
                runs[f"{layout} {mode}"] = {query: [(doc, 0.0) for doc in docs]
                                            for query, docs in report["runs"][name].items()}
    significance = {mode: p_values(qrels, {"truncated": runs[f"truncated {mode}"],
                                           "chunked": runs[f"chunked {mode}"]}, "truncated")["chunked"]
                    for mode in ("bi", "rerank")}
    print(f"long documents (median {median_tokens} tokens), nDCG@10 truncated -> chunked: " + ", ".join(
        f"{mode} {figures['truncated'][mode]:.3f} -> {figures['chunked'][mode]:.3f} (p {significance[mode]})"
        for mode in ("bi", "rerank")))
    return {"long_docs": {"truncated": figures["truncated"]["rerank"], "chunked": figures["chunked"]["rerank"],
                          "median_tokens": median_tokens, "by_mode": figures, "p_value": significance,
                          "set": {"source": f"dev suite {LONG_SOURCE} (dev split)", "passages_joined": args.long_join,
                                  "queries": len(qrels), "documents": documents, "seed": args.seed,
                                  "candidates": 20}}}


def readme_part() -> dict[str, Any]:
    """The README's length: a guide a newcomer reads, at most 200 lines (reference lives in docs/)."""
    text = (ROOT / "README.md").read_text()
    return {"readme_lines": len(text.splitlines()), "readme_words": len(text.split())}


SERVED_PARTS = {"cache": cache_part, "overload": overload_part, "lanes": lanes_part}
"""The parts measured on a serving process (and so on Kafka)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=[*SERVED_PARTS, "long_docs", "readme"], action="append")
    parser.add_argument("--long-join", type=int, default=8, help="long_docs: passages joined into each document")
    parser.add_argument("--flood", type=int, default=64, help="lanes: rerank searches the flood keeps waiting")
    parser.add_argument("--probes", type=int, default=10, help="lanes: interactive searches timed under it")
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--repeat-share", type=float, default=0.3)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bootstrap", help="an existing Kafka (default: a local broker started for the run)")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    result: dict[str, Any] = {}
    parts = args.part or [*SERVED_PARTS, "long_docs", "readme"]
    if "readme" in parts:
        result |= readme_part()
    if "long_docs" in parts:
        result |= long_docs_part(args)
    if served := [part for part in parts if part in SERVED_PARTS]:
        with kafka_bootstrap(args.bootstrap) as bootstrap:
            for part in served:
                result |= SERVED_PARTS[part](bootstrap, args)
    print(f"wrote {write_result('adopt', result | {'machine': machine()}, merge=True)}")


if __name__ == "__main__":
    main()
