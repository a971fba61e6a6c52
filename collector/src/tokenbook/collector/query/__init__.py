"""Reading the ledger on users' behalf over the admin API.

`api` is the admin query API's wire format and its client.
"""

__all__: list[str] = []
