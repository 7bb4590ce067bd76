"""OpenAPI 3.1 for the REST API, generated from the descriptor set Envoy transcodes with.

Modules, each with one job:

    protos.py       reads `server/envoy/todo.binpb`: services, http rules, messages, comments
    schemas.py      proto messages and enums -> JSON Schema (as Envoy prints and parses them)
    edge.py         facts read from the rendered Envoy config and the server: 201/204
                    routes, body size limits, public methods
    operations.py   one http rule -> one OpenAPI operation (parameters, body, responses)
    examples.py     example values for every request and response
    document.py     the whole document: info, paths, components, security
    __main__.py     `python -m server.openapi [DIR]` writes openapi.json and openapi.yaml
"""
