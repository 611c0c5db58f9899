"""The QR channel (医保电子凭证 一码付): e-certificates on a device and their activation (``activation``), the dynamic
code and the terminals' ``ec.query`` (``ecert``), one-scan settlement through the payment gateway (``one_scan``),
and the reverse scan of a bill code (``bill_pay``). What every channel shares — settlement, credentials, signed
requests, audit — stays in ``medpay.services``."""
