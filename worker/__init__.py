"""Celery workers: one pool per queue (cpu, ocr, render)."""
