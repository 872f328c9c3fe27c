"""Reader-quality ablation: every switch against the SAME baseline (same article-level KorQuAD split,
same seeds, same training steps), EM/F1 deltas with a paired bootstrap 95% interval over questions.

Setting (reduced so it finishes on 2 shared CPU cores): a from-scratch BERT reader (hidden 128,
2 layers, max_length 256) trained for --steps steps; eval questions read the BM25 (kiwi+bigram) top
--top-k passages. Results go to MLflow (SQLite under --out) and to the "## Ablation" section of
bench/README.md.

    .venv/bin/python bench/ablation.py                      # full run (about an hour on 2 cores)
    .venv/bin/python bench/ablation.py --steps 60 --eval-limit 200 --no-readme   # smoke run
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odqa.augment import AugmentConfig, augment
from odqa.cli.options import add_deprecated_flag
from odqa.curriculum import CurriculumConfig, curriculum
from odqa.data import load_qa, write_qa
from odqa.data.korquad import KorquadSplitConfig, prepare_korquad
from odqa.ensemble import EnsembleConfig, ensemble
from odqa.evaluation import question_scores
from odqa.io import read_json, write_json
from odqa.preprocess import PreprocessConfig, preprocess
from odqa.reader.predict import PredictConfig, predict
from odqa.reader.train import ReaderTrainConfig, train_reader
from odqa.retrieval.base import build_index
from odqa.retrieval.search import retrieve
from odqa.schema import READER_CONFIG_FILE
from odqa.settings import korquad_dev_path

log = logging.getLogger("ablation")
BENCH_DIR = Path(__file__).resolve().parent
README_HEADING = "## Ablation (bench/ablation.py)"


@dataclass
class Variant:
    name: str
    what: str
    train: ReaderTrainConfig | None = None  # None: reuse the baseline reader
    augment: AugmentConfig | None = None
    predict: PredictConfig | None = None
    curriculum: bool = False
    ensemble_seed: int | None = None


def variants(base_train: ReaderTrainConfig, base_predict: PredictConfig) -> list[Variant]:
    return [
        Variant("title_prefix", "reader reads f'{title}\\n{passage}'", train=base_train.replace(title_prefix=True)),
        Variant("hard_negatives", "+1 BM25 hard negative (no-answer) per question", augment=AugmentConfig(hard_negatives=1)),
        Variant("masking", "+masked-context copy (p=0.15)", augment=AugmentConfig(mask_prob=0.15)),
        Variant("query_rewrite", "+rewritten-question copy", augment=AugmentConfig(query_rewrite=True)),
        Variant("qg", "+2 rule (wh) generated questions per train context", augment=AugmentConfig(qg_per_passage=2)),
        Variant("qg_filtered", "qg kept only where the baseline reader has F1>=0.5", augment=AugmentConfig(qg_per_passage=2)),
        Variant("trim_particles", "predict: trim particles (Kiwi)", predict=base_predict.replace(trim_particles=True)),
        Variant("logit_sum", "predict: score mode logit_sum", predict=base_predict.replace(score_mode="logit_sum")),
        Variant("no_retrieval_score", "predict: reader score only (no BM25 softmax)", predict=base_predict.replace(use_retrieval_score=False)),
        Variant("top20", "predict: read the top-20 passages, not 5", predict=base_predict.replace(top_k_passages=20)),
        Variant("null_score", "predict: spans ranked against their passage's no-answer (CLS) score", predict=base_predict.replace(null_score="subtract")),
        Variant("curriculum", "margin curriculum, easy->hard, no shuffle", curriculum=True),
        Variant("ensemble2", "log_prob_sum ensemble of baseline + seed 43", ensemble_seed=43),
    ]  # fmt: skip


def per_question(qa_examples, predictions: dict) -> tuple[np.ndarray, np.ndarray]:
    em, f1 = [], []
    for ex in qa_examples:
        e, f = question_scores(predictions.get(ex.id, ""), ex.answers["text"])
        em.append(100.0 * e)
        f1.append(100.0 * f)
    return np.array(em), np.array(f1)


def paired_bootstrap(
    base: np.ndarray, other: np.ndarray, samples: int, seed: int
) -> tuple[float, float, float]:
    """Mean difference and 95% interval, resampling questions with replacement (both systems together)."""
    rng = np.random.default_rng(seed)
    diff = other - base
    idx = rng.integers(0, len(diff), size=(samples, len(diff)))
    means = diff[idx].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(BENCH_DIR / "out" / "ablation"))
    parser.add_argument("--steps", type=int, default=600, help="training steps of every reader")
    parser.add_argument("--top-k", type=int, default=5, help="retrieved passages read per eval question")
    parser.add_argument("--eval-limit", type=int, help="score only the first N eval questions")
    parser.add_argument("--num-threads", type=int, default=2, help="torch threads (default: 2)")
    add_deprecated_flag(parser, "--threads", "num_threads", "--num-threads", type=int)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--only", nargs="*", help="run only these variants")
    parser.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    parser.add_argument(
        "--trim-check",
        nargs=2,
        metavar=("PREDICTIONS", "QA"),
        help="only measure particle trimming on an existing predictions.json against its QA file",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.trim_check:
        print(trim_check(Path(args.trim_check[0]), Path(args.trim_check[1]), args.bootstrap))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(0)
    t_start = time.time()

    split = prepare_korquad(KorquadSplitConfig(eval_fraction=0.2, seed=42), korquad_dev_path(), out / "split")
    passages = preprocess(PreprocessConfig(), split.documents_path, out / "passages")
    index = build_index("bm25", {"analyzer": "kiwi+bigram"}, passages.passages_path, out / "bm25")
    eval_examples = load_qa(split.eval_path).examples[: args.eval_limit]
    eval_path = out / "eval.jsonl"
    write_qa(eval_path, eval_examples)
    retrieved = retrieve(index, eval_path, out / "retrieved.jsonl", top_k=max(args.top_k, 20))

    base_train = ReaderTrainConfig(max_length=256, doc_stride=64, max_steps=args.steps, epochs=100.0, num_threads=args.num_threads, seed=42)  # fmt: skip
    # Trimming is on by default in odqa; the baseline leaves it off so its row measures it.
    base_predict = PredictConfig(
        n_best=20, top_k_passages=args.top_k, trim_particles=False, num_threads=args.num_threads
    )

    def run_reader(name: str, config: ReaderTrainConfig, train_path: Path) -> Path:
        model_dir = out / "models" / name
        if not (model_dir / READER_CONFIG_FILE).is_file():
            train_reader(config, train_path, model_dir, corpus_path=passages.passages_path)
        return model_dir

    def run_predict(name: str, model_dir: Path, config: PredictConfig) -> dict:
        pred_dir = out / "predictions" / name
        predict(config, model_dir, retrieved, pred_dir)
        return read_json(pred_dir / "predictions.json")

    rows = []
    base_model = run_reader("baseline", base_train, split.train_path)
    base_em, base_f1 = per_question(eval_examples, run_predict("baseline", base_model, base_predict))
    rows.append({"variant": "baseline", "what": f"{args.steps} steps, BM25 top-{args.top_k}", "em": base_em.mean(), "f1": base_f1.mean()})  # fmt: skip
    log.info("baseline EM %.2f F1 %.2f", base_em.mean(), base_f1.mean())

    for variant in variants(base_train, base_predict):
        if args.only and variant.name not in args.only:
            continue
        t0 = time.time()
        model_dir, predict_config, train_path = base_model, variant.predict or base_predict, split.train_path
        if variant.augment is not None:
            aug_config = variant.augment
            if variant.name == "qg_filtered":
                aug_config = aug_config.replace(filter_reader=str(base_model))
            train_path = out / "train" / f"{variant.name}.jsonl"
            report = augment(
                aug_config,
                split.train_path,
                train_path,
                passages_path=passages.passages_path,
                index_dir=index,
            )
            log.info("%s: %s", variant.name, report["added"])
        if variant.curriculum:
            train_path = out / "train" / "curriculum.jsonl"
            curriculum(
                CurriculumConfig(scorer="margin", readers=[str(base_model)]), split.train_path, train_path
            )
        if variant.augment is not None or variant.curriculum or variant.train is not None:
            config = variant.train or base_train
            if variant.curriculum:
                config = config.replace(shuffle=False)
            model_dir = run_reader(variant.name, config, train_path)
        if variant.ensemble_seed is not None:
            second = run_reader(
                f"seed{variant.ensemble_seed}",
                base_train.replace(seed=variant.ensemble_seed),
                split.train_path,
            )
            run_predict(f"seed{variant.ensemble_seed}", second, base_predict)
            ens_dir = ensemble(
                EnsembleConfig(method="log_prob_sum"),
                [
                    out / "predictions" / "baseline" / "nbest.json",
                    out / "predictions" / f"seed{variant.ensemble_seed}" / "nbest.json",
                ],
                out / "predictions" / variant.name,
            )
            predictions = read_json(ens_dir / "predictions.json")
        else:
            predictions = run_predict(variant.name, model_dir, predict_config)
        em, f1 = per_question(eval_examples, predictions)
        d_em, lo_em, hi_em = paired_bootstrap(base_em, em, args.bootstrap, seed=1)
        d_f1, lo_f1, hi_f1 = paired_bootstrap(base_f1, f1, args.bootstrap, seed=2)
        rows.append(
            {
                "variant": variant.name,
                "what": variant.what,
                "em": em.mean(),
                "f1": f1.mean(),
                "d_em": d_em,
                "d_em_ci": [lo_em, hi_em],
                "d_f1": d_f1,
                "d_f1_ci": [lo_f1, hi_f1],
                "seconds": time.time() - t0,
            }
        )
        log.info("%s: EM %.2f (%+.2f) F1 %.2f (%+.2f) in %.0fs", variant.name, em.mean(), d_em, f1.mean(), d_f1, time.time() - t0)  # fmt: skip

    command = "python bench/ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = render_table(rows, len(eval_examples), args, command.strip())
    print(table)
    write_json(out / "ablation.json", {"rows": rows, "args": vars(args), "seconds": time.time() - t_start})
    log_to_mlflow(rows, out, table, vars(args))
    if not args.no_readme:
        update_readme(BENCH_DIR / "README.md", table)
    return 0


def trim_check(predictions_path: Path, qa_path: Path, samples: int) -> str:
    """EM/F1 of a reader's predictions before and after trim_particles (no training needed)."""
    from odqa.korean_answers import trim_particles

    examples = load_qa(qa_path).examples
    predictions = read_json(predictions_path)
    ids = list(predictions)
    trimmed = dict(zip(ids, trim_particles([predictions[i] for i in ids]), strict=True))
    em, f1 = per_question(examples, predictions)
    em_t, f1_t = per_question(examples, trimmed)
    d_em, lo_em, hi_em = paired_bootstrap(em, em_t, samples, seed=1)
    d_f1, lo_f1, hi_f1 = paired_bootstrap(f1, f1_t, samples, seed=2)
    changed = sum(predictions[i] != trimmed[i] for i in ids)
    return (
        f"{len(examples)} questions, {changed} predictions trimmed\n"
        f"EM {em.mean():.2f} -> {em_t.mean():.2f}  ({d_em:+.2f} [{lo_em:+.2f}, {hi_em:+.2f}])\n"
        f"F1 {f1.mean():.2f} -> {f1_t.mean():.2f}  ({d_f1:+.2f} [{lo_f1:+.2f}, {hi_f1:+.2f}])"
    )


