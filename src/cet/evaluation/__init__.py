"""Evaluation: metrics, labelled sets, reports and plots."""
