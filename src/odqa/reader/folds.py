"""k-fold training data for a reader ensemble: K train/dev splits of the training questions, cut by
article so no fold's dev questions share a passage with its training questions (questions about one
paragraph are near-duplicates in what they teach; splitting inside an article would leak).

Reader k trains on `fold-k/train.jsonl` (every fold but k) and may score `fold-k/dev.jsonl` while
training (`eval_qa`, keeping its best weights); the K readers' n-best lists are then combined with
odqa.ensemble (method log_prob_sum). The DAG runs the K trainings in a ParallelFor over `FoldSpec`s.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

from odqa.errors import InputError
from odqa.io import atomic_dir, check_output_dir, write_json
from odqa.reader.config import FoldsConfig

FOLDS_KIND = "folds"  # odqa.io output kind
FOLDS_FILE = "folds.json"
TRAIN_FILE = "train.jsonl"
DEV_FILE = "dev.jsonl"


@dataclass
class FoldSpec:
    """One fold: where its files are (relative to the folds folder) and what is in them."""

    fold: int
    train: str  # fold-k/train.jsonl
    dev: str  # fold-k/dev.jsonl
    train_questions: int
    dev_questions: int
    dev_articles: int

    def to_dict(self) -> dict:
        return asdict(self)


def article_key(example) -> str:
    """The article a question belongs to: its title, else its document, else the question itself."""
    return example.title or example.document_id or example.id


def assign_folds(keys: list[str], sizes: dict[str, int], k: int, seed: int) -> dict[str, int]:
    """{article: fold}: articles in a seeded shuffle, largest first, each into the fold with the fewest
    questions so far (folds end within one article of each other in size)."""
    articles = sorted(set(keys))
    random.Random(seed).shuffle(articles)
    articles.sort(key=lambda a: -sizes[a])  # stable: ties keep the shuffled order
    load = [0] * k
    fold_of = {}
    for article in articles:
        target = min(range(k), key=lambda f: (load[f], f))
        fold_of[article] = target
        load[target] += sizes[article]
    return fold_of


def make_folds(
    config: FoldsConfig, qa_path: str | Path, out_dir: str | Path, force: bool = False
) -> list[FoldSpec]:
    """Write `out_dir/fold-k/{train,dev}.jsonl` for k in 0..folds-1 and `folds.json`; return the specs."""
    from odqa.data import load_qa, write_qa

    out_dir = Path(out_dir)
    check_output_dir(out_dir, FOLDS_KIND, force)
    examples = load_qa(qa_path).examples
    keys = [article_key(ex) for ex in examples]
    sizes: dict[str, int] = {}
    for key in keys:
        sizes[key] = sizes.get(key, 0) + 1
    if len(sizes) < config.folds:
        raise InputError(
            f"{config.folds} folds need at least {config.folds} articles (titles); the file has {len(sizes)}",
            path=qa_path,
        )
    fold_of = assign_folds(keys, sizes, config.folds, config.seed)
    specs = []
    with atomic_dir(out_dir, kind=FOLDS_KIND, force=force) as tmp:
        for k in range(config.folds):
            train = [ex for ex, key in zip(examples, keys, strict=True) if fold_of[key] != k]
            dev = [ex for ex, key in zip(examples, keys, strict=True) if fold_of[key] == k]
            if not any(ex.is_answerable for ex in train):
                raise InputError(f"fold {k}: no answerable training question left", path=qa_path)
            (tmp / f"fold-{k}").mkdir()
            write_qa(tmp / f"fold-{k}" / TRAIN_FILE, train)
            write_qa(tmp / f"fold-{k}" / DEV_FILE, dev)
            specs.append(
                FoldSpec(
                    k,
                    f"fold-{k}/{TRAIN_FILE}",
                    f"fold-{k}/{DEV_FILE}",
                    len(train),
                    len(dev),
                    sum(1 for a, f in fold_of.items() if f == k),
                )
            )
        write_json(tmp / FOLDS_FILE, {"config": config.to_dict(), "folds": [s.to_dict() for s in specs]})
    return specs
