"""HTTP adapters for payment providers; transport errors become `providers.errors` here only."""
