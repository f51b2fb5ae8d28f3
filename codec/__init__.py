"""Temporal payload codec: AES-GCM encryption of workflow and activity payloads."""
