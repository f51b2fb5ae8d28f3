"""HTTP adapters for payment providers. Transport errors become `providers.errors` here and nowhere else."""
