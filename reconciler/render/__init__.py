"""Printing plans and apply results for people (human) and programs (json)."""
