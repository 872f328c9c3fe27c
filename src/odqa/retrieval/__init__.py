"""Retrieval: index passages, search top-k, evaluate recall."""
