"""Reader-quality ablation: every switch against the SAME baseline (same article-level KorQuAD split,
same seeds, same training steps), EM/F1 deltas with a paired bootstrap 95% interval over questions.

Setting (reduced so it finishes on 2 shared CPU cores): a from-scratch BERT reader (hidden 128,
2 layers, max_length 256) trained for --steps steps; eval questions read the BM25 (kiwi+bigram) top
--top-k passages. Results go to MLflow (SQLite under --out) and to the "## Ablation" section of
bench/README.md.

    .venv/bin/python bench/ablation.py                      # full run (about an hour on 2 cores)
    .venv/bin/python bench/ablation.py --steps 60 --eval-limit 200 --no-readme   # smoke run

`--set levers` measures the reader's ceiling levers instead (issue 15), each as a switch against the same
baseline at equal CPU time: morpheme vocabulary, MLM pre-training on the passages (its seconds are taken
from the reader's steps), k-fold readers (K readers of steps/K each, log_prob_sum ensemble), the focus
sentence marked in the reader's token types (focus_sentence), answers starting at word starts and ending at
a word end or in front of a particle or ending (predict's word_spans "morpheme"), the three of them that
make run uses ("defaults", trained and read as make run does: the default batch order and share of no-answer
windows, an answer's spans summed), and all together; with the share
of eval answers that are token spans and wall time. Its table goes to the "## Reader levers" section of
bench/README.md.

    .venv/bin/python bench/ablation.py --set levers --steps 700
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
LEVERS_HEADING = "## Reader levers (bench/ablation.py --set levers)"


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
        Variant("merge_spans", "predict: an answer's spans' probabilities summed", predict=base_predict.replace(merge_spans="sum")),
        Variant("answer_pick", "predict: the n-best answer of highest expected F1 among near-ties (T 0.25)", predict=base_predict.replace(answer_pick="expected_f1")),
        Variant("null_score", "predict: spans ranked against their passage's no-answer (CLS) score", predict=base_predict.replace(null_score="subtract")),
        Variant("group_by_length", "batches of windows of similar length (less padding)", train=base_train.replace(group_by_length=True)),
        Variant("no_answer_half", "half the no-answer windows, drawn anew each epoch", train=base_train.replace(no_answer_windows=0.5)),
        Variant("context_masking", "15 % of context tokens outside the answer masked, anew each step", train=base_train.replace(context_masking=0.15)),
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
    parser.add_argument(
        "--set", dest="variant_set", choices=("switches", "levers"), default="switches",
        help="switches: the training/prediction switches; levers: morpheme vocabulary, pre-training, folds",
    )  # fmt: skip
    parser.add_argument("--folds", type=int, default=3, help="levers: readers in the k-fold ensemble")
    parser.add_argument("--pretrain-steps", type=int, default=100, help="levers: MLM pre-training steps")
    parser.add_argument("--pretrain-batch", type=int, default=16, help="levers: MLM sequences per step")
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

    base_train = ReaderTrainConfig(hidden_size=128, num_layers=2, num_heads=2, max_length=256, doc_stride=64, max_steps=args.steps, epochs=100.0, num_threads=args.num_threads, seed=42, morpheme_vocab=False, focus_sentence=False, group_by_length=False, no_answer_windows=1.0)  # fmt: skip
    # Trimming and word starts are on by default in odqa; the baseline leaves them off so rows measure them.
    base_predict = PredictConfig(
        n_best=20,
        top_k_passages=args.top_k,
        trim_particles=False,
        word_spans="off",
        merge_spans="max",
        answer_pick="top",
        num_threads=args.num_threads,
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

    if args.variant_set == "levers":
        return run_levers(
            args, argv, out, split, passages, retrieved, eval_examples, base_train, base_predict, t_start
        )

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
                EnsembleConfig(method="log_prob_sum", answer_pick=base_predict.answer_pick),
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


# "defaults": the levers on in the offline default (make run): morpheme vocabulary, focus sentence, word spans
# (and the default group_by_length / no_answer_windows, predict's merge_spans "sum" and answer_pick "expected_f1").
LEVERS = ("morpheme", "focus", "word_spans", "pretrain", "folds", "defaults", "all")
DEFAULT_LEVERS = ("defaults", "all")


def run_levers(
    args, argv, out, split, passages, retrieved, eval_examples, base_train, base_predict, t_start
) -> int:
    """baseline vs each lever vs all together, at equal CPU time (see the module docstring)."""
    from transformers import AutoTokenizer

    from odqa.reader.config import FoldsConfig, PretrainConfig
    from odqa.reader.features import token_alignment
    from odqa.reader.folds import make_folds
    from odqa.reader.pretrain import pretrain

    # Prediction as make run does it (particles trimmed), the same for every row.
    predict_config = base_predict.replace(trim_particles=True)
    out = out / "levers"
    rows, base = [], None

    def read(name: str, model_dirs: list[Path]) -> dict:
        nbests = []
        config = predict_config.replace(
            word_spans=PredictConfig().word_spans if name in ("word_spans", *DEFAULT_LEVERS) else "off",
            merge_spans=PredictConfig().merge_spans if name in DEFAULT_LEVERS else "max",
            answer_pick=PredictConfig().answer_pick if name in DEFAULT_LEVERS else "top",
        )
        for i, model_dir in enumerate(model_dirs):
            pred_dir = out / "predictions" / f"{name}-{i}"
            predict(config, model_dir, retrieved, pred_dir, force=True)
            nbests.append(pred_dir / "nbest.json")
        if len(nbests) == 1:
            return read_json(nbests[0].parent / "predictions.json")
        ens_config = EnsembleConfig(method="log_prob_sum", answer_pick=config.answer_pick)
        ens = ensemble(ens_config, nbests, out / "predictions" / name, force=True)
        return read_json(ens / "predictions.json")

    def train(name: str, config: ReaderTrainConfig, train_path: Path) -> tuple[Path, float]:
        model_dir = out / "models" / name
        t0 = time.time()
        train_reader(config, train_path, model_dir, corpus_path=passages.passages_path, force=True)
        return model_dir, time.time() - t0

    seconds_per_step = None
    for name in ("baseline", *LEVERS):
        if args.only and name != "baseline" and name not in args.only:
            continue
        t0 = time.time()
        morph = name in ("morpheme", *DEFAULT_LEVERS)
        focus = name in ("focus", *DEFAULT_LEVERS)
        config = base_train.replace(morpheme_vocab=morph, focus_sentence=focus)
        if name in DEFAULT_LEVERS:  # the default windows per epoch and batch order
            defaults = ReaderTrainConfig()
            config = config.replace(
                group_by_length=defaults.group_by_length, no_answer_windows=defaults.no_answer_windows
            )
        steps, what = args.steps, []
        what.append("morpheme vocabulary" if morph else "eojeol vocabulary")
        if focus:
            what.append("focus sentence marked")
        if name in ("word_spans", *DEFAULT_LEVERS):
            what.append(f"word spans {PredictConfig().word_spans!r}")
        if name in DEFAULT_LEVERS:
            what.append(f"spans merged by {PredictConfig().merge_spans!r}")
            what.append(
                f"answer pick {PredictConfig().answer_pick!r} (T {PredictConfig().pick_temperature:g})"
            )
            if config.group_by_length:
                what.append("batches grouped by length")
            if config.no_answer_windows < 1:
                what.append(f"{config.no_answer_windows:g} of the no-answer windows")
        pretrain_s = 0.0
        if name in ("pretrain", "all"):
            p = pretrain(
                PretrainConfig(
                    morpheme_vocab=morph,
                    max_steps=args.pretrain_steps,
                    batch_size=args.pretrain_batch,
                    num_threads=args.num_threads,
                    seed=42,
                    max_length=config.max_length,
                ),  # fmt: skip
                passages.passages_path,
                out / "models" / f"{name}-pretrained",
                force=True,
            )
            pretrain_s = p.summary["seconds"]
            # Equal CPU time: the pre-training's seconds come off the reader's steps.
            steps = max(1, args.steps - round(pretrain_s / seconds_per_step))
            config = config.replace(reader_model=str(p.model_dir))
            what.append(
                f"MLM {args.pretrain_steps} x {args.pretrain_batch} ({pretrain_s:.0f} s) + {steps} steps"
            )
        if name in ("folds", "all"):
            specs = make_folds(
                FoldsConfig(folds=args.folds, seed=42), split.train_path, out / f"{name}-folds", force=True
            )
            per_fold = max(1, steps // args.folds)
            model_dirs = []
            for spec in specs:
                model_dir, _ = train(
                    f"{name}-fold{spec.fold}",
                    config.replace(max_steps=per_fold, seed=42 + spec.fold),
                    out / f"{name}-folds" / spec.train,
                )
                model_dirs.append(model_dir)
            what.append(f"{args.folds} folds x {per_fold} steps")
        else:
            model_dir, train_s = train(name, config.replace(max_steps=steps), split.train_path)
            model_dirs = [model_dir]
            if name == "baseline":
                seconds_per_step = train_s / args.steps
            if name != "pretrain":
                what.append(f"{steps} steps")
        tokenizer = AutoTokenizer.from_pretrained(str(model_dirs[0]))
        alignment = token_alignment(tokenizer, eval_examples)
        em, f1 = per_question(eval_examples, read(name, model_dirs))
        row = {"variant": name, "what": ", ".join(what), "em": em.mean(), "f1": f1.mean(), "alignment": alignment,
               "seconds": time.time() - t0, "pretrain_seconds": pretrain_s}  # fmt: skip
        row["em_ci"] = list(bootstrap_interval(em, args.bootstrap, seed=3))
        row["f1_ci"] = list(bootstrap_interval(f1, args.bootstrap, seed=4))
        if base is None:
            base = (em, f1)
        else:
            d_em, lo_em, hi_em = paired_bootstrap(base[0], em, args.bootstrap, seed=1)
            d_f1, lo_f1, hi_f1 = paired_bootstrap(base[1], f1, args.bootstrap, seed=2)
            row.update(d_em=d_em, d_em_ci=[lo_em, hi_em], d_f1=d_f1, d_f1_ci=[lo_f1, hi_f1])
        rows.append(row)
        log.info(
            "%s: EM %.2f F1 %.2f alignment %.3f in %.0f s",
            name,
            em.mean(),
            f1.mean(),
            alignment,
            row["seconds"],
        )
        write_json(out / "levers.json", {"rows": rows, "args": vars(args)})

    command = "python bench/ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = render_levers(rows, len(eval_examples), args, command.strip(), base_train)
    print(table)
    write_json(out / "levers.json", {"rows": rows, "args": vars(args), "seconds": time.time() - t_start})
    log_to_mlflow(rows, out, table, vars(args))
    if not args.no_readme:
        update_readme(BENCH_DIR / "README.md", table, LEVERS_HEADING)
    return 0


def bootstrap_interval(values: np.ndarray, samples: int, seed: int) -> tuple[float, float]:
    """95% interval of the mean, resampling questions with replacement."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def render_levers(rows: list[dict], n_questions: int, args, command: str, reader: ReaderTrainConfig) -> str:
    import os

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"KorQuAD 1.0 dev, article-level split (eval_fraction 0.2, seed 42), {n_questions} eval questions; "
        f"reader hidden {reader.hidden_size} / {reader.num_layers} layers / max_length {reader.max_length} from "
        f"scratch, learning rate {reader.learning_rate:g}, a budget of {args.steps} reader steps "
        f"(batch 16) per row, threads {args.num_threads}; BM25 (kiwi+bigram) top-{args.top_k}, particles trimmed. "
        f"Pre-training's seconds are taken off the reader's steps; folds split the steps. EM/F1 with 95% "
        f"bootstrap intervals, deltas vs baseline with paired bootstrap 95% CI ({args.bootstrap} resamples); "
        f"'aligned' = share of eval answers that start and end on token boundaries. Load average at the end: {load}.",
        "",
        "| variant | what | aligned | EM [95% CI] | F1 [95% CI] | ΔEM [95% CI] | ΔF1 [95% CI] | verdict | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        head = (
            f"| {row['variant']} | {row['what']} | {row['alignment']:.3f} | "
            f"{row['em']:.2f} [{row['em_ci'][0]:.2f}, {row['em_ci'][1]:.2f}] | "
            f"{row['f1']:.2f} [{row['f1_ci'][0]:.2f}, {row['f1_ci'][1]:.2f}] | "
        )
        if "d_em" not in row:
            lines.append(head + f"| | | {row['seconds']:.0f} |")
            continue
        lines.append(
            head + f"{row['d_em']:+.2f} [{row['d_em_ci'][0]:+.2f}, {row['d_em_ci'][1]:+.2f}] | "
            f"{row['d_f1']:+.2f} [{row['d_f1_ci'][0]:+.2f}, {row['d_f1_ci'][1]:+.2f}] | {verdict(row)} | {row['seconds']:.0f} |"
        )
    lines += ["", f"Reproduce: `{command}`"]
    return "\n".join(lines)


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


def update_readme(path: Path, table: str, heading: str = README_HEADING) -> None:
    """Replace only the section under `heading` (to the next '## ' heading), appending it if absent."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"{heading}\n\n{table}\n"
    start = text.find(heading)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[end + 1 :] if end != -1 else "")
    from odqa.io import write_text

    write_text(path, text)


if __name__ == "__main__":
    sys.exit(main())
