"""The patient's app (移动支付): accounts and sign-in, paying what the doctor ordered, bookings, records and slips."""
