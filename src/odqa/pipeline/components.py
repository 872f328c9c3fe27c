"""One KFP component per stage. Bodies import odqa inside (KFP ships only the function source, and the
image has odqa installed) and call the stage's library function; each opens a nested MLflow run under
the pipeline's parent run.

Every Dataset/Model artifact is a folder holding the stage's standard file names (odqa.schema).

The container image is one setting, ODQA_IMAGE, read when this module is imported (i.e. when the
pipeline is compiled); components/Dockerfile builds it."""

import os

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

DEFAULT_IMAGE = "ghcr.io/odqa/odqa:0.1.0"
IMAGE = os.environ.get("ODQA_IMAGE", DEFAULT_IMAGE)
# The same Dockerfile built with CUDA torch (components/Dockerfile, --build-arg TORCH=cuda); the gpu compile
# target runs train_reader and predict in it (ODQA_CUDA_IMAGE at compile time).
DEFAULT_CUDA_IMAGE = "ghcr.io/odqa/odqa:0.1.0-cuda"


@dsl.component(base_image=IMAGE)
def start_tracking(
    tracking_uri: str, experiment: str, run_name: str, params: dict, mlflow_run: Output[Artifact]
):
    """Create the MLflow parent run; a handle to it (tracking URI + run id) goes to every other component."""
    from odqa import tracking

    run_id = tracking.start_pipeline_run(tracking_uri, experiment, run_name, params=params)
    tracking.write_run_handle(mlflow_run.path, tracking_uri, run_id)
    mlflow_run.metadata.update({"tracking_uri": tracking_uri, "run_id": run_id})


@dsl.component(base_image=IMAGE)
def prepare_data(
    data_uri: str,
    corpus_uri: str,
    train_uri: str,
    train_split: str,
    eval_uri: str,
    eval_split: str,
    test_uri: str,
    test_split: str,
    eval_fraction: float,
    split_seed: int,
    mlflow_run: Input[Artifact],
    documents: Output[Dataset],
    train_qa: Output[Dataset],
    eval_qa: Output[Dataset],
    test_qa: Output[Dataset],
    report: Output[Markdown],
):
    """Pull the user's data: a corpus with train / eval (/ test) question sets, or one KorQuAD-layout file
    split by article ('' = KorQuAD 1.0 dev). test_qa is empty when there is no test set."""
    import tempfile

    from odqa import tracking
    from odqa.data.layout import PrepareDataConfig, prepare_data
    from odqa.io import copy_file, write_jsonl
    from odqa.reports import markdown_report
    from odqa.schema import DOCUMENTS_FILE, QA_FILE, SPLIT_REPORT_FILE

    config = PrepareDataConfig.from_dict(
        {
            "data_uri": data_uri,
            "corpus_uri": corpus_uri,
            "train_uri": train_uri,
            "train_split": train_split,
            "eval_uri": eval_uri,
            "eval_split": eval_split,
            "test_uri": test_uri,
            "test_split": test_split,
            "eval_fraction": eval_fraction,
            "split_seed": split_seed,
        },
        source="pipeline parameters",
    )
    with tracking.tracked_stage(mlflow_run.path, "prepare_data", config.to_dict()) as sr:
        with tempfile.TemporaryDirectory() as tmp:
            data = prepare_data(config, f"{tmp}/data")
            copy_file(data.documents_path, documents.path, DOCUMENTS_FILE)
            copy_file(data.train_path, train_qa.path, QA_FILE)
            copy_file(data.eval_path, eval_qa.path, QA_FILE)
            if data.test_path is not None:
                copy_file(data.test_path, test_qa.path, QA_FILE)
            else:
                write_jsonl(f"{test_qa.path}/{QA_FILE}", [])
        counts = {k: v for k, v in data.report.items() if isinstance(v, int)}
        sr.log_metrics(counts)
        sr.log_dict(data.report, SPLIT_REPORT_FILE)
        with open(report.path, "w", encoding="utf-8") as f:
            f.write(markdown_report("Data", {"layout": data.report["layout"], **counts}))


