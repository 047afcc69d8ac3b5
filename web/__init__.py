"""The exception workspace: a server-rendered web page over the ledger (`ml-connector serve`)."""
