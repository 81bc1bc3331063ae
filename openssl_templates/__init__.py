"""Jinja2 templates of every OpenSSL config text certwiz writes (package data)."""