@dsl.component(base_image=IMAGE)
def preprocess(
    documents: Input[Dataset],
    config: dict,
    mlflow_run: Input[Artifact],
    passages: Output[Dataset],
    report: Output[Markdown],
):
    """Clean, deduplicate and chunk documents into passages."""
    from odqa import tracking
    from odqa.preprocess import PreprocessConfig, preprocess
    from odqa.reports import flat_metrics, markdown_report
    from odqa.schema import DOCUMENTS_FILE, PREPROCESS_REPORT_FILE

    settings = PreprocessConfig.from_dict(config, source="preprocess_config")
    with tracking.tracked_stage(mlflow_run.path, "preprocess", settings.to_dict()) as sr:
        result = preprocess(settings, f"{documents.path}/{DOCUMENTS_FILE}", passages.path)
        sr.log_metrics(flat_metrics(result.report))
        sr.log_dict(result.report, PREPROCESS_REPORT_FILE)
        with open(report.path, "w", encoding="utf-8") as f:
            f.write(markdown_report("Preprocess", result.report))


@dsl.component(base_image=IMAGE)
def augment(
    train_qa: Input[Dataset],
    passages: Input[Dataset],
    config: dict,
    mlflow_run: Input[Artifact],
    augmented_qa: Output[Dataset],
):
    """Training-data augmentation (an identity copy when every switch is off)."""
    from odqa import tracking
    from odqa.augment import AugmentConfig, augment
    from odqa.reports import flat_metrics
    from odqa.schema import PASSAGES_FILE, QA_FILE

    settings = AugmentConfig.from_dict(config, source="augment_config")
    with tracking.tracked_stage(mlflow_run.path, "augment", settings.to_dict()) as sr:
        counts = augment(
            settings,
            f"{train_qa.path}/{QA_FILE}",
            f"{augmented_qa.path}/{QA_FILE}",
            passages_path=f"{passages.path}/{PASSAGES_FILE}",
        )
        sr.log_metrics(flat_metrics(counts))


@dsl.component(base_image=IMAGE)
def index(
    passages: Input[Dataset],
    train_qa: Input[Dataset],
    retriever_kind: str,
    analyzer: str,
    retriever_options: dict,
    mlflow_run: Input[Artifact],
    index: Output[Model],
):
    """Build the retrieval index (bm25, elasticsearch, dense, or a hybrid that builds its members)."""
    from odqa import tracking
    from odqa.retrieval.base import build_index, with_stage_defaults
    from odqa.schema import PASSAGES_FILE, QA_FILE

    options = with_stage_defaults(retriever_kind, retriever_options, analyzer, f"{train_qa.path}/{QA_FILE}")
    with tracking.tracked_stage(mlflow_run.path, "index", {"kind": retriever_kind, **options}):
        build_index(
            retriever_kind,
            options,
            f"{passages.path}/{PASSAGES_FILE}",
            index.path,
            source="retriever_options",
        )
        index.metadata["kind"] = retriever_kind


@dsl.component(base_image=IMAGE)
def retrieve(
    index: Input[Model],
    eval_qa: Input[Dataset],
    passages: Input[Dataset],
    top_k: int,
    mlflow_run: Input[Artifact],
    retrieved: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
):
    """Retrieve top-k passages per eval question and measure recall@k against the gold documents
    (for a hybrid index also each of its members, logged as `<member>.recall@k`)."""
    from odqa import tracking
    from odqa.reports import flat_metrics, html_report
    from odqa.retrieval.evaluate import evaluate_retrieval
    from odqa.retrieval.hybrid import sub_indexes
    from odqa.retrieval.search import retrieve
    from odqa.schema import DOC_ALIASES_FILE, QA_FILE, RECALL_PLOT_FILE, RETRIEVED_FILE

    qa_path, aliases = f"{eval_qa.path}/{QA_FILE}", f"{passages.path}/{DOC_ALIASES_FILE}"
    with tracking.tracked_stage(mlflow_run.path, "retrieve", {"top_k": top_k}) as sr:
        out = retrieve(index.path, qa_path, f"{retrieved.path}/{RETRIEVED_FILE}", top_k=top_k)
        values = evaluate_retrieval(out, qa_path, retrieved.path, aliases)
        for name, member_dir in sub_indexes(index.path).items():
            member_out = f"{retrieved.path}/members/{name}"
            member_file = retrieve(member_dir, qa_path, f"{member_out}/{RETRIEVED_FILE}", top_k=top_k)
            member_values = evaluate_retrieval(member_file, qa_path, member_out, aliases)
            sr.log_metrics({f"{name}.{k}": v for k, v in flat_metrics(member_values).items()})
            sr.log_artifact(f"{member_out}/{RECALL_PLOT_FILE}", f"members/{name}")
        flat = flat_metrics(values)
        sr.log_metrics(flat)
        sr.log_artifact(f"{retrieved.path}/{RECALL_PLOT_FILE}")
        for k, v in flat.items():
            metrics.log_metric(k.replace("@", "_at_"), v)
        with open(report.path, "w", encoding="utf-8") as f:
            f.write(html_report("Retrieval", values, [f"{retrieved.path}/{RECALL_PLOT_FILE}"]))


