"""The JSON contract (docs/serving.md): request models whose limits come from ServeConfig, and the
response models the OpenAPI spec publishes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from odqa.service.config import ServeConfig


def _question(value: str) -> str:
    """A question that has text and is valid Unicode (JSON may carry lone surrogates, which no
    tokenizer can encode)."""
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it holds an unpaired surrogate)") from None
    return value


def request_models(config: ServeConfig) -> tuple[type[BaseModel], type[BaseModel]]:
    """(AnswerRequest, BatchRequest) with this service's limits, so the OpenAPI spec states them."""
    Question = Annotated[
        StrictStr, Field(min_length=1, max_length=config.max_question_chars), AfterValidator(_question)
    ]
    TopK = Annotated[
        StrictInt | None,
        Field(
            None,
            ge=1,
            le=config.max_top_k,
            description="passages to retrieve and read (default: the model's top_k_passages)",
        ),
    ]

    class AnswerRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid", json_schema_extra={"examples": [{"question": "대한민국의 수도는?"}]}
        )
        question: Question = Field(description="the question, in the language of the corpus")
        top_k: TopK = None

    class BatchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        questions: list[Question] = Field(min_length=1, max_length=config.max_batch_questions)
        top_k: TopK = None

    return AnswerRequest, BatchRequest


class Span(BaseModel):
    text: str
    score: float
    start_char: int | None = Field(description="offset of the answer in the passage text (None: not found)")
    end_char: int | None


class PassageRead(BaseModel):
    passage_id: str
    document_id: str
    title: str
    text: str
    score: float = Field(description="retrieval score")
    rank: int
    answer: Span | None = Field(description="the reader's best span in this passage, if it proposed one")


class Answer(BaseModel):
    question: str
    answer: str
    score: float
    passage_id: str | None
    document_id: str | None
    start_char: int | None = Field(description="offset of the answer in its passage's text")
    end_char: int | None
    passages: list[PassageRead]


class AnswerResponse(Answer):
    model_version: str


class BatchResponse(BaseModel):
    model_version: str
    answers: list[Answer]


class ErrorResponse(BaseModel):
    error: str = Field(description="what is wrong, naming the field when there is one")
    field: str | None = None


class ReadyResponse(BaseModel):
    status: str
    model: str
    model_version: str | None = None
    error: str | None = None


class ReloadResponse(BaseModel):
    changed: bool
    model_version: str | None


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse} for code in codes}
