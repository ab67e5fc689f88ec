"""A real Flask app for the integration tests (needs Flask in the venv).

  GET  /json  {"framework": "flask", "items": [1, 2, 3], "method": "GET"}
  POST /echo  the raw request body, echoed as application/octet-stream
  POST /sum   JSON {"a": A, "b": B} -> {"sum": A + B}
  GET  /where sys.prefix, flask.__file__ and sys.executable, one per line
"""

import sys

import flask
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/json")
def json_route():
    return jsonify(framework="flask", items=[1, 2, 3], method=request.method)


@app.post("/echo")
def echo():
    return request.get_data(), 200, {"Content-Type": "application/octet-stream"}


@app.post("/sum")
def add():
    data = request.get_json()
    return jsonify(sum=data["a"] + data["b"])


@app.get("/where")
def where():
    lines = [sys.prefix, flask.__file__, sys.executable]
    return "\n".join(lines) + "\n", 200, {"Content-Type": "text/plain"}
