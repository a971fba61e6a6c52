"""Prices of model calls: the genai-prices catalog adapter (`catalog`) and local overrides
(`overrides`)."""

__all__: list[str] = []
