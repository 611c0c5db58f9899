"""The face channel (刷脸): evaluation of the model, consented enrolment, terminals' verification sessions."""
