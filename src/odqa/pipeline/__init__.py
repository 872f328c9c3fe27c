"""The Kubeflow layer: components (thin adapters over the stage library), the DAG wiring them, and
the runner that compiles, runs locally, submits and schedules it. Nothing below this package imports
it; the CLI above calls the runner."""
