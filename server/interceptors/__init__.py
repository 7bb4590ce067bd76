"""gRPC server interceptors, one concern each (order in server/app.py)."""