@dsl.component(base_image=IMAGE)
def pretrain(
    passages: Input[Dataset],
    enabled: bool,
    config: dict,
    mlflow_run: Input[Artifact],
    model: Output[Model],
):
    """Masked-language-model training on the passages (odqa.reader.pretrain): the model every reader then
    fine-tunes. Disabled (the default), it writes only a marker and readers start as configured."""
    import os

    from odqa import tracking
    from odqa.reader.config import PretrainConfig
    from odqa.schema import PASSAGES_FILE

    settings = PretrainConfig.from_dict(config, source="pretrain_config")
    if not enabled:
        os.makedirs(model.path, exist_ok=True)
        with open(f"{model.path}/NO_PRETRAINED_MODEL", "w", encoding="utf-8") as f:
            f.write("pretrain was off: readers start from reader_model or from scratch\n")
        return
    from odqa.reader.pretrain import LOSS_PLOT_FILE, pretrain  # torch and transformers: only when on

    with tracking.tracked_stage(mlflow_run.path, "pretrain", settings.to_dict()) as sr:
        result = pretrain(settings, f"{passages.path}/{PASSAGES_FILE}", model.path)
        for step, loss in result.summary["loss_history"]:
            sr.log_metrics({"mlm_loss": loss}, step=step)
        sr.log_metrics(
            {k: result.summary[k] for k in ("steps", "seconds", "final_loss") if k in result.summary}
        )
        sr.set_tags(
            {
                "odqa.device": result.summary.get("device", ""),
                "odqa.precision": result.summary.get("precision", ""),
            }
        )
        if os.path.exists(f"{model.path}/{LOSS_PLOT_FILE}"):
            sr.log_artifact(f"{model.path}/{LOSS_PLOT_FILE}")


@dsl.component(base_image=IMAGE)
def reader_plan(
    train_qa: Input[Dataset],
    reader_configs: list,
    folds: int,
    seed: int,
    mlflow_run: Input[Artifact],
    fold_data: Output[Dataset],
) -> list:
    """The readers to train, one ParallelFor item each: every reader_configs item, and with folds=K > 1
    every item K times, item k on the training questions of every fold but k (folds cut by article,
    odqa.reader.folds), so the ensemble combines K readers per configuration."""
    import os

    from odqa import tracking
    from odqa.reader.config import FoldsConfig
    from odqa.reader.folds import make_folds
    from odqa.schema import QA_FILE

    if folds < 1:
        from odqa.errors import InputError

        raise InputError(f"folds must be at least 1, got {folds}")
    if folds == 1:
        os.makedirs(fold_data.path, exist_ok=True)
        return list(reader_configs)
    settings = FoldsConfig.from_dict({"folds": folds, "seed": seed}, source="folds/split_seed")
    with tracking.tracked_stage(mlflow_run.path, "reader_plan", settings.to_dict()) as sr:
        specs = make_folds(settings, f"{train_qa.path}/{QA_FILE}", fold_data.path)
        sr.log_metrics({f"fold_{s.fold}.train_questions": s.train_questions for s in specs})
    return [{**item, "fold": s.fold} for item in reader_configs for s in specs]


