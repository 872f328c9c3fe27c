"""The odqa DAG: prepare_data -> preprocess -> augment / index -> retrieve -> ParallelFor(reader configs:
train_reader -> predict) -> ensemble -> evaluate -> register. Compiled to pipelines/odqa_pipeline.yaml by
`odqa pipeline compile`; run locally by `odqa pipeline run --local`.
"""

import os

from kfp import dsl, kubernetes

from odqa.pipeline import components as stages

GPU_NODE_SELECTOR = ("cloud.google.com/gke-accelerator", "nvidia-tesla-t4")
GPU_TOLERATION = "nvidia.com/gpu"
# The in-cluster Elasticsearch, compiled into the index and retrieve components as ODQA_ES_URL when
# ODQA_PIPELINE_ES_URL is set at compile time (like ODQA_IMAGE: the schedule job's ConfigMap in
# manifests/base/recurring-run.yaml sets both). Unset (a local compile), components keep their own.
PIPELINE_ES_URL = os.environ.get("ODQA_PIPELINE_ES_URL", "")


def _elasticsearch(task: dsl.PipelineTask) -> dsl.PipelineTask:
    if PIPELINE_ES_URL:
        task.set_env_variable("ODQA_ES_URL", PIPELINE_ES_URL)
    return task


def _resources(task: dsl.PipelineTask, cpu: str, memory: str, cache: bool = True) -> dsl.PipelineTask:
    task.set_cpu_request(cpu).set_memory_request(memory).set_memory_limit(memory)
    task.set_caching_options(enable_caching=cache)
    return task


@dsl.pipeline(name="odqa", description="Open-domain QA over Wikipedia: data -> index -> reader -> registry")
def odqa_pipeline(
    data_uri: str = "",
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
    reader_model: str = "",
    epochs: float = 5.0,
    reader_configs: list = [{"hidden_size": 128, "num_layers": 2, "num_heads": 2, "num_threads": 2}],  # noqa: B006 (KFP needs literal defaults)
    score_mode: str = "prob_product",
    ensemble_config: dict = {},  # noqa: B006 (KFP needs literal defaults)
    tracking_uri: str = "http://mlflow.odqa.svc.cluster.local:5000",
    experiment: str = "odqa",
    run_name: str = "odqa",
    model_name: str = "odqa",
    promotion_metric: str = "exact_match",
    promotion_margin: float = 0.0,
):
    start = stages.start_tracking(
        tracking_uri=tracking_uri,
        experiment=experiment,
        run_name=run_name,
        params={
            "data_uri": data_uri,
            "retriever_kind": retriever_kind,
            "analyzer": analyzer,
            "top_k": top_k,
            "reader_model": reader_model,
            "epochs": epochs,
            "score_mode": score_mode,
            "promotion_metric": promotion_metric,
            "promotion_margin": promotion_margin,
        },
    )
    _resources(start, "250m", "1Gi", cache=False)
    track = {"mlflow_run": start.outputs["mlflow_run"]}

    data = stages.prepare_data(
        source_uri=data_uri, eval_fraction=eval_fraction, split_seed=split_seed, **track
    )
    _resources(data, "1", "2Gi", cache=False)

    prep = stages.preprocess(documents=data.outputs["documents"], config=preprocess_config, **track)
    _resources(prep, "2", "4Gi")

    aug = stages.augment(
        train_qa=data.outputs["train_qa"], passages=prep.outputs["passages"], config=augment_config, **track
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

    # Pipeline parameters inside a dict literal reach the component as strings: only string fields here.
    predict_config = {"score_mode": score_mode}
    with dsl.ParallelFor(reader_configs, name="readers") as reader_config:
        train = stages.train_reader(
            train_qa=aug.outputs["augmented_qa"],
            passages=prep.outputs["passages"],
            reader_model=reader_model,
            epochs=epochs,
            config=reader_config,
            **track,
        )
        _resources(train, "4", "16Gi")
        train.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
        kubernetes.add_node_selector(train, label_key=GPU_NODE_SELECTOR[0], label_value=GPU_NODE_SELECTOR[1])
        kubernetes.add_toleration(train, key=GPU_TOLERATION, operator="Exists", effect="NoSchedule")

        pred = stages.predict(
            reader=train.outputs["reader"], retrieved=ret.outputs["retrieved"], config=predict_config, **track
        )
        _resources(pred, "2", "8Gi")

    ens = stages.ensemble(members=dsl.Collected(pred.outputs["predictions"]), config=ensemble_config, **track)
    _resources(ens, "1", "2Gi")

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
        **track,
    )
    _resources(reg, "1", "4Gi", cache=False)
