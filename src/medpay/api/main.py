"""ASGI entry point for uvicorn: ``medpay.api.main:app`` (database from MEDPAY_DATABASE_URL)."""

from medpay.api.app import create_app

app = create_app()
