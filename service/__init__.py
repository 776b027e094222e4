"""Warden's HTTP side: webhook intake, health checks and the operator API."""
