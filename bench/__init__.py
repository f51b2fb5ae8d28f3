"""Benchmarks that print their figures: ledger postings, payments end to end, fraud rules."""
