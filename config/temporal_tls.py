"""Temporal over mutual TLS: the SDK's `TLSConfig` from the settings.

Every `Client.connect` of the project passes `tls=temporal_tls(settings)`: the worker, the API,
the setup job and the launcher. With `PAY_TEMPORAL_TLS_CA`, `PAY_TEMPORAL_TLS_CERT` and
`PAY_TEMPORAL_TLS_KEY` set, the client verifies the frontend's certificate against that CA (under
`PAY_TEMPORAL_TLS_SERVER_NAME`, default the host it dials) and presents its own certificate, which
the frontend requires (`TEMPORAL_TLS_REQUIRE_CLIENT_AUTH` in docker-compose.yml). Unset, the
connection is plain (the embedded development server on 127.0.0.1).
"""

from temporalio.service import TLSConfig

from config.settings import Settings


def temporal_tls(settings: Settings) -> TLSConfig | bool:
    ca, cert, key = settings.temporal_tls_ca, settings.temporal_tls_cert, settings.temporal_tls_key
    if ca is None and cert is None:
        return False
    return TLSConfig(
        server_root_ca_cert=ca.read_bytes() if ca is not None else None,
        client_cert=cert.read_bytes() if cert is not None else None,
        client_private_key=key.read_bytes() if key is not None else None,
        domain=settings.temporal_tls_server_name,
    )