@dsl.component(base_image=IMAGE)
def train_reader(
    train_qa: Input[Dataset],
    passages: Input[Dataset],
    pretrained: Input[Model],
    fold_data: Input[Dataset],
    reader_model: str,
    epochs: float,
    config: dict,
    mlflow_run: Input[Artifact],
    reader: Output[Model],
    gpus_per_node: int = 1,
    trainer_nodes: int = 1,
):
    """Train one extractive reader; `config` (one item of reader_plan's list) overrides the shared
    reader_model/epochs. Without a reader_model it starts from the pretrain stage's model when that ran;
    an item with a `fold` trains on that fold's questions. gpus_per_node > 1: torchrun, one process per GPU.

    Retries (the task's retry policy) resume from checkpoints when the item sets checkpoint_every and
    the pod has ODQA_CHECKPOINT_ROOT, a persistent volume: KFP retries the executor pod with the same
    executor input, so `reader.uri` is the same on every attempt and names the checkpoint folder, but
    the pod's local `reader.path` is new each attempt (outputs are uploaded only when the task succeeds),
    so checkpoints cannot live there."""
    import hashlib
    import json
    import os
    import subprocess
    import sys

    from odqa import tracking
    from odqa.errors import InputError
    from odqa.io import read_json
    from odqa.reader.config import ReaderTrainConfig
    from odqa.schema import PASSAGES_FILE, QA_FILE, READER_CONFIG_FILE, TRAINING_LOSS_PLOT_FILE

    if trainer_nodes != 1:
        raise InputError(
            f"trainer_nodes {trainer_nodes}: the pipeline trains on one node; for more, run the TrainJob in "
            "manifests/trainer/ (the same odqa.reader.train_ddp entry point)"
        )
    values = {"reader_model": reader_model or None, "epochs": epochs, **config}
    fold = values.pop("fold", None)  # a reader_plan item of a k-fold plan
    qa_path = f"{train_qa.path}/{QA_FILE}"
    if fold is not None:
        qa_path = f"{fold_data.path}/fold-{int(fold)}/train.jsonl"
    if not values["reader_model"] and os.path.isfile(f"{pretrained.path}/config.json"):
        values["reader_model"] = pretrained.path  # the pretrain stage's model
    root = os.environ.get("ODQA_CHECKPOINT_ROOT")
    if root and values.get("checkpoint_every") and not values.get("checkpoint_dir"):
        values["checkpoint_dir"] = f"{root}/{hashlib.sha256(reader.uri.encode()).hexdigest()[:20]}"
        values["resume"] = True  # a first attempt finds no checkpoint and starts fresh
    settings = ReaderTrainConfig.from_dict(values, source="reader_model/epochs/reader_configs item")
    corpus = f"{passages.path}/{PASSAGES_FILE}"
    with tracking.tracked_stage(mlflow_run.path, "train_reader", settings.to_dict()) as sr:
        if gpus_per_node > 1:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc-per-node={gpus_per_node}", "-m", "odqa.reader.train_ddp", "--train", qa_path,
                       "--out", reader.path, "--corpus", corpus, "--config", json.dumps(settings.to_dict())]  # fmt: skip
            subprocess.run(command, check=True)
        else:
            from odqa.reader.train import train_reader

            train_reader(settings, qa_path, reader.path, corpus)
        training = read_json(f"{reader.path}/{READER_CONFIG_FILE}")["training"]
        for step, loss in training["loss_history"]:
            sr.log_metrics({"train_loss": loss}, step=step)
        for step, em, f1 in training.get("eval_history", []):
            sr.log_metrics({"eval_exact_match": em, "eval_f1": f1}, step=step)
        sr.log_metrics(
            {k: training[k] for k in ("steps", "steps_per_second", "tokens_per_second", "final_loss")}
        )
        sr.set_tags({"odqa.device": training["device"], "odqa.precision": training["precision"]})
        sr.log_artifact(f"{reader.path}/{READER_CONFIG_FILE}")
        sr.log_artifact(f"{reader.path}/{TRAINING_LOSS_PLOT_FILE}")
        reader.metadata["config"] = {
            **settings.to_dict(),
            **({"fold": int(fold)} if fold is not None else {}),
        }


@dsl.component(base_image=IMAGE)
def predict(
    reader: Input[Model],
    retrieved: Input[Dataset],
    config: dict,
    mlflow_run: Input[Artifact],
    predictions: Output[Dataset],
):
    """Read the retrieved passages and write predictions.json + nbest.json."""
    from odqa import tracking
    from odqa.reader.config import PredictConfig
    from odqa.reader.predict import predict
    from odqa.reports import score_histogram
    from odqa.schema import ANSWER_SCORES_PLOT_FILE, RETRIEVED_FILE

    settings = PredictConfig.from_dict(config, source="score_mode")
    params = {**settings.to_dict(), "reader": reader.metadata.get("config", {})}
    with tracking.tracked_stage(mlflow_run.path, "predict", params) as sr:
        result = predict(settings, reader.path, f"{retrieved.path}/{RETRIEVED_FILE}", predictions.path)
        sr.log_metrics({"questions": result.questions, "questions_per_second": result.questions_per_second})
        sr.log_artifact(result.predictions_path)
        sr.log_artifact(result.nbest_path)
        sr.log_artifact(score_histogram(result.nbest_path, f"{predictions.path}/{ANSWER_SCORES_PLOT_FILE}"))


