"""A small Django project for scripts/bench (the django-* scenarios): see views.py."""
