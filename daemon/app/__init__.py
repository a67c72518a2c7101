"""The library behind the CLI and the HTTP face: one module per group of commands, each
function returning data (dataclasses), never printing; no click and no HTTP in here.

``running`` (the daemon: ``run``, burst mode), ``status`` (jobs and nodes), ``queue`` (adding
and requeueing files), ``oneshot`` (``transcribe`` without a daemon), ``speakers`` (a done job's
speakers), ``voices`` (enrolled voices) and ``admin`` (config, doctor, database).
"""