@dsl.component(base_image=IMAGE)
def ensemble(
    members: Input[list[Dataset]],
    config: dict,
    mlflow_run: Input[Artifact],
    predictions: Output[Dataset],
):
    """Combine the readers' n-best lists (one member passes through)."""
    from odqa import tracking
    from odqa.ensemble import EnsembleConfig, ensemble
    from odqa.reports import score_histogram
    from odqa.schema import ANSWER_SCORES_PLOT_FILE, NBEST_FILE, PREDICTIONS_FILE

    settings = EnsembleConfig.from_dict(config, source="ensemble_config")
    with tracking.tracked_stage(
        mlflow_run.path, "ensemble", {**settings.to_dict(), "members": len(members)}
    ) as sr:
        out = ensemble(settings, [m.path for m in members], predictions.path)
        sr.log_artifact(out / PREDICTIONS_FILE)
        sr.log_artifact(out / NBEST_FILE)
        sr.log_artifact(score_histogram(out / NBEST_FILE, out / ANSWER_SCORES_PLOT_FILE))


@dsl.component(base_image=IMAGE)
def answer_test(
    index: Input[Model],
    test_qa: Input[Dataset],
    readers: Input[list[Model]],
    predict_config: dict,
    ensemble_config: dict,
    top_k: int,
    mlflow_run: Input[Artifact],
    predictions: Output[Dataset],
):
    """Answer the test set (questions without answers) with the trained readers and the ensemble, as the
    eval set was answered: predictions.json ({id: answer}, the submission layout) and nbest.json, logged
    to the pipeline's MLflow run under test/. No metric: nobody knows the answers. Without a test set
    (test_qa empty) it writes nothing."""
    import os

    from odqa import tracking
    from odqa.ensemble import EnsembleConfig
    from odqa.io import read_json
    from odqa.reader.config import PredictConfig
    from odqa.schema import NBEST_FILE, PREDICTIONS_FILE, QA_FILE

    settings = PredictConfig.from_dict(predict_config, source="score_mode")
    combine = EnsembleConfig.from_dict(ensemble_config, source="ensemble_config")
    qa_path = f"{test_qa.path}/{QA_FILE}"
    if os.path.getsize(qa_path) == 0:
        os.makedirs(predictions.path, exist_ok=True)  # an output folder must exist for the upload
        with open(f"{predictions.path}/NO_TEST_SET", "w", encoding="utf-8") as f:
            f.write("test_uri was empty: nothing to answer\n")
        return
    from odqa.inference import answer_questions  # torch and transformers: only with a test set

    tracking_uri, parent_run_id = tracking.read_run_handle(mlflow_run.path)
    with tracking.tracked_stage(
        mlflow_run.path, "answer_test", {"top_k": top_k, "readers": len(readers)}
    ) as sr:
        out = answer_questions(
            index.path,
            [r.path for r in readers],
            qa_path,
            predictions.path,
            top_k,
            settings,
            combine,
        )
        sr.log_metrics({"test_questions": len(read_json(out / PREDICTIONS_FILE))})
        client = tracking.client(tracking_uri)
        for name in (PREDICTIONS_FILE, NBEST_FILE):
            sr.log_artifact(out / name)
            client.log_artifact(parent_run_id, str(out / name), "test")


