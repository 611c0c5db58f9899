"""ASGI entry point for uvicorn: ``medpay.api.main:app`` (database from MEDPAY_DATABASE_URL)."""

from medpay.api.app import create_app
from medpay.services.housekeeping import interval_s

app = create_app(housekeeping_every_s=interval_s())
