"""Test app that loads fine but kills its worker on every request
(os._exit(1)), to drive the master's crash-loop back-off."""

import os


def application(environ, start_response):
    os._exit(1)
