"""SMPP 3.4 wire layer shared by the sender's ESME client and the simulator's SMSC: PDUs and
framing (``pdu``), the GSM 03.38 alphabet (``gsm``), long messages (``concat``) and delivery
receipt texts (``receipt``). Pure: no I/O."""

__all__: list[str] = []
