"""The deployment as code: what manifests/ deploys, read back for checking and for running locally.

- odqa.deploy.manifests: build an overlay with kustomize and read containers, env and args from it.
- odqa.deploy.check: one consistency check across manifests, the compiled pipeline and the client
  libraries (`make cluster-check`).
- odqa.deploy.stack: the manifests' MLflow + S3 stack started on this machine (`make stack`).
- odqa.deploy.buckets: the init step that creates the S3 buckets (run in the cluster and by the stack).

This package never imports odqa.pipeline or odqa.cli (tests/test_architecture.py): values from the
pipeline (its default image, its compiled YAML) are passed in or read as text.
"""
