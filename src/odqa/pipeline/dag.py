"""The odqa DAG: prepare_data -> preprocess -> augment / index -> retrieve, pretrain (off by default) ->
reader_plan -> ParallelFor(readers: train_reader -> predict) -> ensemble -> evaluate -> register, and
answer_test when a test set is given.

Two compile targets (`odqa pipeline compile --target cpu|gpu`, `build_pipeline`):
- cpu: every component in the CPU image, no GPU request, no node selector (kind/minikube, `make run`).
- gpu: train_reader and predict in the CUDA image (ODQA_CUDA_IMAGE) asking for nvidia.com/gpu, with the
  node selector and toleration given as compile options (GpuTarget); every other stage in the CPU image.
`odqa_pipeline` is the cpu target (local runs ignore resources anyway).
"""

import os
from dataclasses import dataclass

from kfp import dsl, kubernetes

from odqa.pipeline import components as stages
from odqa.reader.config import ReaderTrainConfig

TARGETS = ("cpu", "gpu")
DEFAULT_GPU_NODE_SELECTOR = "cloud.google.com/gke-accelerator=nvidia-tesla-t4"
DEFAULT_GPU_TOLERATION = "nvidia.com/gpu"
CUDA_IMAGE = os.environ.get("ODQA_CUDA_IMAGE", stages.DEFAULT_CUDA_IMAGE)
# The pipeline's default reader is `odqa train`'s: its size and epochs come from the one config.
DEFAULT_READER = ReaderTrainConfig()


@dataclass(frozen=True)
class GpuTarget:
    """Where the GPU stages run: GPUs per train_reader pod (more than one: torchrun, one process per
    GPU), the node label they select and the taint key they tolerate."""

    gpus_per_node: int = 1
    node_selector: str = DEFAULT_GPU_NODE_SELECTOR  # key=value
    toleration: str = DEFAULT_GPU_TOLERATION  # taint key (operator Exists, effect NoSchedule)
    image: str = CUDA_IMAGE


# The in-cluster Elasticsearch, compiled into the index and retrieve components as ODQA_ES_URL when
# ODQA_PIPELINE_ES_URL is set at compile time (like ODQA_IMAGE: the schedule job's ConfigMap in
# manifests/base/recurring-run.yaml sets both). Unset (a local compile), components keep their own.
PIPELINE_ES_URL = os.environ.get("ODQA_PIPELINE_ES_URL", "")


def _elasticsearch(task: dsl.PipelineTask) -> dsl.PipelineTask:
    if PIPELINE_ES_URL:
        task.set_env_variable("ODQA_ES_URL", PIPELINE_ES_URL)
    return task


# The in-cluster S3 endpoint (MinIO) for s3:// data URIs, compiled into prepare_data as AWS_ENDPOINT_URL
# when ODQA_PIPELINE_S3_ENDPOINT is set at compile time (manifests/base/recurring-run.yaml sets it); the
# keys come from the Secret mlflow-s3, which must exist in the namespace the pipeline's pods run in
# (KFP's: docs/deploy.md). Optional: without it, paths and https data still work and an s3:// URI fails
# in one line naming the missing credentials.
PIPELINE_S3_ENDPOINT = os.environ.get("ODQA_PIPELINE_S3_ENDPOINT", "")
S3_SECRET = "mlflow-s3"
S3_SECRET_KEYS = {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}


def _s3_data(task: dsl.PipelineTask) -> dsl.PipelineTask:
    if PIPELINE_S3_ENDPOINT:
        task.set_env_variable("AWS_ENDPOINT_URL", PIPELINE_S3_ENDPOINT)
        kubernetes.use_secret_as_env(
            task, secret_name=S3_SECRET, secret_key_to_env=S3_SECRET_KEYS, optional=True
        )
    return task


def _resources(task: dsl.PipelineTask, cpu: str, memory: str, cache: bool = True) -> dsl.PipelineTask:
    task.set_cpu_request(cpu).set_memory_request(memory).set_memory_limit(memory)
    task.set_caching_options(enable_caching=cache)
    return task