def verdict(row: dict) -> str:
    """From the 95% intervals: EM decides; F1 breaks ties when EM's interval holds zero."""
    em_lo, em_hi = row["d_em_ci"]
    f1_lo, f1_hi = row["d_f1_ci"]
    if em_hi < 0 or (f1_hi < 0 and em_lo <= 0):
        return "hurts"
    if em_lo > 0 and f1_hi < 0:
        return "EM up, F1 down"
    if em_lo > 0 or f1_lo > 0:
        return "helps"
    return "no clear effect"


def render_table(rows: list[dict], n_questions: int, args, command: str) -> str:
    lines = [
        f"KorQuAD 1.0 dev, article-level split (eval_fraction 0.2, seed 42), {n_questions} eval questions; "
        f"reader hidden 128 / 2 layers / max_length 256 from scratch, {args.steps} steps, threads {args.num_threads}; "
        f"BM25 (kiwi+bigram) top-{args.top_k}. Deltas vs baseline with paired bootstrap 95% CI "
        f"({args.bootstrap} resamples over questions).",
        "",
        "| variant | what | EM | F1 | ΔEM [95% CI] | ΔF1 [95% CI] | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["variant"] == "baseline":
            lines.append(f"| baseline | {row['what']} | {row['em']:.2f} | {row['f1']:.2f} | | | |")
            continue
        lines.append(
            f"| {row['variant']} | {row['what']} | {row['em']:.2f} | {row['f1']:.2f} | "
            f"{row['d_em']:+.2f} [{row['d_em_ci'][0]:+.2f}, {row['d_em_ci'][1]:+.2f}] | "
            f"{row['d_f1']:+.2f} [{row['d_f1_ci'][0]:+.2f}, {row['d_f1_ci'][1]:+.2f}] | {verdict(row)} |"
        )
    lines += ["", f"Reproduce: `{command}`"]
    return "\n".join(lines)


def log_to_mlflow(rows: list[dict], out: Path, table: str, args: dict) -> None:
    import mlflow

    from odqa.tracking import ensure_experiment, sqlite_uri

    uri = sqlite_uri(out / "mlflow.db")
    experiment_id = ensure_experiment(
        uri, "odqa-ablation", artifact_location=str((out / "mlartifacts").resolve())
    )
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name="ablation") as parent:
        mlflow.log_params({k: str(v) for k, v in args.items()})
        mlflow.log_text(table, "ablation.md")
        for row in rows:
            with mlflow.start_run(experiment_id=experiment_id, run_name=row["variant"], nested=True):
                metrics = {"exact_match": row["em"], "f1": row["f1"]}
                if "d_em" in row:
                    metrics.update(
                        d_exact_match=row["d_em"], d_em_ci_low=row["d_em_ci"][0], d_em_ci_high=row["d_em_ci"][1],
                        d_f1=row["d_f1"], d_f1_ci_low=row["d_f1_ci"][0], d_f1_ci_high=row["d_f1_ci"][1],
                    )  # fmt: skip
                mlflow.log_metrics(metrics)
                mlflow.set_tag("what", row["what"])
    log.info("logged to MLflow %s (run %s)", uri, parent.info.run_id)


def update_readme(path: Path, table: str) -> None:
    """Replace only the ablation section (heading to the next '## ' heading), appending it if absent."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"{README_HEADING}\n\n{table}\n"
    start = text.find(README_HEADING)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(README_HEADING))
        text = text[:start] + section + (text[end + 1 :] if end != -1 else "")
    from odqa.io import write_text

    write_text(path, text)


if __name__ == "__main__":
    sys.exit(main())
