"""Plain, typed business rules: no I/O, so they are unit-testable and safe to call from anywhere."""
