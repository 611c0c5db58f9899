"""medpay — unified medical-insurance convenient payment (医保便捷支付)."""

__version__ = "0.1.0"
