"""Data contracts: load and validate QA examples and documents, write the shared flat formats, and
read the files stages pass each other (passages, doc aliases, retrieved passages)."""

from odqa.data.documents import iter_documents, load_documents, write_documents
from odqa.data.passages import load_doc_aliases, load_passages
from odqa.data.qa import LoadedQA, Problem, ValidationReport, load_qa, write_qa
from odqa.data.retrieved import load_retrieved

__all__ = [
    "LoadedQA",
    "Problem",
    "ValidationReport",
    "iter_documents",
    "load_doc_aliases",
    "load_documents",
    "load_passages",
    "load_qa",
    "load_retrieved",
    "write_documents",
    "write_qa",
]
