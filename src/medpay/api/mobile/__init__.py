"""The patient's app door (移动端): its API (device-signed, and the signed-in account's) and its pages under ``/m/``."""
