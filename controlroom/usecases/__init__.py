"""Use cases: the product's rules, combining the core with the adapters."""
