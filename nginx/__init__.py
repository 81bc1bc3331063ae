"""NGINX configs and templates certwiz renders per profile (package data)."""
