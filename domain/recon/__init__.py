"""Reconciliation: the providers' and the bank's records of money, matched with ours."""
