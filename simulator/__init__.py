"""A provider simulator: a separate HTTP service that behaves like Kazakh acquirers and banks."""
