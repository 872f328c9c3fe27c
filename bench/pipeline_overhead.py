"""Per-component overhead of the kfp local runner: a chain of no-op components run as a local
pipeline vs the same functions called directly, and the cost of opening an MLflow nested run.

Reproduce: .venv/bin/python bench/pipeline_overhead.py [--components 6]
"""

import argparse
import tempfile
import time

from kfp import dsl, local

from odqa.pipeline.components import IMAGE


@dsl.component(base_image=IMAGE)
def noop(x: int) -> int:
    return x + 1


@dsl.component(base_image=IMAGE)
def noop_with_odqa_import(x: int) -> int:
    import odqa.tracking  # noqa: F401  (what every odqa component pays before its stage code)

    return x + 1


def chain(component, n: int):
    @dsl.pipeline(name=f"overhead-{n}")
    def pipe(x: int = 0):
        task = component(x=x)
        for _ in range(n - 1):
            task = component(x=task.output)

    return pipe


def mlflow_stage_seconds(n: int) -> float:
    from odqa import tracking

    with tempfile.TemporaryDirectory() as tmp:
        uri = tracking.sqlite_uri(f"{tmp}/mlflow.db")
        parent = tracking.start_pipeline_run(uri, "bench", "overhead")
        t0 = time.perf_counter()
        for i in range(n):
            with tracking.stage_run(uri, parent, f"stage-{i}") as sr:
                sr.log_metrics({"x": i})
        return (time.perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--components", type=int, default=6)
    args = parser.parse_args()
    n = args.components
    with tempfile.TemporaryDirectory() as root:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root)
        rows = []
        t0 = time.perf_counter()
        x = 0
        for _ in range(n):
            x = noop.python_func(x=x)
        rows.append(("direct call", time.perf_counter() - t0))
        for label, component in [
            ("local runner, no-op", noop),
            ("local runner, import odqa", noop_with_odqa_import),
        ]:
            t0 = time.perf_counter()
            chain(component, n)()
            rows.append((label, time.perf_counter() - t0))
    stage = mlflow_stage_seconds(n)
    print(f"\n{'mode':<28} {'total s':>8} {'per component s':>16}")
    for label, seconds in rows:
        print(f"{label:<28} {seconds:>8.2f} {seconds / n:>16.3f}")
    print(f"{'MLflow nested run (SQLite)':<28} {stage * n:>8.2f} {stage:>16.3f}")
    print(
        f"\n{n} components in a chain. Reproduce: .venv/bin/python bench/pipeline_overhead.py --components {n}"
    )


if __name__ == "__main__":
    main()
