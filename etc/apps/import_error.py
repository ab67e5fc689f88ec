"""Test app that cannot be imported: startup must fail and say why."""

raise RuntimeError("IMPORT-TIME-MARKER: this module refuses to load")


def application(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b""]
