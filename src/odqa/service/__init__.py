"""The champion as an online QA service (docs/serving.md): a FastAPI app over the registered MLflow
pyfunc (odqa.serving.OdqaModel) with dynamic batching, champion swap without downtime, health and
readiness, Prometheus metrics, JSON request logs and a page to ask it. `odqa serve` starts it."""
