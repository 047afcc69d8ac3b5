"""The command line's parts. cli.py holds the main group and the one place errors become
messages and exit codes; each module here registers its commands on that group
(`register(main)`), and output.py is what a person sees (tables, JSON, logs, progress)."""
