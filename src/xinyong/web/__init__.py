"""The HTTP API and the web application (``xinyong serve``)."""

from xinyong.web.app import create_app

__all__ = ["create_app"]
