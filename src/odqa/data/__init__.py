"""Data contracts: load and validate QA examples and documents, write the shared flat formats."""

from odqa.data.documents import load_documents, write_documents
from odqa.data.passages import load_passages
from odqa.data.qa import LoadedQA, Problem, ValidationReport, load_qa, write_qa

__all__ = [
    "LoadedQA",
    "Problem",
    "ValidationReport",
    "load_documents",
    "load_passages",
    "load_qa",
    "write_documents",
    "write_qa",
]
