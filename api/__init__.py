"""The REST API (FastAPI under uvicorn): a thin adapter over the engine and the store.

    settings   the one Settings object is store.settings.Settings (CROSSCHECK_* variables)
    access     who may do what: the permission table by role, region scope, ID masking
    deps       Annotated dependencies: the store, the checker, the current user, permissions
    schemas    request and response models (…In, …Out) with examples for the OpenAPI page
    errors     engine errors → {"error": ..., "detail": ...} with an HTTP status, in one place
    uploads    an uploaded file to disk chunk by chunk, its kind by name or first bytes, XLSX bombs refused
    audit      the middleware that records every request in the append-only audit log
    metrics    Prometheus counters and the /metrics text
    app        create_app(settings): routers, handlers, background workers
    routes/    one module per resource: checks, batches, flags, runs, sources, meta, audit
    cli        `crosscheck serve` and `crosscheck users`
"""
