"""Temporal payload codec: AES-GCM encryption of workflow and activity payloads.

`codec.aesgcm` holds the codec itself (no project imports, so settings can validate keys with
it); `codec.converter.data_converter(settings)` is what every Temporal client is built with.
"""
