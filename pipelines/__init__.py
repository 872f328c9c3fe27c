"""Pipeline definitions (the DAG wiring only; stage code lives in components/ and src/odqa)."""
