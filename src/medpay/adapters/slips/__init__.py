"""The settlement slip (结算单) as a PDF: a CJK font found on the machine, and the renderer."""
