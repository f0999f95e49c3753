"""The edge: CloudFront in front of the API's load balancer and the public assets, with
WAF. ``parts`` holds its fixed choices and the pieces the stack wires before the
distribution exists (``AssetsGrant``), ``component`` the ``Edge`` component."""

from components.edge.component import Edge, EdgeArgs
from components.edge.parts import (
    ALL_METHODS,
    API_ORIGIN_ID,
    ASSETS_ORIGIN_ID,
    ASSETS_PREFIX,
    EDGE_REGION,
    ORIGIN_VERIFY_HEADER,
    AssetsGrant,
    oac_bucket_statement,
    oac_key_statement,
    security_headers,
    viewer_certificate,
)

__all__ = [
    "ALL_METHODS",
    "API_ORIGIN_ID",
    "ASSETS_ORIGIN_ID",
    "ASSETS_PREFIX",
    "EDGE_REGION",
    "ORIGIN_VERIFY_HEADER",
    "AssetsGrant",
    "Edge",
    "EdgeArgs",
    "oac_bucket_statement",
    "oac_key_statement",
    "security_headers",
    "viewer_certificate",
]
