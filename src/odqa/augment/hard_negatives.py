"""Hard negatives: passages the retriever ranks high for a question that are neither its gold document nor
contain its answer. As no-answer training examples (empty answers) they teach the reader to put its
mass on CLS for a plausible but wrong passage, as it will meet at inference."""

from __future__ import annotations

from odqa.retrieval.base import Retriever
from odqa.schema import QAExample


def hard_negative_examples(
    examples: list[QAExample], retriever: Retriever, per_question: int, pool: int, weight: float = 1.0
) -> list[QAExample]:
    answerable = [ex for ex in examples if ex.is_answerable]
    if per_question <= 0 or not answerable:
        return []
    hits_per_question = retriever.search([ex.question for ex in answerable], top_k=pool)
    negatives = []
    for ex, hits in zip(answerable, hits_per_question, strict=True):
        taken = 0
        for hit in hits:
            if taken == per_question:
                break
            if hit.document_id == ex.document_id or hit.text in ex.context or ex.context in hit.text:
                continue
            if any(answer in hit.text for answer in ex.answers["text"]):
                continue
            taken += 1
            negatives.append(
                QAExample(
                    id=f"{ex.id}-neg{taken}",
                    question=ex.question,
                    context=hit.text,
                    title=hit.title,
                    document_id=hit.document_id,
                    weight=weight,
                )
            )
    return negatives
