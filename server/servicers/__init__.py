"""gRPC adapters: proto -> domain, one use case, domain -> proto."""
