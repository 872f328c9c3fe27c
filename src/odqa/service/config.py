"""The serving stage's one config (`odqa serve` flags are generated from it)."""

from __future__ import annotations

from pydantic import Field

from odqa.config import StageConfig
from odqa.reader.config import Precision

DEFAULT_MODEL = "models:/odqa@champion"


class ServeConfig(StageConfig):
    model: str = Field(
        DEFAULT_MODEL,
        description="model to serve: models:/NAME@ALIAS (followed when the alias moves), models:/NAME/VERSION, "
        "runs:/... or a local pyfunc folder",
    )
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking/registry URI (none: $MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db)",
    )
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 in a container)")
    port: int = Field(8080, ge=0, le=65535, description="port to listen on (0: any free port)")
    max_batch_size: int = Field(32, ge=1, le=1024, description="most questions in one reader call")
    max_wait_ms: float = Field(
        5.0, ge=0, le=1000, description="longest a question waits for others to share its reader call"
    )
    max_queue: int = Field(
        1024, ge=1, description="questions waiting at most; more are refused with 503 (back-pressure)"
    )
    max_question_chars: int = Field(2000, ge=1, description="longest question accepted, in characters")
    max_batch_questions: int = Field(32, ge=1, description="most questions in one /v1/answers request")
    max_top_k: int = Field(100, ge=1, description="largest top_k (passages read) a request may ask for")
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="largest request body; longer ones are refused with 413 unread"
    )
    poll_interval_s: float = Field(
        30.0, ge=0, description="seconds between checks of the registry alias (0: never; POST /admin/reload)"
    )
    admin_reload: bool = Field(True, description="offer POST /admin/reload (check the alias now)")
    wait_for_model: bool = Field(
        False,
        description="start even when the alias or registry is not there yet (/ready says 503 until a model "
        "loads; a cluster before its first champion); off: refuse to start",
    )
    log_questions: bool = Field(
        False, description="put the raw question text in the request log (off: only its sha256)"
    )
    num_threads: int | None = Field(
        None, ge=1, description="torch threads for the reader (none: torch's default)"
    )
    # bf16 on a CPU with AVX-512 BF16 read a batch of 64 questions in 20 ms a question instead of 36,
    # with the same 64 answers (bench/README.md "Serving"); the model's own setting stays the default.
    precision: Precision | None = Field(
        None,
        description="the reader's precision: fp32, bf16 (autocast; a CPU with AVX-512 BF16 or AMX, or CUDA), "
        "fp16 (CUDA), auto (none: what the model was logged with)",
    )
