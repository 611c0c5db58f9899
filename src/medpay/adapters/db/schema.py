"""Every table module, imported so that ``Base.metadata`` knows the whole schema.

Add one import line here per new table module (tests and migrations create tables from this).
"""

from medpay.adapters.db import ledger_tables, tables  # noqa: F401
from medpay.adapters.db import gateway_tables  # noqa: F401
from medpay.adapters.db import file_tables  # noqa: F401
from medpay.adapters.db import ecert_tables  # noqa: F401
from medpay.adapters.db import payment_tables  # noqa: F401
from medpay.adapters.db import audit_tables  # noqa: F401
from medpay.adapters.db import staff_tables  # noqa: F401
from medpay.adapters.db import key_tables  # noqa: F401
from medpay.adapters.db import face_tables  # noqa: F401
from medpay.adapters.db import filing_tables  # noqa: F401
from medpay.adapters.db import catalog_tables  # noqa: F401
from medpay.adapters.db import designation_tables, settlement_list_tables  # noqa: F401
from medpay.adapters.db import diagnosis_tables  # noqa: F401
from medpay.adapters.db import resettlement_tables  # noqa: F401
from medpay.adapters.db import account_tables  # noqa: F401
from medpay.adapters.db import booking_tables  # noqa: F401
from medpay.adapters.db import stay_tables  # noqa: F401
from medpay.adapters.db.base import Base

metadata = Base.metadata
