"""The HTTP API (FastAPI): a thin layer over ``Engine``."""

from freshrec.serving.app import create_app

__all__ = ["create_app"]