def build_pipeline(target: str = "cpu", gpu: GpuTarget | None = None, retries: bool = True):
    """The pipeline function for a compile target (see the module docstring). `retries=False` for the
    local runner: a retry is for a preempted or OOM-killed pod, and locally it would only repeat a
    deterministic failure after minutes of back-off."""
    if target not in TARGETS:
        from odqa.errors import InputError

        raise InputError(f"compile target must be one of {', '.join(TARGETS)}, not {target!r}")
    gpu = gpu or GpuTarget()
    train_component, predict_component = stages.train_reader, stages.predict
    pretrain_component = stages.pretrain
    if target == "gpu":
        train_component = dsl.component(base_image=gpu.image)(stages.train_reader.python_func)
        predict_component = dsl.component(base_image=gpu.image)(stages.predict.python_func)
        pretrain_component = dsl.component(base_image=gpu.image)(stages.pretrain.python_func)

    def on_gpu(task: dsl.PipelineTask, count: int) -> None:
        if target != "gpu":
            return
        key, _, value = gpu.node_selector.partition("=")
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(count)
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
        kubernetes.add_toleration(task, key=gpu.toleration, operator="Exists", effect="NoSchedule")

    @dsl.pipeline(
        name="odqa", description="Open-domain QA over Wikipedia: data -> index -> reader -> registry"
    )
    def odqa_pipeline(
        # The user's data: a corpus + train / eval (+ test) question sets (the competition's layout), or one
        # KorQuAD-layout file split by article (data_uri; neither given: KorQuAD 1.0 dev). odqa.data.layout.
        data_uri: str = "",
        corpus_uri: str = "",
        train_uri: str = "",
        train_split: str = "train",
        eval_uri: str = "",
        eval_split: str = "validation",
        test_uri: str = "",
        test_split: str = "",
        eval_fraction: float = 0.2,
        split_seed: int = 42,
        preprocess_config: dict = {},  # noqa: B006 (KFP needs literal defaults)
        augment_config: dict = {},  # noqa: B006 (KFP needs literal defaults)
        retriever_kind: str = "bm25",
        analyzer: str = "kiwi+bigram",
        # More options for the retriever kind, e.g. for retriever_kind="hybrid":
        # {"members": [{"kind": "bm25"}, {"kind": "dense", "epochs": 3}], "fusion": "rrf"}
        retriever_options: dict = {},  # noqa: B006 (KFP needs literal defaults)
        top_k: int = 20,
        # Masked-language-model pre-training on the passages before the readers (odqa.reader.pretrain).
        pretrain: bool = False,
        pretrain_config: dict = {},  # noqa: B006 (KFP needs literal defaults)
        reader_model: str = "",
        # The reader `odqa train` trains by default (ReaderTrainConfig's size and epochs), on 2 threads.
        epochs: float = DEFAULT_READER.epochs,
        reader_configs: list = [{"num_threads": 2}],  # noqa: B006 (KFP needs literal defaults)
        # K > 1: every reader_configs item trained K times on K article folds, all ensembled.
        folds: int = 1,
        score_mode: str = "logit_sum",
        ensemble_config: dict = {},  # noqa: B006 (KFP needs literal defaults)
        tracking_uri: str = "http://mlflow.odqa.svc.cluster.local:5000",
        experiment: str = "odqa",
        run_name: str = "odqa",
        model_name: str = "odqa",
        promotion_metric: str = "exact_match",
        promotion_margin: float = 0.0,
        promotion_confidence: float = 0.95,
        # Nodes for one reader's training. This DAG trains on one node (gpus_per_node GPUs there, a compile
        # option); more nodes: the Kubeflow Trainer TrainJob in manifests/trainer/ (same entry point).
        trainer_nodes: int = 1,
    ):
        start = stages.start_tracking(
            tracking_uri=tracking_uri,
            experiment=experiment,
            run_name=run_name,
            params={
                "data_uri": data_uri,
                "corpus_uri": corpus_uri,
                "train_uri": train_uri,
                "eval_uri": eval_uri,
                "test_uri": test_uri,
                "retriever_kind": retriever_kind,
                "analyzer": analyzer,
                "top_k": top_k,
                "reader_model": reader_model,
                "epochs": epochs,
                "pretrain": pretrain,
                "folds": folds,
                "score_mode": score_mode,
                "promotion_metric": promotion_metric,
                "promotion_margin": promotion_margin,
            },
        )
        _resources(start, "250m", "1Gi", cache=False)
        track = {"mlflow_run": start.outputs["mlflow_run"]}

        data = stages.prepare_data(
            data_uri=data_uri,
            corpus_uri=corpus_uri,
            train_uri=train_uri,
            train_split=train_split,
            eval_uri=eval_uri,
            eval_split=eval_split,
            test_uri=test_uri,
            test_split=test_split,
            eval_fraction=eval_fraction,
            split_seed=split_seed,
            **track,
        )
        _resources(data, "1", "2Gi", cache=False)
        _s3_data(data)

        prep = stages.preprocess(documents=data.outputs["documents"], config=preprocess_config, **track)
        _resources(prep, "2", "4Gi")

        aug = stages.augment(
            train_qa=data.outputs["train_qa"],
            passages=prep.outputs["passages"],
            config=augment_config,
            **track,
        )
        _resources(aug, "2", "4Gi")

        idx = stages.index(
            passages=prep.outputs["passages"],
            train_qa=data.outputs["train_qa"],
            retriever_kind=retriever_kind,
            analyzer=analyzer,
            retriever_options=retriever_options,
            **track,
        )
        _resources(idx, "2", "4Gi")
        _elasticsearch(idx)

        ret = stages.retrieve(
            index=idx.outputs["index"],
            eval_qa=data.outputs["eval_qa"],
            passages=prep.outputs["passages"],
            top_k=top_k,
            **track,
        )
        _resources(ret, "2", "4Gi")
        _elasticsearch(ret)

        mlm = pretrain_component(
            passages=prep.outputs["passages"], enabled=pretrain, config=pretrain_config, **track
        )
        _resources(mlm, "4", "16Gi")
        on_gpu(mlm, 1)

        plan = stages.reader_plan(
            train_qa=aug.outputs["augmented_qa"],
            reader_configs=reader_configs,
            folds=folds,
            seed=split_seed,
            **track,
        )
        _resources(plan, "1", "2Gi")

        # Pipeline parameters inside a dict literal reach the component as strings: only string fields here.
        predict_config = {"score_mode": score_mode}
        with dsl.ParallelFor(plan.outputs["Output"], name="readers") as reader_config:
            train = train_component(
                train_qa=aug.outputs["augmented_qa"],
                passages=prep.outputs["passages"],
                pretrained=mlm.outputs["model"],
                fold_data=plan.outputs["fold_data"],
                reader_model=reader_model,
                epochs=epochs,
                config=reader_config,
                gpus_per_node=gpu.gpus_per_node if target == "gpu" else 1,
                trainer_nodes=trainer_nodes,
                **track,
            )
            _resources(train, "4", "16Gi")
            on_gpu(train, gpu.gpus_per_node)
            # A preempted or OOM-killed pod is retried; with checkpoint_every set the retry resumes (see
            # components.train_reader).
            if retries:
                train.set_retry(num_retries=2, backoff_duration="60s", backoff_factor=2.0)

            pred = predict_component(
                reader=train.outputs["reader"],
                retrieved=ret.outputs["retrieved"],
                config=predict_config,
                **track,
            )
            _resources(pred, "2", "8Gi")
            on_gpu(pred, 1)

        ens = stages.ensemble(
            members=dsl.Collected(pred.outputs["predictions"]), config=ensemble_config, **track
        )
        _resources(ens, "1", "2Gi")

        # Not under dsl.If(test_uri != ""): kfp 2.17 cannot pass a dsl.Collected artifact list into a
        # condition group (its compiler types it as a parameter). With no test set the stage writes nothing.
        test = stages.answer_test(
            index=idx.outputs["index"],
            test_qa=data.outputs["test_qa"],
            readers=dsl.Collected(train.outputs["reader"]),
            predict_config=predict_config,
            ensemble_config=ensemble_config,
            top_k=top_k,
            **track,
        )
        _resources(test, "2", "8Gi")
        _elasticsearch(test)

        ev = stages.evaluate(
            eval_qa=data.outputs["eval_qa"],
            predictions=ens.outputs["predictions"],
            retrieved=ret.outputs["retrieved"],
            passages=prep.outputs["passages"],
            top_k=top_k,
            **track,
        )
        _resources(ev, "1", "2Gi")

        reg = stages.register(
            scores=ev.outputs["scores"],
            eval_qa=data.outputs["eval_qa"],
            index=idx.outputs["index"],
            readers=dsl.Collected(train.outputs["reader"]),
            predict_config=predict_config,
            ensemble_config=ensemble_config,
            top_k=top_k,
            model_name=model_name,
            promotion_metric=promotion_metric,
            promotion_margin=promotion_margin,
            promotion_confidence=promotion_confidence,
            **track,
        )
        _resources(reg, "1", "4Gi", cache=False)

    return odqa_pipeline


odqa_pipeline = build_pipeline("cpu")
