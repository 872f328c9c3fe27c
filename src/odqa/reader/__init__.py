"""Extractive reader: tokenizer, windowed features, training and n-best inference."""
