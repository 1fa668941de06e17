"""Ranking quality: BEIR data, metrics, the evaluation harness and reranker training."""