@dsl.component(base_image=IMAGE)
def evaluate(
    eval_qa: Input[Dataset],
    predictions: Input[Dataset],
    retrieved: Input[Dataset],
    passages: Input[Dataset],
    top_k: int,
    mlflow_run: Input[Artifact],
    scores: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[Markdown],
):
    """EM/F1 of the final predictions, split by whether retrieval found the gold document; every
    question's EM/F1 too (question_scores.json), which register's paired bootstrap compares."""
    from odqa import tracking
    from odqa.evaluation import EvaluateConfig, evaluate
    from odqa.reports import flat_metrics, markdown_report
    from odqa.schema import (
        DOC_ALIASES_FILE,
        METRICS_FILE,
        PREDICTIONS_FILE,
        QA_FILE,
        QUESTION_SCORES_FILE,
        RETRIEVED_FILE,
    )

    config = EvaluateConfig.from_dict({"top_k": top_k}, source="top_k")
    with tracking.tracked_stage(mlflow_run.path, "evaluate", config.to_dict()) as sr:
        values = evaluate(
            config,
            f"{eval_qa.path}/{QA_FILE}",
            f"{predictions.path}/{PREDICTIONS_FILE}",
            f"{scores.path}/{METRICS_FILE}",
            retrieved_path=f"{retrieved.path}/{RETRIEVED_FILE}",
            doc_aliases_path=f"{passages.path}/{DOC_ALIASES_FILE}",
            question_scores_path=f"{scores.path}/{QUESTION_SCORES_FILE}",
        )
        flat = flat_metrics(values)
        sr.log_metrics(flat)
        sr.log_artifact(f"{scores.path}/{METRICS_FILE}")
        sr.log_artifact(f"{scores.path}/{QUESTION_SCORES_FILE}")
        for k, v in flat.items():
            metrics.log_metric(k, v)
        with open(report.path, "w", encoding="utf-8") as f:
            f.write(markdown_report("Evaluation", values))


@dsl.component(base_image=IMAGE)
def register(
    scores: Input[Dataset],
    eval_qa: Input[Dataset],
    index: Input[Model],
    readers: Input[list[Model]],
    predict_config: dict,
    ensemble_config: dict,
    top_k: int,
    model_name: str,
    promotion_metric: str,
    promotion_margin: float,
    mlflow_run: Input[Artifact],
    decision: Output[Markdown],
    promotion_confidence: float = 0.95,
) -> str:
    """Log the servable model, register a version (alias challenger) and promote it to champion only
    when its complete evaluation beats the champion's on the same eval set: by a paired bootstrap over
    the questions (lower bound at promotion_confidence above the margin) when both have per-question
    scores, else by the point estimates (the reason says which)."""
    import os

    from odqa import registry, serving, tracking
    from odqa.data import load_qa
    from odqa.evaluation import load_question_scores
    from odqa.io import read_json
    from odqa.schema import METRICS_FILE, QA_FILE, QUESTION_SCORES_FILE

    tracking_uri, parent_run_id = tracking.read_run_handle(mlflow_run.path)
    qa_path = f"{eval_qa.path}/{QA_FILE}"
    config = registry.RegisterConfig.from_dict(
        {"model_name": model_name, "metric": promotion_metric, "margin": promotion_margin,
         "confidence": promotion_confidence},
        source="model_name/promotion_metric/promotion_margin/promotion_confidence",
    )  # fmt: skip
    with tracking.stage_run(tracking_uri, parent_run_id, "register", config.to_dict()) as sr:
        scores_file = f"{scores.path}/{QUESTION_SCORES_FILE}"
        evaluation = registry.Evaluation(
            read_json(f"{scores.path}/{METRICS_FILE}"),
            registry.file_fingerprint(qa_path),
            len(load_qa(qa_path).examples),
            load_question_scores(scores_file) if os.path.isfile(scores_file) else None,
        )
        model_uri = serving.log_model(
            tracking_uri,
            parent_run_id,
            index.path,
            [r.path for r in readers],
            predict_config,
            ensemble_config,
            top_k,
        )
        version = registry.register_version(
            tracking_uri, model_name, model_uri, run_id=parent_run_id, tags=serving.version_tags(index.path)
        )
        # A failure from here on withdraws the promotion: no failed stage leaves a champion behind.
        with registry.promotion(tracking_uri, config, version, evaluation, run_id=parent_run_id) as result:
            if result.promoted:
                serving.point_aliases(index.path)
            sr.set_tags(
                {
                    "odqa.model_name": model_name,
                    "odqa.model_version": version,
                    registry.REASON_TAG: result.reason,
                    **(result.bootstrap.tags() if result.bootstrap is not None else {}),
                }
            )
            tracking.client(tracking_uri).set_tag(parent_run_id, "odqa.model_name", model_name)
            tracking.client(tracking_uri).set_tag(parent_run_id, "odqa.model_version", version)
            with open(decision.path, "w", encoding="utf-8") as f:
                f.write(f"# Registry\n\n{model_name} v{version}: {result.reason}\n")
    tracking.finish_pipeline_run(tracking_uri, parent_run_id)
    return "promoted" if result.promoted else "kept"
