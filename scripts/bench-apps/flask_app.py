"""Tiny Flask JSON endpoint for scripts/bench: GET /json -> {"message": ...}.

Module-level ``app`` and ``application`` name the same WSGI callable, so the
app can be loaded as ``flask_app:app`` or ``flask_app:application``.
"""

from flask import Flask, jsonify

app = Flask(__name__)
application = app


@app.get("/json")
def hello_json():
    return jsonify(message="Hello, World!")
