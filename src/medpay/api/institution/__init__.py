"""The NHSA-style institution interface (定点医药机构接口): HIS systems call it with `infno` transactions."""
