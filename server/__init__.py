"""The todo service: a grpc.aio server on PostgreSQL behind Envoy (see README.md)."""
