"""Shared by every Ferry component; stdlib only so it adds nothing to any image."""
