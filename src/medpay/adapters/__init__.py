"""Adapters: the outside world (database, gateways, banks, devices) behind the ports services declare."""
