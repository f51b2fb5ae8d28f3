"""Demo traffic: players and a realistic mix of payments for a fresh install."""
